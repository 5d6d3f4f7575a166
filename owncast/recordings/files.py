"""Blocking file work of recordings (run it in a thread): keep the live segments, write
the VOD playlists and ``recording.json``, list, rename and delete recordings.

Segments are kept by hard-linking the live stream's files as ffmpeg lists them (a copy
only where a link cannot be made), before its playlist window deletes them: the live
stream and the recording share the bytes, and nothing is encoded twice. In low-latency
mode the live files are ``owncast.llhls.disk``'s: fMP4 segments, each kept with the
initialization section its ``EXT-X-MAP`` names.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

from owncast.recordings.vod import (
    RECORDING_ID,
    SEGMENT,
    VARIANT,
    Entry,
    Meta,
    master_for,
    parse_media,
    render_media,
)

META = "recording.json"
PLAYLIST = "stream.m3u8"
THUMBNAIL = "thumbnail.jpg"
DOWNLOAD = "download.mp4"
#: the transcoder's file of segment numbers where a restarted ffmpeg appended
_JOINS = "discontinuities"


@dataclass
class Track:
    """One kept variant of an open recording."""

    entries: list[Entry] = field(default_factory=list)
    last: int = -1
    target: int = 0
    #: the names of ``entries``
    names: set[str] = field(default_factory=set)
    #: the initialization sections kept (fMP4)
    inits: set[str] = field(default_factory=set)


@dataclass
class Session:
    """An open recording: what ``collect`` has kept so far."""

    folder: str
    meta: Meta
    tracks: dict[str, Track] = field(default_factory=dict)
    master: bool = False


def _replace(path: str, data: str | bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def write_meta(folder: str, meta: Meta) -> None:
    _replace(os.path.join(folder, META), json.dumps(meta.to_json(), indent=1))


def read_meta(folder: str) -> Meta | None:
    text = _read_text(os.path.join(folder, META))
    if text is None:
        return None
    try:
        return Meta.from_json(json.loads(text))
    except ValueError:
        return None


def open_session(root: str, meta: Meta) -> Session:
    """Blocking: the folder of a new recording, with its ``recording.json``."""
    folder = os.path.join(root, meta.id)
    os.makedirs(folder, exist_ok=True)
    for variant in meta.variants:
        os.makedirs(os.path.join(folder, variant), exist_ok=True)
    write_meta(folder, meta)
    # Segment numbers of a broadcast start at the Unix time it began (the transcoder's
    # start number), so what the live folder still holds of the previous broadcast,
    # until the transcoder clears it, is numbered below: never taken (2 s of slack for
    # the transcoder and the stream state reading the clock apart).
    first = int(meta.startTime) - 2
    return Session(folder, meta, {v: Track(last=first) for v in meta.variants})


def _keep(src: str, dst: str) -> int | None:
    """Link (else copy) ``src`` to ``dst``; its size, or None when ``src`` is gone."""
    try:
        os.link(src, dst)
    except FileExistsError:
        pass
    except FileNotFoundError:
        return None
    except OSError:  # another file system, or links not allowed
        try:
            shutil.copyfile(src, dst)
        except FileNotFoundError:
            return None
    return os.stat(dst).st_size


def collect(hls_dir: str, session: Session) -> int:
    """Blocking: keep the segments the live playlists list that the recording has not
    yet; rewrite what changed. Returns the bytes added."""
    added = 0
    folder = session.folder
    if not session.master:
        text = _read_text(os.path.join(hls_dir, PLAYLIST))
        master = master_for(text, set(session.meta.variants)) if text else None
        if master is not None:
            _replace(os.path.join(folder, PLAYLIST), master)
            session.master = True
    for variant, track in session.tracks.items():
        live = os.path.join(hls_dir, variant)
        text = _read_text(os.path.join(live, PLAYLIST))
        if not text:
            continue
        entries, target = parse_media(text)
        track.target = max(track.target, target)
        joins = None
        changed = False
        for e in entries:
            if e.number <= track.last:
                continue
            if joins is None:
                joins = {int(j) for j in (_read_text(os.path.join(live, _JOINS)) or "").split()
                         if j.isdigit() and len(j) < 20}  # fmt: skip
            if e.init and e.init not in track.inits:
                size = _keep(os.path.join(live, e.init), os.path.join(folder, variant, e.init))
                if size is None:
                    continue
                track.inits.add(e.init)
                added += size
            size = _keep(os.path.join(live, e.name), os.path.join(folder, variant, e.name))
            if size is None:
                continue
            gap = bool(track.entries) and e.number != track.last + 1
            if (gap or e.number in joins) and track.entries and not e.discontinuity:
                e = Entry(e.name, e.duration, True)
            track.entries.append(e)
            track.names.add(e.name)
            track.last = e.number
            added += size
            changed = True
        if changed:
            _write_track(folder, variant, track, ended=False)
    if not os.path.exists(os.path.join(folder, THUMBNAIL)):
        _keep(os.path.join(hls_dir, THUMBNAIL), os.path.join(folder, THUMBNAIL))
    session.meta.size += added
    session.meta.duration = duration_of(session)
    write_meta(folder, session.meta)
    return added


def _write_track(folder: str, variant: str, track: Track, ended: bool) -> None:
    path = os.path.join(folder, variant, PLAYLIST)
    _replace(path, render_media(track.entries, ended, track.target))


def duration_of(session: Session) -> float:
    return max((sum(e.duration for e in t.entries) for t in session.tracks.values()), default=0)


def close_session(hls_dir: str | None, session: Session, end_time: float) -> Meta:
    """Blocking: keep the last segments (unless ``hls_dir`` is None) and end the
    playlists; a recording that kept nothing is removed. Returns its final ``Meta``."""
    if hls_dir is not None:
        collect(hls_dir, session)
    meta = session.meta
    meta.endTime = end_time
    meta.duration = duration_of(session)
    if not any(t.entries for t in session.tracks.values()):
        shutil.rmtree(session.folder, ignore_errors=True)
        return meta
    for variant, track in session.tracks.items():
        if track.entries:
            _write_track(session.folder, variant, track, ended=True)
    meta.size = folder_size(session.folder)
    write_meta(session.folder, meta)
    return meta


def recover(root: str, now: float, hls_dir: str | None = None) -> list[str]:
    """Blocking: end the recordings a killed daemon left open, from what is on disk; the
    newest also keeps what the live output (``hls_dir``) still lists after its last kept
    segment, so the kill loses at most the segment being written. Returns their ids."""
    ended = []
    newest = True
    for meta in list_recordings(root):  # newest first
        if not meta.live:
            newest = False
            continue
        folder = os.path.join(root, meta.id)
        session = Session(folder, meta, master=True)
        for variant in meta.variants:
            text = _read_text(os.path.join(folder, variant, PLAYLIST)) or ""
            entries, target = parse_media(text)
            present = [e for e in entries if os.path.exists(os.path.join(folder, variant, e.name))]
            last = present[-1].number if present else -1
            inits = {e.init for e in present if e.init}
            names = {e.name for e in present}
            session.tracks[variant] = Track(present, last, target, names, inits)
        if newest and hls_dir is not None:
            collect(hls_dir, session)
        newest = False
        end = meta.startTime
        for variant, track in session.tracks.items():
            for e in track.entries[-1:]:
                end = max(end, os.stat(os.path.join(folder, variant, e.name)).st_mtime)
        close_session(None, session, min(end, now))
        ended.append(meta.id)
    return ended


def folder_size(folder: str) -> int:
    total = 0
    for top, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


def list_recordings(root: str) -> list[Meta]:
    """Blocking: every recording's ``Meta``, newest first."""
    try:
        names = [e.name for e in os.scandir(root) if e.is_dir() and RECORDING_ID.fullmatch(e.name)]
    except FileNotFoundError:
        return []
    metas = [m for m in (read_meta(os.path.join(root, n)) for n in names) if m is not None]
    return sorted(metas, key=lambda m: m.startTime, reverse=True)


