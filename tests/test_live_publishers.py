"""What real publishers do, end to end: the real daemon, ffmpeg publishing over RTMP as OBS
would, and ffmpeg as the player reading the HLS over HTTP.

* A publisher that goes away (killed, or a clean stop) and comes back within the grace:
  the player carries on at the live edge with the new media, never sees an end marker,
  never sees old media again, and the status never says offline; only once the grace is
  over is the broadcast ended (offline, ``EXT-X-ENDLIST``, the player exits by itself).
* A video-only and an audio-only source play like any other.
* A daemon killed mid-broadcast: the next run serves, while offline, only playlists that
  end and name segments that are there, and a new broadcast never names old files.

The two sources of a reconnect are solid colours (blue, then red), so what the player
decodes tells which publisher it came from: ffmpeg's ``showinfo`` prints each frame's
mean U and V.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass

import psutil
from twisted.internet import reactor

from tests.daemon import Daemon, sleep, wait_until
from tests.test_live_e2e import (
    FIRST_SEGMENT_WITHIN,
    OFFLINE_WITHIN,
    SIZES,
    STATUS_WITHIN,
    Ffmpeg,
    LiveCase,
    PlaylistWatch,
    get_playlist,
    parse_master,
    spawn,
    transcoder_pids,
)

#: showinfo's per-frame line: its presentation time and the mean of each plane.
_FRAME = re.compile(
    r"\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:(-?[0-9.]+).*?\bmean:\[(\d+) (\d+) (\d+)"
)


def source_args(url: str, seconds: float, *, video: str | None, audio: bool = True) -> list[str]:
    """A 720p30 x264 + AAC publisher in real time (``video=None``: audio only; a colour
    name: a solid picture of that colour)."""
    args = ["-hide_banner", "-loglevel", "error", "-re"]
    if video is not None:
        args += ["-f", "lavfi", "-i", f"color=c={video}:size=1280x720:rate=30"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440"]
    args += ["-t", str(seconds)]
    if video is not None:
        args += ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60"]
    if audio:
        args += ["-c:a", "aac"]
    return args + ["-f", "flv", url]


def player_args(url: str) -> list[str]:
    """ffmpeg as a plain HLS player: from the live edge, every decoded frame's time and
    colour on stderr, until the playlist ends."""
    return [
        "-hide_banner", "-nostdin", "-loglevel", "level+info",
        "-copyts", "-i", url, "-map", "0:v:0",
        "-vf", "showinfo", "-fps_mode", "passthrough", "-f", "null", "-",
    ]  # fmt: skip


@dataclass
class Frame:
    time: float
    colour: str


def frames(stderr: str) -> list[Frame]:
    """The frames a player decoded, each blue, red or grey (from its mean U and V)."""
    found = []
    for time, _, u, v in _FRAME.findall(stderr):
        u, v = int(u), int(v)
        colour = "blue" if u > v + 40 else "red" if v > u + 40 else "grey"
        found.append(Frame(float(time), colour))
    return found


def runs(found: list[Frame]) -> list[tuple[str, int]]:
    """The colours in order of appearance, with how many frames each run had."""
    result: list[tuple[str, int]] = []
    for frame in found:
        if result and result[-1][0] == frame.colour:
            result[-1] = (frame.colour, result[-1][1] + 1)
        else:
            result.append((frame.colour, 1))
    return result


class ReconnectTests(LiveCase):
    timeout = 180

    async def test_player_carries_on_through_a_reconnect(self):
        daemon, auth = await self.start_live_daemon()
        hooks = await self.subscribe_webhooks(daemon, auth, ["STREAM_STARTED", "STREAM_STOPPED"])
        watch = PlaylistWatch(daemon, [0, 1]).start(self)
        url = self.rtmp_url(daemon, auth[1])

        first = spawn(self, *source_args(url, 120, video="blue"))
        await self.wait_segments(daemon, 3, FIRST_SEGMENT_WITHIN)
        player = spawn(self, *player_args(f"{daemon.base}/hls/1/stream.m3u8"))
        await wait_until(lambda: len(frames(player.stderr)) >= 30, 20, "the player to play")

        # The publisher dies (kill -9, as OBS crashing or a network cut).
        os.kill(first.transport.pid, signal.SIGKILL)
        await first.wait(5, "the killed publisher to go")
        gone_at = reactor.seconds()
        await self.wait_no_transcoder(daemon)
        away = []
        while reactor.seconds() - gone_at < 5:  # OBS comes back after a few seconds
            away.append(await self.online(daemon))
            for index in range(len(SIZES)):
                playlist = await get_playlist(daemon, index)
                self.assertFalse(playlist.ended, playlist.text)
            await sleep(0.5)
        self.assertEqual(set(away), {True}, "online all along while the publisher was away")
        self.assertTrue(player.running, "the player must wait, not end:\n" + player.stderr[-2000:])
        blue = len(frames(player.stderr))

        # It comes back and sends red; then it stops cleanly.
        second = spawn(self, *source_args(url, 8, video="red"))
        await wait_until(
            lambda: len([f for f in frames(player.stderr) if f.colour == "red"]) >= 30,
            20,
            "the player to show the new publisher's frames",
        )
        await second.wait(20, "the second publisher to finish")
        self.assertEqual(second.code, 0, second.stderr)
        await self.wait_no_transcoder(daemon)
        self.assertIs(await self.online(daemon), True, "a clean stop waits for the grace too")
        self.assertEqual(len(hooks.of_type("STREAM_STOPPED")), 0)

        # The grace runs out: offline, the playlists end, the player ends by itself.
        await self.wait_online(daemon, False, OFFLINE_WITHIN)
        await player.wait(STATUS_WITHIN + 10, "the player to reach the end")
        self.assertEqual(player.code, 0, player.stderr[-3000:])
        for index in range(len(SIZES)):
            playlist = await get_playlist(daemon, index)
            self.assertTrue(playlist.ended, playlist.text)
            self.assertEqual(playlist.text.count("#EXT-X-ENDLIST"), 1, playlist.text)
            for number in playlist.segments:
                segment = await daemon.get(f"/hls/{index}/stream-{number}.ts")
                self.assertEqual(segment.code, 200, (index, number))
        await wait_until(lambda: hooks.of_type("STREAM_STOPPED"), 5, "STREAM_STOPPED webhook")
        self.assertEqual(len(hooks.of_type("STREAM_STARTED")), 1, hooks.received)
        self.assertEqual(len(hooks.of_type("STREAM_STOPPED")), 1, hooks.received)
        await watch.stop()
        self.assertNoProblems(watch)

        # What the player showed: blue, then red, each in order, nothing old again.
        played = frames(player.stderr)
        colours = [colour for colour, count in runs(played) if count > 2]
        self.assertEqual(colours, ["blue", "red"], runs(played))
        self.assertGreaterEqual(blue, 30)
        switch = next(i for i, f in enumerate(played) if f.colour == "red")
        for part in (played[:switch], played[switch:]):
            times = [f.time for f in part if f.colour != "grey"]
            self.assertEqual(times, sorted(set(times)), "a frame played twice or went back")

    async def wait_no_transcoder(self, daemon: Daemon) -> None:
        await wait_until(lambda: not transcoder_pids(daemon), 10, "the transcoder to end")


class TrackTests(LiveCase):
    async def test_video_only_source(self):
        """No audio track: segments as soon as from a normal source, video only."""
        daemon, auth = await self.start_live_daemon()
        publisher = spawn(
            self, *source_args(self.rtmp_url(daemon, auth[1]), 20, video="blue", audio=False)
        )
        await self.wait_segments(daemon, 2, FIRST_SEGMENT_WITHIN)
        probe = await self.probe(daemon, 0)
        self.assertIn("Video: h264", probe)
        self.assertNotIn("Audio:", probe)
        self.assertTrue(publisher.running)

    async def test_audio_only_source(self):
        """No video track: an audio-only rendition per variant that a player decodes."""
        daemon, auth = await self.start_live_daemon()
        publisher = spawn(self, *source_args(self.rtmp_url(daemon, auth[1]), 20, video=None))
        await self.wait_segments(daemon, 2, FIRST_SEGMENT_WITHIN)
        master = await daemon.get("/hls/stream.m3u8")
        entries = parse_master(master.content.decode())
        self.assertEqual([uri for uri, _ in entries], ["0/stream.m3u8", "1/stream.m3u8"])
        for _, attributes in entries:
            self.assertNotIn("RESOLUTION", attributes)
            self.assertIn("mp4a", attributes.get("CODECS", ""))
        probe = await self.probe(daemon, 1)
        self.assertIn("Audio: aac", probe)
        self.assertNotIn("Video:", probe)
        self.assertTrue(publisher.running)
        self.assertEqual((await daemon.get("/hls/thumbnail.jpg")).code, 404)

    async def probe(self, daemon: Daemon, index: int) -> str:
        player: Ffmpeg = spawn(
            self, "-hide_banner", "-nostdin", "-i", f"{daemon.base}/hls/{index}/stream.m3u8",
            "-t", "1", "-f", "null", "-",
        )  # fmt: skip
        await player.wait(30, "the player")
        self.assertEqual(player.code, 0, player.stderr[-3000:])
        return player.stderr


class DaemonRestartTests(LiveCase):
    async def test_killed_daemon_leaves_nothing_stale(self):
        """kill -9 mid-broadcast, start again: offline, the playlists end and name only
        segments that are there; the next broadcast names none of the old ones."""
        daemon, auth = await self.start_live_daemon()
        publisher = spawn(self, *source_args(self.rtmp_url(daemon, auth[1]), 60, video="blue"))
        before = await self.wait_segments(daemon, 3, FIRST_SEGMENT_WITHIN)
        orphans = [psutil.Process(pid) for pid in transcoder_pids(daemon)]
        await daemon.kill()
        await publisher.wait(15, "the publisher to notice")
        for orphan in orphans:  # its stdin closed with the daemon: it ends by itself
            await wait_until(lambda o=orphan: not o.is_running() or o.status() == "zombie", 10,
                             "the orphaned ffmpeg to end")  # fmt: skip
        # Some of the segments it listed are gone (as after a clean-up of old files).
        variant = daemon.datadir / "hls" / "0"
        (variant / f"stream-{before[0].segments[0]}.ts").unlink()

        await daemon.start()
        self.assertIs(await self.online(daemon), False)
        self.assertNotIn(before[0].segments[0], (await get_playlist(daemon, 0)).segments)
        for index in range(len(SIZES)):
            playlist = await get_playlist(daemon, index)
            self.assertTrue(playlist.ended, playlist.text)
            for number in playlist.segments:
                segment = await daemon.get(f"/hls/{index}/stream-{number}.ts")
                self.assertEqual(segment.code, 200, (index, number, playlist.text))
        old = set(before[0].segments) | set(before[1].segments)

        watch = PlaylistWatch(daemon, [0, 1]).start(self)
        spawn(self, *source_args(self.rtmp_url(daemon, auth[1]), 30, video="red"))
        fresh = await self.wait_segments(daemon, 2, FIRST_SEGMENT_WITHIN, after=max(old))
        await watch.stop()
        for playlist in fresh:
            self.assertFalse(set(playlist.segments) & old, playlist.text)
        for index, seen in watch.seen.items():
            if seen and seen[0].ended:
                seen = [p for p in seen if not p.ended]  # the old one, served while offline
            for playlist in seen:
                self.assertFalse(set(playlist.segments) & old, (index, playlist.text))
