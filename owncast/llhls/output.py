"""The LL-HLS output of the live broadcast: the renditions the transcoder writes and the
HTTP resource reads, their complete segments on disk, and the ffmpeg protocol that carries
the fMP4 pipes.

In low-latency mode ffmpeg writes no HLS files: each variant's fragmented MP4 comes over
its own pipe (fd ``3 + n``) into ``LlOutput.feed``. The service builds one ``LlOutput``
and hands it to both the transcoder and the ``/hls/`` resource. Each complete segment
(and the initialization section it needs) is also written to the output directory
(``owncast.llhls.disk``) through the ``blocking`` thread pool, in order, so the recorder
keeps it and segment storage uploads it as in the MPEG-TS mode; ``locate`` then says
where storage has a copy, and the LL-HLS playlists point at it (parts always come from
here).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.logger import Logger

from owncast.llhls import disk
from owncast.llhls.boxes import MalformedMP4Error
from owncast.llhls.rendition import Rendition, Segment
from owncast.transcode.child import FfmpegProtocol

_log = Logger()

#: Seconds of media a segment holds (the variants' keyframe interval), the part target
#: (ffmpeg's ``-frag_duration``; parts at 24-30 fps come out at 0.2-0.25 s) and the
#: complete segments a playlist lists.
SEGMENT_SECONDS = 1
FRAGMENT_US = 200_000
PART_TARGET = 0.25
WINDOW = 12


@dataclass
class _OnDisk:
    """What one variant's folder holds."""

    segments: set[int] = field(default_factory=set)
    inits: set[int] = field(default_factory=set)


