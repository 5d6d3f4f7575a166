"""The recordings as the API sees them: list, read, rename, delete, clips, MP4 downloads.

File work runs in a thread (``blocking``); MP4s are made by ffmpeg remuxing the kept
segments (``-c copy``: no encode) in a child process (``Remux``), never on the reactor
thread. A whole recording's MP4 is made once, on the first download, and kept beside it
(``download.mp4``, removed with it); concurrent downloads wait for the same run. A clip
is cut at keyframes from a playlist of just the segments it spans, so it works while
the broadcast is still live.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from owncast.recordings import files
from owncast.recordings.vod import CLIP_ID, Meta, clip_entries, parse_media, render_media

_log = Logger()

#: Seconds a remux may take before it is killed.
REMUX_TIMEOUT = 1800.0


class RemuxError(Exception):
    pass


class Remux(ProcessProtocol):
    """One ffmpeg remux; ``done`` fires with None, or fails with ``RemuxError``."""

    def __init__(self) -> None:
        self.done: Deferred = Deferred()
        self._err = b""

    def errReceived(self, data: bytes) -> None:
        self._err = (self._err + data)[-2000:]

    def processEnded(self, reason: Any) -> None:
        code = getattr(reason.value, "exitCode", None)
        if code == 0:
            self.done.callback(None)
        else:
            tail = self._err.decode("utf-8", "replace").strip().splitlines()[-1:]
            self.done.errback(RemuxError(f"ffmpeg exited with {code}: {' '.join(tail)}"))


def remux_argv(ffmpeg: str, playlist: str, out: str, seek: float = 0, length: float = 0) -> list:
    """ffmpeg remuxing an HLS playlist to MP4 (``-c copy``), from ``seek`` for ``length``
    seconds (0: all); an input seek with stream copy starts at the keyframe before."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    if seek > 0:
        argv += ["-ss", f"{seek:.3f}"]
    argv += ["-i", playlist]
    if length > 0:
        argv += ["-t", f"{length:.3f}"]
    argv += ["-map", "0", "-c", "copy", "-movflags", "+faststart", "-f", "mp4", out]
    return argv


def _write_clip_playlist(folder: str, variant: str, name: str, start: float, end: float) -> float:
    """Blocking: a VOD playlist of the segments of ``start``..``end``; the seek into it."""
    text = open(os.path.join(folder, variant, files.PLAYLIST), encoding="utf-8").read()
    entries, target = parse_media(text)
    kept, offset = clip_entries(entries, start, end)
    if not kept:
        raise RemuxError("no segment covers that span")
    with open(os.path.join(folder, variant, name), "w", encoding="utf-8") as f:
        f.write(render_media(kept, True, target))
    return offset


def _list_clips(folder: str) -> list[dict]:
    clips = []
    try:
        names = sorted(os.listdir(os.path.join(folder, "clips")))
    except FileNotFoundError:
        return []
    for name in names:
        if name.endswith(".json"):
            try:
                with open(os.path.join(folder, "clips", name), encoding="utf-8") as f:
                    clips.append(json.load(f))
            except (OSError, ValueError):
                continue
    return clips


def _save_clip(folder: str, clip: dict) -> None:
    number = clip["id"].rpartition("-")[2]
    files._replace(os.path.join(folder, "clips", f"{number}.json"), json.dumps(clip))


def _next_clip(folder: str) -> int:
    os.makedirs(os.path.join(folder, "clips"), exist_ok=True)
    numbers = [
        int(n.partition(".")[0])
        for n in os.listdir(os.path.join(folder, "clips"))
        if n.partition(".")[0].isdigit()
    ]
    return max(numbers, default=0) + 1


def _finish_file(tmp: str, path: str) -> int:
    os.replace(tmp, path)
    return os.stat(path).st_size


