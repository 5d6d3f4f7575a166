"""The RTMP parsers on hand-built bytes: chunk stream, AMF0/AMF3, handshake, FLV.

The chunk streams here come from a test-side encoder that can emit every header format
(0-3), every basic-header size (chunk stream ids 2-63, 64-319, 320-65599), extended
timestamps and any chunk size, so the reader is checked against the spec rather than
against the project's own ``encode_chunks``.
"""

from __future__ import annotations

import math
import random
import struct
import tracemalloc
from datetime import datetime, timezone

from twisted.trial import unittest

from owncast.media import flv
from owncast.rtmp import amf, chunks
from owncast.rtmp.chunks import ChunkError, ChunkReader, Message, encode_chunks
from owncast.rtmp.handshake import HANDSHAKE_SIZE, HandshakeError, ServerHandshake

U32_MAX = 0xFFFFFFFF
EXT = 0xFFFFFF  # the timestamp field value that announces an extended timestamp


# -- a test-side chunk encoder ---------------------------------------------------------
def basic_header(fmt: int, csid: int) -> bytes:
    """The 1-, 2- or 3-byte basic header."""
    if 2 <= csid <= 63:
        return bytes([(fmt << 6) | csid])
    if 64 <= csid <= 319:
        return bytes([fmt << 6, csid - 64])
    if 320 <= csid <= 65599:
        rest = csid - 64
        return bytes([(fmt << 6) | 1, rest & 0xFF, rest >> 8])
    raise ValueError(f"chunk stream id {csid} out of range")


def header(
    fmt: int,
    csid: int,
    ts: int = 0,
    length: int = 0,
    mtype: int = 0,
    sid: int = 0,
    ext: int | None = None,
) -> bytes:
    """One chunk header. ``ts`` is the absolute timestamp (fmt 0) or the delta (fmt 1/2);
    values >= 0xFFFFFF go to the extended field. For fmt 3, ``ext`` is the extended field
    to repeat (None: no field)."""
    out = bytearray(basic_header(fmt, csid))
    if fmt < 3:
        out += min(ts, EXT).to_bytes(3, "big")
        if fmt < 2:
            out += length.to_bytes(3, "big")
            out.append(mtype)
        if fmt == 0:
            out += sid.to_bytes(4, "little")
        if ts >= EXT:
            out += ts.to_bytes(4, "big")
    elif ext is not None:
        out += ext.to_bytes(4, "big")
    return bytes(out)


def split_message(
    first_header: bytes, csid: int, body: bytes, chunk_size: int, ext: int | None = None
) -> list[bytes]:
    """A message as chunks: ``first_header`` + the first slice, then type-3 continuations
    (each repeating ``ext``, the extended timestamp field, when there is one)."""
    out = [first_header + body[:chunk_size]]
    for offset in range(chunk_size, len(body), chunk_size):
        out.append(header(3, csid, ext=ext) + body[offset : offset + chunk_size])
    return out


def message(
    fmt: int,
    csid: int,
    body: bytes,
    chunk_size: int = 128,
    ts: int = 0,
    mtype: int = chunks.VIDEO,
    sid: int = 1,
    ext: int | None = None,
) -> list[bytes]:
    """One message with an explicit first header format (see ``header``)."""
    if fmt < 3:
        first = header(fmt, csid, ts, len(body), mtype, sid)
        ext = ts if ts >= EXT else None
    else:
        first = header(3, csid, ext=ext)
    return split_message(first, csid, body, chunk_size, ext)


class ChunkEncoder:
    """Writes messages with headers compressed the way real publishers do (fmt 0 first,
    then 1/2/3 when length, type or delta repeat); ``fmt`` forces a header format."""

    def __init__(self, chunk_size: int = 128):
        self.chunk_size = chunk_size
        self.formats: list[int] = []  # the header format of each message written
        # csid -> [timestamp, length, type, stream id, delta, extended field or None]
        self._state: dict[int, list] = {}

    def chunks(
        self, csid: int, mtype: int, sid: int, ts: int, body: bytes, fmt: int | None = None
    ) -> list[bytes]:
        prev = self._state.get(csid)
        ts &= U32_MAX
        if fmt is None:
            if prev is None or prev[3] != sid or ts < prev[0]:
                fmt = 0
            else:
                delta = ts - prev[0]
                if (prev[1], prev[2]) != (len(body), mtype):
                    fmt = 1
                elif delta != prev[4]:
                    fmt = 2
                else:
                    fmt = 3
        if fmt == 0:
            field, delta = ts, ts
        elif fmt in (1, 2):
            field = delta = (ts - prev[0]) & U32_MAX
        else:
            delta = prev[4]
            if (prev[0] + delta) & U32_MAX != ts:
                raise AssertionError("a type-3 message must advance by the previous delta")
            field = None
        if fmt < 3:
            ext = field if field >= EXT else None
            first = header(fmt, csid, field, len(body), mtype, sid)
        else:
            ext = prev[5]
            first = header(3, csid, ext=ext)
        self._state[csid] = [ts, len(body), mtype, sid, delta, ext]
        self.formats.append(fmt)
        return split_message(first, csid, body, self.chunk_size, ext)

    def encode(
        self, csid: int, mtype: int, sid: int, ts: int, body: bytes, fmt: int | None = None
    ) -> bytes:
        return b"".join(self.chunks(csid, mtype, sid, ts, body, fmt))


def interleave(*lists: list[bytes]) -> bytes:
    """Round-robin chunk by chunk over several messages' chunk lists."""
    out = bytearray()
    lists = [list(x) for x in lists]
    while any(lists):
        for chunk_list in lists:
            if chunk_list:
                out += chunk_list.pop(0)
    return bytes(out)


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def control(mtype: int, body: bytes, csid: int = 2) -> bytes:
    return b"".join(message(0, csid, body, ts=0, mtype=mtype, sid=0))


def feed_pieces(data: bytes, cuts: list[int]) -> list[Message]:
    reader = ChunkReader()
    out: list[Message] = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        out += reader.feed(data[last:cut])
        last = cut
    return out


def summary(messages: list[Message]) -> list[tuple]:
    return [(m.csid, m.type, m.stream_id, m.timestamp, len(m.body)) for m in messages]


