"""preview.gif: the refresh loop on a fake process reactor and clock, its hook in the
Transcoder, ``/hls/preview.gif``, and one real ffmpeg turning a real segment into a GIF."""

from __future__ import annotations

import os
from pathlib import Path

import imageio_ffmpeg
from twisted.logger import LogLevel, capturedLogs
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from owncast.core.settings import DEFAULT_VARIANT
from owncast.http.hls import HlsResource
from owncast.transcode.preview import (
    PREVIEW,
    PREVIEW_TMP,
    PreviewMaker,
    newest_segment,
    preview_argv,
)
from owncast.transcode.process import TranscodeConfig, Transcoder
from tests.fakes import FakeProcess, FakeProcessReactor, inline
from tests.test_transcode import STREAM_START, aac_frame, keyframe
from tests.test_transcode_process import FFMPEG

TWO_VARIANTS = [dict(DEFAULT_VARIANT), dict(DEFAULT_VARIANT, scaledWidth=320)]


def touch(path: Path, data: bytes = b"ts") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class PreviewMakerTests(unittest.TestCase):
    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.output = Path(self.mktemp())
        self.output.mkdir()
        self.config = TranscodeConfig(FFMPEG, TWO_VARIANTS, "libx264", 1)
        self.preview = self.make()

    def make(self, **kwargs) -> PreviewMaker:
        kwargs.setdefault("interval", 15.0)
        kwargs.setdefault("timeout", 10.0)
        return PreviewMaker(self.reactor, lambda: self.config, self.output, inline, **kwargs)

    def tearDown(self):
        d = self.preview.stop()
        for process in self.reactor.processes:
            if process.pid is not None:
                process.exit(signal=9)
        self.assertTrue(d.called)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    @property
    def processes(self) -> list[FakeProcess]:
        return self.reactor.processes

    def segments(self, variant: str = "1", numbers=(10, 11)) -> Path:
        for n in numbers:
            newest = touch(self.output / variant / f"stream-{n}.ts")
        return newest

    def finish(self, process: FakeProcess, gif: bytes = b"GIF89a...") -> None:
        """What a successful preview ffmpeg does: write its output file, exit 0."""
        Path(process.args[-1]).write_bytes(gif)
        process.exit(0)

    def test_nothing_spawned_unless_live(self):
        """Before start() and after stop(), time passing and refresh() spawn nothing."""
        self.segments()
        self.reactor.advance(60)
        self.preview.refresh()
        self.assertEqual(self.processes, [])
        self.preview.start()
        self.preview.stop()
        self.reactor.advance(60)
        self.preview.refresh()
        self.assertEqual(self.processes, [])
        self.assertFalse(self.preview.live)

    def test_refreshes_from_the_newest_segment_of_the_last_variant(self):
        """Every 15 s while live: the highest-numbered complete segment of the last
        variant becomes preview.gif.tmp, renamed to preview.gif once ffmpeg succeeded."""
        touch(self.output / "0" / "stream-99.ts")  # not the last variant
        newest = self.segments()
        touch(self.output / "1" / "stream-12.ts.tmp")  # still being written
        self.preview.start()
        self.reactor.advance(14.9)
        self.assertEqual(self.processes, [])
        self.reactor.advance(0.1)
        [process] = self.processes
        self.assertEqual(
            process.args, preview_argv(FFMPEG, str(newest), str(self.output / PREVIEW_TMP))
        )
        self.assertEqual(process.executable, FFMPEG)
        self.assertTrue(process.stdin_closed)
        self.assertIsNone(process.env)
        self.assertEqual(self.preview.pid, process.pid)
        self.finish(process, b"GIF89a first")
        self.assertEqual((self.output / PREVIEW).read_bytes(), b"GIF89a first")
        self.assertFalse((self.output / PREVIEW_TMP).exists())
        self.assertIsNone(self.preview.pid)

        # The same newest segment again: nothing to do. A newer one: a new preview.
        self.reactor.advance(15)
        self.assertEqual(len(self.processes), 1)
        self.segments(numbers=(12,))
        self.reactor.advance(15)
        self.assertEqual(len(self.processes), 2)
        self.assertIn(str(self.output / "1" / "stream-12.ts"), self.processes[1].args)
        self.finish(self.processes[1], b"GIF89a second")
        self.assertEqual((self.output / PREVIEW).read_bytes(), b"GIF89a second")

    def test_no_segment_yet_spawns_nothing(self):
        self.preview.start()
        self.reactor.advance(15)
        touch(self.output / "1" / "stream-1.ts.tmp")
        self.reactor.advance(15)
        self.assertEqual(self.processes, [])
        self.segments(numbers=(1,))
        self.reactor.advance(15)
        self.assertEqual(len(self.processes), 1)

    def test_one_at_a_time(self):
        """A tick while a preview ffmpeg runs starts no second one."""
        self.preview = self.make(interval=2.0)
        self.segments()
        self.preview.start()
        self.reactor.advance(2)
        self.assertEqual(len(self.processes), 1)
        self.segments(numbers=(12, 13))
        self.reactor.advance(2)
        self.reactor.advance(2)
        self.preview.refresh()
        self.assertEqual(len(self.processes), 1)
        self.finish(self.processes[0])
        self.reactor.advance(2)
        self.assertEqual(len(self.processes), 2)

    def test_killed_when_it_runs_over_the_timeout(self):
        """Past 10 s the preview ffmpeg gets KILL; the old preview stays, the temporary
        file goes, and the next tick tries again."""
        touch(self.output / PREVIEW, b"GIF89a old")
        self.segments()
        self.preview.start()
        self.reactor.advance(15)
        [process] = self.processes
        touch(self.output / PREVIEW_TMP, b"GIF89a half")
        with capturedLogs() as events:
            self.reactor.advance(9.9)
            self.assertEqual(process.signals, [])
            self.reactor.advance(0.1)
            self.assertEqual(process.signals, ["KILL"])
            process.exit(signal=9)
        self.assertTrue(any(e["log_level"] == LogLevel.warn for e in events))
        self.assertEqual((self.output / PREVIEW).read_bytes(), b"GIF89a old")
        self.assertFalse((self.output / PREVIEW_TMP).exists())
        self.reactor.advance(5)
        self.assertEqual(len(self.processes), 2)

    def test_failure_is_logged_with_its_output(self):
        self.segments()
        self.preview.start()
        self.reactor.advance(15)
        [process] = self.processes
        with capturedLogs() as events:
            process.stderr("stream-11.ts: Invalid data found when processing input\n")
            process.exit(1)
        [warning] = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(warning["code"], 1)
        self.assertIn("Invalid data", warning["tail"])
        self.assertFalse((self.output / PREVIEW).exists())

    def test_stop_kills_the_running_preview_and_waits_for_it(self):
        self.segments()
        self.preview.start()
        self.reactor.advance(15)
        [process] = self.processes
        d = self.preview.stop()
        self.assertEqual(process.signals, ["KILL"])
        self.assertFalse(d.called)
        process.exit(signal=9)
        self.assertTrue(d.called)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertFalse((self.output / PREVIEW_TMP).exists())
        self.reactor.advance(60)
        self.assertEqual(len(self.processes), 1)

    def test_stop_when_idle_fires_at_once(self):
        self.preview.start()
        self.reactor.advance(15)
        d = self.preview.stop()
        self.assertTrue(d.called)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_a_new_broadcast_drops_the_preview_of_the_last(self):
        """start() again while a preview runs kills it; its output is not kept."""
        self.segments()
        self.preview.start()
        self.reactor.advance(15)
        [process] = self.processes
        self.preview.start()
        self.assertEqual(process.signals, ["KILL"])
        self.finish(process)  # it managed to write its GIF before the signal
        self.assertFalse((self.output / PREVIEW).exists())
        self.reactor.advance(15)
        self.assertEqual(len(self.processes), 2)

    def test_tick_errors_are_logged_and_the_loop_goes_on(self):
        self.segments()
        self.preview.start()
        self.config = None  # the settings cannot be read this time
        self.reactor.advance(15)
        self.assertEqual(len(self.flushLoggedErrors(AttributeError)), 1)
        self.reactor.spawn_error = OSError("no such file")
        self.config = TranscodeConfig(FFMPEG, TWO_VARIANTS, "libx264", 1)
        self.reactor.advance(15)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.reactor.spawn_error = None
        self.reactor.advance(15)
        self.assertEqual(len(self.processes), 1)

    def test_no_ffmpeg_configured_spawns_nothing(self):
        self.config = TranscodeConfig(None, TWO_VARIANTS, "libx264", 1)
        self.segments()
        self.preview.start()
        self.reactor.advance(15)
        self.assertEqual(self.processes, [])

    def test_newest_segment(self):
        self.assertIsNone(newest_segment(str(self.output / "missing")))
        for name in ("stream-9.ts", "stream-10.ts", "stream-11.ts.tmp", "stream.m3u8"):
            touch(self.output / "0" / name)
        self.assertEqual(
            newest_segment(str(self.output / "0")), str(self.output / "0" / "stream-10.ts")
        )


