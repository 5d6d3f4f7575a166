"""Pure rules of recordings: playlists, ids, what retention removes, clip spans.

No I/O and no Twisted here: ``owncast.recordings.files`` reads and writes, the service
(``owncast.recordings.recorder``) decides when. A recording is a folder
``<datadir>/recordings/<id>/`` holding a master playlist, one VOD media playlist per kept
variant (``<n>/stream.m3u8``), the segments the live stream served (hard links, never a
second encode): MPEG-TS ``stream-<k>.ts``, or in low-latency mode fMP4 ``seg<k>.m4s`` with
the ``init<i>.mp4`` sections their ``EXT-X-MAP`` names, ``thumbnail.jpg`` and
``recording.json`` (its ``Meta``).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

#: A recording's id: the Unix time its broadcast started (unique: one broadcast at a time).
RECORDING_ID = re.compile(r"[0-9]{1,19}")
#: A clip's id: ``<recording id>-<n>``.
CLIP_ID = re.compile(r"([0-9]{1,19})-([0-9]{1,6})")
SEGMENT = re.compile(r"stream-([0-9]{1,19})\.ts|seg([0-9]{1,19})\.m4s")
#: An fMP4 initialization section (low-latency mode), named by an ``EXT-X-MAP``.
INIT = re.compile(r"init[0-9]{1,19}\.mp4")
_MAP = re.compile(r'#EXT-X-MAP:URI="([^"]*)"')
VARIANT = re.compile(r"[0-9]{1,2}")
#: The longest clip, in seconds.
MAX_CLIP_SECONDS = 180.0
TITLE_MAX = 300


@dataclass(frozen=True)
class Entry:
    """One segment of a media playlist."""

    name: str
    duration: float
    discontinuity: bool = False
    #: the initialization section it needs (fMP4), or ""
    init: str = ""

    @property
    def number(self) -> int:
        match = SEGMENT.fullmatch(self.name)
        return int(match.group(1) or match.group(2)) if match else -1


def parse_media(text: str) -> tuple[list[Entry], int]:
    """The segments a media playlist lists (only plain ``stream-<k>.ts`` and
    ``seg<k>.m4s`` names, with the ``init<i>.mp4`` an ``EXT-X-MAP`` gives them), and its
    target duration (0 when absent). An fMP4 segment without a known init is left out."""
    entries: list[Entry] = []
    target = 0
    duration: float | None = None
    discontinuity = False
    init = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MAP:"):
            match = _MAP.fullmatch(line)
            init = match.group(1) if match and INIT.fullmatch(match.group(1)) else ""
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            value = line.partition(":")[2]
            target = int(value) if value.isdigit() else 0
        elif line.startswith("#EXTINF:"):
            try:
                duration = float(line[8:].partition(",")[0])
            except ValueError:
                duration = None
            if duration is not None and not (0 <= duration < 3600):
                duration = None
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line and not line.startswith("#"):
            match = SEGMENT.fullmatch(line)
            if duration is not None and match and (match.group(1) or init):
                entries.append(Entry(line, duration, discontinuity, init if match.group(2) else ""))
            duration, discontinuity = None, False
    return entries, target


def render_media(entries: list[Entry], ended: bool, target: int = 0) -> str:
    """A media playlist of ``entries``: ``EVENT`` while the broadcast goes on (players may
    seek back to the start and follow the live end), ``VOD`` with an end marker once over."""
    longest = max((e.duration for e in entries), default=0.0)
    target = max(target, math.ceil(longest), 1)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{7 if any(e.init for e in entries) else 3}",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if ended else 'EVENT'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    init = ""
    for e in entries:
        if e.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if e.init and e.init != init:
            lines.append(f'#EXT-X-MAP:URI="{e.init}"')
            init = e.init
        lines.append(f"#EXTINF:{e.duration:.6f},")
        lines.append(e.name)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master_for(text: str, variants: set[str]) -> str | None:
    """The live master playlist ``text`` keeping only the streams of ``variants`` (their
    folder names); None when none is left."""
    head: list[str] = []
    kept: list[str] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXT-X-STREAM-INF"):
            pending = [line]
        elif line.startswith("#"):
            (pending if pending else head).append(line)
        else:
            folder = line.partition("/")[0]
            if pending and folder in variants and line == f"{folder}/stream.m3u8":
                kept += pending + [line]
            pending = []
    if not kept:
        return None
    return "\n".join(head + kept) + "\n"


def highest_variant(variants: list[dict]) -> int:
    """The variant kept when only one is: a passthrough one, else the highest bitrate."""
    best, best_key = 0, (-1, -1)
    for i, v in enumerate(variants):
        key = (1 if v.get("videoPassthrough") else 0, int(v.get("videoBitrate") or 0))
        if key > best_key:
            best, best_key = i, key
    return best


@dataclass
class Meta:
    """What ``recording.json`` keeps; times are Unix seconds."""

    id: str
    title: str
    startTime: float
    endTime: float | None = None
    duration: float = 0.0
    peakViewers: int = 0
    variants: list[str] = field(default_factory=list)
    #: the kept variant downloads and clips are cut from (the highest)
    best: str = "0"
    #: why recording stopped early ("diskFull"), or empty
    stopped: str = ""
    size: int = 0

    @property
    def live(self) -> bool:
        return self.endTime is None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Meta | None:
        if not isinstance(data, dict) or not RECORDING_ID.fullmatch(str(data.get("id", ""))):
            return None
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        try:
            return cls(**known)
        except TypeError:
            return None


def expired(metas: list[Meta], now: float, max_days: float, max_bytes: int) -> list[str]:
    """Ids of finished recordings retention removes, oldest first: those that ended more
    than ``max_days`` ago, then the oldest until the rest fit in ``max_bytes`` (0: no
    limit). A recording still going on is never removed (nor counted)."""
    done = sorted((m for m in metas if not m.live), key=lambda m: m.startTime)
    gone: list[str] = []
    if max_days > 0:
        limit = now - max_days * 86400
        gone = [m.id for m in done if (m.endTime or m.startTime) < limit]
    if max_bytes > 0:
        left = [m for m in done if m.id not in gone]
        total = sum(m.size for m in left)
        for m in left:
            if total <= max_bytes:
                break
            gone.append(m.id)
            total -= m.size
    return gone


def clip_entries(entries: list[Entry], start: float, end: float) -> tuple[list[Entry], float]:
    """The segments covering ``start``..``end`` (seconds from the first segment's start),
    and where ``start`` falls in the first of them."""
    kept: list[Entry] = []
    offset = 0.0
    at = 0.0
    for e in entries:
        if at + e.duration > start and at < end:
            if not kept:
                offset = start - at
            kept.append(e)
        at += e.duration
    return kept, offset


def clip_span(start: Any, end: Any, duration: float) -> tuple[float, float]:
    """A checked clip span in seconds from the recording's start; ValueError says why not."""
    for value, what in ((start, "start"), (end, "end")):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{what} must be a number of seconds")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{what} must be zero or more seconds")
    if end <= start:
        raise ValueError("end must be after start")
    if end - start > MAX_CLIP_SECONDS:
        raise ValueError(f"a clip is at most {MAX_CLIP_SECONDS:g} seconds long")
    if start >= duration:
        raise ValueError("start is past the end of the recording")
    return float(start), float(min(end, duration))


def title_value(value: Any) -> str:
    """A checked title; ValueError says why not."""
    if not isinstance(value, str):
        raise ValueError("title must be a string")
    value = value.strip()
    if not value or len(value) > TITLE_MAX:
        raise ValueError(f"title must be 1 to {TITLE_MAX} characters")
    return value
