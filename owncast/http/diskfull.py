"""When the disk fills up: no torn segment is ever listed, and the episode is told once.

With the disk full, ffmpeg's writes fail silently: it still renames a segment it could
only partly write to its final name and lists it. So each segment a variant playlist
lists is checked once, when the playlist that first lists it is read (off the reactor
thread), and one that is not a whole MPEG-TS file (``complete``) is left out of the
playlists served from then on. Later segments keep the numbers players expect: the
media sequence is lowered by the segments left out before the first one listed, so
every segment served has the same number in every version of the playlist.

``DiskWatch`` keeps the episode: it checks the free space of the HLS directory every few
seconds (and hears of each torn segment), logs "disk full" once when an episode begins
and once when space is back, and says whether one is under way (``full``: the admin
status and dashboard show it).
"""

from __future__ import annotations

import bisect
import os
import re
import shutil
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from owncast.http.hls import Playlist, read_playlist_keyed

_log = Logger()

#: MPEG-TS packets are this long and start with the sync byte.
TS_PACKET = 188
_SYNC = 0x47
#: Below this many free bytes in the HLS directory, the disk counts as full ...
RESERVE = 16 * 1024 * 1024
#: ... and an episode ends once this many are free again (and no torn segment came).
ENOUGH = 2 * RESERVE
#: Seconds between two looks at the free space.
CHECK_INTERVAL = 5.0
_MEDIA_SEQUENCE = b"#EXT-X-MEDIA-SEQUENCE:"
_SEQUENCE_LINE = re.compile(rb"^#EXT-X-MEDIA-SEQUENCE:[0-9]{1,19}\r?$", re.M)
_DISCONTINUITY = b"#EXT-X-DISCONTINUITY"
_SEGMENT = re.compile(rb"stream-[0-9]{1,19}\.ts")
#: Tags about the whole playlist; every other tag belongs to the segment after it.
_LIST_TAGS = (
    b"#EXTM3U",
    b"#EXT-X-VERSION",
    b"#EXT-X-TARGETDURATION",
    _MEDIA_SEQUENCE,
    b"#EXT-X-DISCONTINUITY-SEQUENCE",
    b"#EXT-X-INDEPENDENT-SEGMENTS",
    b"#EXT-X-PLAYLIST-TYPE",
    b"#EXT-X-ALLOW-CACHE",
    b"#EXT-X-START",
)