class Library:
    """``root`` holds the recordings; ``ffmpeg()`` names the binary; ``reactor`` spawns."""

    def __init__(
        self,
        root: str | os.PathLike,
        blocking: Callable[..., Deferred],
        reactor: Any,
        ffmpeg: Callable[[], str | None],
        recorder: Any = None,
    ):
        self.root = os.fspath(root)
        self._blocking = blocking
        self._reactor = reactor
        self._ffmpeg = ffmpeg
        self.recorder = recorder
        self._making: dict[str, list[Deferred]] = {}
        #: where a kept segment (``hls/<n>/<name>``) is in segment storage; None: here
        self.segment_url: Callable[[str], str | None] = lambda key: None

    def folder(self, recording_id: str) -> str:
        return os.path.join(self.root, recording_id)

    async def recordings(self) -> list[Meta]:
        return await self._blocking(files.list_recordings, self.root)

    async def get(self, recording_id: str) -> Meta | None:
        return await self._blocking(files.get_recording, self.root, recording_id)

    async def rename(self, recording_id: str, title: str) -> Meta | None:
        recorder = self.recorder
        session = getattr(recorder, "session", None)
        if session is not None and session.meta.id == recording_id:
            session.meta.title = title  # the recorder rewrites its file
        return await self._blocking(files.rename, self.root, recording_id, title)

    async def delete(self, recording_id: str) -> bool:
        if self.recorder is not None:
            return await self.recorder.delete(recording_id)
        return await self._blocking(files.delete, self.root, recording_id) is not None

    async def clips(self, recording_id: str) -> list[dict]:
        return await self._blocking(_list_clips, self.folder(recording_id))

    async def clip(self, clip_id: str) -> dict | None:
        match = CLIP_ID.fullmatch(clip_id)
        if match is None:
            return None
        for clip in await self.clips(match.group(1)):
            if clip.get("id") == clip_id:
                return clip
        return None

    async def variant_playlist(self, recording_id: str, variant: str) -> bytes | None:
        """A variant's VOD playlist, its segments pointing at segment storage where they
        are kept there."""
        path = os.path.join(self.folder(recording_id), variant, files.PLAYLIST)
        body = await self._blocking(_read_bytes, path)
        if body is None:
            return None
        lines = body.split(b"\n")
        for i, line in enumerate(lines):
            if line and not line.startswith(b"#"):
                url = self.segment_url(f"hls/{variant}/{line.decode('ascii', 'replace')}")
                if url is not None:
                    lines[i] = url.encode("utf-8")
        return b"\n".join(lines)

    # -- MP4 -----------------------------------------------------------------------------
    async def _run(self, argv: list) -> None:
        proto = Remux()
        self._reactor.spawnProcess(proto, argv[0], argv, env=None, childFDs={1: "r", 2: "r"})

        def kill() -> None:
            try:
                if proto.transport is not None:
                    proto.transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass

        timer = self._reactor.callLater(REMUX_TIMEOUT, kill)
        try:
            await proto.done
        finally:
            if timer.active():
                timer.cancel()

    def _binary(self) -> str:
        ffmpeg = self._ffmpeg()
        if not ffmpeg:
            raise RemuxError("no ffmpeg binary is configured or bundled")
        return ffmpeg

    async def download(self, meta: Meta) -> str:
        """The path of the recording's MP4, made on first use (shared by concurrent asks)."""
        path = os.path.join(self.folder(meta.id), files.DOWNLOAD)
        if await self._blocking(os.path.exists, path):
            return path
        waiters = self._making.get(meta.id)
        if waiters is None:
            waiters = self._making[meta.id] = []
            Deferred.fromCoroutine(self._make_download(meta, path)).addBoth(self._made, meta.id)
        waiter: Deferred = Deferred()
        waiters.append(waiter)
        await waiter
        return path

    def _made(self, result: Any, recording_id: str) -> None:
        for waiter in self._making.pop(recording_id, []):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

    async def _make_download(self, meta: Meta, path: str) -> None:
        playlist = os.path.join(self.folder(meta.id), meta.best, files.PLAYLIST)
        tmp = path + ".part"
        await self._run(remux_argv(self._binary(), playlist, tmp))
        await self._blocking(_finish_file, tmp, path)
        await self._blocking(files.refresh_size, self.root, meta.id)

    async def make_clip(self, meta: Meta, start: float, end: float, title: str) -> dict:
        """Cut ``start``..``end`` (checked by the caller) into a new clip's MP4."""
        folder = self.folder(meta.id)
        number = await self._blocking(_next_clip, folder)
        clip_id = f"{meta.id}-{number}"
        name = f"clip-{number}.m3u8"
        seek = await self._blocking(_write_clip_playlist, folder, meta.best, name, start, end)
        out = os.path.join(folder, "clips", f"{number}.mp4")
        playlist = os.path.join(folder, meta.best, name)
        try:
            await self._run(remux_argv(self._binary(), playlist, out + ".part", seek, end - start))
        finally:
            await self._blocking(_remove, playlist)
        size = await self._blocking(_finish_file, out + ".part", out)
        clip = {
            "id": clip_id,
            "recordingId": meta.id,
            "title": title,
            "start": start,
            "end": end,
            "duration": end - start,
            "createdAt": self._reactor.seconds(),
            "size": size,
        }
        await self._blocking(_save_clip, folder, clip)
        await self._blocking(files.refresh_size, self.root, meta.id)
        return clip

    def clip_path(self, clip_id: str) -> str | None:
        match = CLIP_ID.fullmatch(clip_id)
        if match is None:
            return None
        return os.path.join(self.folder(match.group(1)), "clips", f"{match.group(2)}.mp4")


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
