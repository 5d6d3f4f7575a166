"""The real ffmpeg end to end: media tags in, two HLS variants and a thumbnail out, no
child left.

Runs the bundled static ffmpeg on the real reactor (skipped when there is none). The
input is 8 seconds of a generated test pattern with a tone, encoded to FLV by ffmpeg and
handed over tag by tag as the ingest would; ffmpeg is killed halfway and must come back;
then a quick reconnect checks that the playlists continue after a discontinuity, with no
end marker until the reconnect grace is over. Sources with only video or only audio
come out as video-only or audio-only variants.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from twisted.internet import reactor, task
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from owncast.media import SCRIPT, MediaTag, media_tag, metadata_tag
from owncast.media.flv import parse_tags
from owncast.rtmp import amf
from owncast.transcode.argv import build_argv
from owncast.transcode.probe import bundled_ffmpeg
from owncast.transcode.process import TranscodeConfig, Transcoder

FFMPEG = bundled_ffmpeg()
VARIANTS = [
    {
        "videoPassthrough": False,
        "scaledHeight": 180,
        "framerate": 30,
        "videoBitrate": 400,
        "cpuUsageLevel": 0,
        "audioPassthrough": False,
        "audioBitrate": 64,
    },
    {"videoPassthrough": True, "audioPassthrough": True},
]
_SEGMENT = re.compile(r"^stream-([0-9]+)\.ts$", re.M)
#: The reconnect grace of these tests' transcoders, in seconds (the daemon's is 30).
GRACE = 5.0


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def wait_until(check, timeout: float, what: str, step: float = 0.1) -> None:
    deadline = reactor.seconds() + timeout
    while not check():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await sleep(step)


async def run(*args: str) -> tuple[bytes, bytes, int]:
    return await getProcessOutputAndValue(
        FFMPEG, args, env={"PATH": os.environ.get("PATH", "")}, reactor=reactor
    )


def as_tags(flv: bytes) -> list[MediaTag]:
    """An FLV file as the tags the ingest would hand over for it."""
    tags = []
    for kind, timestamp, payload in parse_tags(flv):
        if kind != SCRIPT:
            tags.append(media_tag(kind, timestamp, payload))
            continue
        values = amf.decode_amf0(payload)
        if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
            tags.append(metadata_tag(timestamp, payload, values[1]))
    return tags


def segments(playlist: Path) -> list[int]:
    try:
        return [int(n) for n in _SEGMENT.findall(playlist.read_text())]
    except FileNotFoundError:
        return []


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RealFfmpegTests(unittest.TestCase):
    timeout = 60

    def setUp(self):
        if FFMPEG is None:
            raise unittest.SkipTest("no ffmpeg binary")

    async def test_hls_options_exist_in_the_binary(self):
        """Every option we pass to the hls and image2 muxers is one this ffmpeg knows."""
        out, _, code = await run("-hide_banner", "-h", "muxer=hls")
        self.assertEqual(code, 0)
        image2, _, _ = await run("-hide_banner", "-h", "muxer=image2")
        known = set(re.findall(rb"^\s+-(\w+)", out + image2, re.M))
        flags = set(re.findall(rb"^\s{5}(\w+)\s", out, re.M))
        argv = build_argv(FFMPEG, VARIANTS, "libx264", 0, "/tmp/x")
        muxer_options = argv[argv.index("hls") + 1 :]
        for option in [a for a in muxer_options if a.startswith(("-hls", "-master", "-var_"))]:
            self.assertIn(option[1:].encode(), known)
        for flag in argv[argv.index("-hls_flags") + 1].split("+"):
            self.assertIn(flag.encode(), flags)
        self.assertIn(b"update", known)
        self.assertIn(b"atomic_writing", known)

    async def test_live_broadcast_to_hls(self):
        flv, err, code = await run(
            "-hide_banner", "-v", "error",
            "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440",
            "-t", "8", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "60", "-c:a", "aac", "-f", "flv", "pipe:1",
        )  # fmt: skip
        self.assertEqual(code, 0, err)
        self.assertEqual(flv[:3], b"FLV")
        tags = as_tags(flv)
        self.assertEqual(tags[0].kind, SCRIPT)

        output = Path(self.mktemp())
        transcoder = self.transcoder(output)

        master = output / "stream.m3u8"
        playlists = [output / "0" / "stream.m3u8", output / "1" / "stream.m3u8"]
        thumbnail = output / "thumbnail.jpg"

        # The first half, then ffmpeg dies: it is respawned and fed the sequence headers
        # and the current GOP, then the second half.
        half = len(tags) // 2
        await self.broadcast(transcoder, tags[:half])
        await wait_until(
            lambda: master.exists() and all(segments(p) for p in playlists),
            20,
            "a master playlist and a segment in each variant",
        )
        crashed = transcoder.pid
        os.kill(crashed, signal.SIGKILL)
        await wait_until(lambda: transcoder.pid not in (None, crashed), 10, "a new ffmpeg")
        await self.feed(transcoder, tags[half:])
        await wait_until(
            lambda: all(len(segments(p)) >= 3 for p in playlists) and thumbnail.exists(),
            20,
            "more segments and a thumbnail",
        )
        self.assertFalse(pid_exists(crashed))
        pid = transcoder.pid
        self.assertIsNotNone(pid)

        text = master.read_text()
        self.assertEqual(text.count("#EXT-X-STREAM-INF"), 2)
        self.assertLess(text.index("0/stream.m3u8"), text.index("1/stream.m3u8"))
        self.assertIn("RESOLUTION=240x180", text)
        self.assertIn("RESOLUTION=320x240", text)

        first = output / "0" / f"stream-{segments(playlists[0])[0]}.ts"
        _, err, code = await run("-v", "error", "-i", str(first), "-f", "null", "-")
        self.assertEqual(code, 0, err)
        self.assertEqual(thumbnail.read_bytes()[:3], b"\xff\xd8\xff")

        left = transcoder.end()
        await wait_until(lambda: transcoder.pid is None, 10, "ffmpeg to end on EOF")
        self.assertFalse(pid_exists(pid), f"ffmpeg {pid} is still there")
        self.assertFalse(left.called)
        for playlist in playlists:
            # stdin EOF ended ffmpeg gracefully: its last segment is there, the playlists
            # are not ended (the publisher may come back), and the respawn after the
            # crash continued them after one discontinuity (a fresh broadcast starts
            # without one).
            text = playlist.read_text()
            self.assertNotIn("#EXT-X-ENDLIST", text)
            self.assertEqual(text.count("#EXT-X-DISCONTINUITY\n"), 1)
            self.assertGreater(text.index("#EXT-X-DISCONTINUITY\n"), text.index("#EXTINF"))
            numbers = segments(playlist)
            self.assertEqual(numbers, list(range(numbers[0], numbers[0] + len(numbers))))
        before = {i: segments(p) for i, p in enumerate(playlists)}

        # A quick reconnect continues the same playlists after a discontinuity.
        await self.broadcast(transcoder, tags)
        self.assertTrue(left.called)
        await wait_until(
            lambda: all(len(segments(p)) >= len(before[i]) + 2 for i, p in enumerate(playlists)),
            20,
            "segments of the second broadcast",
        )
        second_pid = transcoder.pid
        await transcoder.end()
        self.assertFalse(pid_exists(second_pid))
        for i, playlist in enumerate(playlists):
            text = playlist.read_text()
            numbers = segments(playlist)
            # One numbering: consecutive across the reconnect, and the media sequence is
            # the number of the first segment listed.
            self.assertEqual(numbers, list(range(numbers[0], numbers[0] + len(numbers))), i)
            self.assertIn(f"#EXT-X-MEDIA-SEQUENCE:{numbers[0]}\n", text)
            self.assertEqual(numbers[: len(before[i])], before[i], i)
            boundary = text.index(f"stream-{numbers[len(before[i])]}.ts")
            self.assertIn(
                "#EXT-X-DISCONTINUITY", text[text.index(f"stream-{before[i][-1]}.ts") : boundary]
            )
            self.assertEqual(text.count("#EXT-X-ENDLIST"), 1)

    async def test_video_only_and_audio_only_sources(self):
        """A source without audio, then one without video (after the grace: a new
        broadcast each): video-only, then audio-only variants, each decodable."""
        output = Path(self.mktemp())
        transcoder = self.transcoder(output)
        playlist = output / "1" / "stream.m3u8"
        for drop, kept in (("-an", "Video: h264"), ("-vn", "Audio: aac")):
            flv, err, code = await run(
                "-hide_banner", "-v", "error",
                "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
                "-f", "lavfi", "-i", "sine=frequency=440",
                "-t", "4", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
                "-g", "30", "-c:a", "aac", drop, "-f", "flv", "pipe:1",
            )  # fmt: skip
            self.assertEqual(code, 0, err)
            await self.broadcast(transcoder, as_tags(flv))
            await wait_until(lambda: len(segments(playlist)) >= 2, 20, f"segments ({drop})")
            await transcoder.end()  # after the grace: ended
            self.assertIn("#EXT-X-ENDLIST", playlist.read_text())
            _, err, code = await run("-hide_banner", "-i", str(playlist), "-f", "null", "-")
            self.assertEqual(code, 0, err)
            self.assertIn(kept.encode(), err)
            gone = b"Audio:" if drop == "-an" else b"Video:"
            self.assertNotIn(gone, err)
        self.assertIn("mp4a", (output / "stream.m3u8").read_text())
        self.assertNotIn("RESOLUTION", (output / "stream.m3u8").read_text())

    async def test_back_without_audio_within_the_grace_keeps_an_audio_track(self):
        """A publisher with audio, then back within the grace without it: the playlists
        go on after a discontinuity with a silent AAC track in every variant (players
        keep the tracks they began with: hls.js waited for audio forever), and ffmpeg
        still ends with its input."""
        output = Path(self.mktemp())
        transcoder = self.transcoder(output)
        playlists = [output / str(n) / "stream.m3u8" for n in range(len(VARIANTS))]
        sources = []
        for drop in ((), ("-an",)):
            flv, err, code = await run(
                "-hide_banner", "-v", "error",
                "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
                "-f", "lavfi", "-i", "sine=frequency=440",
                "-t", "4", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
                "-g", "30", "-c:a", "aac", *drop, "-f", "flv", "pipe:1",
            )  # fmt: skip
            self.assertEqual(code, 0, err)
            sources.append(as_tags(flv))
        await self.broadcast(transcoder, sources[0])
        await wait_until(lambda: len(segments(playlists[1])) >= 2, 20, "segments with audio")
        transcoder.end()  # the publisher has gone; it is back before the grace is over
        await wait_until(lambda: transcoder.pid is None, 10, "the first ffmpeg's end")
        before = [segments(p) for p in playlists]
        await self.broadcast(transcoder, sources[1])
        grown = list(zip(playlists, before, strict=True))
        await wait_until(
            lambda: all(len(segments(p)) >= len(b) + 2 for p, b in grown),
            20,
            "segments after the reconnect",
        )
        await transcoder.end()  # ffmpeg ended with its input, then the grace
        for playlist, old in zip(playlists, before, strict=True):
            text = playlist.read_text()
            self.assertIn("#EXT-X-DISCONTINUITY", text)
            self.assertIn("#EXT-X-ENDLIST", text)
            last = playlist.parent / f"stream-{segments(playlist)[-1]}.ts"
            self.assertNotIn(segments(playlist)[-1], old)
            _, err, code = await run("-hide_banner", "-i", str(last), "-f", "null", "-")
            self.assertEqual(code, 0, err)
            self.assertIn(b"Video: h264", err)
            self.assertIn(b"Audio: aac", err)

    def transcoder(self, output: Path) -> Transcoder:
        transcoder = Transcoder(
            reactor,
            lambda: TranscodeConfig(FFMPEG, VARIANTS, "libx264", 0),
            output,
            keep_output_for=GRACE,
        )
        transcoder.startService()
        self.addCleanup(transcoder.stopService)
        return transcoder

    async def broadcast(self, transcoder: Transcoder, tags: list[MediaTag]) -> None:
        await transcoder.begin()
        await self.feed(transcoder, tags)

    async def feed(self, transcoder: Transcoder, tags: list[MediaTag]) -> None:
        """The tags in order, a pause after about every 16 KiB."""
        size = 0
        for tag in tags:
            transcoder.media(tag)
            size += len(tag.payload)
            if size >= 16384:
                size = 0
                await sleep(0.01)
