"""Silent AAC audio woven into a broadcast that goes on without audio.

Players keep the tracks a stream began with: a broadcast that had audio and continues
without it (a publisher back within the grace with no audio device, a restart after its
audio vanished) would leave hls.js waiting for audio that never comes, the picture
frozen. So the transcoder feeds ffmpeg AAC frames of silence beside the video, stamped
from the video's own timestamps: ffmpeg sees an ordinary stream with both tracks, at the
publisher's pace, and transcodes (or copies) it as usual. (A second, generated input in
ffmpeg instead holds its output back by seconds: it runs ahead of the piped video.)
"""

from __future__ import annotations

from collections.abc import Iterable

from owncast.media import flv
from owncast.media.tags import AUDIO, VIDEO, MediaTag

#: AudioSpecificConfig: AAC-LC, 48 kHz, two channels.
AUDIO_CONFIG = bytes((0x11, 0x90))
#: One raw AAC-LC frame (1 024 samples) of stereo silence, as ffmpeg's encoder writes it.
SILENT_FRAME = bytes.fromhex("211004608c1c")
#: FLV audio tag bodies: AAC (sound format 10, 44 kHz flag, 16-bit, stereo), then the
#: AAC packet type (0: sequence header, 1: raw frame).
_HEADER = b"\xaf\x00" + AUDIO_CONFIG
_FRAME = b"\xaf\x01" + SILENT_FRAME
#: Milliseconds one frame lasts.
FRAME_MS = 1024 / 48
#: A gap in the video longer than this is not filled (the audio jumps with the video).
MAX_FILL_MS = 1000.0


class Silence:
    """FLV audio tags of silence to go before each video tag (pure: bytes in, bytes out)."""

    def __init__(self) -> None:
        self._next: float | None = None

    def before(self, timestamp: int) -> bytes:
        """The audio tags due up to a video tag at ``timestamp`` (ms), in order; the
        first time, the sequence header first."""
        if self._next is None:
            self._next = float(timestamp)
            out = [flv.tag(AUDIO, timestamp, _HEADER)]
        else:
            out = []
            if abs(timestamp - self._next) > MAX_FILL_MS:
                self._next = float(timestamp)  # a jump: start again from here
        while self._next <= timestamp:
            out.append(flv.tag(AUDIO, int(self._next), _FRAME))
            self._next += FRAME_MS
        return b"".join(out)

    def weave(self, tags: Iterable[MediaTag]) -> bytes:
        """``tags`` as FLV tags, each video tag after the silence due before it."""
        out = []
        for t in tags:
            if t.kind == VIDEO:
                out.append(self.before(t.timestamp))
            out.append(flv.tag(t.kind, t.timestamp, t.payload))
        return b"".join(out)
