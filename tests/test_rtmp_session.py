"""The RTMP session in memory: a test-side client drives ``RtmpSession`` over a
``StringTransport`` on a fake clock, and reads the server's replies with a ``ChunkReader``."""

from __future__ import annotations

import random
import struct
from pathlib import Path

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from owncast.core.broadcast import Broadcasts, NullSink
from owncast.core.stream import StreamState
from owncast.core.throttle import AuthThrottle
from owncast.interfaces import IMediaSink
from owncast.media import flv
from owncast.rtmp import amf, chunks
from owncast.rtmp.chunks import ChunkReader, Message, encode_chunks
from owncast.rtmp.details import details_from_metadata, empty_details
from owncast.rtmp.handshake import HANDSHAKE_SIZE
from owncast.rtmp.session import (
    AUTH_DEADLINE,
    IDLE_TIMEOUT,
    OUT_CHUNK_SIZE,
    WINDOW_SIZE,
    RtmpFactory,
    RtmpSession,
)
from owncast.runtime import compat
from tests.fakes import RecordingSink
from tests.helpers import ADMIN, make_context
from tests.helpers import Client as HttpClient
from tests.test_rtmp_parser import ChunkEncoder, interleave, ref3, s3, shared
from tests.test_rtmp_parser import message as hand_built

KEY = "key123"
SERVER_HANDSHAKE = 1 + 2 * HANDSHAKE_SIZE  # S0 + S1 + S2: 3073 bytes


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


class Client:
    """The publisher's side: handshake, AMF0 commands, media; parses what comes back."""

    def __init__(self, factory: RtmpFactory, host: str = "10.0.0.1", port: int = 40000):
        self.session = factory.buildProtocol(IPv4Address("TCP", host, port))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        self.session.makeConnection(self.transport)
        self.reader = ChunkReader()
        self.chunk_size = chunks.DEFAULT_CHUNK_SIZE
        self.sent = 0
        self._skipped = 0
        self.s0s1s2 = b""
        self.txn = 0

    # -- out ---------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sent += len(data)
        self.session.dataReceived(data)

    def handshake(self) -> None:
        c1 = u32(0) + u32(0) + random.Random(1).randbytes(HANDSHAKE_SIZE - 8)
        self.send(b"\x03" + c1)
        reply = self.transport.value()
        assert len(reply) == SERVER_HANDSHAKE, len(reply)
        self.send(reply[1 : 1 + HANDSHAKE_SIZE])  # C2 echoes S1

    def message(
        self, kind: int, body: bytes, stream_id: int = 0, timestamp: int = 0, csid: int = 0
    ) -> bytes:
        csid = csid or {chunks.AUDIO: 4, chunks.VIDEO: 6}.get(kind, 3 if kind > 6 else 2)
        data = encode_chunks(Message(kind, stream_id, timestamp, body, csid), self.chunk_size)
        self.send(data)
        return data

    def set_chunk_size(self, size: int) -> None:
        self.message(chunks.SET_CHUNK_SIZE, u32(size))
        self.chunk_size = size

    def command(self, name: str, *args, stream_id: int = 0) -> float:
        self.txn += 1
        self.message(chunks.COMMAND_AMF0, amf.encode_amf0(name, float(self.txn), *args), stream_id)
        return float(self.txn)

    def connect(self, app: str = "live", **extra) -> float:
        params = {
            "app": app,
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (compatible; obs)",
            "tcUrl": f"rtmp://127.0.0.1:1935/{app}",
            **extra,
        }
        return self.command("connect", params)

    def publish_flow(self, key: str = KEY) -> None:
        self.handshake()
        self.connect()
        self.set_chunk_size(4096)
        self.command("releaseStream", None, key)
        self.command("FCPublish", None, key)
        self.command("createStream", None)
        self.command("publish", None, key, "live", stream_id=1)

    def metadata(self, meta: dict, timestamp: int = 0) -> None:
        self.message(
            chunks.DATA_AMF0, amf.encode_amf0("@setDataFrame", "onMetaData", meta), 1, timestamp
        )

    def audio(self, timestamp: int, body: bytes) -> bytes:
        return self.message(chunks.AUDIO, body, 1, timestamp)

    def video(self, timestamp: int, body: bytes) -> bytes:
        return self.message(chunks.VIDEO, body, 1, timestamp)

    # -- in ----------------------------------------------------------------------------
    def replies(self) -> list[Message]:
        """Messages the server wrote since the last call (after S0/S1/S2)."""
        data = self.transport.value()
        self.transport.clear()
        if self._skipped < SERVER_HANDSHAKE:
            take = min(SERVER_HANDSHAKE - self._skipped, len(data))
            self.s0s1s2 += data[:take]
            self._skipped += take
            data = data[take:]
        return self.reader.feed(data)

    def commands(self) -> list[list]:
        return [amf.decode_amf0(m.body) for m in self.replies() if m.type == chunks.COMMAND_AMF0]

    @property
    def dropped(self) -> bool:
        return self.transport.disconnecting

    def close(self) -> None:
        self.session.connectionLost(None)


def codes(commands: list[list]) -> list[str]:
    return [c[3]["code"] for c in commands if c[0] == "onStatus"]


