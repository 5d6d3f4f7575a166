"""What a decoder started in the middle of a broadcast must read first.

A restarted ffmpeg cannot decode from an arbitrary tag: it needs the latest
``onMetaData``, the latest video and audio sequence headers, and then media from a point
it can start at (a keyframe). ``Replay`` keeps exactly those from the tags that pass
through it, reading only their flags.
"""

from __future__ import annotations

from owncast.media.tags import AUDIO, SCRIPT, VIDEO, MediaTag


class Replay:
    """The latest metadata and sequence headers, and the tags since the last sync point.

    ``remember(tag, sync)`` is called for every tag of the broadcast; ``sync`` says a
    decoder can start at it (a keyframe). At most ``max_gop`` payload bytes of media are
    kept: past that, nothing until the next sync point, so memory stays bounded on a
    stream without keyframes.
    """

    def __init__(self, max_gop: int):
        self._max_gop = max_gop
        self.metadata: MediaTag | None = None
        self.video_config: MediaTag | None = None
        self.audio_config: MediaTag | None = None
        self._gop: list[MediaTag] = []
        self._gop_size = 0
        #: False after the kept media outgrew ``max_gop``, until the next sync point
        self._gop_open = True

    def remember(self, tag: MediaTag, sync: bool) -> None:
        kind = tag.kind
        if tag.config:
            if kind == VIDEO:
                self.video_config = tag
            elif kind == AUDIO:
                self.audio_config = tag
            return
        if kind == SCRIPT:
            if tag.metadata is not None:
                self.metadata = tag
            return
        size = len(tag.payload)
        if sync:
            self._gop, self._gop_size, self._gop_open = [tag], size, True
        elif not self._gop_open:
            return
        elif self._gop_size + size > self._max_gop:
            self._gop, self._gop_size, self._gop_open = [], 0, False
        else:
            self._gop.append(tag)
            self._gop_size += size

    def tags(self) -> list[MediaTag]:
        """Metadata, video and audio sequence headers, then the media since the last sync."""
        config = [t for t in (self.metadata, self.video_config, self.audio_config) if t is not None]
        return config + self._gop
