"""FLV, the one media format between the ingest and ffmpeg: written once, at ffmpeg's stdin.

The transcoder writes the file header and then each ``MediaTag`` as an FLV tag; nothing
parses FLV on the way in (the ingest hands over classified tags). ``parse_tags`` reads an
FLV byte string back, for tests and tools.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from owncast.media.tags import AUDIO, SCRIPT, VIDEO, MediaTag

AUDIO_TAG, VIDEO_TAG, SCRIPT_TAG = AUDIO, VIDEO, SCRIPT
#: What FLV adds to a payload: the 11-byte tag header and the 4-byte PreviousTagSize.
TAG_OVERHEAD = 15
_U32 = struct.Struct(">I")


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


def encode(tags: Iterable[MediaTag]) -> bytes:
    """Media tags as consecutive FLV tags (what follows the header)."""
    return b"".join([tag(t.kind, t.timestamp, t.payload) for t in tags])