class EncoderSelfTests(unittest.TestCase):
    """The test encoder's bytes, checked by hand against the spec's layout."""

    def test_basic_header_sizes(self):
        self.assertEqual(basic_header(0, 2), b"\x02")
        self.assertEqual(basic_header(3, 63), b"\xff")
        self.assertEqual(basic_header(1, 64), b"\x40\x00")
        self.assertEqual(basic_header(0, 319), b"\x00\xff")
        self.assertEqual(basic_header(2, 320), b"\x81\x00\x01")
        self.assertEqual(basic_header(0, 65599), b"\x01\xff\xff")

    def test_fmt0_layout(self):
        self.assertEqual(
            header(0, 6, 0x123456, 0x000102, 9, 1),
            b"\x06\x12\x34\x56\x00\x01\x02\x09\x01\x00\x00\x00",
        )
        self.assertEqual(
            header(0, 6, 0x1000005, 3, 9, 1),
            b"\x06\xff\xff\xff\x00\x00\x03\x09\x01\x00\x00\x00\x01\x00\x00\x05",
        )
        self.assertEqual(header(3, 6, ext=0x1000005), b"\xc6\x01\x00\x00\x05")


# -- the chunk reader ------------------------------------------------------------------
class ChunkSplittingTests(unittest.TestCase):
    def test_one_message_in_many_chunks(self):
        body = payload(1000)
        data = b"".join(message(0, 6, body, ts=1234, mtype=chunks.VIDEO, sid=1))
        # 1000 bytes at 128: 8 chunks, so 7 one-byte type-3 headers.
        self.assertEqual(len(data), 12 + 1000 + 7)
        out = ChunkReader().feed(data)
        self.assertEqual(out, [Message(chunks.VIDEO, 1, 1234, body, 6)])

    def test_message_exactly_one_chunk_and_empty_message(self):
        body = payload(128)
        data = b"".join(message(0, 6, body, ts=5)) + b"".join(message(1, 6, b"", ts=1))
        out = ChunkReader().feed(data)
        self.assertEqual([(m.timestamp, m.body) for m in out], [(5, body), (6, b"")])

    def stream_of_messages(self) -> bytes:
        enc = ChunkEncoder()
        data = bytearray()
        for i in range(20):
            data += enc.encode(4, chunks.AUDIO, 1, i * 23, payload(200, i))
            data += enc.encode(6, chunks.VIDEO, 1, i * 33, payload(50 + 97 * i, 100 + i))
            if i == 10:
                data += enc.encode(3, chunks.DATA_AMF0, 1, i * 33, payload(300, 999))
        data += enc.encode(6, chunks.VIDEO, 1, 0x1000005, payload(700, 7))
        return bytes(data)

    def test_byte_at_a_time_gives_the_same_messages(self):
        data = self.stream_of_messages()
        whole = ChunkReader().feed(data)
        self.assertEqual(len(whole), 42)
        reader = ChunkReader()
        bytewise: list[Message] = []
        for i in range(len(data)):
            bytewise += reader.feed(data[i : i + 1])
        self.assertEqual(bytewise, whole)
        self.assertEqual(reader._buffer, bytearray())

    def test_random_splits_give_the_same_messages(self):
        data = self.stream_of_messages()
        whole = ChunkReader().feed(data)
        rng = random.Random(20240601)
        for _ in range(50):
            cuts = rng.sample(range(1, len(data)), rng.randint(1, 200))
            self.assertEqual(feed_pieces(data, cuts), whole)

    def test_feeding_nothing(self):
        reader = ChunkReader()
        self.assertEqual(reader.feed(b""), [])
        self.assertEqual(reader.feed(b"\x06\x00"), [])
        self.assertEqual(reader.feed(b""), [])

    def test_basic_header_sizes_parse(self):
        for csid in (2, 3, 63, 64, 65, 300, 319, 320, 321, 1000, 65599):
            body = payload(300, csid)
            enc = ChunkEncoder()
            data = enc.encode(csid, chunks.AUDIO, 1, 10, body)
            data += enc.encode(csid, chunks.AUDIO, 1, 20, body)  # fmt 3 with long headers
            data += enc.encode(csid, chunks.AUDIO, 1, 25, body[:5])  # fmt 1
            for cuts in ([], list(range(1, len(data)))):
                out = feed_pieces(data, cuts)
                self.assertEqual(
                    summary(out),
                    [(csid, 8, 1, 10, 300), (csid, 8, 1, 20, 300), (csid, 8, 1, 25, 5)],
                    csid,
                )
                self.assertEqual(out[0].body, body)


class ChunkSizeTests(unittest.TestCase):
    def test_set_chunk_size_mid_stream(self):
        reader = ChunkReader()
        small = payload(300, 1)
        big = payload(10000, 2)
        data = b"".join(message(0, 6, small, 128, ts=1))
        data += control(chunks.SET_CHUNK_SIZE, u32(4096))
        data += b"".join(message(0, 6, big, 4096, ts=2))
        out = reader.feed(data)
        self.assertEqual([m.type for m in out], [chunks.VIDEO, chunks.SET_CHUNK_SIZE, chunks.VIDEO])
        self.assertEqual(out[1].body, u32(4096))  # still returned to the session
        self.assertEqual((out[0].body, out[2].body), (small, big))
        self.assertEqual(reader.chunk_size, 4096)

    def test_high_bit_is_ignored(self):
        reader = ChunkReader()
        big = payload(5000, 3)
        data = control(chunks.SET_CHUNK_SIZE, u32(0x80000000 | 2000))
        data += b"".join(message(0, 6, big, 2000, ts=2))
        out = reader.feed(data)
        self.assertEqual(reader.chunk_size, 2000)
        self.assertEqual(out[-1].body, big)

    def test_change_while_another_message_is_half_read(self):
        # Video's first chunk arrives at 128, then the size changes: its rest is one chunk.
        big = payload(3000, 4)
        first, *_ = message(0, 6, big, 128, ts=7)
        data = first + control(chunks.SET_CHUNK_SIZE, u32(5000)) + header(3, 6) + big[128:]
        out = ChunkReader().feed(data)
        self.assertEqual([m.type for m in out], [chunks.SET_CHUNK_SIZE, chunks.VIDEO])
        self.assertEqual((out[1].body, out[1].timestamp), (big, 7))

    def test_chunk_size_one(self):
        body = payload(50, 5)
        data = control(chunks.SET_CHUNK_SIZE, u32(1)) + b"".join(message(0, 6, body, 1, ts=3))
        self.assertEqual(ChunkReader().feed(data)[-1].body, body)

    def test_half_a_message_holds_about_its_bytes(self):
        """At chunk size 1 (a header byte for each body byte) half a message holds about
        its body in memory, not an object per chunk (20 times what arrived)."""
        body = payload(200_000, 6)
        data = control(chunks.SET_CHUNK_SIZE, u32(1)) + b"".join(message(0, 6, body, 1))
        first, rest = data[:-1000], data[-1000:]
        reader = ChunkReader()
        tracemalloc.start()
        try:
            reader.feed(first)
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        self.assertLess(held, len(first))
        self.assertEqual(reader.feed(rest)[-1].body, body)

    def test_bad_set_chunk_size(self):
        self.assertRaises(ChunkError, ChunkReader().feed, control(chunks.SET_CHUNK_SIZE, u32(0)))
        self.assertRaises(
            ChunkError, ChunkReader().feed, control(chunks.SET_CHUNK_SIZE, u32(0x80000000))
        )
        self.assertRaises(
            ChunkError, ChunkReader().feed, control(chunks.SET_CHUNK_SIZE, b"\x00\x10")
        )


