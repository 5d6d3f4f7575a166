"""A whole recording as MP4, over a real loopback socket with real ffmpeg: the first
download is sent while ffmpeg still makes it (fragmented MP4, no length), a download
asked meanwhile gets the same bytes, later ones come from the kept file with ranges; a
recording whose audio the fragmented muxer cannot take gets a plain MP4; one still being
recorded is a 409, an unknown one a 404, a broken one a 500 (JSON). Each MP4 is checked
for its duration and decoded to the end by ffmpeg."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThreadPool
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from owncast.recordings import files
from owncast.recordings.library import Library, Making
from owncast.recordings.vod import Meta, parse_media
from owncast.transcode.probe import bundled_ffmpeg
from tests.helpers import LiveServer, make_context

_DURATION = re.compile(rb"Duration: ([0-9]+):([0-9]+):([0-9.]+)")

#: Seconds of media in the test recording, and its segment length.
SECONDS = 12
SEGMENT = 2
RID = "1700000000"


def blocking(fn: Any, *args: Any) -> Deferred:
    """The daemon's thread-pool runner."""
    return deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)


def ffmpeg() -> str:
    path = bundled_ffmpeg()
    assert path, "no ffmpeg"
    return path


def make_recording(root: Path, audio: str = "aac", live: bool = False) -> None:
    """A recording in the recorder's layout, its segments cut by real ffmpeg from an
    encoded test pattern with a tone (``audio``: the codec)."""
    folder = root / RID
    variant = folder / "0"
    variant.mkdir(parents=True)
    subprocess.run(
        [
            ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:duration={SECONDS}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", str(SEGMENT * 30),
            "-pix_fmt", "yuv420p", "-c:a", audio, "-b:a", "96k",
            "-f", "hls", "-hls_time", str(SEGMENT), "-hls_list_size", "0",
            "-hls_segment_filename", str(variant / "stream-%d.ts"), str(variant / "cut.m3u8"),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    entries, _ = parse_media((variant / "cut.m3u8").read_text())
    session = files.open_session(str(root), Meta(RID, "Test", 1_700_000_000.0, variants=["0"]))
    session.tracks["0"].entries.extend(entries)
    files._write_track(str(folder), "0", session.tracks["0"], ended=not live)
    if not live:
        files.close_session(None, session, 1_700_000_000.0 + SECONDS)


async def probe(test: unittest.TestCase, body: bytes) -> float:
    """The duration ffmpeg reads in the MP4 ``body``'s header, once ffmpeg has decoded it
    to the end (which must succeed). ffmpeg only: the bundled one has no ffprobe."""
    path = test.mktemp() + ".mp4"
    with open(path, "wb") as f:
        f.write(body)
    out, err, code = await getProcessOutputAndValue(
        ffmpeg(), ["-hide_banner", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-"]
    )
    test.assertEqual((code, err), (0, b""))
    # With no output named, ffmpeg describes the input (its duration) and exits 1.
    out, err, code = await getProcessOutputAndValue(
        ffmpeg(), ["-hide_banner", "-nostdin", "-i", path]
    )
    found = _DURATION.search(err)
    test.assertIsNotNone(found, err)
    assert found is not None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


class DownloadTests(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.tmp = Path(self.mktemp())
        self.ctx = make_context(self.tmp, reactor=reactor)
        self.root = self.tmp / "recordings"
        self.binary = ffmpeg()
        self.library = Library(self.root, blocking, reactor, lambda: self.binary)
        self.ctx.recordings = self.library
        self.server = LiveServer(self.ctx)
        self.addCleanup(self.server.stop)
        self.url = f"/recordings/{RID}/download.mp4"

    async def get(self, headers: dict | None = None) -> tuple[Any, bytes]:
        response = await treq.get(self.server.base + self.url, headers=headers, persistent=False)
        return response, await response.content()

    def gated_ffmpeg(self) -> Path:
        """A stand-in for the ffmpeg binary: real ffmpeg, then it waits for a file before
        it exits, so the test decides when making the MP4 is over."""
        gate = Path(self.mktemp())
        script = Path(self.mktemp())
        script.write_text(
            f'#!/bin/sh\n"{ffmpeg()}" "$@"\ncode=$?\n'
            f'while [ ! -e "{gate}" ]; do sleep 0.05; done\nexit $code\n'
        )
        script.chmod(0o755)
        self.binary = str(script)
        return gate

    async def test_first_download_is_sent_while_made_then_kept(self) -> None:
        """Bytes reach the client before ffmpeg has ended; the MP4 is fragmented, plays
        whole and lasts the recording; the kept file answers later downloads and ranges."""
        make_recording(self.root)
        gate = self.gated_ffmpeg()
        response = await treq.get(self.server.base + self.url, persistent=False)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["video/mp4"])
        self.assertIsNone(response.headers.getRawHeaders("accept-ranges"))
        disposition = response.headers.getRawHeaders("content-disposition")[0]
        self.assertIn(f"recording-{RID}.mp4", disposition)
        chunks: list[bytes] = []
        making = self.library._making[RID]
        states: list[bool] = []

        def received(data: bytes) -> None:
            if not chunks:
                states.append(making.over)
                gate.touch()
            chunks.append(data)

        await treq.collect(response, received)
        self.assertEqual(states, [False])  # the first bytes came before the end
        body = b"".join(chunks)
        self.assertIn(b"moof", body)
        duration = await probe(self, body)
        self.assertLessEqual(abs(duration - SECONDS), 0.2)
        await making.finished()
        kept = self.root / RID / files.DOWNLOAD
        self.assertEqual(kept.read_bytes(), body)
        self.assertFalse(os.path.exists(str(kept) + ".part"))

        again, same = await self.get()
        self.assertEqual(again.code, 200)
        self.assertEqual(same, body)
        self.assertEqual(again.headers.getRawHeaders("accept-ranges"), ["bytes"])
        ranged, part = await self.get({"Range": ["bytes=100-199"]})
        self.assertEqual(ranged.code, 206)
        self.assertEqual(part, body[100:200])
        meta = files.get_recording(str(self.root), RID)
        assert meta is not None
        self.assertEqual(meta.size, files.folder_size(str(self.root / RID)))

    async def test_downloads_asked_meanwhile_follow_the_same_run(self) -> None:
        """Three downloads at once: one ffmpeg run, three identical whole MP4s."""
        make_recording(self.root)
        gate = self.gated_ffmpeg()
        first = Deferred.fromCoroutine(self.get())
        making = await self._making()
        rest = [Deferred.fromCoroutine(self.get()) for _ in range(2)]
        await self._settle()
        self.assertIs(self.library._making.get(RID), making)
        gate.touch()
        answers = await gatherResults([first, *rest])
        bodies = {body for _, body in answers}
        self.assertEqual([r.code for r, _ in answers], [200, 200, 200])
        self.assertEqual(len(bodies), 1)
        duration = await probe(self, bodies.pop())
        self.assertLessEqual(abs(duration - SECONDS), 0.2)

    async def _making(self) -> Making:
        for _ in range(200):
            making = self.library._making.get(RID)
            if making is not None:
                return making
            await self._settle()
        raise AssertionError("no MP4 being made")

    async def _settle(self) -> None:
        d: Deferred = Deferred()
        reactor.callLater(0.05, d.callback, None)
        await d

    async def test_audio_the_fragmented_muxer_refuses_gets_a_plain_mp4(self) -> None:
        """MP3 audio: the fragmented run fails before writing anything, a plain MP4 is
        made instead, sent whole once made, then kept."""
        make_recording(self.root, audio="libmp3lame")
        response, body = await self.get()
        self.assertEqual(response.code, 200)
        self.assertNotIn(b"moof", body)
        self.assertEqual((self.root / RID / files.DOWNLOAD).read_bytes(), body)
        duration = await probe(self, body)
        self.assertLessEqual(abs(duration - SECONDS), 0.2)

    async def test_live_unknown_and_broken_recordings(self) -> None:
        """Still recorded: 409; unknown: 404; segments gone: 500; JSON, nothing kept."""
        response, body = await self.get()
        self.assertEqual(response.code, 404)
        self.assertIs(json.loads(body)["success"], False)
        make_recording(self.root, live=True)
        response, body = await self.get()
        self.assertEqual(response.code, 409)
        answer = json.loads(body)
        self.assertIs(answer["success"], False)
        self.assertIn("still going on", answer["message"])
        self.assertFalse((self.root / RID / files.DOWNLOAD).exists())

        entries, _ = parse_media((self.root / RID / "0" / "cut.m3u8").read_text())
        session = files.open_session(str(self.root), Meta(RID, "Test", 1.7e9, variants=["0"]))
        session.tracks["0"].entries.extend(entries)
        files.close_session(None, session, 1.7e9 + SECONDS)  # ended
        for segment in (self.root / RID / "0").glob("stream-*.ts"):
            segment.unlink()
        response, body = await self.get()
        self.assertEqual(response.code, 500)
        self.assertIs(json.loads(body)["success"], False)
        self.assertNotIn(files.DOWNLOAD, os.listdir(self.root / RID))
        self.assertEqual([n for n in os.listdir(self.root / RID) if "mp4" in n], [])
        self.flushLoggedErrors()
