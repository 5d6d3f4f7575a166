"""The Transcoder on a fake process reactor and clock: spawning, feeding, back-off, stopping."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from owncast.core.settings import DEFAULT_VARIANT
from owncast.interfaces import IMediaSink, ITranscoder
from owncast.transcode.output import prepare_output
from owncast.transcode.process import TranscodeConfig, Transcoder, config_from_context
from tests.fakes import START, FakeProcess, inline
from tests.fakes import TranscoderCase as FakeTranscoderCase
from tests.helpers import make_context
from tests.test_transcode import (
    STREAM_START,
    aac_frame,
    as_flv,
    flv_header,
    interframe,
    keyframe,
)

FFMPEG = "/opt/ffmpeg/bin/ffmpeg"


#: What ffmpeg reads first: the header, then metadata and sequence headers.
FLV_START = flv_header() + as_flv(*STREAM_START)


class TranscoderTests(FakeTranscoderCase):
    def go_live(self) -> FakeProcess:
        self.transcoder.begin()
        self.send(*STREAM_START, keyframe(0), aac_frame(0))
        self.assertEqual(len(self.processes), 1)
        return self.processes[0]

    def test_provides_interface(self):
        self.assertTrue(verifyObject(ITranscoder, self.transcoder))
        self.assertTrue(verifyObject(IMediaSink, self.transcoder))

    def test_spawns_once_the_output_is_ready(self):
        """begin() prepares the output; ffmpeg is spawned with a writable stdin once the
        first tags tell the tracks, and reads an FLV header announcing them, then the tags
        that came before it started, then the rest."""
        d = self.transcoder.begin()
        self.assertTrue(d.called)
        self.assertTrue(self.output.is_dir())
        self.send(STREAM_START[0], STREAM_START[1])
        self.assertEqual(self.processes, [])  # audio is still expected
        self.send(STREAM_START[2])
        [process] = self.processes
        self.assertEqual(process.executable, FFMPEG)
        self.assertEqual(process.args[0], FFMPEG)
        self.assertIn("pipe:0", process.args)
        self.assertIn("0:a:0", process.args)  # the header announces audio
        self.assertEqual(process.childFDs, {0: "w", 1: "r", 2: "r"})
        self.assertIsNone(process.env)
        self.assertIsNotNone(process.producer)
        self.assertEqual(process.stdin, FLV_START)
        self.send(keyframe(0))
        self.assertEqual(process.stdin, FLV_START + as_flv(keyframe(0)))
        self.assertEqual(self.transcoder.pid, process.pid)

    def test_tags_that_come_before_ffmpeg_are_replayed(self):
        """The output is prepared in a thread: tags arriving meanwhile are not lost, the
        new ffmpeg reads the configuration and the current GOP first."""
        prepared: list = []
        at_once: list = []

        def later(fn, *args):
            if at_once:
                return inline(fn, *args)
            prepared.append((Deferred(), fn, args))
            return prepared[-1][0]

        self.transcoder.stopService()
        self.transcoder = Transcoder(self.reactor, lambda: self.config, self.output, blocking=later)
        self.transcoder.startService()
        [(started, fn, args)] = prepared  # the start ends what a killed daemon left
        started.callback(fn(*args))
        d = self.transcoder.begin()
        self.send(*STREAM_START, interframe(0), keyframe(40), aac_frame(40))
        self.assertEqual(self.processes, [])
        [_, (pending, fn, args)] = prepared
        pending.callback(fn(*args))
        at_once.append(True)
        self.assertTrue(d.called)
        [process] = self.processes
        self.assertEqual(process.stdin, FLV_START + as_flv(keyframe(40), aac_frame(40)))

    def test_writes_each_tag_as_flv(self):
        """Each tag reaches ffmpeg as one FLV tag, in order, timestamps intact."""
        process = self.go_live()
        more = (interframe(40), aac_frame(40), interframe(0x1234567))
        self.send(*more)
        self.assertEqual(process.stdin, FLV_START + as_flv(keyframe(0), aac_frame(0), *more))

    def test_segment_numbers_of_a_fresh_broadcast_start_at_now(self):
        process = self.go_live()
        self.assertEqual(process.args[process.args.index("-start_number") + 1], str(START))

    def test_restart_with_backoff(self):
        """A crash while live respawns ffmpeg after 0.5 s, doubling to 10 s; a run that
        lasted 30 s resets the delay."""
        process = self.go_live()
        expected = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
        for delay in expected:
            count = len(self.processes)
            process.exit(1)
            self.reactor.advance(delay - 0.01)
            self.assertEqual(len(self.processes), count, delay)
            self.reactor.advance(0.01)
            self.assertEqual(len(self.processes), count + 1, delay)
            process = self.processes[-1]
        self.reactor.advance(30)
        process.exit(1)
        self.reactor.advance(0.5)
        self.assertEqual(len(self.processes), len(expected) + 2)
        self.assertEqual(self.transcoder.restarts, len(expected) + 1)  # for /metrics

    def test_restart_replays_config_and_current_gop(self):
        """A respawned ffmpeg reads the header, metadata and sequence headers, then the
        tags since the last keyframe, then the live tags; the playlists continue."""
        process = self.go_live()
        gop = (keyframe(2000), aac_frame(2000), interframe(2040))
        self.send(interframe(40), aac_frame(40), *gop)
        process.exit(1)
        self.send(aac_frame(2080))
        self.reactor.advance(0.5)
        restarted = self.processes[-1]
        self.assertEqual(restarted.stdin, FLV_START + as_flv(*gop, aac_frame(2080)))
        self.send(interframe(2120))
        self.assertTrue(restarted.stdin.endswith(as_flv(interframe(2120))))
        self.assertIn("append_list", restarted.args[restarted.args.index("-hls_flags") + 1])

    def test_end_closes_stdin_then_terms_then_kills(self):
        """end(): stdin closed, TERM after the grace period, KILL 5 s later; nothing is
        respawned, and it fires once the reconnect grace is over too."""
        process = self.go_live()
        d = self.transcoder.end()
        self.assertTrue(process.stdin_closed)
        self.assertIsNone(process.producer)
        self.assertEqual(process.signals, [])
        self.reactor.advance(2)
        self.assertEqual(process.signals, ["TERM"])
        self.reactor.advance(4.9)
        self.assertEqual(process.signals, ["TERM"])
        self.reactor.advance(0.1)
        self.assertEqual(process.signals, ["TERM", "KILL"])
        self.assertFalse(d.called)
        process.exit(signal=9)
        self.assertIsNone(self.transcoder.pid)
        self.assertFalse(self.transcoder.live)
        self.assertTrue(self.transcoder.holding)
        self.assertFalse(d.called)
        self.reactor.advance(30 - 7)
        self.assertTrue(d.called)
        self.assertFalse(self.transcoder.holding)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(len(self.processes), 1)

    def test_end_when_ffmpeg_ends_on_eof(self):
        """ffmpeg usually exits on EOF: no signal is sent then."""
        process = self.go_live()
        d = self.transcoder.end()
        process.exit(0)
        self.reactor.advance(60)
        self.assertTrue(d.called)
        self.assertEqual(process.signals, [])
        self.assertEqual(len(self.processes), 1)

    def test_stop_service_leaves_nothing_behind(self):
        process = self.go_live()
        d = self.transcoder.stopService()
        self.assertFalse(self.transcoder.running)
        self.reactor.advance(2)
        self.assertEqual(process.signals, ["TERM"])
        process.exit(signal=15)
        self.assertTrue(d.called)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertIsNone(self.transcoder.pid)

    def test_end_during_backoff(self):
        process = self.go_live()
        process.exit(1)
        d = self.transcoder.end()
        self.reactor.advance(60)
        self.assertTrue(d.called)
        self.assertEqual(len(self.processes), 1)

    def test_media_when_not_live_is_ignored(self):
        self.send(*STREAM_START)
        self.assertEqual(self.processes, [])
        process = self.go_live()
        self.transcoder.end()
        self.send(interframe(40))
        self.assertNotIn(as_flv(interframe(40)), process.stdin)

    def test_begin_while_stopped_service_does_nothing(self):
        transcoder = Transcoder(self.reactor, lambda: self.config, self.output, blocking=inline)
        transcoder.begin()
        transcoder.media(STREAM_START[0])
        self.assertEqual(self.processes, [])

    def test_new_broadcast_waits_for_the_old_ffmpeg(self):
        """Two ffmpegs never write the same playlists: a quick reconnect spawns only once
        the previous process has ended."""
        first = self.go_live()
        self.transcoder.end()
        self.transcoder.begin()
        self.send(*STREAM_START, keyframe(0))
        self.assertEqual(len(self.processes), 1)
        first.exit(0)
        self.assertEqual(len(self.processes), 2)
        self.assertEqual(self.processes[1].stdin, FLV_START + as_flv(keyframe(0)))

    def test_output_kept_on_quick_reconnect_cleared_after_idle(self):
        """Within 30 s of the end, the playlists continue (ffmpeg appends from their media
        sequence); after longer, the directory starts empty."""
        process = self.go_live()
        variant = self.output / "0"
        variant.mkdir()
        (variant / "stream.m3u8").write_text(
            "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:41\n#EXTINF:2.0,\nstream-41.ts\n"
        )
        (variant / "stream-41.ts").write_bytes(b"ts")
        (variant / "stream-40.ts").write_bytes(b"old")
        (variant / "stream-42.ts.tmp").write_bytes(b"partial")
        self.transcoder.end()
        process.exit(0)

        self.reactor.advance(29)
        process = self.go_live_again()
        self.assertEqual(process.args[process.args.index("-start_number") + 1], "41")
        self.assertEqual(
            sorted(os.listdir(variant)), ["discontinuities", "stream-41.ts", "stream.m3u8"]
        )
        self.assertIn("append_list", process.args[process.args.index("-hls_flags") + 1])
        self.transcoder.end()
        process.exit(0)

        self.reactor.advance(31)
        process = self.go_live_again()
        self.assertEqual(os.listdir(self.output), [])
        self.assertEqual(
            process.args[process.args.index("-start_number") + 1], str(int(self.reactor.seconds()))
        )

    def go_live_again(self) -> FakeProcess:
        count = len(self.processes)
        self.transcoder.begin()
        self.send(*STREAM_START, keyframe(0))
        self.assertEqual(len(self.processes), count + 1)
        return self.processes[-1]

    def test_low_latency_changes_apply_from_the_next_broadcast(self):
        """Turning low latency on (or off) while a broadcast is in its reconnect grace
        does not switch a continuing output to the other kind of files: the reconnect
        goes on in the mode it began in, the next broadcast takes the new one."""
        low = TranscodeConfig(FFMPEG, [dict(DEFAULT_VARIANT)], "libx264", 1, low_latency=True)
        plain = self.config
        for before, after in ((plain, low), (low, plain)):
            self.config = before
            self.transcoder.begin()
            self.send(*STREAM_START, keyframe(0))
            process = self.processes[-1]
            began_ll = "pipe:3" in process.args
            self.assertEqual(began_ll, before.low_latency)
            self.transcoder.end()
            process.exit(0)
            self.config = after
            self.reactor.advance(5)
            process = self.go_live_again()  # inside the grace: the same broadcast
            self.assertEqual("pipe:3" in process.args, began_ll)
            self.transcoder.end()
            process.exit(0)
            self.reactor.advance(31)
            process = self.go_live_again()  # a new broadcast
            self.assertEqual("pipe:3" in process.args, after.low_latency)
            self.transcoder.end()
            process.exit(0)
            self.reactor.advance(31)

    def test_missing_audio_retries_without_audio(self):
        """A header announcing audio that never comes: ffmpeg fails to map it, and the
        next ffmpeg runs without audio."""
        process = self.go_live()
        self.assertIn("0:a:0", process.args)
        process.stderr("[out#0/hls @ 0x1] [error] Stream map '' matches no streams.\n")
        process.exit(234)
        self.reactor.advance(0.5)
        self.assertNotIn("0:a:0", self.processes[-1].args)

    def test_stderr_goes_to_the_log(self):
        """Lines become log events; errors are warnings; a flood is cut short."""
        process = self.go_live()
        with capturedLogs() as events:
            process.stderr("[h264 @ 0x1] [warning] non-existing PPS\n[hls @ 0x2] [err")
            process.stderr("or] Failed to open segment\n")
            for i in range(40):
                process.stderr(f"[warning] line {i}\n")
            self.reactor.advance(10)
            process.stderr("[warning] later\n")
        texts = [(e["log_level"].name, e.get("line")) for e in events if "line" in e]
        self.assertEqual(texts[0], ("info", "[h264 @ 0x1] [warning] non-existing PPS"))
        self.assertEqual(texts[1], ("warn", "[hls @ 0x2] [error] Failed to open segment"))
        self.assertEqual(len(texts), 31)
        self.assertTrue(any(e.get("count") == 12 for e in events))

    def test_backpressure_drops_until_a_keyframe(self):
        """When ffmpeg's stdin stays full past max_backlog, tags are dropped until the
        next keyframe after the pipe drains."""
        transcoder = self.transcoder
        transcoder._max_backlog = 100
        process = self.go_live()
        process.producer.pauseProducing()
        self.send(*[interframe(40)] * 3)  # 3 x 40 bytes: over the backlog
        sent = len(process.stdin)
        self.send(interframe(80))
        self.assertEqual(len(process.stdin), sent)
        process.producer.resumeProducing()
        self.send(aac_frame(120), interframe(120))
        self.assertEqual(len(process.stdin), sent)
        self.send(keyframe(160), aac_frame(160))
        self.assertTrue(process.stdin.endswith(as_flv(keyframe(160), aac_frame(160))))

    def test_reload_applies_new_settings(self):
        """reload() ends ffmpeg gracefully and spawns one with the current settings."""
        process = self.go_live()
        self.config = TranscodeConfig(FFMPEG, [dict(DEFAULT_VARIANT)] * 2, "libx264", 1)
        self.transcoder.reload()
        self.assertTrue(process.stdin_closed)
        process.exit(0)
        self.assertEqual(len(self.processes), 2)
        self.assertEqual(self.processes[1].args.count("0:v:0"), 3)  # 2 variants + thumbnail

    def test_spawn_failure_is_retried(self):
        self.reactor.spawn_error = OSError("no such file")
        self.transcoder.begin()
        self.send(*STREAM_START)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.reactor.spawn_error = None
        self.reactor.advance(0.5)
        self.assertEqual(len(self.processes), 1)

    def test_no_ffmpeg_is_logged_and_retried(self):
        self.config = TranscodeConfig(None, [dict(DEFAULT_VARIANT)], "libx264", 1)
        self.transcoder.begin()
        self.send(*STREAM_START)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.processes, [])
        self.config = TranscodeConfig(FFMPEG, [dict(DEFAULT_VARIANT)], "libx264", 1)
        self.reactor.advance(0.5)
        self.assertEqual(len(self.processes), 1)


class PrepareOutputTests(unittest.TestCase):
    def setUp(self):
        self.output = Path(self.mktemp())

    def test_creates_and_clears(self):
        self.assertEqual(prepare_output(str(self.output), True, 7), 7)
        (self.output / "0").mkdir()
        (self.output / "0" / "stream-3.ts").write_bytes(b"x")
        (self.output / "thumbnail.jpg").write_bytes(b"x")
        self.assertEqual(prepare_output(str(self.output), True, 9), 9)
        self.assertEqual(os.listdir(self.output), [])

    def test_keeps_listed_segments_and_returns_the_lowest_sequence(self):
        """Kept output: listed segments stay, partial and unlisted ones go; the start
        number is the lowest media sequence, so append_list keeps every playlist's own."""
        for index, listed in (("0", [5, 6]), ("1", [6])):
            folder = self.output / index
            folder.mkdir(parents=True)
            lines = "".join(f"#EXTINF:1,\nstream-{n}.ts\n" for n in listed)
            (folder / "stream.m3u8").write_text(
                f"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:{listed[0]}\n" + lines
            )
            for n in (4, 5, 6):
                (folder / f"stream-{n}.ts").write_bytes(b"x")
        (self.output / "1" / "stream-7.ts.tmp").write_bytes(b"x")
        (self.output / "thumbnail.jpg").write_bytes(b"x")
        self.assertEqual(prepare_output(str(self.output), False, 100), 5)
        self.assertEqual(
            sorted(os.listdir(self.output / "0")),
            ["discontinuities", "stream-5.ts", "stream-6.ts", "stream.m3u8"],
        )
        self.assertEqual(
            sorted(os.listdir(self.output / "1")), ["discontinuities", "stream-6.ts", "stream.m3u8"]
        )
        # The next ffmpeg's first segment follows a discontinuity.
        self.assertEqual((self.output / "0" / "discontinuities").read_text(), "7\n")
        self.assertTrue((self.output / "thumbnail.jpg").exists())

    def test_nothing_there_uses_the_fresh_number(self):
        self.assertEqual(prepare_output(str(self.output), False, 100), 100)


