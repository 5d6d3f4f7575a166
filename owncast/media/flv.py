"""FLV, the one media format between the ingest and ffmpeg.

Writing: the file header and tags that carry RTMP media into ffmpeg's stdin unchanged.

Reading: just enough FLV to restart ffmpeg mid-broadcast: tag boundaries, keyframes,
codec config.

The ingest writes an FLV byte stream in chunks of any size. ``FlvReader.feed`` splits it
into whole tags (each with its trailing PreviousTagSize) and remembers what a freshly
started ffmpeg must read before it can decode the middle of a stream:

* the FLV header (with PreviousTagSize0) and its audio/video flags;
* the latest ``onMetaData`` script tag;
* the latest video sequence header (AVC/HEVC packet type 0, or an Enhanced-RTMP
  SequenceStart) and the latest audio sequence header (AAC packet type 0, or an
  Enhanced-RTMP audio SequenceStart).

Only tag headers and the first bytes of each payload are inspected; payloads are never
copied beyond slicing the tag out of the buffer. A stream that does not begin with
``FLV`` is passed through untouched (``raw``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

AUDIO, VIDEO, SCRIPT = 8, 9, 18
AUDIO_TAG, VIDEO_TAG, SCRIPT_TAG = AUDIO, VIDEO, SCRIPT
_U32 = struct.Struct(">I")
_TAG_HEADER = 11
_PREVIOUS_SIZE = 4
_MAX_HEADER = 1024
_ON_METADATA = b"\x02\x00\x0aonMetaData"
# Legacy FLV video codec ids whose payload starts with an AVCPacketType byte.
_AVC_LIKE = {7, 12, 13}
_AAC = 10
_AUDIO_EX_HEADER = 9


@dataclass(frozen=True)
class Tag:
    kind: int
    #: the whole tag: 11-byte header, payload, PreviousTagSize
    data: bytes
    #: a video frame a decoder can start from
    keyframe: bool = False
    #: a sequence header (decoder configuration), not media
    config: bool = False


class FlvReader:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self.header: bytes | None = None
        self.has_audio = False
        self.has_video = False
        #: True when the stream is not FLV: ``feed`` returns the bytes as they came.
        self.raw = False
        self.metadata: Tag | None = None
        self.video_config: Tag | None = None
        self.audio_config: Tag | None = None

    def config_bytes(self) -> bytes:
        """Header, metadata and sequence headers: what a new ffmpeg must read first."""
        parts = [self.header or b""]
        for tag in (self.metadata, self.video_config, self.audio_config):
            if tag is not None:
                parts.append(tag.data)
        return b"".join(parts)

    def feed(self, data: bytes) -> list[Tag]:
        """The tags completed by ``data``, in order (a raw stream gives one pseudo-tag)."""
        if self.raw:
            return [Tag(0, bytes(data))] if data else []
        self._buffer += data
        if self.header is None and not self._read_header():
            if self.raw:
                pending, self._buffer = bytes(self._buffer), bytearray()
                return [Tag(0, pending)]
            return []
        tags = []
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= _TAG_HEADER:
            size = int.from_bytes(buffer[offset + 1 : offset + 4], "big")
            end = offset + _TAG_HEADER + size + _PREVIOUS_SIZE
            if end > len(buffer):
                break
            tag = self._classify(bytes(buffer[offset:end]), buffer[offset] & 0x1F, size)
            tags.append(tag)
            offset = end
        del buffer[:offset]
        return tags

    def _read_header(self) -> bool:
        buffer = self._buffer
        if len(buffer) < 9:
            if not b"FLV".startswith(bytes(buffer[:3])):
                self.raw = True
            return False
        (offset,) = struct.unpack(">I", buffer[5:9])
        if buffer[:3] != b"FLV" or not 9 <= offset <= _MAX_HEADER:
            self.raw = True
            return False
        if len(buffer) < offset + _PREVIOUS_SIZE:
            return False
        self.header = bytes(buffer[: offset + _PREVIOUS_SIZE])
        self.has_audio = bool(buffer[4] & 0x04)
        self.has_video = bool(buffer[4] & 0x01)
        del buffer[: offset + _PREVIOUS_SIZE]
        return True

    def _classify(self, data: bytes, kind: int, size: int) -> Tag:
        payload = data[_TAG_HEADER : _TAG_HEADER + min(size, len(_ON_METADATA))]
        keyframe = config = False
        if kind == VIDEO and payload:
            first = payload[0]
            frame_type = (first >> 4) & 0x07
            if first & 0x80:  # Enhanced RTMP: the low nibble is the packet type
                packet_type = first & 0x0F
                config = packet_type in (0, 5)  # SequenceStart, MPEG2TSSequenceStart
                keyframe = frame_type == 1 and packet_type in (1, 3)  # CodedFrames(X)
            elif first & 0x0F in _AVC_LIKE:
                packet_type = payload[1] if len(payload) > 1 else -1
                config = packet_type == 0
                keyframe = frame_type == 1 and packet_type == 1
            else:
                keyframe = frame_type == 1
        elif kind == AUDIO and payload:
            sound_format = payload[0] >> 4
            if sound_format == _AAC:
                config = len(payload) > 1 and payload[1] == 0
            elif sound_format == _AUDIO_EX_HEADER:
                config = payload[0] & 0x0F == 0  # SequenceStart
        tag = Tag(kind, data, keyframe, config)
        if config:
            if kind == VIDEO:
                self.video_config = tag
            else:
                self.audio_config = tag
        elif kind == SCRIPT and payload.startswith(_ON_METADATA):
            self.metadata = tag
        return tag


def header(audio: bool = True, video: bool = True) -> bytes:
    """The 9-byte FLV header plus the first PreviousTagSize (0)."""
    flags = (4 if audio else 0) | (1 if video else 0)
    return b"FLV\x01" + bytes([flags]) + b"\x00\x00\x00\x09" + b"\x00\x00\x00\x00"


def tag(kind: int, timestamp: int, payload: bytes) -> bytes:
    """One FLV tag with its trailing PreviousTagSize; the timestamp keeps all 32 bits."""
    size = len(payload)
    if size > 0xFFFFFF:
        raise ValueError("FLV tag payload larger than 16 MiB")
    ts = timestamp & 0xFFFFFFFF
    head = bytes(
        (
            kind,
            (size >> 16) & 0xFF,
            (size >> 8) & 0xFF,
            size & 0xFF,
            (ts >> 16) & 0xFF,
            (ts >> 8) & 0xFF,
            ts & 0xFF,
            (ts >> 24) & 0xFF,  # TimestampExtended: the upper 8 bits
            0,
            0,
            0,  # StreamID, always 0
        )
    )
    return b"".join((head, payload, _U32.pack(size + 11)))


def parse_tags(data: bytes) -> list[tuple[int, int, bytes]]:
    """``(kind, timestamp, payload)`` of every tag in an FLV byte string (for tests, tools)."""
    if data[:3] != b"FLV":
        raise ValueError("not FLV")
    pos = _U32.unpack_from(data, 5)[0] + 4
    tags = []
    while pos + 11 <= len(data):
        kind = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        tags.append((kind, ts, data[pos + 11 : pos + 11 + size]))
        pos += 11 + size + 4
    return tags