class AbortTests(unittest.TestCase):
    def test_abort_discards_half_a_message(self):
        first_try = payload(500, 1)
        pieces = message(0, 6, first_try, ts=100)
        data = pieces[0] + pieces[1]  # 256 of 500 bytes
        data += control(chunks.ABORT, u32(6))
        second = payload(300, 2)
        data += b"".join(message(0, 6, second, ts=200))
        out = ChunkReader().feed(data)
        self.assertEqual([m.type for m in out], [chunks.ABORT, chunks.VIDEO])
        self.assertEqual((out[1].body, out[1].timestamp), (second, 200))

    def test_abort_then_type3_starts_a_new_message(self):
        # Without the abort these type-3 chunks would complete the old message.
        old, new = payload(300, 1), payload(300, 2)
        pieces = message(0, 6, old, ts=100)
        data = pieces[0] + pieces[1] + control(chunks.ABORT, u32(6))
        data += b"".join(message(3, 6, new))
        out = ChunkReader().feed(data)
        self.assertEqual([m.type for m in out], [chunks.ABORT, chunks.VIDEO])
        self.assertEqual(out[1].body, new)
        self.assertEqual(out[1].timestamp, 200)  # a new type-3 message: +delta (100)

    def test_abort_then_compressed_header(self):
        reader = ChunkReader()
        reader.feed(b"".join(message(0, 6, payload(10), ts=100)))
        pieces = message(1, 6, payload(500, 1), ts=10)  # message at 110, abandoned
        reader.feed(pieces[0])
        reader.feed(control(chunks.ABORT, u32(6)))
        # A type-1 header on the same chunk stream starts afresh with the new length.
        body = payload(200, 3)
        out = reader.feed(b"".join(message(1, 6, body, ts=10)))
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0].body, body)
        self.assertEqual(out[0].timestamp, 120)

    def test_abort_of_unknown_or_idle_stream_is_harmless(self):
        reader = ChunkReader()
        out = reader.feed(control(chunks.ABORT, u32(40)) + control(chunks.ABORT, u32(2)))
        self.assertEqual(len(out), 2)
        self.assertRaises(ChunkError, ChunkReader().feed, control(chunks.ABORT, b"\x00"))


class TimestampTests(unittest.TestCase):
    def test_deltas_accumulate(self):
        body10, body20 = payload(10, 1), payload(300, 2)
        data = b"".join(
            message(0, 6, body10, ts=1000)  # 1000
            + message(2, 6, body10, ts=33)  # 1033: same length and type
            + message(1, 6, body20, ts=40)  # 1073: new length
            + message(3, 6, body20)  # 1113: delta 40 again
            + message(3, 6, body20)  # 1153
            + message(2, 6, body20, ts=7)  # 1160
            + message(3, 6, body20)  # 1167
        )
        out = ChunkReader().feed(data)
        self.assertEqual([m.timestamp for m in out], [1000, 1033, 1073, 1113, 1153, 1160, 1167])
        self.assertEqual([len(m.body) for m in out], [10, 10, 300, 300, 300, 300, 300])
        self.assertEqual({(m.type, m.stream_id) for m in out}, {(chunks.VIDEO, 1)})

    def test_type3_after_type0_adds_the_type0_timestamp(self):
        body = payload(200)
        data = b"".join(
            message(0, 4, body, ts=100, mtype=chunks.AUDIO)
            + message(3, 4, body)
            + message(3, 4, body)
        )
        out = ChunkReader().feed(data)
        self.assertEqual([m.timestamp for m in out], [100, 200, 300])
        self.assertEqual([m.type for m in out], [chunks.AUDIO] * 3)

    def test_type3_continuations_do_not_advance(self):
        body = payload(1000)
        data = b"".join(message(0, 6, body, ts=50) + message(1, 6, body, ts=5))
        out = ChunkReader().feed(data)
        self.assertEqual([m.timestamp for m in out], [50, 55])

    def test_type0_resets_the_timestamp(self):
        body = payload(5)
        data = b"".join(
            message(0, 6, body, ts=1000) + message(0, 6, body, ts=10) + message(2, 6, body, ts=1)
        )
        self.assertEqual([m.timestamp for m in ChunkReader().feed(data)], [1000, 10, 11])

    def test_stream_id_and_type_carry_over(self):
        data = b"".join(
            message(0, 5, b"abc", ts=1, mtype=chunks.DATA_AMF0, sid=7)
            + message(2, 5, b"def", ts=1)
            + message(3, 5, b"ghi")
        )
        out = ChunkReader().feed(data)
        self.assertEqual(
            [(m.type, m.stream_id, m.body) for m in out],
            [
                (chunks.DATA_AMF0, 7, b"abc"),
                (chunks.DATA_AMF0, 7, b"def"),
                (chunks.DATA_AMF0, 7, b"ghi"),
            ],
        )


