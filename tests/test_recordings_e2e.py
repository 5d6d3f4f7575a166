"""Recordings end to end: the real daemon on a fresh data dir (recording on by default),
ffmpeg publishing over RTMP (blue, killed, then red within the reconnect grace), and
ffmpeg as the reader of what is kept: the VOD playlist over HTTP, the MP4 download and a
clip's MP4, each decoded from start to end."""

from __future__ import annotations

import re

import psutil

from tests.daemon import sleep, wait_until
from tests.test_live_e2e import (
    FIRST_SEGMENT_WITHIN,
    OFFLINE_WITHIN,
    LiveCase,
    run,
    spawn,
    transcoder_pids,
)
from tests.test_live_publishers import frames, runs, source_args


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


_TIME = re.compile(r"time=([0-9]+):([0-9]+):([0-9.]+)")
#: Seconds each publisher sends.
PART = 8
#: One GOP of the source (``-g 60`` at 30 fps), the precision of a copy cut.
GOP = 2.0


def decoded_seconds(stderr: str) -> float:
    """The last ``time=`` ffmpeg reported: how much media it read to the end."""
    found = _TIME.findall(stderr)
    assert found, stderr[-2000:]
    h, m, s = found[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


class RecordingE2ETests(LiveCase):
    timeout = 240

    async def test_broadcast_with_reconnect_is_one_recording_ffmpeg_reads_whole(self) -> None:
        """A broadcast whose publisher is killed and back within the grace becomes one
        recording; ffmpeg decodes its VOD (blue then red, the right duration within a
        segment), its MP4 and a clip of the asked-for span (within a GOP)."""
        daemon, auth = await self.start_live_daemon()
        key = auth[1]
        url = self.rtmp_url(daemon, key)
        blue = spawn(self, *source_args(url, 60, video="blue"))
        await self.wait_online(daemon, True, FIRST_SEGMENT_WITHIN)
        await sleep(PART)
        await blue.kill()
        await sleep(3)
        red = spawn(self, *source_args(url, PART, video="red"))
        await red.wait(PART + 20)
        await self.wait_online(daemon, False, OFFLINE_WITHIN)

        async def finished() -> list | None:
            listed = await self.get_json(daemon, "/api/recordings")
            return listed if listed and not listed[0]["live"] else None

        listed = await wait_until(finished, 10, "the recording to end")
        self.assertEqual(len(listed), 1, listed)
        recording = listed[0]
        duration = recording["duration"]
        self.assertGreater(duration, 2 * PART - 4, recording)
        self.assertLess(duration, 2 * PART + 4, recording)

        base = f"http://127.0.0.1:{daemon.web_port}"
        player = await run(
            self, "-hide_banner", "-nostdin", "-i", base + recording["playlist"],
            "-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-", timeout=60,
        )  # fmt: skip
        self.assertEqual(player.code, 0, player.err[-2000:])
        err = player.err.decode("utf-8", "replace")
        colours = [c for c, n in runs(frames(err)) if n > 10]
        self.assertEqual(colours, ["blue", "red"], runs(frames(err)))
        self.assertLessEqual(abs(decoded_seconds(err) - duration), 1.0)

        response = await daemon.get(recording["download"])
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("content-type"), "video/mp4")
        mp4 = self.mktemp() + ".mp4"
        with open(mp4, "wb") as f:
            f.write(response.content)
        check = await run(self, "-hide_banner", "-nostdin", "-i", mp4, "-f", "null", "-")
        self.assertEqual(check.code, 0, check.err[-2000:])
        self.assertLessEqual(abs(decoded_seconds(check.err.decode()) - duration), 1.0)

        clip_path = "/api/admin/recordings/clip"
        rid = recording["id"]
        response = await daemon.post(clip_path, {"id": rid, "start": 3, "end": 9}, auth=auth)
        self.assertEqual(response.code, 200, response)
        clip = response.json
        response = await daemon.get(clip["download"])
        self.assertEqual(response.code, 200)
        with open(mp4, "wb") as f:
            f.write(response.content)
        check = await run(self, "-hide_banner", "-nostdin", "-i", mp4, "-f", "null", "-")
        self.assertEqual(check.code, 0, check.err[-2000:])
        self.assertLessEqual(abs(decoded_seconds(check.err.decode()) - 6.0), GOP)
        response = await daemon.get(f"/api/recordings/{recording['id']}")
        self.assertEqual([c["id"] for c in response.json["clips"]], [clip["id"]])
        bad = await daemon.post(clip_path, {"id": rid, "start": 9, "end": 3}, auth=auth)
        self.assertEqual((bad.code, bad.json["success"]), (400, False))

    async def test_killed_daemon_keeps_every_finished_segment(self) -> None:
        """kill -9 mid-broadcast, start again: the recording is ended and holds every
        segment ffmpeg had finished and listed (at most the last one is lost); it plays."""
        daemon, auth = await self.start_live_daemon()
        publisher = spawn(self, *source_args(self.rtmp_url(daemon, auth[1]), 60, video="blue"))
        await self.wait_segments(daemon, 6, FIRST_SEGMENT_WITHIN + 6)
        transcoders = [psutil.Process(pid) for pid in transcoder_pids(daemon)]
        await daemon.kill()
        await publisher.wait(15, "the publisher to notice")
        # The orphaned ffmpeg may still write a last segment as its input ends: list
        # what it finished once it has gone (as the daemon started again will see it).
        await wait_until(lambda: not any(map(_alive, transcoders)), 15, "the transcoder to exit")
        live = daemon.datadir / "hls" / "0"
        finished = sorted(
            int(p.name[len("stream-") : -len(".ts")]) for p in live.glob("stream-*.ts")
        )
        self.assertGreaterEqual(len(finished), 6)

        await daemon.start()
        listed = await self.get_json(daemon, "/api/recordings")
        self.assertEqual(len(listed), 1, listed)
        recording = listed[0]
        self.assertFalse(recording["live"], recording)
        response = await daemon.get(f"/recordings/{recording['id']}/0/stream.m3u8")
        kept = [
            int(line[len("stream-") : -len(".ts")])
            for line in response.content.decode().splitlines()
            if line.startswith("stream-")
        ]
        # ffmpeg may have renamed its last segment into place but not yet listed it.
        self.assertIn(kept, (finished, finished[:-1]))
        player = await run(
            self, "-hide_banner", "-nostdin", "-i", daemon.base + recording["playlist"],
            "-f", "null", "-", timeout=60,
        )  # fmt: skip
        self.assertEqual(player.code, 0, player.err[-2000:])
        decoded = decoded_seconds(player.err.decode("utf-8", "replace"))
        self.assertLessEqual(abs(decoded - recording["duration"]), 1.0)
