"""The LL-HLS output of the live broadcast: the renditions the transcoder writes and the
HTTP resource reads, and the ffmpeg protocol that carries its fMP4 pipes.

In low-latency mode ffmpeg writes no HLS files: each variant's fragmented MP4 comes over
its own pipe (fd ``3 + n``) into ``LlOutput.feed``. The transcoder and the ``/hls/``
resource both know the broadcast by its output directory, and that is how they find the
same ``LlOutput`` (``for_directory``), so neither needs the other.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.logger import Logger

from owncast.llhls.boxes import MalformedMP4Error
from owncast.llhls.rendition import Rendition
from owncast.transcode.child import FfmpegProtocol

_log = Logger()

#: Seconds of media a segment holds (the variants' keyframe interval), the part target
#: (ffmpeg's ``-frag_duration``; parts at 24-30 fps come out at 0.2-0.25 s) and the
#: complete segments a playlist lists.
SEGMENT_SECONDS = 1
FRAGMENT_US = 200_000
PART_TARGET = 0.25
WINDOW = 12


class LlOutput:
    """The live renditions (empty while nothing was ever published in this mode)."""

    def __init__(self) -> None:
        self.renditions: list[Rendition] = []
        self.variants: list[dict[str, Any]] = []
        self._broken: set[int] = set()

    @property
    def live(self) -> bool:
        return bool(self.renditions)

    def begin(self, variants: list[dict[str, Any]], fresh: bool) -> None:
        """A new ffmpeg starts: ``fresh`` for a new broadcast (renditions start over),
        else the renditions continue after a discontinuity."""
        if fresh or len(variants) != len(self.renditions):
            self.renditions = [Rendition(SEGMENT_SECONDS, PART_TARGET, WINDOW) for _ in variants]
        else:
            for rendition in self.renditions:
                rendition.restart()
        self.variants = variants
        self._broken.clear()

    def feed(self, index: int, data: bytes) -> None:
        if index in self._broken or index >= len(self.renditions):
            return
        try:
            self.renditions[index].feed(data)
        except MalformedMP4Error:
            self._broken.add(index)
            _log.failure("LL-HLS: variant {index}'s fMP4 from ffmpeg is malformed", index=index)

    def end(self) -> None:
        """The broadcast is over: the playlists get their end marker."""
        for rendition in self.renditions:
            rendition.end()

    def clear(self) -> None:
        self.renditions = []
        self.variants = []


_OUTPUTS: dict[str, LlOutput] = {}


def for_directory(directory: str | os.PathLike) -> LlOutput:
    """The one ``LlOutput`` of the broadcast whose output directory is ``directory``."""
    key = os.path.abspath(os.fspath(directory))
    return _OUTPUTS.setdefault(key, LlOutput())


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