class ExtendedTimestampTests(unittest.TestCase):
    def test_extended_fmt0_with_continuations(self):
        body = payload(1000, 9)
        pieces = message(0, 6, body, ts=0x1000005)
        # Every continuation chunk repeats the 4-byte field.
        self.assertTrue(all(p[:5] == b"\xc6\x01\x00\x00\x05" for p in pieces[1:]))
        data = b"".join(pieces)
        out = ChunkReader().feed(data)
        self.assertEqual(out, [Message(chunks.VIDEO, 1, 0x1000005, body, 6)])
        bytewise: list[Message] = []
        reader = ChunkReader()
        for i in range(len(data)):
            bytewise += reader.feed(data[i : i + 1])
        self.assertEqual(bytewise, out)

    def test_exactly_the_marker_value(self):
        body = payload(300)
        data = b"".join(message(0, 6, body, ts=0xFFFFFF))
        self.assertEqual(data[1:4], b"\xff\xff\xff")
        self.assertEqual(ChunkReader().feed(data), [Message(chunks.VIDEO, 1, 0xFFFFFF, body, 6)])

    def test_just_below_the_marker_has_no_extended_field(self):
        body = payload(300)
        data = b"".join(message(0, 6, body, ts=0xFFFFFE))
        self.assertEqual(len(data), 12 + 300 + 2)
        self.assertEqual(ChunkReader().feed(data)[0].timestamp, 0xFFFFFE)

    expected_crossing = [0xFFFFF0, 0xFFFFFE, 0xFFFFFF, 0x1000005, 0x1000026, 0x1000047, 0x1000068]

    def check_crossing(self, fmt: int | None):
        enc = ChunkEncoder()
        data = bytearray()
        bodies = []
        for i, ts in enumerate(self.expected_crossing):
            body = payload(250 + i, i)  # three chunks each, lengths differ
            bodies.append(body)
            data += enc.encode(6, chunks.VIDEO, 1, ts, body, fmt)
            audio = payload(130, 50 + i)
            data += enc.encode(4, chunks.AUDIO, 1, ts + 3, audio, fmt)
        for cuts in ([], list(range(1, len(data))), [5, 17, 300, 301, 302, 1500]):
            out = feed_pieces(bytes(data), cuts)
            video = [m for m in out if m.type == chunks.VIDEO]
            audio_ts = [m.timestamp for m in out if m.type == chunks.AUDIO]
            self.assertEqual([m.timestamp for m in video], self.expected_crossing)
            self.assertEqual([m.body for m in video], bodies)
            self.assertEqual(audio_ts, [t + 3 for t in self.expected_crossing])
        return enc.formats

    def test_crossing_0xffffff_with_absolute_headers(self):
        self.check_crossing(0)

    def test_crossing_0xffffff_with_compressed_headers(self):
        formats = self.check_crossing(None)
        self.assertEqual(set(formats), {0, 1, 2, 3})

    def test_extended_header_then_plain_delta(self):
        # After an extended type-0, a type-2 with a small delta has no extended field,
        # on its own header or on its continuations.
        a, b = payload(300, 1), payload(300, 2)
        data = b"".join(message(0, 6, a, ts=0x2000000) + message(2, 6, b, ts=33))
        self.assertEqual(len(data), (12 + 4 + 300 + 2 * 5) + (4 + 300 + 2))
        out = ChunkReader().feed(data)
        self.assertEqual([(m.timestamp, m.body) for m in out], [(0x2000000, a), (0x2000021, b)])

    def test_extended_delta_and_type3_repeat(self):
        body = payload(300, 4)
        data = b"".join(
            message(0, 6, body, ts=0x100)
            + message(2, 6, body, ts=0x1000000)  # delta in the extended field
            + message(3, 6, body, ext=0x1000000)  # repeats the delta and carries the field
        )
        out = ChunkReader().feed(data)
        self.assertEqual([m.timestamp for m in out], [0x100, 0x1000100, 0x2000100])
        self.assertEqual({m.body for m in out}, {body})

    def test_32_bit_wrap(self):
        body = payload(200, 5)
        data = b"".join(
            message(0, 6, body, ts=0xFFFFFFF0)
            + message(2, 6, body, ts=0x20)  # wraps to 0x10
            + message(3, 6, body)  # 0x30
            + message(1, 6, body[:9], ts=0xF0000000)  # extended delta: 0xF0000030
            + message(3, 6, body[:9], ext=0xF0000000)  # wraps again: 0xE0000030
        )
        out = ChunkReader().feed(data)
        self.assertEqual(
            [m.timestamp for m in out], [0xFFFFFFF0, 0x10, 0x30, 0xF0000030, 0xE0000030]
        )

    def test_wrap_with_encoder(self):
        enc = ChunkEncoder()
        stamps = [U32_MAX - 66, U32_MAX - 33, U32_MAX, 32, 65, 98]
        data = bytearray()
        # Type-3 headers carry the 33 ms delta across the wrap.
        for i, (ts, fmt) in enumerate(zip(stamps, [0, 2, 3, 3, 3, 3], strict=True)):
            data += enc.encode(6, chunks.VIDEO, 1, ts, payload(140, i), fmt)
        out = ChunkReader().feed(bytes(data))
        self.assertEqual([m.timestamp for m in out], stamps)


class InterleavingTests(unittest.TestCase):
    def test_audio_and_video_interleaved_chunk_by_chunk(self):
        enc = ChunkEncoder()
        expected = []
        lists = []
        for i in range(30):
            a_ts, v_ts = 1000 + i * 23, 1000 + i * 33 + (i % 3)  # jittery video deltas
            audio = payload(171, i)  # constant length: type-3 headers after the first two
            video = payload(100 + (i * 211) % 2000, 1000 + i)
            a = enc.chunks(4, chunks.AUDIO, 1, a_ts, audio)
            v = enc.chunks(6, chunks.VIDEO, 1, v_ts, video)
            lists.append(interleave(v, a))
            expected.append((4, chunks.AUDIO, 1, a_ts, audio))
            expected.append((6, chunks.VIDEO, 1, v_ts, video))
        data = b"".join(lists)
        self.assertEqual(set(enc.formats), {0, 1, 2, 3})
        for cuts in ([], list(range(1, len(data), 7))):
            out = feed_pieces(data, cuts)
            got = [(m.csid, m.type, m.stream_id, m.timestamp, m.body) for m in out]
            self.assertEqual(
                sorted(got, key=lambda x: (x[0], x[3])),
                sorted(expected, key=lambda x: (x[0], x[3])),
            )
            for csid in (4, 6):
                self.assertEqual(
                    [g for g in got if g[0] == csid], [e for e in expected if e[0] == csid]
                )

    def test_streams_and_stream_ids_independent(self):
        enc = ChunkEncoder()
        a = enc.chunks(4, chunks.AUDIO, 1, 10, payload(400, 1))
        v = enc.chunks(6, chunks.VIDEO, 2, 5000, payload(400, 2))
        c = enc.chunks(3, chunks.COMMAND_AMF0, 0, 0, payload(400, 3))
        out = ChunkReader().feed(interleave(a, v, c))
        self.assertEqual(
            summary(out), [(4, 8, 1, 10, 400), (6, 9, 2, 5000, 400), (3, 20, 0, 0, 400)]
        )


