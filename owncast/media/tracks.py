"""Which tracks a publisher really sends, told from its first tags.

ffmpeg must be told the tracks before it reads a byte: an FLV header that announces audio
which never comes makes it wait out its probe (about 16 s), and a video map on an
audio-only input fails. So the transcoder spawns ffmpeg only once ``Tracks`` has decided,
from the tags as they arrive:

* ``onMetaData`` names the tracks the encoder set up (``videocodecid``, ``width``, ...
  for video; ``audiocodecid``, ``audiosamplerate``, ... for audio); without it, both are
  expected;
* a track is there once a tag of its kind arrived (its sequence header comes first);
* an expected track that has not shown up while ``wait_ms`` of the other's media went
  by is taken to be absent.

With metadata (OBS, ffmpeg and every common encoder send it before any media) the
decision is made at the first tags, so a video-only or audio-only source starts as fast
as a normal one. Pure: no clock, only the tags' own timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from owncast.media.tags import AUDIO, SCRIPT, VIDEO, MediaTag

#: ``onMetaData`` keys that only an encoder with a video or an audio track writes.
VIDEO_KEYS = ("videocodecid", "width", "height", "framerate", "videodatarate")
AUDIO_KEYS = ("audiocodecid", "audiosamplerate", "audiodatarate", "audiosamplesize", "stereo")
#: Milliseconds of one track's media after which a missing other track is given up on.
WAIT_MS = 1000


class Found(NamedTuple):
    audio: bool
    video: bool


def declared(metadata: Mapping[str, Any]) -> Found | None:
    """The tracks an ``onMetaData`` object names, or None when it names none."""

    def named(keys: tuple[str, ...]) -> bool:
        return any(metadata.get(k) not in (None, "", False) for k in keys)

    found = Found(audio=named(AUDIO_KEYS), video=named(VIDEO_KEYS))
    return found if found.audio or found.video else None


class Tracks:
    """Decides, tag by tag, which tracks the broadcast has (``decided`` once known)."""

    def __init__(self, wait_ms: int = WAIT_MS):
        self._wait_ms = wait_ms
        self._expected = Found(audio=True, video=True)
        self._seen: set[int] = set()
        #: per kind, the first media timestamp seen
        self._first: dict[int, int] = {}
        self.decided: Found | None = None

    def see(self, tag: MediaTag) -> Found | None:
        """Take one tag; the tracks once they are known (then at every later call)."""
        if self.decided is not None:
            return self.decided
        kind = tag.kind
        if kind == SCRIPT:
            if tag.metadata is not None:
                self._expected = declared(tag.metadata) or self._expected
        elif kind in (AUDIO, VIDEO):
            self._seen.add(kind)
            if not tag.config:
                self._first.setdefault(kind, tag.timestamp)
                if tag.timestamp - self._first[kind] >= self._wait_ms:
                    self.decided = Found(audio=AUDIO in self._seen, video=VIDEO in self._seen)
                    return self.decided
        expected = self._expected
        wanted = {k for k, on in ((AUDIO, expected.audio), (VIDEO, expected.video)) if on}
        if wanted <= self._seen:
            self.decided = Found(audio=AUDIO in self._seen, video=VIDEO in self._seen)
        return self.decided
