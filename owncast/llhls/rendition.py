"""One LL-HLS rendition: fMP4 fragments in, parts, segments and the media playlist out.

ffmpeg writes fragmented MP4 with a fragment at each keyframe and every part target
(``-movflags frag_keyframe+empty_moov+default_base_moof -frag_duration``); every fragment
(``moof`` + ``mdat``) becomes one partial segment, and a segment closes at the first
independent part once it holds ``segment_target`` seconds, so segments start on keyframes
and each is the concatenation of its parts. Parts are named by a running number
(``part<k>.m4s``), not by segment, so the preload hint names the next part before anyone
knows whether it opens a new segment.

Blocking playlist reload (``_HLS_msn``/``_HLS_part``) and preload-hint fetches wait on
Deferreds kept per awaited position and fired when the part lands: no thread, no poll.
Everything is in memory and pure (no clock, no reactor); the HTTP side is
``owncast.http.llhls``. ``on_segment`` hears of each complete segment (``LlOutput`` also
writes them to disk for the recorder and segment storage), and ``segment_uri`` may point
a complete segment's playlist line elsewhere (a copy in S3); parts always come from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred

from owncast.llhls.boxes import BoxReader, MalformedMP4Error, Track, parse_moof, parse_moov

#: Complete segments that keep their parts listed (the spec lets parts go once they are
#: more than three target durations from the live edge).
PARTS_KEPT = 3


@dataclass
class Part:
    index: int
    data: bytes
    duration: float
    independent: bool


@dataclass
class Segment:
    msn: int
    parts: list[Part] = field(default_factory=list)
    data: bytes = b""
    #: which initialization section its parts need (``init<n>.mp4``)
    init: int = 0
    #: the first segment after a new ffmpeg started: timestamps start again
    discontinuity: bool = False

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)


class Rendition:
    """The parts and segments of one variant, and its playlist."""

    def __init__(
        self,
        segment_target: float,
        part_target: float,
        window: int,
        on_change: Callable[[], None] | None = None,
        first_msn: int = 0,
        first_init: int = 0,
    ) -> None:
        self.segment_target = segment_target
        self.part_target = part_target
        self.window = window
        self.on_change = on_change
        #: told each segment as it completes (after the window moved on)
        self.on_segment: Callable[[Segment], None] | None = None
        #: the URI of complete segment ``msn`` in the playlist (default ``seg<msn>.m4s``)
        self.segment_uri: Callable[[int], str] | None = None
        #: goes up whenever the playlist may read differently (a cache key)
        self.version = 0
        #: initialization sections by number; a new ffmpeg (``restart``) writes a new one
        self.inits: dict[int, bytes] = {}
        self._init_id = first_init - 1
        self.discontinuity_sequence = 0
        self.segments: list[Segment] = []  # complete, oldest first
        self.open = Segment(first_msn)
        self.next_part = 0
        self.ended = False
        self._reader = BoxReader()
        self._tracks: dict[int, Track] = {}
        self._moof: bytes | None = None
        self._parts: dict[int, Part] = {}
        self._max_segment = segment_target
        self._waiting: dict[tuple[int, int], list[Deferred[None]]] = {}
        self._part_waiting: dict[int, list[Deferred[Part]]] = {}

    # -- input ------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes of ffmpeg's fMP4 output, in any pieces. Raises ``MalformedMP4Error``."""
        for kind, box in self._reader.feed(data):
            if kind == b"ftyp":
                self._ftyp = box
            elif kind == b"moov":
                self._tracks = parse_moov(box)
                self._init_id += 1
                self.inits[self._init_id] = getattr(self, "_ftyp", b"") + box
                self.open.init = self._init_id
                self.version += 1
            elif kind == b"moof":
                if not self._tracks:
                    raise MalformedMP4Error("a moof before the moov")
                self._moof = box
            elif kind == b"mdat":
                if self._moof is None:
                    raise MalformedMP4Error("a mdat without its moof")
                self._add(self._moof, box)
                self._moof = None

    def _add(self, moof: bytes, mdat: bytes) -> None:
        runs = parse_moof(moof, self._tracks)
        video = [r for tid, r in runs.items() if self._tracks[tid].video]
        lead = video[0] if video else max(runs.values(), key=lambda r: r.duration)
        independent = lead.first_sync if video else True
        part = Part(self.next_part, moof + mdat, lead.duration, independent)
        self.next_part += 1
        if (
            self.open.parts
            and independent
            and self.open.duration + part.duration / 2 >= self.segment_target
        ):
            self._close()
        self.open.parts.append(part)
        self._parts[part.index] = part
        self._fire()

    def _close(self, discontinuity: bool = False) -> None:
        done = self.open
        done.data = b"".join(p.data for p in done.parts)
        self._max_segment = max(self._max_segment, done.duration)
        self.segments.append(done)
        self.open = Segment(done.msn + 1, init=self._init_id, discontinuity=discontinuity)
        for gone in self.segments[: -self.window]:
            self.discontinuity_sequence += gone.discontinuity
        del self.segments[: -self.window]
        needed = {s.init for s in self.segments} | {self.open.init}
        for n in [n for n in self.inits if n not in needed]:
            del self.inits[n]
        if len(self.segments) > PARTS_KEPT:
            for p in self.segments[-PARTS_KEPT - 1].parts:
                self._parts.pop(p.index, None)
        if self.on_segment is not None:
            self.on_segment(done)

    def restart(self) -> None:
        """A new ffmpeg takes over (a crash, or the publisher came back): the open
        segment closes, and the next one starts after a discontinuity with the new
        ffmpeg's initialization section."""
        self._reader = BoxReader()
        self._moof = None
        self._tracks = {}
        self.ended = False
        if self.open.parts:
            self._close(discontinuity=True)
        elif self.segments:
            self.open.discontinuity = True
        self.version += 1

    @property
    def init(self) -> bytes | None:
        """The newest initialization section."""
        return self.inits.get(self._init_id)

    def end(self) -> None:
        """The input ended: close the open segment and answer every waiter."""
        if self.open.parts:
            self._close()
        self.ended = True
        self._fire()

    # -- waiting -----------------------------------------------------------------------

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist already holds segment ``msn`` (complete) or its part ``part``."""
        if self.ended or msn < self.open.msn:
            return True
        return part is not None and msn == self.open.msn and len(self.open.parts) > part

    def wait(self, msn: int, part: int | None) -> Deferred[None]:
        """Fires once ``has(msn, part)``; cancel it when the client goes away."""
        if self.has(msn, part):
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        key = (msn, -1 if part is None else part)
        waiters = self._waiting.setdefault(key, [])

        def cancel(d: Deferred[None]) -> None:
            if d in waiters:
                waiters.remove(d)

        d = Deferred(cancel)
        waiters.append(d)
        return d

    def wait_part(self, index: int) -> Deferred[Part] | None:
        """The part numbered ``index`` once it exists; None when it is gone or too far ahead."""
        if index in self._parts:
            d: Deferred[Part] = Deferred()
            d.callback(self._parts[index])
            return d
        if index != self.next_part or self.ended:
            return None
        waiters = self._part_waiting.setdefault(index, [])
        d = Deferred(lambda d: waiters.remove(d) if d in waiters else None)
        waiters.append(d)
        return d

    def part(self, index: int) -> Part | None:
        return self._parts.get(index)

    def segment(self, msn: int) -> Segment | None:
        for s in self.segments:
            if s.msn == msn:
                return s
        return None

    def _fire(self) -> None:
        self.version += 1
        for key in [k for k in self._waiting if self.has(k[0], None if k[1] < 0 else k[1])]:
            for d in self._waiting.pop(key):
                d.callback(None)
        for index in [i for i in self._part_waiting if i in self._parts or self.ended]:
            part = self._parts.get(index)
            for pd in self._part_waiting.pop(index):
                if part is None:
                    pd.errback(KeyError(index))
                else:
                    pd.callback(part)
        if self.on_change is not None:
            self.on_change()

    # -- the playlist --------------------------------------------------------------------

    @property
    def init_id(self) -> int:
        """The number of the newest initialization section (-1 before the first)."""
        return self._init_id

    def uri(self, msn: int) -> str:
        """Where players fetch complete segment ``msn``."""
        if self.segment_uri is not None:
            return self.segment_uri(msn)
        return f"seg{msn}.m4s"

    def changed(self) -> None:
        """Something the playlist shows changed outside ``feed`` (a segment's URI)."""
        self.version += 1
        if self.on_change is not None:
            self.on_change()

    @property
    def target_duration(self) -> int:
        return max(1, math.floor(self._max_segment + 0.5))

    def last_position(self) -> tuple[int, int]:
        """(LAST-MSN, LAST-PART) for a rendition report."""
        if self.open.parts:
            return self.open.msn, len(self.open.parts) - 1
        if self.segments:
            return self.segments[-1].msn, len(self.segments[-1].parts) - 1
        return 0, -1

    def playlist(self, skip: bool = False, reports: Sequence[tuple[str, Rendition]] = ()) -> str:
        """The media playlist; ``skip`` answers ``_HLS_skip=YES`` with a delta update."""
        td = self.target_duration
        skip_until = 6 * td
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            f"#EXT-X-TARGETDURATION:{td}",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
            f"CAN-SKIP-UNTIL={skip_until:.1f},PART-HOLD-BACK={3 * self.part_target:.3f}",
            f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.3f}",
            f"#EXT-X-MEDIA-SEQUENCE:{self.segments[0].msn if self.segments else self.open.msn}",
        ]
        if self.discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}")
        first = self.segments[0] if self.segments else self.open
        lines.append(f'#EXT-X-MAP:URI="init{first.init}.mp4"')
        current = first.init
        segments = self.segments
        if skip:
            total, kept = 0.0, len(segments)
            while kept > 0 and total + segments[kept - 1].duration <= skip_until:
                total += segments[kept - 1].duration
                kept -= 1
            if kept:
                lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={kept}")
                segments = segments[kept:]
        with_parts = {s.msn for s in self.segments[-PARTS_KEPT:]}
        for s in [*segments, self.open]:
            if s.discontinuity and s is not first:
                lines.append("#EXT-X-DISCONTINUITY")
            if s.init != current:
                lines.append(f'#EXT-X-MAP:URI="init{s.init}.mp4"')
                current = s.init
            if s.msn in with_parts or s is self.open:
                lines += [_part_line(p) for p in s.parts]
            if s is not self.open:
                lines += [f"#EXTINF:{s.duration:.5f},", self.uri(s.msn)]
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        else:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part{self.next_part}.m4s"')
            for uri, other in reports:
                msn, part = other.last_position()
                if part >= 0:
                    lines.append(
                        f'#EXT-X-RENDITION-REPORT:URI="{uri}",LAST-MSN={msn},LAST-PART={part}'
                    )
        return "\n".join(lines) + "\n"


def _part_line(p: Part) -> str:
    independent = ",INDEPENDENT=YES" if p.independent else ""
    return f'#EXT-X-PART:DURATION={p.duration:.5f},URI="part{p.index}.m4s"{independent}'