class ChunkErrorTests(unittest.TestCase):
    def test_first_chunk_must_be_type0(self):
        for fmt in (1, 2, 3):
            data = header(fmt, 6, 10, 4, 9) + b"abcd"
            self.assertRaises(ChunkError, ChunkReader().feed, data)

    def test_message_length_over_limit(self):
        reader = ChunkReader(max_message_size=1000)
        out = reader.feed(b"".join(message(0, 6, payload(1000), ts=1)))
        self.assertEqual(len(out[0].body), 1000)
        self.assertRaises(ChunkError, reader.feed, header(0, 6, 0, 1001, 9, 1))
        # A compressed header announcing a long message is refused too.
        reader = ChunkReader(max_message_size=1000)
        reader.feed(b"".join(message(0, 6, payload(10), ts=1)))
        self.assertRaises(ChunkError, reader.feed, header(1, 6, 0, 5000, 9))

    def test_too_many_chunk_streams(self):
        reader = ChunkReader()
        for i in range(chunks.MAX_CHUNK_STREAMS):
            reader.feed(b"".join(message(0, 100 + i, b"x", ts=1)))
        # Known ones go on working.
        self.assertEqual(len(reader.feed(b"".join(message(0, 100, b"y", ts=2)))), 1)
        self.assertRaises(ChunkError, reader.feed, b"".join(message(0, 5000, b"z", ts=1)))

    def test_split_header_is_applied_once(self):
        base = b"".join(message(0, 6, b"abcd", ts=100))
        second = b"".join(message(1, 6, b"efghij", ts=10))
        for cut in range(1, len(second)):
            reader = ChunkReader()
            self.assertEqual(len(reader.feed(base)), 1)
            self.assertEqual(reader.feed(second[:cut]), [])
            out = reader.feed(second[cut:])
            self.assertEqual([(m.timestamp, m.body) for m in out], [(110, b"efghij")], cut)

    def test_split_extended_type2_header_is_applied_once(self):
        base = b"".join(message(0, 6, b"abcd", ts=100))
        second = b"".join(message(2, 6, b"efgh", ts=0x1000000))
        third = b"".join(message(3, 6, b"ijkl", ext=0x1000000))
        for cut in range(1, len(second) + len(third)):
            reader = ChunkReader()
            data = second + third
            out = reader.feed(base) + reader.feed(data[:cut]) + reader.feed(data[cut:])
            self.assertEqual([m.timestamp for m in out], [100, 0x1000064, 0x2000064], cut)