class SessionTestCase(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.stream = StreamState(self.clock.seconds)
        self.events: list[str] = []
        self.stream.listeners.append(lambda event, s: self.events.append(event))
        self.sink = RecordingSink()
        self.broadcasts = Broadcasts(self.stream, lambda: KEY, self.sink)
        self.factory = RtmpFactory(self.broadcasts, self.clock)

    def tick(self, seconds: float, step: float = 0.5) -> None:
        """Advance the clock in small steps, as a reactor would (one big ``advance`` runs
        a call rescheduled from inside it late)."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def client(self, **kw) -> Client:
        client = Client(self.factory, **kw)
        self.addCleanup(self._close, client)
        return client

    def _close(self, client: Client) -> None:
        if not client.session._closing:
            client.close()

    def publishing(self, **kw) -> Client:
        client = self.client(**kw)
        client.publish_flow()
        self.assertIn("NetStream.Publish.Start", codes(client.commands()))
        return client


class ConnectTests(SessionTestCase):
    def test_handshake_reply(self):
        client = self.client()
        client.handshake()
        client.replies()
        self.assertEqual(len(client.s0s1s2), SERVER_HANDSHAKE)
        self.assertEqual(client.s0s1s2[0], 3)
        self.assertEqual(client.s0s1s2[5:9], b"\x00\x00\x00\x00")
        self.assertEqual(
            client.s0s1s2[1 + HANDSHAKE_SIZE :][8:], random.Random(1).randbytes(HANDSHAKE_SIZE - 8)
        )
        self.assertFalse(client.dropped)

    def test_connect(self):
        client = self.client()
        client.handshake()
        txn = client.connect()
        replies = client.replies()
        self.assertEqual(
            [m.type for m in replies],
            [
                chunks.WINDOW_ACK_SIZE,
                chunks.SET_PEER_BANDWIDTH,
                chunks.SET_CHUNK_SIZE,
                chunks.COMMAND_AMF0,
            ],
        )
        self.assertEqual(replies[0].body, u32(WINDOW_SIZE))
        self.assertEqual(replies[1].body, u32(WINDOW_SIZE) + b"\x02")
        self.assertEqual(replies[2].body, u32(OUT_CHUNK_SIZE))
        self.assertEqual(client.reader.chunk_size, OUT_CHUNK_SIZE)
        name, reply_txn, props, info = amf.decode_amf0(replies[3].body)
        self.assertEqual((name, reply_txn), ("_result", txn))
        self.assertIn("fmsVer", props)
        self.assertEqual(info["code"], "NetConnection.Connect.Success")
        self.assertEqual(info["level"], "status")
        self.assertNotIn("fourCcList", props)
        self.assertFalse(client.dropped)

    def test_app_with_slash_and_query(self):
        client = self.client()
        client.handshake()
        client.connect(app="live?token=x")
        self.assertEqual(client.commands()[0][3]["code"], "NetConnection.Connect.Success")
        client = self.client()
        client.handshake()
        client.connect(app="/live/")
        self.assertEqual(client.commands()[0][3]["code"], "NetConnection.Connect.Success")

    def test_unknown_app_is_refused(self):
        client = self.client()
        client.handshake()
        txn = client.connect(app="vod")
        replies = client.replies()
        self.assertEqual([m.type for m in replies], [chunks.COMMAND_AMF0])
        name, reply_txn, _, info = amf.decode_amf0(replies[0].body)
        self.assertEqual((name, reply_txn), ("_error", txn))
        self.assertEqual(info["code"], "NetConnection.Connect.Rejected")
        self.assertTrue(client.dropped)
        # What follows is ignored, even a good connect.
        client.connect()
        self.assertEqual(client.replies(), [])

    def test_enhanced_rtmp_connect(self):
        client = self.client()
        client.handshake()
        client.connect(
            fourCcList=["av01", "vp09", "hvc1"], videoFourCcInfoMap={"hvc1": 1.0}, capsEx=15.0
        )
        (result,) = client.commands()
        self.assertEqual(result[0], "_result")
        self.assertEqual(result[2]["fourCcList"], ["av01", "vp09", "hvc1"])
        self.assertEqual(result[3]["code"], "NetConnection.Connect.Success")
        self.assertFalse(client.dropped)

    def connect_with(self, **fields: bytes) -> Client:
        """A connect whose command object holds ``fields`` as raw AMF0 values."""
        client = self.client()
        client.handshake()
        body = bytearray(amf.encode_amf0("connect", 1.0) + b"\x03")
        for name, raw in fields.items():
            body += struct.pack(">H", len(name)) + name.encode() + raw
        client.message(chunks.COMMAND_AMF0, bytes(body + b"\x00\x00\x09"))
        return client

    def test_connect_values_that_hold_or_repeat_themselves(self):
        """AMF3 (inside AMF0 after 0x11) can make a value that holds itself, or one that
        expands without end when printed or re-encoded: an ``app`` that is not a string is
        refused as unknown, an ``objectEncoding`` that is not a number is answered as 0."""
        cyclic = b"\x11\x0a\x0b\x01" + s3("me") + b"\x0a" + ref3(0) + b"\x01"
        client = self.connect_with(app=amf.encode_amf0("live"), objectEncoding=cyclic)
        (result,) = client.commands()
        self.assertEqual((result[0], result[3]["objectEncoding"]), ("_result", 0))
        self.assertFalse(client.dropped)

        client = self.connect_with(app=b"\x11" + shared(12))
        (error,) = client.commands()
        self.assertEqual(
            (error[0], error[3]["description"][:22]), ("_error", "unknown application ''")
        )
        self.assertTrue(client.dropped)

    def test_create_stream(self):
        client = self.client()
        client.handshake()
        client.connect()
        client.replies()
        release = client.command("releaseStream", None, KEY)
        client.command("FCPublish", None, KEY)
        txn = client.command("createStream", None)
        results = client.commands()
        self.assertEqual(results[0], ["_result", release, None, amf.UNDEFINED])
        self.assertEqual(results[1][0], "onFCPublish")
        self.assertEqual(results[2], ["_result", txn, None, 1.0])

    def test_create_stream_before_connect_drops(self):
        client = self.client()
        client.handshake()
        client.command("createStream", None)
        self.assertTrue(client.dropped)

    def test_unknown_commands_are_ignored(self):
        client = self.client()
        client.handshake()
        client.connect()
        client.command("getStreamLength", None, KEY)
        client.command("_checkbw")
        client.command("__init__")
        self.assertEqual(len(client.commands()), 1)
        self.assertFalse(client.dropped)


class PublishTests(SessionTestCase):
    def test_publish_starts_a_broadcast(self):
        client = self.client()
        client.publish_flow()
        replies = client.replies()
        stream_begin = [m for m in replies if m.type == chunks.USER_CONTROL]
        self.assertEqual([m.body for m in stream_begin], [b"\x00\x00" + u32(1)])
        status = [amf.decode_amf0(m.body) for m in replies if m.type == chunks.COMMAND_AMF0]
        self.assertEqual(codes(status), ["NetStream.Publish.Start"])
        on_status = [m for m in replies if m.type == chunks.COMMAND_AMF0][-1]
        self.assertEqual(on_status.stream_id, 1)
        self.assertTrue(self.stream.online)
        self.assertEqual(self.events, ["STREAM_STARTED"])
        self.assertEqual(self.stream.broadcaster["remoteAddr"], "10.0.0.1:40000")
        self.assertEqual((self.sink.starts, self.sink.stops), (1, 0))
        self.assertEqual(self.sink.received, [])
        self.assertFalse(client.dropped)

    def test_media_becomes_tags_with_exact_timestamps(self):
        client = self.publishing()
        sent = []
        for i in range(40):
            a = (flv.AUDIO_TAG, i * 23, b"\xaf\x01" + bytes([i]) * (50 + i))
            v = (flv.VIDEO_TAG, i * 33 + (i % 2), b"\x27\x01" + bytes([i]) * (7000 + 13 * i))
            client.audio(a[1], a[2])
            client.video(v[1], v[2])
            sent += [a, v]
        # Past 0xFFFFFF ms (the extended-timestamp switch) and near the 32-bit limit.
        for ts in (0xFFFFFE, 0xFFFFFF, 0x1000005, 0xFFFFFFF0):
            client.video(ts, b"\x17\x01big")
            sent.append((flv.VIDEO_TAG, ts, b"\x17\x01big"))
        self.assertEqual(self.sink.tags(), sent)
        self.assertFalse(client.dropped)

    def test_media_with_compressed_headers(self):
        client = self.publishing()
        enc = ChunkEncoder(chunk_size=4096)
        data = bytearray()
        sent = []
        for i in range(30):
            a_ts, v_ts = 0xFFFF00 + i * 23, 0xFFFF00 + i * 33
            audio, video = bytes([i]) * 300, bytes([i]) * (5000 + 7 * i)
            data += interleave(
                enc.chunks(4, chunks.AUDIO, 1, a_ts, audio),
                enc.chunks(6, chunks.VIDEO, 1, v_ts, video),
            )
            sent += [(flv.AUDIO_TAG, a_ts, audio), (flv.VIDEO_TAG, v_ts, video)]
        rng = random.Random(3)
        cuts = sorted(rng.sample(range(1, len(data)), 100))
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            client.send(bytes(data[start:end]))
        self.assertEqual(set(enc.formats), {0, 1, 2, 3})
        self.assertEqual(
            sorted(self.sink.tags(), key=lambda t: (t[1], t[0])),
            sorted(sent, key=lambda t: (t[1], t[0])),
        )

    def test_metadata_fills_stream_details(self):
        client = self.publishing()
        meta = amf.EcmaArray(
            duration=0.0,
            width=1280.0,
            height=720.0,
            framerate=30.0,
            videocodecid=7.0,
            audiocodecid=10.0,
            videodatarate=2500.0,
            audiodatarate=160.0,
            encoder="obs-output module (libobs version 30.1.2)",
        )
        client.metadata(meta)
        details = self.stream.broadcaster["streamDetails"]
        self.assertEqual(
            {
                k: details[k]
                for k in (
                    "width",
                    "height",
                    "framerate",
                    "videoCodec",
                    "audioCodec",
                    "encoder",
                    "videoBitrate",
                    "audioBitrate",
                )
            },
            {
                "width": 1280,
                "height": 720,
                "framerate": 30,
                "videoCodec": "H.264",
                "audioCodec": "AAC",
                "encoder": "obs-output module (libobs version 30.1.2)",
                "videoBitrate": 2500,
                "audioBitrate": 160,
            },
        )
        tags = self.sink.tags()
        self.assertEqual(len(tags), 1)
        kind, ts, body = tags[0]
        self.assertEqual((kind, ts), (flv.SCRIPT_TAG, 0))
        self.assertEqual(amf.decode_amf0(body), ["onMetaData", meta])

    def test_enhanced_rtmp_metadata(self):
        client = self.publishing()
        client.metadata(
            {
                "width": 3840.0,
                "height": 2160.0,
                "videocodecid": float(int.from_bytes(b"av01", "big")),
                "audiocodecid": float(int.from_bytes(b"Opus", "big")),
            }
        )
        details = self.stream.broadcaster["streamDetails"]
        self.assertEqual((details["videoCodec"], details["audioCodec"]), ("AV1", "Opus"))
        client.metadata({"videocodecid": "hvc1", "audiocodecid": "mp4a"})
        self.assertEqual((details["videoCodec"], details["audioCodec"]), ("H.265", "AAC"))

    def test_metadata_before_publish(self):
        client = self.client()
        client.handshake()
        client.connect()
        client.command("createStream", None)
        client.metadata({"width": 640.0, "height": 360.0})
        client.command("publish", None, KEY, "live", stream_id=1)
        details = self.stream.broadcaster["streamDetails"]
        self.assertEqual((details["width"], details["height"]), (640, 360))

    def test_key_with_query_string(self):
        client = self.client()
        client.handshake()
        client.connect()
        client.command("publish", None, KEY + "?bandwidth=1", "live", stream_id=1)
        self.assertEqual(codes(client.commands()), ["NetStream.Publish.Start"])

    def test_wrong_key_is_refused(self):
        for key in ("wrong", "", KEY + "x", KEY[:-1]):
            client = self.client()
            client.handshake()
            client.connect()
            client.command("createStream", None)
            client.command("publish", None, key, "live", stream_id=1)
            commands = client.commands()
            self.assertEqual(codes(commands), ["NetStream.Publish.BadName"], key)
            self.assertEqual(commands[-1][3]["level"], "error")
            self.assertTrue(client.dropped)
            client.video(0, b"\x17\x00frame")
            client.close()
        self.assertFalse(self.stream.online)
        self.assertEqual(self.events, [])
        self.assertEqual((self.sink.starts, self.sink.stops), (0, 0))
        self.assertEqual(self.sink.received, [])

    def test_second_publisher_is_refused_and_first_goes_on(self):
        first = self.publishing(host="10.0.0.1")
        first.video(0, b"\x17first")
        second = self.client(host="10.0.0.2")
        second.publish_flow()
        self.assertEqual(codes(second.commands()), ["NetStream.Publish.BadName"])
        self.assertTrue(second.dropped)
        second.video(5, b"\x17second")
        second.close()
        first.video(33, b"\x27first")
        self.assertFalse(first.dropped)
        self.assertTrue(self.stream.online)
        self.assertEqual(self.stream.broadcaster["remoteAddr"], "10.0.0.1:40000")
        self.assertEqual((self.sink.starts, self.sink.stops), (1, 0))
        self.assertEqual(self.events, ["STREAM_STARTED"])
        self.assertEqual(self.sink.tags(), [(9, 0, b"\x17first"), (9, 33, b"\x27first")])

    def test_publish_twice_on_one_connection_drops_it(self):
        client = self.publishing()
        client.command("publish", None, KEY, "live", stream_id=1)
        self.assertTrue(client.dropped)

    def test_next_publisher_after_the_first_ends(self):
        first = self.publishing()
        first.close()
        second = self.publishing(host="10.0.0.2")
        second.audio(0, b"\xaf\x01x")
        self.assertEqual(self.stream.broadcaster["remoteAddr"], "10.0.0.2:40000")
        self.assertEqual((self.sink.starts, self.sink.stops), (2, 1))
        self.assertEqual(self.events, ["STREAM_STARTED", "STREAM_STOPPED", "STREAM_STARTED"])


class EndTests(SessionTestCase):
    def check_ended(self):
        self.assertFalse(self.stream.online)
        self.assertEqual(self.stream.state, "ended")
        self.assertIsNone(self.stream.broadcaster)
        self.assertEqual(self.events, ["STREAM_STARTED", "STREAM_STOPPED"])
        self.assertEqual((self.sink.starts, self.sink.stops), (1, 1))
        self.assertIsNone(self.broadcasts.current)

    def test_fcunpublish(self):
        client = self.publishing()
        client.video(0, b"\x17a")
        client.command("FCUnpublish", None, KEY)
        self.check_ended()
        client.video(33, b"\x27b")  # after the end: not written
        client.command("deleteStream", None, 1.0)
        client.close()
        self.check_ended()
        self.assertEqual(self.sink.tags(), [(9, 0, b"\x17a")])

    def test_delete_stream(self):
        client = self.publishing()
        client.command("deleteStream", None, 1.0)
        self.check_ended()
        self.assertFalse(client.dropped)

    def test_close_stream(self):
        client = self.publishing()
        client.command("closeStream", None, stream_id=1)
        self.check_ended()

    def test_connection_lost(self):
        client = self.publishing()
        client.close()
        self.check_ended()
        self.assertEqual(self.factory.connections, 0)

    def test_admin_disconnect_drops_the_transport(self):
        client = self.publishing()
        client.video(0, b"\x17a")
        self.assertTrue(self.stream.disconnect())
        self.assertTrue(client.dropped)
        self.check_ended()
        client.video(33, b"\x27b")
        client.close()
        self.check_ended()
        self.assertEqual(self.sink.tags(), [(9, 0, b"\x17a")])
        self.assertFalse(self.stream.disconnect())


class AggregateTests(SessionTestCase):
    def test_aggregate_is_split_and_rebased(self):
        client = self.publishing()
        body = (
            flv.tag(flv.VIDEO_TAG, 1000, b"\x17\x01video")
            + flv.tag(flv.AUDIO_TAG, 1010, b"\xaf\x01audio")
            + flv.tag(flv.VIDEO_TAG, 1033, b"\x27\x01video2")
        )
        client.message(chunks.AGGREGATE, body, 1, 5000)
        self.assertEqual(
            self.sink.tags(),
            [
                (flv.VIDEO_TAG, 5000, b"\x17\x01video"),
                (flv.AUDIO_TAG, 5010, b"\xaf\x01audio"),
                (flv.VIDEO_TAG, 5033, b"\x27\x01video2"),
            ],
        )

    def test_aggregate_with_metadata_and_extended_timestamps(self):
        client = self.publishing()
        script = amf.encode_amf0("onMetaData", {"width": 320.0})
        body = flv.tag(flv.SCRIPT_TAG, 0x1000000, script) + flv.tag(
            flv.AUDIO_TAG, 0x1000017, b"\xaf\x01a"
        )
        client.message(chunks.AGGREGATE, body, 1, 0x2000000)
        self.assertEqual(
            self.sink.tags(),
            [(flv.SCRIPT_TAG, 0x2000000, script), (flv.AUDIO_TAG, 0x2000017, b"\xaf\x01a")],
        )
        self.assertEqual(self.stream.broadcaster["streamDetails"]["width"], 320)

    def test_truncated_aggregate_drops(self):
        client = self.publishing()
        body = flv.tag(flv.VIDEO_TAG, 0, b"\x17\x01video")[:-6]
        client.message(chunks.AGGREGATE, body, 1, 0)
        self.assertTrue(client.dropped)


class MediaSinkTests(SessionTestCase):
    """Media reaches the sink as tags classified where they arrived, never as bytes to
    parse again."""

    def test_sinks_provide_the_interface(self):
        self.assertTrue(verifyObject(IMediaSink, NullSink()))
        self.assertTrue(verifyObject(IMediaSink, RecordingSink()))

    def test_media_is_classified_once(self):
        client = self.publishing()
        sent = [
            (client.video, b"\x17\x00\x00\x00\x00avcC", False, True),
            (client.audio, b"\xaf\x00\x12\x10", False, True),
            (client.video, b"\x17\x01\x00\x00\x00idr", True, False),
            (client.audio, b"\xaf\x01aac", False, False),
            (client.video, b"\x27\x01\x00\x00\x00p", False, False),
            (client.video, b"\x90hvc1hvcC", False, True),  # Enhanced RTMP SequenceStart
            (client.video, b"\x91hvc1\x00\x00\x00idr", True, False),  # CodedFrames, key
            (client.video, b"\xa3hvc1p", False, False),  # CodedFramesX, inter
        ]
        for i, (send, body, _, _) in enumerate(sent):
            send(i * 10, body)
        self.assertEqual(
            [(t.payload, t.timestamp, t.keyframe, t.config) for t in self.sink.received],
            [(body, i * 10, key, config) for i, (_, body, key, config) in enumerate(sent)],
        )
        self.assertTrue(all(type(t.payload) is bytes for t in self.sink.received))

    def test_metadata_tag_carries_the_decoded_object(self):
        client = self.publishing()
        meta = {"width": 1280.0, "audiocodecid": 10.0, "videocodecid": 7.0}
        client.metadata(meta, timestamp=7)
        [tag] = self.sink.received
        self.assertEqual((tag.kind, tag.timestamp), (flv.SCRIPT_TAG, 7))
        self.assertEqual(dict(tag.metadata), meta)
        self.assertEqual(amf.decode_amf0(tag.payload), ["onMetaData", meta])
        self.assertFalse(tag.keyframe or tag.config)

    def test_without_a_sink_media_is_dropped(self):
        """The default sink takes a whole broadcast and drops it."""
        self.factory = RtmpFactory(Broadcasts(self.stream, lambda: KEY), self.clock)
        client = self.publishing()
        client.video(0, b"\x17\x01\x00\x00\x00idr")
        client.command("deleteStream", None, 1.0)
        self.assertFalse(client.dropped)
        self.assertEqual(self.events, ["STREAM_STARTED", "STREAM_STOPPED"])

    def test_a_failing_end_is_logged(self):
        """A sink that fails to end the broadcast does not take the session down."""
        self.sink.end = lambda: fail(RuntimeError("ffmpeg would not go"))
        client = self.publishing()
        client.command("deleteStream", None, 1.0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(self.stream.online)
        self.assertFalse(client.dropped)


class AcknowledgementTests(SessionTestCase):
    def test_ack_after_the_peers_window(self):
        client = self.client()
        client.handshake()
        client.connect()
        client.replies()
        self.assertLess(client.sent, 5000)
        client.message(chunks.WINDOW_ACK_SIZE, u32(5000))
        self.assertEqual(client.replies(), [])
        # A message's bytes, cut to land on exactly 5000 bytes received in all.
        media = encode_chunks(Message(chunks.AUDIO, 1, 0, bytes(3000), 4), client.chunk_size)
        cut = 5000 - client.sent
        client.send(media[: cut - 1])
        self.assertEqual(client.replies(), [])
        client.send(media[cut - 1 : cut])
        self.assertEqual(client.sent, 5000)
        (ack,) = client.replies()
        self.assertEqual((ack.type, ack.body), (chunks.ACKNOWLEDGEMENT, u32(5000)))
        acked = client.sent
        client.send(media[cut:])
        client.audio(0, bytes(1000))
        self.assertEqual(client.replies(), [])
        while client.sent - acked < 5000:
            client.audio(0, bytes(500))
        (ack,) = client.replies()
        self.assertEqual((ack.type, ack.body), (chunks.ACKNOWLEDGEMENT, u32(client.sent)))
        self.assertFalse(client.dropped)

    def test_no_ack_below_the_default_window(self):
        client = self.publishing()
        for i in range(100):
            client.video(i, bytes(10000))
        self.assertLess(client.sent, WINDOW_SIZE)
        self.assertEqual([m for m in client.replies() if m.type == chunks.ACKNOWLEDGEMENT], [])
        for i in range(300):
            client.video(i, bytes(10000))
        acks = [m for m in client.replies() if m.type == chunks.ACKNOWLEDGEMENT]
        self.assertEqual(len(acks), 1)
        self.assertGreaterEqual(struct.unpack(">I", acks[0].body)[0], WINDOW_SIZE)


class MalformedInputTests(SessionTestCase):
    """Each bad input drops its connection only; nothing escapes ``dataReceived``."""

    def check_healthy_session_still_works(self):
        start = len(self.sink.received)
        client = self.publishing(host="10.0.0.9")
        client.video(40, b"\x17ok")
        self.assertEqual(self.sink.tags()[start:], [(flv.VIDEO_TAG, 40, b"\x17ok")])
        self.assertEqual(self.stream.broadcaster["remoteAddr"], "10.0.0.9:40000")

    def connected(self) -> Client:
        client = self.client(host="10.0.0.66")
        client.handshake()
        client.connect()
        client.replies()
        return client

    def test_bad_handshake_version(self):
        client = self.client()
        client.send(b"\x16\x03\x01" + bytes(2000))  # a TLS ClientHello
        self.assertTrue(client.dropped)
        self.check_healthy_session_still_works()

    def test_http_request(self):
        client = self.client()
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 2000)
        self.assertTrue(client.dropped)
        self.check_healthy_session_still_works()

    def test_garbage_after_handshake(self):
        client = self.client()
        client.handshake()
        client.send(b"\xff" * 64)
        self.assertTrue(client.dropped)
        self.check_healthy_session_still_works()

    def test_random_garbage_after_handshake(self):
        rng = random.Random(99)
        for _ in range(50):
            client = self.client()
            client.handshake()
            client.connect()
            for _ in range(20):
                client.send(rng.randbytes(rng.randint(1, 3000)))
                if client.dropped:
                    break
            client.close()
        self.check_healthy_session_still_works()

    def test_bad_amf_command_body(self):
        bodies = [
            b"\x02\x00\x10abc",  # truncated string
            b"\x20",  # unknown marker
            b"\x02\x00\x02\xc3\x28",  # invalid UTF-8
            b"\x00" + bytes(8),  # a command without a name
            b"",  # no values at all
            b"\x03\x00\x01k" * 5000,  # objects nested too deeply
            amf.encode_amf0("connect", 1.0) + b"\x03\x00\x01a",  # unterminated object
        ]
        for body in bodies:
            client = self.connected()
            client.message(chunks.COMMAND_AMF0, body)
            self.assertTrue(client.dropped, body[:20])
            client.close()
        self.check_healthy_session_still_works()

    def test_bad_metadata_drops(self):
        client = self.publishing()
        client.message(chunks.DATA_AMF0, b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMeta", 1)
        self.assertTrue(client.dropped)
        client.close()
        self.assertFalse(self.stream.online)
        self.check_healthy_session_still_works()

    def test_absurd_message_length(self):
        client = self.connected()
        # A command announcing 16 MiB - 1 bytes: the largest a header can say.
        header = bytes([0x03]) + bytes(3) + b"\xff\xff\xff" + bytes([chunks.COMMAND_AMF0])
        client.send(header + bytes(4) + b"\x02\x00\x07connect")
        self.assertTrue(client.dropped)
        self.check_healthy_session_still_works()

    def test_too_many_chunk_streams(self):
        client = self.connected()
        # Ping responses (user control event 7), each on a chunk stream of its own.
        for csid in range(100, 100 + chunks.MAX_CHUNK_STREAMS + 1):
            client.send(
                b"".join(
                    hand_built(0, csid, b"\x00\x07" + u32(0), mtype=chunks.USER_CONTROL, sid=0)
                )
            )
            if client.dropped:
                break
        self.assertTrue(client.dropped)
        self.check_healthy_session_still_works()

    def test_bad_chunk_size(self):
        client = self.connected()
        client.message(chunks.SET_CHUNK_SIZE, u32(0))
        self.assertTrue(client.dropped)
        self.check_healthy_session_still_works()

    def test_malformed_input_while_another_is_live(self):
        live = self.publishing(host="10.0.0.1")
        bad = self.connected()
        bad.send(b"\x7f" * 20)
        self.assertTrue(bad.dropped)
        bad.close()
        live.video(1, b"\x17still")
        self.assertFalse(live.dropped)
        self.assertTrue(self.stream.online)
        self.assertEqual(self.sink.tags()[-1], (flv.VIDEO_TAG, 1, b"\x17still"))

    def test_drop_mid_broadcast_ends_it_on_close(self):
        client = self.publishing()
        client.send(b"\xff" * 16)
        self.assertTrue(client.dropped)
        client.close()
        self.assertFalse(self.stream.online)
        self.assertEqual((self.sink.starts, self.sink.stops), (1, 1))


class AdmissionTests(SessionTestCase):
    """Connections that have not published hold one of a few slots per address, for
    ``AUTH_DEADLINE`` at most; however many idle ones there are, the encoder gets in."""

    PER_ADDRESS = RtmpFactory.pending_per_address

    def flood(self, count: int, host: str = "127.0.0.1", first_port: int = 10000) -> list[Client]:
        return [self.client(host=host, port=first_port + i) for i in range(count)]

    def held(self, clients: list[Client]) -> list[Client]:
        return [c for c in clients if not c.dropped]

    def test_idle_connections_from_the_publishers_address_do_not_keep_it_out(self):
        idle = self.flood(500)
        self.assertEqual(len(self.held(idle)), self.PER_ADDRESS)
        # ffmpeg and OBS send C0+C1 as soon as they connect; the flood goes on meanwhile.
        publisher = self.client(host="127.0.0.1", port=20000)
        publisher.send(b"\x03" + u32(0) + u32(0) + bytes(HANDSHAKE_SIZE - 8))
        idle += self.flood(500, first_port=30000)
        self.assertFalse(publisher.dropped)
        publisher.send(publisher.transport.value()[1 : 1 + HANDSHAKE_SIZE])  # C2 echoes S1
        publisher.connect()
        publisher.command("createStream", None)
        publisher.command("publish", None, KEY, "live", stream_id=1)
        self.assertIn("NetStream.Publish.Start", codes(publisher.commands()))
        self.assertTrue(self.stream.online)
        # Publishing, it holds no slot: more idle ones never push it out.
        idle += self.flood(100, first_port=40000)
        self.assertFalse(publisher.dropped)
        self.assertEqual(self.factory.admission.count, self.PER_ADDRESS)
        self.assertTrue(all(c.transport.disconnected for c in idle if c.dropped))

    def test_a_flood_from_one_address_never_pushes_out_another(self):
        waiting = self.client(host="10.0.0.2")  # silent all along
        self.flood(1000)
        self.assertFalse(waiting.dropped)
        waiting.publish_flow()
        self.assertIn("NetStream.Publish.Start", codes(waiting.commands()))

    def test_when_every_slot_is_taken_the_busiest_address_gives_one_up(self):
        busy = self.flood(self.PER_ADDRESS)
        others = [
            self.client(host=f"10.1.{n}.1")
            for n in range(RtmpFactory.pending_slots - self.PER_ADDRESS)
        ]
        quiet = self.client(host="10.2.0.1")
        self.assertEqual(len(self.held(busy)), self.PER_ADDRESS - 1)
        self.assertEqual(self.held(others), others)
        self.assertFalse(quiet.dropped)
        # Many addresses, one idle connection each: the least advanced, oldest go first.
        publisher = self.client(host="10.3.0.1")
        publisher.handshake()
        for n in range(300):
            self.client(host=f"10.4.{n}.1")
        self.assertFalse(publisher.dropped)
        self.assertEqual(self.factory.admission.count, RtmpFactory.pending_slots)
        publisher.connect()
        publisher.command("publish", None, KEY, "live", stream_id=1)
        self.assertIn("NetStream.Publish.Start", codes(publisher.commands()))

    def test_connections_that_do_not_publish_in_time_are_dropped(self):
        idle = self.flood(3)
        slow = self.client(host="10.0.0.3")
        slow.handshake()
        slow.connect()
        publisher = self.publishing(host="10.0.0.4")
        self.tick(AUTH_DEADLINE - 0.5)
        self.assertFalse(any(c.dropped for c in [*idle, slow]))
        self.tick(0.5)
        self.assertTrue(all(c.dropped and c.transport.disconnected for c in [*idle, slow]))
        self.assertEqual(self.factory.admission.count, 0)
        publisher.video(0, b"\x17a")
        self.tick(IDLE_TIMEOUT / 2)
        self.assertFalse(publisher.dropped)

    def test_closed_connections_free_their_slots(self):
        clients = self.flood(self.PER_ADDRESS)
        for client in clients:
            client.close()
        self.assertEqual((self.factory.connections, self.factory.admission.count), (0, 0))
        fresh = self.flood(self.PER_ADDRESS, first_port=50000)
        self.assertEqual(len(self.held(fresh)), self.PER_ADDRESS)


class KeyGuessingTests(SessionTestCase):
    """Wrong stream keys count against their address in the same throttle as wrong admin
    passwords (the key is the password)."""

    def setUp(self):
        super().setUp()
        self.broadcasts.throttle = AuthThrottle(self.clock.seconds)

    def attempt(self, key: str, host: str = "10.0.0.7") -> list[str]:
        client = self.client(host=host)
        client.handshake()
        client.connect()
        client.command("createStream", None)
        client.command("publish", None, key, "live", stream_id=1)
        result = codes(client.commands())
        if client.dropped:
            client.close()
        return result

    def test_wrong_keys_are_throttled_per_address(self):
        results = [self.attempt("wrong") for _ in range(8)]
        bad, denied = ["NetStream.Publish.BadName"], ["NetStream.Publish.Denied"]
        self.assertEqual(results, [bad] * 6 + [denied] * 2)
        self.assertEqual(self.attempt(KEY), denied)  # not even checked
        self.assertFalse(self.stream.online)
        self.assertEqual(self.attempt(KEY, host="10.0.0.8"), ["NetStream.Publish.Start"])
        self.assertTrue(self.stream.online)

    def test_the_penalty_passes(self):
        for _ in range(6):
            self.attempt("wrong")
        self.tick(1.0)
        self.assertEqual(self.attempt(KEY), ["NetStream.Publish.Start"])

    def test_stream_keys_and_admin_passwords_share_one_penalty(self):
        ctx = make_context(Path(self.mktemp()), clock=self.clock)
        self.broadcasts.throttle = ctx.throttle
        http = HttpClient(ctx)
        for _ in range(3):
            self.attempt("wrong", host="127.0.0.1")
        for _ in range(3):
            self.assertEqual(http.get("/api/admin/status", auth=("admin", "wrong"))[0], 401)
        self.assertEqual(http.get("/api/admin/status", auth=ADMIN)[0], 429)
        self.assertEqual(self.attempt(KEY, host="127.0.0.1"), ["NetStream.Publish.Denied"])


class IdleTests(SessionTestCase):
    def test_never_sending_is_dropped_at_the_deadline(self):
        client = self.client()
        self.tick(AUTH_DEADLINE - 0.5)
        self.assertFalse(client.dropped)
        self.tick(0.5)
        self.assertTrue(client.dropped)  # silent since the connection was made

    def test_silent_publisher_is_dropped(self):
        client = self.publishing()
        client.video(0, b"\x17a")
        self.assertFalse(client.dropped)
        # Checked every IDLE_TIMEOUT: dropped once a whole period passed without a byte.
        self.tick(IDLE_TIMEOUT * 2)
        self.assertTrue(client.dropped)
        self.assertTrue(client.transport.disconnected)  # aborted, not a graceful close
        client.close()
        self.assertFalse(self.stream.online)
        self.assertEqual((self.sink.starts, self.sink.stops), (1, 1))

    def test_steady_bytes_keep_it(self):
        client = self.publishing()
        for i in range(120):
            client.audio(i * 500, b"\xaf\x01" + bytes(100))
            self.tick(0.5)
        self.assertFalse(client.dropped)
        # Slow but steady: one acknowledgement every 9 s.
        for _ in range(10):
            client.message(chunks.ACKNOWLEDGEMENT, u32(1))
            self.tick(9)
        self.assertFalse(client.dropped)
        self.assertTrue(self.stream.online)

    def test_a_trickle_does_not_keep_an_unpublished_connection(self):
        client = self.client()
        for i in range(1 + HANDSHAKE_SIZE):
            if i % 200 == 0:
                self.tick(1)
            client.send(b"\x03" if i == 0 else b"\x00")
            if client.dropped:
                break
        self.assertTrue(client.dropped)
        self.assertLess(i, 1200)  # at AUTH_DEADLINE, not when it finished

    def test_bitrate_measured_without_metadata(self):
        client = self.publishing()
        for i in range(10):
            client.video(i * 1000, bytes(125_000))  # 1 Mbit each second
            client.audio(i * 1000, bytes(16_000))  # 128 kbit
            self.tick(1)
        details = self.stream.broadcaster["streamDetails"]
        self.assertEqual(details["videoBitrate"], 1000)
        self.assertEqual(details["audioBitrate"], 128)


class _Socket:
    def __init__(self):
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level, option, value):
        self.options.append((level, option, value))


class WakeupTuningTests(SessionTestCase):
    """The receive low-water mark follows the publisher's rate, so we wake per ~150 ms of
    media, not per packet (most ingest CPU is the cost of a wake-up), and one read takes
    all that woke us."""

    def test_low_water_mark_follows_the_rate(self):
        import socket

        client = self.publishing()
        handle = _Socket()
        client.transport.getHandle = lambda: handle
        # compat.set_read_size sets a real TCP transport's read size (tests/test_compat.py)
        read_sizes = [65536]
        self.patch(compat, "set_read_size", lambda transport, size: read_sizes.append(size))
        for _ in range(4):  # 200 KB/s for one second
            client.session._received += 50_000
            self.tick(0.25, step=0.25)
        marks = [
            value
            for _, option, value in handle.options
            if option == getattr(socket, "SO_RCVLOWAT", 18)
        ]
        self.assertEqual(marks, [30_000])
        self.assertEqual(read_sizes[-1], 65536)
        # A much faster stream is capped at 256 KiB; small changes are ignored.
        client.session._tune_wakeups(10_000_000)
        client.session._tune_wakeups(9_000_000)
        self.assertEqual(handle.options[-1][2], 256 * 1024)
        self.assertEqual(len(handle.options), 2)
        # Reads are as large as twice the mark, or one read would not drain a wake-up.
        self.assertEqual(read_sizes[-1], 512 * 1024)

    def test_no_handle_is_harmless(self):
        client = self.publishing()
        client.session._tune_wakeups(1_000_000)
        self.assertFalse(client.dropped)


class BroadcasterDetailsAs007Tests(unittest.TestCase):
    """streamDetails' codec names and remoteAddr are spelled as 0.0.7 spelled them."""

    def test_codec_names(self):
        details = empty_details()
        details_from_metadata({"videocodecid": 12.0}, details)
        self.assertEqual((details["videoCodec"], details["audioCodec"]), ("H.265", "No audio"))
        details_from_metadata({"videocodecid": 99.0, "audiocodecid": 99.0}, details)
        self.assertEqual((details["videoCodec"], details["audioCodec"]), ("Unknown", "Unknown"))
        details_from_metadata({"videocodecid": 7.0, "audiocodecid": 10.0}, details)
        self.assertEqual((details["videoCodec"], details["audioCodec"]), ("H.264", "AAC"))

    def test_remote_addr_has_the_port(self):
        session = RtmpSession(Broadcasts(StreamState(lambda: 0.0), lambda: "k"), Clock())
        session.transport = StringTransport(peerAddress=IPv6Address("TCP", "::1", 5000))
        self.assertEqual(session._peer_address(), "[::1]:5000")
