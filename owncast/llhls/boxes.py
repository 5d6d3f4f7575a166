"""A small reader of fragmented MP4 (ISO BMFF) as ffmpeg writes it to a pipe.

Only what cutting LL-HLS parts needs: top-level boxes out of a byte stream that arrives in
arbitrary pieces (``BoxReader``), the tracks of the ``moov`` (id, timescale, handler and the
``trex`` defaults) and, per ``moof``, each track's decode time, duration and whether its
first sample is a sync sample. Anything malformed raises ``MalformedMP4Error``: the caller drops
that one ffmpeg output, never the process.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

#: A box bigger than this is not one ffmpeg writes for a live fragment: refuse it rather
#: than buffer without bound.
MAX_BOX = 64 * 1024 * 1024

#: ``sample_is_non_sync_sample`` in ISO/IEC 14496-12 sample flags.
NON_SYNC = 0x10000


class MalformedMP4Error(ValueError):
    """The byte stream is not the fragmented MP4 expected."""


class BoxReader:
    """Splits a byte stream into complete top-level boxes ``(type, whole box bytes)``."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        boxes = []
        while len(self._buffer) >= 8:
            size, kind = struct.unpack_from(">I4s", self._buffer)
            header = 8
            if size == 1:
                if len(self._buffer) < 16:
                    break
                (size,) = struct.unpack_from(">Q", self._buffer, 8)
                header = 16
            if size < header or size == 0:
                raise MalformedMP4Error(f"box {kind!r} of size {size}")
            if size > MAX_BOX:
                raise MalformedMP4Error(f"box {kind!r} of {size} bytes is over {MAX_BOX}")
            if len(self._buffer) < size:
                break
            boxes.append((bytes(kind), bytes(self._buffer[:size])))
            del self._buffer[:size]
        return boxes


def children(payload: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The ``(type, body)`` of each box inside a container's payload."""
    at = 0
    while at + 8 <= len(payload):
        size, kind = struct.unpack_from(">I4s", payload, at)
        header = 8
        if size == 1:
            if at + 16 > len(payload):
                raise MalformedMP4Error("truncated large box")
            (size,) = struct.unpack_from(">Q", payload, at + 8)
            header = 16
        if size < header or at + size > len(payload):
            raise MalformedMP4Error(f"child box {kind!r} of size {size} does not fit")
        yield bytes(kind), payload[at + header : at + size]
        at += size
    if at != len(payload):
        raise MalformedMP4Error("trailing bytes in a container")


def _child(payload: bytes, kind: bytes) -> bytes | None:
    for k, body in children(payload):
        if k == kind:
            return body
    return None


@dataclass
class Track:
    track_id: int
    timescale: int
    handler: bytes
    default_duration: int = 0
    default_flags: int = 0

    @property
    def video(self) -> bool:
        return self.handler == b"vide"


def _unpack(fmt: str, body: bytes, at: int = 0) -> tuple:
    try:
        return struct.unpack_from(fmt, body, at)
    except struct.error as e:
        raise MalformedMP4Error(str(e)) from e


def parse_moov(box: bytes) -> dict[int, Track]:
    """The tracks of a whole ``moov`` box, by track id."""
    tracks: dict[int, Track] = {}
    payload = box[8:]
    for kind, trak in children(payload):
        if kind != b"trak":
            continue
        tkhd, mdia = _child(trak, b"tkhd"), _child(trak, b"mdia")
        if tkhd is None or mdia is None:
            raise MalformedMP4Error("a trak without tkhd or mdia")
        (track_id,) = _unpack(">I", tkhd, 20 if tkhd[:1] == b"\x01" else 12)
        mdhd, hdlr = _child(mdia, b"mdhd"), _child(mdia, b"hdlr")
        if mdhd is None or hdlr is None:
            raise MalformedMP4Error("a mdia without mdhd or hdlr")
        (timescale,) = _unpack(">I", mdhd, 20 if mdhd[:1] == b"\x01" else 12)
        if timescale == 0:
            raise MalformedMP4Error("a track with timescale 0")
        tracks[track_id] = Track(track_id, timescale, bytes(hdlr[8:12]))
    mvex = _child(payload, b"mvex")
    for kind, trex in children(mvex or b""):
        if kind == b"trex":
            track_id, _, duration, _, flags = _unpack(">IIIII", trex, 4)
            if track_id in tracks:
                tracks[track_id].default_duration = duration
                tracks[track_id].default_flags = flags
    if not tracks:
        raise MalformedMP4Error("a moov without tracks")
    return tracks


@dataclass
class Run:
    """One track's share of a fragment, in seconds."""

    start: float
    duration: float
    first_sync: bool


def parse_moof(box: bytes, tracks: dict[int, Track]) -> dict[int, Run]:
    """Each track's decode time, duration and first-sample sync flag in a whole ``moof``."""
    runs: dict[int, Run] = {}
    for kind, traf in children(box[8:]):
        if kind != b"traf":
            continue
        tfhd = _child(traf, b"tfhd")
        if tfhd is None:
            raise MalformedMP4Error("a traf without tfhd")
        flags = int.from_bytes(tfhd[1:4], "big")
        (track_id,) = _unpack(">I", tfhd, 4)
        track = tracks.get(track_id)
        if track is None:
            raise MalformedMP4Error(f"a fragment of unknown track {track_id}")
        at = 8 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
        duration = track.default_duration
        if flags & 0x8:
            (duration,) = _unpack(">I", tfhd, at)
            at += 4
        at += 4 if flags & 0x10 else 0
        sample_flags = track.default_flags
        if flags & 0x20:
            (sample_flags,) = _unpack(">I", tfhd, at)
        tfdt = _child(traf, b"tfdt")
        if tfdt is None:
            raise MalformedMP4Error("a traf without tfdt")
        (decode_time,) = _unpack(">Q" if tfdt[:1] == b"\x01" else ">I", tfdt, 4)
        total, first_flags, seen = 0, sample_flags, False
        for k, trun in children(traf):
            if k != b"trun":
                continue
            tr_flags = int.from_bytes(trun[1:4], "big")
            (count,) = _unpack(">I", trun, 4)
            at = 8 + (4 if tr_flags & 0x1 else 0)
            first = None
            if tr_flags & 0x4:
                (first,) = _unpack(">I", trun, at)
                at += 4
            fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if tr_flags & bit]
            if at + count * 4 * len(fields) > len(trun):
                raise MalformedMP4Error("a trun shorter than its sample count")
            for n in range(count):
                d, f = duration, sample_flags
                for bit in fields:
                    (value,) = _unpack(">I", trun, at)
                    at += 4
                    if bit == 0x100:
                        d = value
                    elif bit == 0x400:
                        f = value
                if n == 0:
                    f = first if first is not None else f
                    if not seen:
                        first_flags, seen = f, True
                total += d
        runs[track_id] = Run(
            decode_time / track.timescale, total / track.timescale, not first_flags & NON_SYNC
        )
    if not runs:
        raise MalformedMP4Error("a moof without traf")
    return runs
