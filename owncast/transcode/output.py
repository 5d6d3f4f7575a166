"""Upkeep of the HLS output directory between two ffmpeg runs (blocking: run in a thread).

A new broadcast starts from an empty directory. A restarted ffmpeg (a crash, a reload,
a reconnect within the grace period) continues the playlists already there, so the
directory is tidied first: partial segments and segments no playlist lists any more are
removed. ffmpeg never ends a playlist (``omit_endlist``): once a broadcast is over for
good, ``finish_output`` does, and makes sure that what stays served while offline only
names segments that are there.
"""

from __future__ import annotations

import os
import re
import shutil

from owncast.transcode.argv import MASTER_PLAYLIST, VARIANT_PLAYLIST

#: Per variant directory: the segment numbers where a restarted ffmpeg appended.
DISCONTINUITIES = "discontinuities"
_SEGMENT = re.compile(r"stream-([0-9]{1,19})\.ts(\.tmp)?")
#: A finished segment of either mode: MPEG-TS, or low latency's fMP4 (``owncast.llhls``).
_ANY_SEGMENT = re.compile(r"(?:stream-[0-9]{1,19}\.ts|seg[0-9]{1,19}\.m4s)(\.tmp)?")
_VARIANT_DIR = re.compile(r"[0-9]{1,2}")
#: A sequence or segment number (``int`` refuses over 4300 digits; ffmpeg writes 64 bits).
_NUMBER = re.compile(rb"[0-9]{1,19}")
ENDLIST = "#EXT-X-ENDLIST"
#: Playlist tags that describe the whole list, not the segment that follows them.
_LIST_TAGS = (
    "#EXTM3U",
    "#EXT-X-VERSION",
    "#EXT-X-TARGETDURATION",
    "#EXT-X-MEDIA-SEQUENCE",
    "#EXT-X-DISCONTINUITY-SEQUENCE",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    "#EXT-X-PLAYLIST-TYPE",
    "#EXT-X-ALLOW-CACHE",
    "#EXT-X-START",
)


def prepare_output(output_dir: str, clear: bool, fresh_number: int) -> int:
    """Blocking: ready ``output_dir`` for a new ffmpeg; return the ``-start_number`` to use.

    ``clear`` empties the directory (a new broadcast) and returns ``fresh_number``.
    Otherwise the playlists and the segments they list stay, partial (``.tmp``) and
    unlisted segments go, and the lowest ``EXT-X-MEDIA-SEQUENCE`` of the playlists is
    returned: ffmpeg's ``append_list`` then continues each playlist from its own sequence
    (a higher start number would override the playlists' sequence and renumber them).
    ``fresh_number`` is returned when there is no playlist.
    """
    os.makedirs(output_dir, exist_ok=True)
    if clear:
        for entry in os.scandir(output_dir):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        return fresh_number
    sequences = []
    for entry in os.scandir(output_dir):
        if not entry.is_dir(follow_symlinks=False) or not _VARIANT_DIR.fullmatch(entry.name):
            continue
        sequence, listed = _read_playlist(os.path.join(entry.path, VARIANT_PLAYLIST))
        if sequence is not None:
            sequences.append(sequence)
        numbers = []
        for item in os.scandir(entry.path):
            match = _SEGMENT.fullmatch(item.name)
            if match is not None and (match.group(2) or item.name not in listed):
                os.unlink(item.path)
            elif match is not None:
                numbers.append(int(match.group(1)))
        if numbers:
            # The next ffmpeg appends after a discontinuity at this segment number.
            with open(os.path.join(entry.path, DISCONTINUITIES), "a", encoding="ascii") as f:
                f.write(f"{max(numbers) + 1}\n")
    return min(sequences) if sequences else fresh_number


def discontinuity_sequence(playlist: bytes, joins: bytes) -> bytes:
    """``playlist`` with ``EXT-X-DISCONTINUITY-SEQUENCE`` set from the recorded ``joins``.

    ffmpeg never writes that tag, so once a segment carrying ``EXT-X-DISCONTINUITY``
    scrolls out of the window, players would number later segments differently from
    one reload to the next (RFC 8216, 6.2.2). The count is the joins before the first
    listed segment.
    """
    sequence = None
    for line in playlist.splitlines():
        if line.startswith(b"#EXT-X-MEDIA-SEQUENCE:"):
            value = line.partition(b":")[2].strip()
            sequence = int(value) if _NUMBER.fullmatch(value) else None
            break
    if sequence is None or b"#EXT-X-DISCONTINUITY-SEQUENCE" in playlist:
        return playlist
    gone = sum(1 for j in joins.split() if _NUMBER.fullmatch(j) and int(j) < sequence)
    if not gone:
        return playlist
    tag = b"#EXT-X-DISCONTINUITY-SEQUENCE:%d" % gone
    head, sep, tail = playlist.partition(b"#EXT-X-MEDIA-SEQUENCE:")
    line_end = tail.find(b"\n")
    if line_end < 0:
        return playlist
    return head + sep + tail[: line_end + 1] + tag + b"\n" + tail[line_end + 1 :]