class TranscoderPreviewTests(unittest.TestCase):
    """The transcoder starts the preview loop with a broadcast and ends it with it."""

    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.output = Path(self.mktemp())
        self.config = TranscodeConfig(FFMPEG, [dict(DEFAULT_VARIANT)], "libx264", 1)
        self.transcoder = Transcoder(
            self.reactor, lambda: self.config, self.output, blocking=inline
        )
        self.transcoder.startService()

    def go_live(self) -> FakeProcess:
        self.transcoder.begin()
        for tag in (*STREAM_START, keyframe(0), aac_frame(0)):
            self.transcoder.media(tag)
        self.assertEqual(len(self.reactor.processes), 1)
        touch(self.output / "0" / "stream-1700000000.ts")
        self.reactor.advance(15)
        _, preview = self.reactor.processes
        self.assertEqual(preview.args[-2:], ["gif", str(self.output / PREVIEW_TMP)])
        self.assertEqual(self.transcoder.preview.pid, preview.pid)
        return preview

    def test_end_ends_both_ffmpegs(self):
        preview = self.go_live()
        transcoder = self.reactor.processes[0]
        d = self.transcoder.end()
        self.assertEqual(preview.signals, ["KILL"])
        transcoder.exit(0)
        preview.exit(signal=9)
        self.assertEqual(self.transcoder.preview.pid, None)
        self.reactor.advance(30)  # the reconnect grace: then end() fires
        self.assertTrue(d.called)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.processes), 2)

    def test_stop_service_ends_both_ffmpegs(self):
        preview = self.go_live()
        d = self.transcoder.stopService()
        preview.exit(signal=9)
        self.assertFalse(d.called)
        self.reactor.processes[0].exit(0)
        self.assertTrue(d.called)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_preview_can_be_turned_off(self):
        transcoder = Transcoder(
            self.reactor, lambda: self.config, self.output, blocking=inline, preview=False
        )
        self.assertIsNone(transcoder.preview)
        self.transcoder.stopService()


