"""RTMP ingest against a real ffmpeg publisher: the tags that come out, written as FLV,
decode again."""

from __future__ import annotations

import os
from pathlib import Path

import imageio_ffmpeg
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock, deferLater
from twisted.trial import unittest

from owncast.core.broadcast import Broadcasts
from owncast.core.stream import StreamState
from owncast.media import flv
from owncast.media.replay import Replay
from owncast.rtmp.session import RtmpFactory
from tests.fakes import RecordingSink

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
KEY = "publish-key-123"


class _Run(ProcessProtocol):
    def __init__(self):
        self.done = Deferred()
        self.err = bytearray()

    def errReceived(self, data):
        self.err += data

    def processEnded(self, reason):
        self.done.callback(reason.value.exitCode)


def run(args: list[str]) -> tuple[Deferred, _Run]:
    proto = _Run()
    reactor.spawnProcess(proto, FFMPEG, [FFMPEG, *args], env=dict(os.environ))
    return proto.done, proto


def publish_args(url: str, seconds: int, extra: list[str] | None = None) -> list[str]:
    return [
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        str(seconds),
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "60",
        "-c:a",
        "aac",
        *(extra or []),
        "-f",
        "flv",
        url,
    ]


class FfmpegPublishTests(unittest.TestCase):
    timeout = 60

    def setUp(self):
        self.stream = StreamState(reactor.seconds)
        self.sink = RecordingSink()
        self.broadcasts = Broadcasts(self.stream, lambda: KEY, self.sink)
        self.port = reactor.listenTCP(
            0, RtmpFactory(self.broadcasts, reactor), interface="127.0.0.1"
        )
        self.addCleanup(self.port.stopListening)
        self.url = f"rtmp://127.0.0.1:{self.port.getHost().port}/live/"

    async def test_publish_records_decodable_flv_with_exact_timestamps(self):
        states = []
        self.stream.listeners.append(lambda event, s: states.append(event))
        done, proto = run(publish_args(self.url + KEY, 3))
        code = await done
        self.assertEqual(code, 0, bytes(proto.err))
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(states, ["STREAM_STARTED", "STREAM_STOPPED"])
        self.assertEqual((self.sink.starts, self.sink.stops), (1, 1))
        tags = self.sink.tags()
        kinds = {k for k, _, _ in tags}
        self.assertEqual(kinds, {flv.AUDIO_TAG, flv.VIDEO_TAG, flv.SCRIPT_TAG})
        video_ts = [t for k, t, _ in tags if k == flv.VIDEO_TAG]
        audio_ts = [t for k, t, _ in tags if k == flv.AUDIO_TAG]
        self.assertEqual(video_ts, sorted(video_ts))
        self.assertEqual(audio_ts, sorted(audio_ts))
        # 30 fps for 3 s: 90 frames, 33-34 ms apart; audio runs the same length.
        self.assertGreaterEqual(len(video_ts), 85)
        gaps = [b - a for a, b in zip(video_ts[1:], video_ts[2:], strict=False)]
        self.assertLessEqual(max(gaps), 34)
        self.assertLess(abs(audio_ts[-1] / 1000 - 3.0), 0.2)
        # Classified where they arrived: sequence headers first, then keyframes (-g 60).
        video = [t for t in self.sink.received if t.kind == flv.VIDEO_TAG]
        audio = [t for t in self.sink.received if t.kind == flv.AUDIO_TAG]
        self.assertEqual([t.config for t in video[:2]], [True, False])
        self.assertEqual([t.config for t in audio[:2]], [True, False])
        self.assertTrue(video[1].keyframe)
        self.assertGreaterEqual(sum(t.keyframe for t in video), 2)
        path = Path(self.mktemp() + ".flv")
        path.write_bytes(self.sink.flv())
        done, proto = run(["-v", "error", "-i", str(path), "-f", "null", "-"])
        self.assertEqual(await done, 0, bytes(proto.err))
        self.assertEqual(proto.err, b"")
        details = self.stream.broadcaster
        self.assertIsNone(details)  # ended
        self.assertIsNotNone(self.stream.last_disconnect_time)

    async def test_enhanced_rtmp_hevc_restarts_from_config_and_a_keyframe(self):
        """HEVC comes as Enhanced RTMP: its SequenceStart and keyframes are recognised, so
        both the whole broadcast and what a restarted ffmpeg would read (header, metadata,
        sequence headers, then from a later keyframe on) decode without an error."""
        done, proto = run(publish_args(self.url + KEY, 3, ["-c:v", "libx265"]))
        self.assertEqual(await done, 0, bytes(proto.err))
        await deferLater(reactor, 0.2, lambda: None)
        received = self.sink.received
        video = [t for t in received if t.kind == flv.VIDEO_TAG]
        self.assertTrue(video[0].config)
        self.assertTrue(video[0].payload[0] & 0x80)  # an Enhanced RTMP header
        self.assertEqual(video[0].payload[1:5], b"hvc1")
        keys = [i for i, t in enumerate(received) if t.keyframe]
        self.assertGreaterEqual(len(keys), 2)
        replay = Replay(max_gop=1 << 30)
        for tag in received[: keys[1] + 1]:
            replay.remember(tag, tag.keyframe)
        restart = flv.header() + flv.encode(replay.tags() + received[keys[1] + 1 :])
        for data in (self.sink.flv(), restart):
            path = Path(self.mktemp() + ".flv")
            path.write_bytes(data)
            done, proto = run(["-v", "error", "-i", str(path), "-f", "null", "-"])
            self.assertEqual(await done, 0, bytes(proto.err))
            self.assertEqual(proto.err, b"")

    async def test_wrong_key_is_refused(self):
        states = []
        self.stream.listeners.append(lambda event, s: states.append(event))
        done, proto = run(publish_args(self.url + "wrong-key", 2))
        code = await done
        self.assertNotEqual(code, 0)
        self.assertEqual(states, [])
        self.assertEqual(self.sink.starts, 0)

    async def test_second_publisher_is_refused_and_first_goes_on(self):
        first, _ = run(publish_args(self.url + KEY, 4))
        for _ in range(100):
            if self.stream.online:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertTrue(self.stream.online)
        second, _ = run(publish_args(self.url + KEY, 2))
        self.assertNotEqual(await second, 0)
        self.assertTrue(self.stream.online)
        self.assertEqual(await first, 0)
        self.assertEqual(self.sink.starts, 1)

    async def test_stream_details_from_metadata(self):
        first, _ = run(publish_args(self.url + KEY, 3))
        details = None
        for _ in range(100):
            if self.stream.broadcaster and self.stream.broadcaster["streamDetails"]["width"]:
                details = dict(self.stream.broadcaster["streamDetails"])
                break
            await deferLater(reactor, 0.05, lambda: None)
        await first
        self.assertEqual((details["width"], details["height"]), (320, 240))
        self.assertEqual(details["framerate"], 30)
        self.assertEqual(details["videoCodec"], "H.264")
        self.assertEqual(details["audioCodec"], "AAC")
        self.assertTrue(details["encoder"].startswith("Lavf"))


class IdleTests(unittest.TestCase):
    def test_silent_connection_is_dropped(self):
        from twisted.internet.testing import StringTransport

        clock = Clock()
        factory = RtmpFactory(Broadcasts(StreamState(clock.seconds), lambda: KEY), clock)
        session = factory.buildProtocol(None)
        transport = StringTransport()
        session.makeConnection(transport)
        session.dataReceived(b"\x03")
        for _ in range(4):
            clock.advance(1)
        self.assertFalse(transport.disconnecting)
        # Checks run every 2.5 s; one that has not published within AUTH_DEADLINE (5 s),
        # let alone one that went silent, is dropped by the next.
        clock.advance(2.5)
        self.assertTrue(transport.disconnecting)
