"""Upkeep of the HLS output directory between two ffmpeg runs (blocking: run in a thread).

A new broadcast starts from an empty directory. A restarted ffmpeg (a crash, a reload,
a reconnect within 30 s) continues the playlists already there, so the directory is
tidied first: partial segments and segments no playlist lists any more are removed.
"""

from __future__ import annotations

import os
import re
import shutil

from owncast.transcode.argv import VARIANT_PLAYLIST

#: Per variant directory: the segment numbers where a restarted ffmpeg appended.
DISCONTINUITIES = "discontinuities"
_SEGMENT = re.compile(r"stream-([0-9]{1,19})\.ts(\.tmp)?")
_VARIANT_DIR = re.compile(r"[0-9]{1,2}")
#: A sequence or segment number (``int`` refuses over 4300 digits; ffmpeg writes 64 bits).
_NUMBER = re.compile(rb"[0-9]{1,19}")


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
