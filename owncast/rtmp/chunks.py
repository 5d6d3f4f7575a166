"""The RTMP chunk stream: bytes in, whole messages out (and messages to chunks for replies).

``ChunkReader`` is a pure object: ``feed(bytes)`` returns the messages completed by those
bytes. It handles chunk size changes, abort, extended timestamps (including on type-3
continuation chunks and the switch past 0xFFFFFF ms), timestamp deltas and 32-bit wrap.
Protocol control messages that change parsing (set chunk size, abort) are applied here,
and still returned so the session can see them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
SHARED_OBJECT_AMF3 = 16
COMMAND_AMF3 = 17
DATA_AMF0 = 18
SHARED_OBJECT_AMF0 = 19
COMMAND_AMF0 = 20
AGGREGATE = 22

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 0x7FFFFFFF
#: Largest media message we accept: a 4K keyframe fits well within it. (The 24-bit
#: length field allows just under 16 MiB.)
MAX_MESSAGE_SIZE = 8 * 1024 * 1024
#: Largest control, command or data message: these are small in every real client.
MAX_OTHER_SIZE = 256 * 1024
_MEDIA_TYPES = frozenset((8, 9, 22))
#: Most chunk streams one connection may open.
MAX_CHUNK_STREAMS = 64

_U32 = struct.Struct(">I")
_U32LE = struct.Struct("<I")


class ChunkError(ValueError):
    """The peer broke the chunk stream protocol; the connection must be dropped."""


@dataclass(slots=True)
class Message:
    type: int
    stream_id: int
    timestamp: int
    body: bytes
    csid: int = 0


class _ChunkStream:
    __slots__ = (
        "timestamp",
        "delta",
        "length",
        "type",
        "stream_id",
        "extended",
        "parts",
        "received",
        "started",
    )

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type = 0
        self.stream_id = 0
        self.extended = False
        # One buffer per message: a list of chunks costs ~40 bytes of objects a chunk,
        # 20 times what arrived at chunk size 1.
        self.parts = bytearray()
        self.received = 0
        self.started = False  # a fmt-0 header has been seen


class ChunkReader:
    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE):
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self._buffer = bytearray()
        self._streams: dict[int, _ChunkStream] = {}
        self._max_message = max_message_size

    def feed(self, data: bytes) -> list[Message]:
        buffer = self._buffer
        if buffer:
            buffer += data
            source: bytes | bytearray = buffer
        else:
            # Nothing left over: parse the bytes as received, keep only their tail.
            source = data
        view = memoryview(source)
        pos = 0
        end = len(source)
        out: list[Message] = []
        try:
            while pos < end:
                consumed = self._chunk(view, pos, end, out)
                if consumed == 0:
                    break
                pos += consumed
        finally:
            view.release()
        if source is buffer:
            if pos:
                del buffer[:pos]
        elif pos < end:
            buffer += data[pos:]
        return out

    def _chunk(self, view: memoryview, pos: int, end: int, out: list[Message]) -> int:
        """Parse one chunk at ``pos``; return its size, or 0 when more bytes are needed."""
        start = pos
        first = view[pos]
        fmt = first >> 6
        csid = first & 0x3F
        pos += 1
        if csid == 0:
            if pos + 1 > end:
                return 0
            csid = 64 + view[pos]
            pos += 1
        elif csid == 1:
            if pos + 2 > end:
                return 0
            csid = 64 + view[pos] + (view[pos + 1] << 8)
            pos += 2
        header_size = (11, 7, 3, 0)[fmt]
        if pos + header_size > end:
            return 0
        stream = self._streams.get(csid)
        if stream is None:
            if fmt != 0:
                raise ChunkError(f"chunk stream {csid} starts without a type-0 header")
            if len(self._streams) >= MAX_CHUNK_STREAMS:
                raise ChunkError("too many chunk streams")
            stream = self._streams[csid] = _ChunkStream()
        # Read the header into locals; the stream's state changes only once the whole
        # chunk is here, so a chunk split across reads is parsed again from scratch.
        stamp = 0
        if fmt < 3:
            stamp = (view[pos] << 16) | (view[pos + 1] << 8) | view[pos + 2]
            if fmt < 2:
                length = (view[pos + 3] << 16) | (view[pos + 4] << 8) | view[pos + 5]
                mtype = view[pos + 6]
                if fmt == 0:
                    stream_id_at = _U32LE.unpack_from(view, pos + 7)[0]
            else:
                length, mtype = stream.length, stream.type
            pos += header_size
            extended = stamp == 0xFFFFFF
            received = 0  # a full header always starts a new message
        else:
            length, mtype = stream.length, stream.type
            extended = stream.extended
            received = stream.received
        if extended:
            # Type-3 chunks repeat the extended field of the header they follow.
            if pos + 4 > end:
                return 0
            if fmt < 3:
                stamp = _U32.unpack_from(view, pos)[0]
            pos += 4
        if received == 0 and (
            length > self._max_message or (length > MAX_OTHER_SIZE and mtype not in _MEDIA_TYPES)
        ):
            raise ChunkError(f"message of {length} bytes (type {mtype}) is too large")
        size = min(self.chunk_size, length - received)
        if pos + size > end:
            return 0
        if fmt < 3:
            if stream.received:
                stream.parts.clear()  # a new header abandons a half-read message
                stream.received = 0
            stream.extended = extended
            stream.length = length
            stream.type = mtype
            if fmt == 0:
                stream.timestamp = stamp
                stream.stream_id = stream_id_at
            else:
                stream.timestamp = (stream.timestamp + stamp) & 0xFFFFFFFF
            # After a type-0 header, a type-3 new message advances by that timestamp.
            stream.delta = stamp
        elif received == 0:
            stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
        if size:
            stream.parts += view[pos : pos + size]
            stream.received += size
            pos += size
        if stream.received >= stream.length:
            body = bytes(stream.parts)
            stream.parts.clear()
            stream.received = 0
            message = Message(stream.type, stream.stream_id, stream.timestamp, body, csid)
            self._control(message)
            out.append(message)
        return pos - start

    def _control(self, message: Message) -> None:
        if message.type == SET_CHUNK_SIZE:
            if len(message.body) < 4:
                raise ChunkError("short set-chunk-size message")
            size = _U32.unpack_from(message.body)[0] & 0x7FFFFFFF
            if size < 1:
                raise ChunkError("chunk size must be at least 1")
            self.chunk_size = min(size, MAX_CHUNK_SIZE)
        elif message.type == ABORT:
            if len(message.body) < 4:
                raise ChunkError("short abort message")
            stream = self._streams.get(_U32.unpack_from(message.body)[0])
            if stream is not None:
                stream.parts.clear()
                stream.received = 0


def encode_chunks(message: Message, chunk_size: int) -> bytes:
    """One message as chunks: a type-0 header, then type-3 continuations."""
    csid = message.csid or (2 if message.type <= SET_PEER_BANDWIDTH else 3)
    if csid >= 64:
        raise ValueError("outgoing chunk streams use ids 2-63")
    body = message.body
    stamp = message.timestamp & 0xFFFFFFFF
    extended = stamp >= 0xFFFFFF
    header = bytearray([csid])
    header += (0xFFFFFF if extended else stamp).to_bytes(3, "big")
    header += len(body).to_bytes(3, "big")
    header.append(message.type)
    header += _U32LE.pack(message.stream_id)
    ext = _U32.pack(stamp) if extended else b""
    header += ext
    out = bytearray(header)
    out += body[:chunk_size]
    for offset in range(chunk_size, len(body), chunk_size):
        out.append(0xC0 | csid)
        out += ext
        out += body[offset : offset + chunk_size]
    return bytes(out)