class PreviewServedTests(unittest.TestCase):
    def get(self, resource: HlsResource, name: bytes) -> DummyRequest:
        request = DummyRequest([name])
        result = resource.render(request)
        if isinstance(result, bytes):
            request.write(result)
            request.finish()
        self.assertEqual(request.finished, 1)
        return request

    def test_served_as_a_gif_with_a_short_cache(self):
        """``/hls/preview.gif``: image/gif, cached 10 s like the thumbnail, any origin;
        the temporary file is never served."""
        hls = Path(self.mktemp())
        touch(hls / PREVIEW, b"GIF89a" + bytes(100))
        touch(hls / PREVIEW_TMP, b"GIF89a partial")
        resource = HlsResource(hls, inline)
        request = self.get(resource, b"preview.gif")
        self.assertEqual(request.responseCode or 200, 200)
        self.assertEqual(b"".join(request.written), b"GIF89a" + bytes(100))
        headers = request.responseHeaders
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"image/gif"])
        self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"public, max-age=10"])
        self.assertEqual(headers.getRawHeaders(b"access-control-allow-origin"), [b"*"])
        request = self.get(resource, b"preview.gif.tmp")
        self.assertEqual(request.responseCode, 404)
        self.assertNotIn(b"partial", b"".join(request.written))


class RealFfmpegPreviewTests(unittest.TestCase):
    """One real ffmpeg, on the real reactor (there is no fake for a real child process)."""

    timeout = 60

    async def test_a_real_segment_becomes_an_animated_gif(self):
        from twisted.internet import reactor
        from twisted.internet.utils import getProcessOutputAndValue

        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        output = Path(self.mktemp()).resolve()
        segment = output / "0" / "stream-1700000000.ts"
        segment.parent.mkdir(parents=True)
        _, err, code = await getProcessOutputAndValue(ffmpeg, [
            "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
            "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-threads", "1", "-f", "mpegts", str(segment),
        ], env=dict(os.environ))  # fmt: skip
        self.assertEqual(code, 0, err)

        config = TranscodeConfig(ffmpeg, [dict(DEFAULT_VARIANT)], "libx264", 1)
        preview = PreviewMaker(reactor, lambda: config, output, inline, timeout=30)
        preview.start()
        try:
            await preview.refresh()
        finally:
            await preview.stop()
        gif = (output / PREVIEW).read_bytes()
        self.assertTrue(gif.startswith(b"GIF89a"), gif[:16])
        # 2 s at 5 fps: about 10 frames, each with a graphic control extension.
        self.assertGreaterEqual(gif.count(b"\x21\xf9\x04"), 3)
        self.assertEqual(int.from_bytes(gif[6:8], "little"), 320)
        self.assertFalse((output / PREVIEW_TMP).exists())
        self.assertIsNone(preview.pid)