def complete(path: str) -> bool:
    """Blocking: whether the segment at ``path`` is a whole MPEG-TS file (whole packets,
    the first and the last starting with the sync byte). A write cut short by a full disk
    ends in the middle of a packet unless it stopped exactly at a packet boundary."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0 or size % TS_PACKET:
                return False
            first = f.read(1)
            f.seek(size - TS_PACKET)
            last = f.read(1)
    except OSError:
        return False
    return first == last == bytes((_SYNC,))


def free_bytes(directory: str) -> int | None:
    """Blocking: bytes an unprivileged process may still write where ``directory`` is
    (None when it cannot be told, e.g. before the directory is made)."""
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


class CompleteSegments:
    """What variant playlists may list: the segments found whole, numbered as served.

    Called with a playlist's path (blocking; never run twice at once for one path, as
    ``HlsResource`` shares concurrent reads), it is ``read_playlist_keyed`` with torn
    segments left out; those it found torn are queued in ``torn`` for the reactor thread.
    """

    def __init__(self, check: Callable[[str], bool] = complete):
        self._check = check
        #: playlist path -> segment name -> whole?  (the names it listed last time)
        self._verdicts: dict[str, dict[bytes, bool]] = {}
        #: playlist path -> sequence numbers of the segments left out, in order
        self._left_out: dict[str, list[int]] = {}
        #: paths of torn segments found, oldest first (appended by reading threads)
        self.torn: deque[str] = deque()

    def __call__(self, path: str) -> Playlist:
        playlist = read_playlist_keyed(path)
        if playlist.body is None:
            return playlist
        return Playlist(self._filtered(path, playlist.body), playlist.key)

    def _filtered(self, path: str, body: bytes) -> bytes:
        match = _SEQUENCE_LINE.search(body)
        if match is None:
            return body
        number = int(match.group()[len(_MEDIA_SEQUENCE) :])
        directory = os.path.dirname(path)
        known = self._verdicts.get(path, {})
        verdicts: dict[bytes, bool] = {}
        left_out = self._left_out.setdefault(path, [])
        head: list[bytes] = []
        kept: list[bytes] = []
        entry: list[bytes] = []  # the tags of the segment to come
        first_kept: int | None = None
        carried = False  # a discontinuity of a segment left out, for the next one kept
        for line in body.splitlines():
            if not line.strip():
                continue
            if line.startswith(b"#"):
                (head if line.startswith(_LIST_TAGS) else entry).append(line)
                continue
            whole = known.get(line)
            if whole is None:
                whole = not _SEGMENT.fullmatch(line) or self._check(
                    os.path.join(directory, line.decode("ascii"))
                )
                if not whole:
                    self.torn.append(os.path.join(directory, line.decode("ascii")))
            verdicts[line] = whole
            if whole:
                if first_kept is None:
                    first_kept = number
                if carried and _DISCONTINUITY not in entry:
                    entry.insert(0, _DISCONTINUITY)
                carried = False
                kept += entry + [line]
            else:
                if not left_out or left_out[-1] < number:
                    left_out.append(number)
                carried = carried or _DISCONTINUITY in entry
            entry = []
            number += 1
        self._verdicts[path] = verdicts
        if not left_out:
            return body
        start = number if first_kept is None else first_kept
        sequence = start - bisect.bisect_left(left_out, start)
        head = [
            b"%s%d" % (_MEDIA_SEQUENCE, sequence) if line.startswith(_MEDIA_SEQUENCE) else line
            for line in head
        ]
        return b"\n".join(head + kept + entry) + b"\n"


class DiskWatch(TimerService):
    """Whether the disk of ``directory`` is full, as episodes logged once each.

    Runs ``free_bytes`` through ``blocking`` every ``CHECK_INTERVAL`` seconds while
    started; ``segments`` (the ``CompleteSegments`` of the HLS resource) reports torn
    segments, each of which also begins an episode. ``full`` says whether one is on.
    """

    def __init__(
        self,
        directory: str,
        blocking: Callable[..., Deferred],
        clock: Any,
        segments: CompleteSegments | None = None,
        interval: float = CHECK_INTERVAL,
    ):
        super().__init__(interval, self.check)
        self.clock = self._clock = clock
        self.directory = directory
        self._blocking = blocking
        self.segments = segments
        #: whether an episode is under way, and when it began
        self.full = False
        self.since: float | None = None
        self.free: int | None = None

    def check(self) -> Deferred:
        d = self._blocking(free_bytes, self.directory)
        d.addCallback(self.observe)
        d.addErrback(lambda f: _log.failure("Could not read the free space of the disk", f))
        return d

    def observe(self, free: int | None = None) -> None:
        """Take a reading of the free space (None: none) and the torn segments found."""
        torn = []
        if self.segments is not None:
            while self.segments.torn:
                torn.append(self.segments.torn.popleft())
        if free is not None:
            self.free = free
        low = self.free is not None and self.free < RESERVE
        if not self.full and (low or torn):
            self.full, self.since = True, self._clock.seconds()
            _log.error(
                "Disk full: {free} MiB free for {directory}; video segments cannot be "
                "written whole, and those cut short are left out of the playlists{torn}",
                free=_mib(self.free),
                directory=self.directory,
                torn=f" ({len(torn)} so far)" if torn else "",
            )
        elif self.full and not torn and self.free is not None and self.free >= ENOUGH:
            lasted = self._clock.seconds() - (self.since or 0)
            self.full, self.since = False, None
            _log.info(
                "Disk space is back: {free} MiB free for {directory}, after {lasted:.0f} s",
                free=_mib(self.free),
                directory=self.directory,
                lasted=lasted,
            )


def _mib(free: int | None) -> str:
    return "?" if free is None else f"{free / 1048576:.1f}"