class ConfigFromContextTests(unittest.TestCase):
    def test_reads_the_current_settings(self):
        """Every spawn reads the settings again, so changes apply at the next (re)start."""
        ctx = make_context(Path(self.mktemp()), overrides={"ffmpegPath": "/usr/bin/ffmpeg"})
        current = config_from_context(ctx)
        self.assertEqual(
            current(),
            TranscodeConfig("/usr/bin/ffmpeg", ctx.settings["videoQualityVariants"], "libx264", 2),
        )
        ctx.settings.update({"latencyLevel": 4, "videoCodec": "h264_nvenc"})
        self.assertEqual((current().latency_level, current().codec), (4, "h264_nvenc"))


class DiscontinuitySequenceTests(unittest.TestCase):
    """ffmpeg never writes EXT-X-DISCONTINUITY-SEQUENCE; we add it from recorded joins."""

    PLAYLIST = (
        b"#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n"
        b"#EXT-X-MEDIA-SEQUENCE:20\n#EXTINF:1.0,\nstream-20.ts\n"
        b"#EXT-X-DISCONTINUITY\n#EXTINF:1.0,\nstream-21.ts\n"
    )

    def test_joins_that_scrolled_out_are_counted(self):
        from owncast.transcode.output import discontinuity_sequence

        result = discontinuity_sequence(self.PLAYLIST, b"5\n12\n21\n")
        self.assertIn(b"#EXT-X-MEDIA-SEQUENCE:20\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n", result)
        # A join still listed (21) or at the first listed segment is not counted yet.
        self.assertIn(
            b"DISCONTINUITY-SEQUENCE:1\n", discontinuity_sequence(self.PLAYLIST, b"12\n20\n21\n")
        )
        self.assertEqual(discontinuity_sequence(self.PLAYLIST, b"21\n"), self.PLAYLIST)
        self.assertEqual(discontinuity_sequence(self.PLAYLIST, b""), self.PLAYLIST)

    def test_numbers_longer_than_int_takes_are_ignored(self):
        """A sequence or a join of thousands of digits (``int`` refuses over 4300) is not a
        number: the playlist is left alone, the join skipped."""
        from owncast.transcode.output import discontinuity_sequence

        huge = b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:" + b"1" * 5000 + b"\n"
        self.assertEqual(discontinuity_sequence(huge, b"5\n"), huge)
        self.assertIn(
            b"DISCONTINUITY-SEQUENCE:1\n",
            discontinuity_sequence(self.PLAYLIST, b"9" * 5000 + b"\n5\n"),
        )
