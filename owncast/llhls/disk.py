"""The low-latency broadcast's complete segments as files, the way the MPEG-TS mode leaves
them: what the recorder, segment storage (S3) and a restarted daemon read.

Per variant ``<n>/``: ``init<i>.mp4`` (an initialization section), ``seg<k>.m4s`` (complete
segments, named by media sequence number, so by the same names the LL-HLS playlist uses)
and ``stream.m3u8``, a plain (not low-latency) media playlist of the segments in the
window with ``EXT-X-MAP``; beside them the master ``stream.m3u8``. Segment numbers of a
fresh broadcast start at the POSIX time (as ffmpeg's ``-start_number`` does for TS), so a
name is never reused by a later broadcast.

``playlist_text`` and ``master_text`` are pure; ``write`` is blocking (run it in a thread).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: The name of the master and of each media playlist.
PLAYLIST = "stream.m3u8"


def init_name(number: int) -> str:
    return f"init{number}.mp4"


def segment_name(msn: int) -> str:
    return f"seg{msn}.m4s"


def playlist_text(segments: Sequence[Any], target: int, discontinuities: int, ended: bool) -> str:
    """A plain HLS media playlist of complete ``segments`` (``Rendition.segments``: ``msn``,
    ``duration``, ``init``, ``discontinuity``); ``discontinuities`` is the discontinuity
    sequence of the first."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}"]
    if segments:
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{segments[0].msn}")
    if discontinuities:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    current = None
    for i, s in enumerate(segments):
        if s.discontinuity and i:
            lines.append("#EXT-X-DISCONTINUITY")
        if s.init != current:
            lines.append(f'#EXT-X-MAP:URI="{init_name(s.init)}"')
            current = s.init
        lines += [f"#EXTINF:{s.duration:.5f},", segment_name(s.msn)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master_text(attributes: Sequence[dict[str, Any]]) -> str:
    """The master playlist of the variants (``master_attributes``)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for n, a in enumerate(attributes):
        info = f"#EXT-X-STREAM-INF:BANDWIDTH={int(a['bandwidth'])}"
        if a.get("resolution"):
            info += f",RESOLUTION={a['resolution']}"
        lines += [info, f"{n}/{PLAYLIST}"]
    return "\n".join(lines) + "\n"


@dataclass
class Change:
    """What one write does in one folder: files to put (written whole, then renamed into
    place, in order), then the playlist, then the names to remove."""

    folder: str
    files: list[tuple[str, bytes]] = field(default_factory=list)
    playlist: str | None = None
    remove: list[str] = field(default_factory=list)


def _put(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write(change: Change) -> None:
    """Blocking: apply ``change``. A reader never sees a playlist naming a file not there
    yet, nor a file half written."""
    os.makedirs(change.folder, exist_ok=True)
    for name, data in change.files:
        _put(os.path.join(change.folder, name), data)
    if change.playlist is not None:
        _put(os.path.join(change.folder, PLAYLIST), change.playlist.encode("utf-8"))
    for name in change.remove:
        try:
            os.unlink(os.path.join(change.folder, name))
        except FileNotFoundError:
            pass