class EncodeChunksTests(unittest.TestCase):
    def test_round_trip(self):
        sizes = [0, 1, 127, 128, 129, 4095, 4096, 4097, 10000]
        chunk_sizes = [1, 128, 4096, 65536]
        stamps = [0, 1000, 0xFFFFFE, 0xFFFFFF, 0x1000000, 0x1000005, U32_MAX]
        for size in sizes:
            body = payload(size, size)
            for chunk_size in chunk_sizes:
                if chunk_size == 1 and size > 200:
                    continue
                for ts in stamps:
                    msg = Message(chunks.VIDEO, 1, ts, body, 6)
                    reader = ChunkReader()
                    reader.chunk_size = chunk_size
                    data = encode_chunks(msg, chunk_size)
                    self.assertEqual(reader.feed(data), [msg], (size, chunk_size, ts))
                    # Two in a row on the same chunk stream, byte by byte.
                    reader = ChunkReader()
                    reader.chunk_size = chunk_size
                    out = []
                    for i in range(0, 2 * len(data), max(1, len(data) // 5)):
                        out += reader.feed((data + data)[i : i + max(1, len(data) // 5)])
                    self.assertEqual(out, [msg, msg])

    def test_default_chunk_streams(self):
        ctl = encode_chunks(Message(chunks.SET_CHUNK_SIZE, 0, 0, u32(4096)), 128)
        cmd = encode_chunks(Message(chunks.COMMAND_AMF0, 0, 0, b"x"), 128)
        self.assertEqual((ctl[0], cmd[0]), (2, 3))
        out = ChunkReader().feed(ctl + cmd)
        self.assertEqual([m.csid for m in out], [2, 3])
        self.assertRaises(ValueError, encode_chunks, Message(9, 1, 0, b"", 64), 128)

    def test_extended_layout(self):
        data = encode_chunks(Message(chunks.VIDEO, 1, 0x1000005, payload(200), 6), 128)
        self.assertEqual(data[1:4], b"\xff\xff\xff")
        self.assertEqual(data[12:16], u32(0x1000005))
        self.assertEqual(data[16 + 128 : 16 + 128 + 5], b"\xc6" + u32(0x1000005))


# -- AMF -------------------------------------------------------------------------------
def u29(value: int) -> bytes:
    value &= 0x1FFFFFFF
    if value < 0x80:
        return bytes([value])
    if value < 0x4000:
        return bytes([(value >> 7) | 0x80, value & 0x7F])
    if value < 0x200000:
        return bytes([(value >> 14) | 0x80, ((value >> 7) & 0x7F) | 0x80, value & 0x7F])
    return bytes(
        [
            (value >> 22) | 0x80,
            ((value >> 15) & 0x7F) | 0x80,
            ((value >> 8) & 0x7F) | 0x80,
            value & 0xFF,
        ]
    )


def s3(text: str) -> bytes:
    """An inline AMF3 string (no marker)."""
    raw = text.encode()
    return u29(len(raw) << 1 | 1) + raw


def ref3(index: int) -> bytes:
    return u29(index << 1)


def shared(levels: int) -> bytes:
    """An AMF3 object whose member k is ``{a: member k-1, b: member k-1}`` by object
    reference: a few bytes a level to decode, twice the size a level expanded."""
    out = bytearray(b"\x0a\x0b\x01" + s3("m0") + b"\x0a\x01\x01")  # {m0: {}}, traits 0
    for k in range(1, levels):
        out += s3(f"m{k}") + b"\x0a\x01"
        out += s3("a") + b"\x0a" + ref3(k) + s3("b") + b"\x0a" + ref3(k) + b"\x01"
    return bytes(out + b"\x01")


def amf3(*values: bytes) -> list:
    """Decode AMF3 ``values`` as one AMF0 message that switches to each with 0x11 (avmplus),
    the one way AMF3 reaches the server; references reach across the whole message."""
    return amf.decode_amf0(b"".join(b"\x11" + value for value in values))


class Amf0Tests(unittest.TestCase):
    def round_trip(self, *values):
        decoded = amf.decode_amf0(amf.encode_amf0(*values))
        self.assertEqual(decoded, list(values))
        return decoded

    def test_numbers(self):
        self.round_trip(0, 1, -1, 1.5, -2.25, 1e300, 2**53, float("inf"), float("-inf"))
        self.assertEqual(amf.encode_amf0(1.0), b"\x00\x3f\xf0" + b"\x00" * 6)
        (nan,) = amf.decode_amf0(amf.encode_amf0(float("nan")))
        self.assertTrue(math.isnan(nan))
        self.assertIsInstance(amf.decode_amf0(amf.encode_amf0(3))[0], float)

    def test_bools_null_undefined(self):
        self.assertEqual(
            amf.encode_amf0(True, False, None, amf.UNDEFINED), b"\x01\x01\x01\x00\x05\x06"
        )
        values = self.round_trip(True, False, None, amf.UNDEFINED)
        self.assertIs(values[0], True)
        self.assertIs(values[3], amf.UNDEFINED)
        self.assertIs(amf.Undefined(), amf.UNDEFINED)
        self.assertEqual(amf.decode_amf0(b"\x01\x07"), [True])  # any non-zero byte

    def test_strings(self):
        self.assertEqual(amf.encode_amf0("connect"), b"\x02\x00\x07connect")
        self.round_trip("", "connect", "héllo ✓ 日本", "x" * 0xFFFF)
        raw = amf.encode_amf0("x" * 0xFFFF)
        self.assertEqual(raw[:3], b"\x02\xff\xff")
        long = "é" * 40000  # 80000 UTF-8 bytes
        raw = amf.encode_amf0(long)
        self.assertEqual(raw[:5], b"\x0c" + u32(80000))
        self.round_trip(long)
        self.assertEqual(amf.decode_amf0(b"\x0f\x00\x00\x00\x03<a>"), ["<a>"])  # XML

    def test_objects_and_arrays(self):
        obj = {
            "app": "live",
            "type": "nonprivate",
            "flashVer": "FMLE/3.0",
            "tcUrl": "rtmp://h/live",
            "fpad": False,
            "capabilities": 15.0,
            "audioCodecs": 4071.0,
            "objectEncoding": 0.0,
        }
        (decoded,) = self.round_trip(obj)
        self.assertNotIsInstance(decoded, amf.EcmaArray)
        self.assertEqual(list(decoded), list(obj))  # order kept
        ecma = amf.EcmaArray(duration=0.0, width=1280.0, encoder="Lavf")
        raw = amf.encode_amf0(ecma)
        self.assertEqual(raw[:5], b"\x08" + u32(3))
        (decoded,) = self.round_trip(ecma)
        self.assertIsInstance(decoded, amf.EcmaArray)
        self.round_trip([1.0, "two", None, [True, {}], {"k": []}], [])
        self.assertEqual(amf.encode_amf0({}), b"\x03\x00\x00\x09")
        self.assertEqual(amf.encode_amf0((0,)), b"\x0a" + u32(1) + b"\x00" + b"\x00" * 8)

    def test_nested(self):
        value = {"a": {"b": [amf.EcmaArray(c={"d": ["e", 1.0, None]})]}, "f": "g"}
        self.round_trip("onMetaData", value, 2.0)
        deep: object = "bottom"
        for _ in range(amf.MAX_DEPTH - 2):
            deep = [deep] if isinstance(deep, dict) else {"x": deep}
        self.round_trip(deep)

    def test_ecma_count_is_only_a_hint(self):
        raw = b"\x08" + u32(99) + b"\x00\x01a\x00" + b"\x00" * 8 + b"\x00\x00\x09"
        self.assertEqual(amf.decode_amf0(raw), [{"a": 0.0}])

    def test_date(self):
        when = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
        self.round_trip(when)

    def test_command_bytes(self):
        raw = amf.encode_amf0("_result", 1, None, {"code": "ok"})
        self.assertEqual(
            raw,
            b"\x02\x00\x07_result"
            + b"\x00\x3f\xf0"
            + b"\x00" * 6
            + b"\x05\x03\x00\x04code\x02\x00\x02ok\x00\x00\x09",
        )

    def test_decode_errors(self):
        bad = [
            b"\x00\x3f\xf0",  # truncated number
            b"\x01",  # truncated bool
            b"\x02\x00\x05abc",  # truncated string
            b"\x02\x00",  # truncated length
            b"\x0c\x00\x01\x00\x00ab",  # truncated long string
            b"\x03\x00\x01a\x05",  # object without end
            b"\x03\x00\x00\x05",  # empty key, wrong end marker
            b"\x0a\x00\x00\x00\x05\x05",  # strict array longer than its data
            b"\x0a\xff\xff\xff\xff",  # absurd count
            b"\x08\x00\x00",  # truncated ECMA count
            b"\x07\x00\x01",  # reference: unsupported
            b"\x10\x00",  # typed object: unsupported
            b"\x20",  # unknown marker
            b"\x02\x00\x02\xc3\x28",  # invalid UTF-8
            b"\x03\x00\x02\xff\xfe\x05\x00\x00\x09",  # invalid UTF-8 key
            b"\x0b" + struct.pack(">d", 1e300) + b"\x00\x00",  # date out of range
            b"\x11",  # AVM+ switch with nothing after it
        ]
        for raw in bad:
            self.assertRaises(amf.AmfError, amf.decode_amf0, raw)

    def test_nesting_limit(self):
        ok = b"\x0a\x00\x00\x00\x01" * 50 + b"\x05"
        (value,) = amf.decode_amf0(ok)
        for _ in range(50):
            (value,) = value
        self.assertIsNone(value)
        deep_arrays = b"\x0a\x00\x00\x00\x01" * (amf.MAX_DEPTH + 5) + b"\x05"
        self.assertRaises(amf.AmfError, amf.decode_amf0, deep_arrays)
        deep_objects = b"\x03\x00\x01k" * (amf.MAX_DEPTH + 5) + b"\x05"
        deep_objects += b"\x00\x00\x09" * (amf.MAX_DEPTH + 5)
        self.assertRaises(amf.AmfError, amf.decode_amf0, deep_objects)
        deep = b"\x03\x00\x01k" * 100_000  # no recursion error either
        self.assertRaises(amf.AmfError, amf.decode_amf0, deep)

    def test_encode_refuses_unknown_types(self):
        self.assertRaises(amf.AmfError, amf.encode_amf0, object())
        self.assertRaises(amf.AmfError, amf.encode_amf0, {"a": b"bytes"})


class Amf3Tests(unittest.TestCase):
    """AMF3 as the server meets it: inside AMF0, after the 0x11 (avmplus) marker."""

    def test_integers(self):
        cases = {
            0: b"\x00",
            1: b"\x01",
            127: b"\x7f",
            128: b"\x81\x00",
            0x3FFF: b"\xff\x7f",
            0x4000: b"\x81\x80\x00",
            0x1FFFFF: b"\xff\xff\x7f",
            0x200000: b"\x80\xc0\x80\x00",
            0x0FFFFFFF: b"\xbf\xff\xff\xff",
            -1: b"\xff\xff\xff\xff",
            -(1 << 28): b"\xc0\x80\x80\x00",
            -256: None,
        }
        for value, raw in cases.items():
            if raw is not None:
                self.assertEqual(u29(value), raw, value)
            self.assertEqual(amf3(b"\x04" + u29(value)), [value])

    def test_scalars(self):
        self.assertEqual(
            amf3(b"\x00", b"\x01", b"\x02", b"\x03"), [amf.UNDEFINED, None, False, True]
        )
        self.assertEqual(amf3(b"\x05" + struct.pack(">d", -2.5)), [-2.5])
        when = datetime(2024, 1, 2, tzinfo=timezone.utc)
        raw = b"\x08\x01" + struct.pack(">d", when.timestamp() * 1000)
        self.assertEqual(amf3(raw), [when])

    def test_strings_with_references(self):
        values = [b"\x06" + s3("hello"), b"\x06" + s3(""), b"\x06" + s3("wörld")]
        values += [b"\x06" + ref3(1), b"\x06" + ref3(0)]
        self.assertEqual(amf3(*values), ["hello", "", "wörld", "wörld", "hello"])
        self.assertRaises(amf.AmfError, amf3, b"\x06" + ref3(0))
        self.assertRaises(amf.AmfError, amf3, b"\x06" + u29(7) + b"\xff\xfe\xfd")

    def test_dense_and_associative_arrays(self):
        dense = b"\x09" + u29(3 << 1 | 1) + b"\x01" + b"\x04\x01" + b"\x06" + s3("b") + b"\x01"
        self.assertEqual(amf3(dense), [[1, "b", None]])
        assoc = (
            b"\x09"
            + u29(2 << 1 | 1)
            + s3("k")
            + b"\x04\x05"
            + s3("m")
            + b"\x06"
            + ref3(0)
            + b"\x01"
            + b"\x04\x07"
            + b"\x04\x08"
        )
        self.assertEqual(amf3(assoc), [{"k": 5, "m": "k", 0: 7, 1: 8}])
        empty = b"\x09\x01\x01"
        self.assertEqual(amf3(empty), [[]])

    def test_array_reference_is_the_array(self):
        # An object with two members: a dense array and a reference to that same array.
        raw = (
            b"\x0a\x0b\x01"
            + s3("a")
            + b"\x09"
            + u29(2 << 1 | 1)
            + b"\x01\x04\x01\x04\x02"
            + s3("b")
            + b"\x09"
            + ref3(1)
            + b"\x01"
        )
        self.assertEqual(amf3(raw), [{"a": [1, 2], "b": [1, 2]}])

    def test_anonymous_dynamic_objects_and_trait_references(self):
        first = (
            b"\x0a\x0b\x01"
            + s3("width")
            + b"\x04"
            + u29(1280)
            + s3("codec")
            + b"\x06"
            + s3("avc1")
            + b"\x01"
        )
        # The same (anonymous, dynamic, no sealed members) traits again, by reference 0.
        second = b"\x0a" + u29(0 << 2 | 1) + ref3(0) + b"\x04\x05" + b"\x01"
        # An object reference: the first object again (object table index 0).
        third = b"\x0a" + ref3(0)
        self.assertEqual(
            amf3(first, second, third),
            [{"width": 1280, "codec": "avc1"}, {"width": 5}, {"width": 1280, "codec": "avc1"}],
        )

    def test_sealed_members(self):
        # Traits: 2 sealed members, dynamic; class name "Point".
        point = (
            b"\x0a"
            + u29(2 << 4 | 0b1011)
            + s3("Point")
            + s3("x")
            + s3("y")
            + b"\x04\x01"
            + b"\x04\x02"
            + s3("z")
            + b"\x04\x03"
            + b"\x01"
        )
        by_trait_ref = b"\x0a" + u29(0 << 2 | 1) + b"\x04\x04" + b"\x04\x05" + b"\x01"
        self.assertEqual(amf3(point, by_trait_ref), [{"x": 1, "y": 2, "z": 3}, {"x": 4, "y": 5}])

    def test_byte_arrays(self):
        raw = b"\x0c" + u29(3 << 1 | 1) + b"\x00\xff\x10"
        self.assertEqual(amf3(raw, b"\x0c" + ref3(0)), [b"\x00\xff\x10", b"\x00\xff\x10"])

    def test_avm_plus_switch_inside_amf0(self):
        raw = (
            amf.encode_amf0("onMetaData")
            + b"\x11\x0a\x0b\x01"
            + s3("width")
            + b"\x04"
            + u29(1920)
            + s3("fps")
            + b"\x05"
            + struct.pack(">d", 29.97)
            + b"\x01"
            + b"\x11\x04\xff\xff\xff\xff"
            + amf.encode_amf0(1.0)
        )
        self.assertEqual(
            amf.decode_amf0(raw), ["onMetaData", {"width": 1920, "fps": 29.97}, -1, 1.0]
        )
        # Inside an AMF0 object too.
        raw = b"\x03\x00\x01v\x11\x06" + s3("x") + b"\x00\x00\x09"
        self.assertEqual(amf.decode_amf0(raw), [{"v": "x"}])

    def test_decode_errors(self):
        bad = [
            b"\x04\x80",  # truncated U29
            b"\x05\x00\x00",  # truncated double
            b"\x06" + u29(10 << 1 | 1) + b"abc",  # truncated string
            b"\x09" + ref3(0),  # bad object reference
            b"\x0a" + u29(0 << 2 | 1),  # bad traits reference
            b"\x0a\x07\x01",  # externalizable
            b"\x09" + u29(1000 << 1 | 1) + b"\x01",  # array longer than its message
            b"\x0c" + u29(10 << 1 | 1) + b"ab",  # truncated byte array
            b"\x0d",  # vector: unsupported
            b"\x11",  # dictionary: unsupported
            b"\x09\x01" + s3("k"),  # key without value
        ]
        for raw in bad:
            self.assertRaises(amf.AmfError, amf3, raw)

    def test_nesting_limit(self):
        one = b"\x09\x03\x01"  # dense array of one element
        (value,) = amf3(one * 20 + b"\x01")
        for _ in range(20):
            (value,) = value
        self.assertIsNone(value)
        self.assertRaises(amf.AmfError, amf3, one * (amf.MAX_DEPTH + 5) + b"\x01")
        obj = b"\x0a\x0b\x01" + s3("k")
        deep = obj + (b"\x0a\x01" + ref3(0)) * (amf.MAX_DEPTH + 5)
        self.assertRaises(amf.AmfError, amf3, deep)
        self.assertRaises(amf.AmfError, amf.decode_amf0, b"\x11" + one * 100_000)

    def test_encoding_shared_or_cyclic_values_is_bounded(self):
        """Decoded AMF3 may share one object by reference over and over, or hold itself:
        encoding such a value as AMF0 is refused, not expanded without end."""
        (small,) = amf3(shared(4))
        self.assertEqual(amf.decode_amf0(amf.encode_amf0(small)), [small])
        (value,) = amf3(shared(18))  # 2**18 copies of the first member
        self.assertRaises(amf.AmfError, amf.encode_amf0, value)
        (cyclic,) = amf3(b"\x0a\x0b\x01" + s3("me") + b"\x0a" + ref3(0) + b"\x01")
        self.assertIs(cyclic["me"], cyclic)
        self.assertRaises(amf.AmfError, amf.encode_amf0, cyclic)


# -- handshake -------------------------------------------------------------------------
class HandshakeTests(unittest.TestCase):
    def setUp(self):
        rng = random.Random(7)
        self.c1 = struct.pack(">II", 5000, 0) + rng.randbytes(HANDSHAKE_SIZE - 8)
        self.c2 = rng.randbytes(HANDSHAKE_SIZE)

    def check_reply(self, reply: bytes, uptime: int = 0):
        self.assertEqual(len(reply), 1 + 2 * HANDSHAKE_SIZE)
        self.assertEqual(reply[0], 3)
        s1 = reply[1 : 1 + HANDSHAKE_SIZE]
        self.assertEqual(s1[:4], u32(uptime))
        self.assertEqual(s1[4:8], b"\x00\x00\x00\x00")  # simple handshake: no digest
        self.assertEqual(reply[1 + HANDSHAKE_SIZE :], self.c1)  # S2 echoes C1

    def test_in_one_piece(self):
        hs = ServerHandshake()
        reply, rest = hs.feed(b"\x03" + self.c1)
        self.check_reply(reply)
        self.assertEqual(rest, b"")
        self.assertFalse(hs.done)
        self.assertEqual(hs.feed(self.c2 + b"\x02leftover"), (b"", b"\x02leftover"))
        self.assertTrue(hs.done)

    def test_byte_by_byte(self):
        hs = ServerHandshake(uptime_ms=123456)
        data = b"\x03" + self.c1 + self.c2 + b"tail"
        replies, rests = [], []
        for i in range(len(data) - 4):
            reply, rest = hs.feed(data[i : i + 1])
            replies.append(reply)
            rests.append(rest)
            self.assertEqual(hs.done, i == len(data) - 5)
        self.assertEqual(sum(1 for r in replies if r), 1)
        self.assertNotEqual(replies[HANDSHAKE_SIZE], b"")  # sent once C1 is complete
        self.check_reply(b"".join(replies), uptime=123456)
        self.assertEqual(b"".join(rests), b"")

    def test_everything_at_once(self):
        hs = ServerHandshake()
        reply, rest = hs.feed(b"\x03" + self.c1 + self.c2 + b"abc")
        self.check_reply(reply)
        self.assertEqual(rest, b"abc")
        self.assertTrue(hs.done)

    def test_s1_is_random(self):
        r1, _ = ServerHandshake().feed(b"\x03" + self.c1)
        r2, _ = ServerHandshake().feed(b"\x03" + self.c1)
        self.assertNotEqual(r1[9:1537], r2[9:1537])

    def test_rtmpe_version_answered_as_plain(self):
        reply, _ = ServerHandshake().feed(b"\x06" + self.c1)
        self.check_reply(reply)

    def test_bad_version(self):
        for version in (0, 5, 0x16, 0x47):  # 0x16 is TLS, 0x47 "G" is HTTP
            hs = ServerHandshake()
            with self.assertRaises(HandshakeError):
                hs.feed(bytes([version]) + self.c1)
        self.assertTrue(issubclass(HandshakeError, ValueError))


# -- FLV -------------------------------------------------------------------------------
class FlvTests(unittest.TestCase):
    def test_header(self):
        self.assertEqual(flv.header(), b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
        self.assertEqual(flv.header(audio=True, video=False)[4], 4)
        self.assertEqual(flv.header(audio=False, video=True)[4], 1)
        self.assertEqual(flv.header(audio=False, video=False)[4], 0)

    def test_tag_layout(self):
        raw = flv.tag(flv.VIDEO_TAG, 0x12345678, b"abc")
        self.assertEqual(raw, b"\x09\x00\x00\x03\x34\x56\x78\x12\x00\x00\x00abc\x00\x00\x00\x0e")
        raw = flv.tag(flv.AUDIO_TAG, 0xFFFFFF, b"")
        self.assertEqual(raw, b"\x08\x00\x00\x00\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x0b")
        raw = flv.tag(flv.SCRIPT_TAG, 0x1000005, b"x")
        self.assertEqual(raw[4:8], b"\x00\x00\x05\x01")
        self.assertEqual(flv.tag(9, 1 << 32 | 7, b"")[4:8], b"\x00\x00\x07\x00")

    def test_tag_too_large(self):
        self.assertRaises(ValueError, flv.tag, 9, 0, bytes(0x1000000))

    def test_parse_tags_round_trip(self):
        tags = [
            (flv.SCRIPT_TAG, 0, amf.encode_amf0("onMetaData", {"a": 1.0})),
            (flv.VIDEO_TAG, 0, payload(1000)),
            (flv.AUDIO_TAG, 23, payload(10, 1)),
            (flv.VIDEO_TAG, 0xFFFFFF, b""),
            (flv.AUDIO_TAG, 0x1000005, b"\x00"),
            (flv.VIDEO_TAG, U32_MAX, payload(300, 2)),
        ]
        data = flv.header() + b"".join(flv.tag(*t) for t in tags)
        self.assertEqual(flv.parse_tags(data), tags)
        # A tail shorter than a tag header is ignored; a non-FLV input is refused.
        last = 11 + 300 + 4
        self.assertEqual(flv.parse_tags(data[: len(data) - last]), tags[:-1])
        self.assertEqual(flv.parse_tags(data[: len(data) - last + 10]), tags[:-1])
        self.assertRaises(ValueError, flv.parse_tags, b"NOTFLV")