def get_recording(root: str, recording_id: str) -> Meta | None:
    if not RECORDING_ID.fullmatch(recording_id):
        return None
    return read_meta(os.path.join(root, recording_id))


def rename(root: str, recording_id: str, title: str) -> Meta | None:
    meta = get_recording(root, recording_id)
    if meta is None:
        return None
    meta.title = title
    write_meta(os.path.join(root, recording_id), meta)
    return meta


def refresh_size(root: str, recording_id: str) -> None:
    """Blocking: count what a finished recording holds now (an MP4 or a clip was made),
    for retention by size. A recording still going on is counted by the recorder."""
    meta = get_recording(root, recording_id)
    if meta is not None and not meta.live:
        folder = os.path.join(root, recording_id)
        meta.size = folder_size(folder)
        write_meta(folder, meta)


def delete(root: str, recording_id: str) -> list[str] | None:
    """Blocking: remove a recording; the storage keys (``hls/<n>/<name>``) of its
    segments, or None when there was no such recording."""
    if not RECORDING_ID.fullmatch(recording_id):
        return None
    folder = os.path.join(root, recording_id)
    if not os.path.isdir(folder):
        return None
    keys = [
        f"hls/{variant}/{name}"
        for variant in sorted(os.listdir(folder))
        if VARIANT.fullmatch(variant)
        for name in segment_names(folder, variant)
    ]
    shutil.rmtree(folder, ignore_errors=True)
    return keys


def disk_free(path: str) -> int:
    """Free bytes on the file system of ``path`` (the nearest folder that exists)."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return shutil.disk_usage(path).free


def segment_names(folder: str, variant: str) -> list[str]:
    """The segment files of one variant of a recording."""
    try:
        return sorted(n for n in os.listdir(os.path.join(folder, variant)) if SEGMENT.fullmatch(n))
    except FileNotFoundError:
        return []