def _read_playlist(playlist: str) -> tuple[int | None, set[str]]:
    """The media sequence of a playlist and the names it lists."""
    sequence = None
    listed = set()
    try:
        with open(playlist, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                    value = line.partition(":")[2]
                    sequence = int(value) if value.isdigit() else None
                elif line and not line.startswith("#"):
                    listed.add(line)
    except OSError:
        pass
    return sequence, listed


def finish_output(output_dir: str) -> None:
    """Blocking: the broadcast in ``output_dir`` is over for good: end its playlists.

    Each variant playlist keeps only the segments that are still there and gets
    ``EXT-X-ENDLIST``; a playlist left with none is removed, and the master playlist
    with the last of them, so a player offline finds either a finished list it can play
    to the end or nothing (404), never a reference to a deleted file. Partial (``.tmp``)
    segments go. Also run on a directory a previous run of the daemon left behind, which
    may have been killed mid-broadcast.
    """
    try:
        entries = list(os.scandir(output_dir))
    except (FileNotFoundError, NotADirectoryError):
        return
    variants = 0
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False) or not _VARIANT_DIR.fullmatch(entry.name):
            continue
        present = set()
        for item in os.scandir(entry.path):
            match = _ANY_SEGMENT.fullmatch(item.name)
            if match is not None and match.group(1):
                os.unlink(item.path)
            elif match is not None:
                present.add(item.name)
        path = os.path.join(entry.path, VARIANT_PLAYLIST)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        finished = ended_playlist(text, present)
        if finished is None:
            os.unlink(path)
            continue
        variants += 1
        if finished != text:
            _replace(path, finished)
    if not variants:
        try:
            os.unlink(os.path.join(output_dir, MASTER_PLAYLIST))
        except FileNotFoundError:
            pass


def ended_playlist(text: str, present: set[str]) -> str | None:
    """``text`` (a media playlist) listing only the segments named in ``present``, with
    ``EXT-X-ENDLIST``; None when no segment is left.

    Segments missing at the head move ``EXT-X-MEDIA-SEQUENCE`` on (as if they had slid
    out of the window); a missing segment further on hands its discontinuity, if it had
    one, to the next segment kept, and its ``EXT-X-MAP`` (fMP4) to the next kept one
    that has none of its own.
    """
    head: list[str] = []
    groups: list[list[str]] = []
    pending: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line == ENDLIST:
            continue
        if line.startswith(_LIST_TAGS):
            head.append(line)
        elif line.startswith("#"):
            pending.append(line)
        else:
            groups.append(pending + [line])
            pending = []
    kept: list[list[str]] = []
    dropped_at_head = 0
    carry = False
    carry_map: str | None = None
    for group in groups:
        maps = [line for line in group if line.startswith("#EXT-X-MAP:")]
        if group[-1] not in present:
            if kept:
                carry = carry or "#EXT-X-DISCONTINUITY" in group
            else:
                dropped_at_head += 1
            carry_map = maps[-1] if maps else carry_map
            continue
        if carry_map is not None and not maps:
            group = [*group[:-2], carry_map, *group[-2:]] if len(group) >= 2 else group
        carry_map = None
        if carry and "#EXT-X-DISCONTINUITY" not in group:
            group = ["#EXT-X-DISCONTINUITY", *group]
        carry = False
        kept.append(group)
    if not kept:
        return None
    if dropped_at_head:
        for i, line in enumerate(head):
            value = line.partition(":")[2]
            if line.startswith("#EXT-X-MEDIA-SEQUENCE:") and value.isdigit():
                head[i] = f"#EXT-X-MEDIA-SEQUENCE:{int(value) + dropped_at_head}"
    lines = head + [line for group in kept for line in group] + [ENDLIST]
    return "\n".join(lines) + "\n"


def _replace(path: str, text: str) -> None:
    """Write ``text`` to ``path`` at once for readers: a new file renamed over it."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