class LlOutput:
    """The live renditions (empty while nothing was ever published in this mode).

    ``directory`` is the HLS output directory and ``blocking(fn, *args) -> Deferred``
    runs file work off the reactor thread; without them nothing is written."""

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        blocking: Callable[..., Deferred] | None = None,
    ) -> None:
        self.directory = os.fspath(directory) if directory is not None else None
        self._blocking = blocking
        self.renditions: list[Rendition] = []
        self.variants: list[dict[str, Any]] = []
        self._broken: set[int] = set()
        self._disk: list[_OnDisk] = []
        #: the lowest segment number this run has not used (numbers never go back)
        self._next_msn = 0
        self._writes = DeferredLock()
        #: where segment storage has a live segment (``hls/<n>/seg<k>.m4s``); None: not yet
        self.locate: Callable[[str], str | None] = lambda key: None

    @property
    def live(self) -> bool:
        return bool(self.renditions)

    def begin(self, variants: list[dict[str, Any]], fresh: bool, start_number: int = 0) -> None:
        """A new ffmpeg starts: ``fresh`` for a new broadcast (renditions start over, their
        segments numbered from ``start_number``), else the renditions continue after a
        discontinuity."""
        if fresh or len(variants) != len(self.renditions):
            first, first_init = max(start_number, self._next_msn), 0
            if not fresh:  # a variant came or went: the numbers go on
                for rendition in self.renditions:
                    rendition.restart()  # its open segment is written
                    first = max(first, rendition.open.msn)
                    first_init = max(first_init, rendition.init_id + 1)
            self.renditions = [self._rendition(n, first, first_init) for n in range(len(variants))]
            self._disk = [_OnDisk() for _ in variants]
        else:
            for rendition in self.renditions:
                rendition.restart()
        self.variants = variants
        self._broken.clear()
        if self.directory is not None:
            master = disk.master_text(master_attributes(variants))
            self._write(disk.Change(self.directory, playlist=master))

    def _rendition(self, n: int, first: int, first_init: int) -> Rendition:
        rendition = Rendition(
            SEGMENT_SECONDS, PART_TARGET, WINDOW, first_msn=first, first_init=first_init
        )
        rendition.on_segment = lambda segment: self._segment_done(n, rendition, segment)

        def uri(msn: int) -> str:
            name = disk.segment_name(msn)
            return self.locate(f"hls/{n}/{name}") or name

        rendition.segment_uri = uri
        return rendition

    def feed(self, index: int, data: bytes) -> None:
        if index in self._broken or index >= len(self.renditions):
            return
        try:
            self.renditions[index].feed(data)
        except MalformedMP4Error:
            self._broken.add(index)
            _log.failure("LL-HLS: variant {index}'s fMP4 from ffmpeg is malformed", index=index)

    def end(self) -> Deferred[None]:
        """The broadcast is over: the playlists get their end marker. Fires once the files
        say so too."""
        for n, rendition in enumerate(self.renditions):
            rendition.end()
            if self.directory is not None:
                self._write(disk.Change(self._folder(n), playlist=self._playlist(rendition)))
        return self.flush()

    def clear(self) -> None:
        self.renditions = []
        self.variants = []
        self._disk = []

    def changed(self, variant: int | None = None) -> None:
        """Segment storage stored (or let go of) a segment of ``variant`` (None: of any):
        its playlist reads differently."""
        for n, rendition in enumerate(self.renditions):
            if variant is None or n == variant:
                rendition.changed()

    # -- the files ---------------------------------------------------------------------

    def flush(self) -> Deferred[None]:
        """Fires once every file write asked for so far is done."""
        return self._writes.run(succeed, None)

    def _folder(self, n: int) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, str(n))

    @staticmethod
    def _playlist(rendition: Rendition) -> str:
        return disk.playlist_text(
            rendition.segments,
            rendition.target_duration,
            rendition.discontinuity_sequence,
            rendition.ended,
        )

    def _segment_done(self, n: int, rendition: Rendition, segment: Segment) -> None:
        self._next_msn = max(self._next_msn, segment.msn + 1)
        if self.directory is None or rendition not in self.renditions:
            return
        on_disk = self._disk[n]
        change = disk.Change(self._folder(n))
        if segment.init not in on_disk.inits and segment.init in rendition.inits:
            change.files.append((disk.init_name(segment.init), rendition.inits[segment.init]))
            on_disk.inits.add(segment.init)
        change.files.append((disk.segment_name(segment.msn), segment.data))
        on_disk.segments.add(segment.msn)
        change.playlist = self._playlist(rendition)
        window = {s.msn for s in rendition.segments}
        needed = {s.init for s in rendition.segments} | {rendition.open.init}
        for msn in sorted(on_disk.segments - window):
            on_disk.segments.discard(msn)
            change.remove.append(disk.segment_name(msn))
        for init in sorted(on_disk.inits - needed):
            on_disk.inits.discard(init)
            change.remove.append(disk.init_name(init))
        self._write(change)

    def _write(self, change: disk.Change) -> None:
        blocking = self._blocking
        if blocking is None:
            return
        d = self._writes.run(blocking, disk.write, change)
        d.addErrback(lambda f: _log.failure("LL-HLS: could not write in {at}", f, at=change.folder))


def master_attributes(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``EXT-X-STREAM-INF`` attributes of ``StreamQuality`` dicts (a passthrough variant's
    bitrate setting stands in for the publisher's)."""
    out = []
    for v in variants:
        kbps = (v.get("videoBitrate") or 1200) + (v.get("audioBitrate") or 128)
        attrs: dict[str, Any] = {"bandwidth": kbps * 1000}
        width, height = v.get("scaledWidth") or 0, v.get("scaledHeight") or 0
        if width and height and not v.get("videoPassthrough"):
            attrs["resolution"] = f"{width}x{height}"
        out.append(attrs)
    return out


class LlFfmpegProtocol(FfmpegProtocol):
    """``FfmpegProtocol`` that also reads the fMP4 pipes (fd 3 and up) into ``output``."""

    def __init__(self, owner: Any, audio: bool, video: bool, output: LlOutput) -> None:
        super().__init__(owner, audio, video)
        self.output = output

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD >= 3:
            self.output.feed(childFD - 3, data)
        else:
            super().childDataReceived(childFD, data)


def child_fds(variants: int) -> dict[int, str]:
    """stdin written, stdout and stderr read, and one read pipe per variant from fd 3."""
    return {0: "w", 1: "r", 2: "r", **{3 + n: "r" for n in range(variants)}}
