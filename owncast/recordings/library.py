"""The recordings as the API sees them: list, read, rename, delete, clips, MP4 downloads.

File work runs in a thread (``blocking``); MP4s are made by ffmpeg remuxing the kept
segments (``-c copy``: no encode) in a child process, never on the reactor thread.

A whole recording's MP4 is made once, on the first download, and kept beside it
(``download.mp4``, removed with it). An hour at 8 Mbit/s is 3.8 GB, about 20 s of
remuxing, so it is not made first and sent after: ffmpeg writes fragmented MP4 (the
``moov`` first, then a fragment per keyframe, a fragment index at the end; it only ever
appends) to ``download.mp4.part``, and every download that asks meanwhile (``Tail``)
reads that file as it grows, from its first byte. Once whole, the file takes its final
name and later downloads are sent from it, with ranges. Should the fragmented run fail
before writing anything (audio the MP4 muxer cannot frame that way), a plain
``+faststart`` MP4 is made instead and the waiting downloads get it once made.

A clip is cut at keyframes from a playlist of just the segments it spans, so it works
while the broadcast is still live.
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
        self._making: dict[str, Making] = {}
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
        """Run one remux to its end; RemuxError when it fails (or ran too long)."""
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

    async def mp4(self, meta: Meta) -> str | Making:
        """The recording's MP4: its path once made, else the run making it (started now
        if none is), for ``Making.tail`` to follow as it grows."""
        making = self._making.get(meta.id)
        if making is not None:
            return making
        path = os.path.join(self.folder(meta.id), files.DOWNLOAD)
        if await self._blocking(os.path.exists, path):
            return path
        making = self._making.get(meta.id)  # one may have started meanwhile
        if making is None:
            playlist = os.path.join(self.folder(meta.id), meta.best, files.PLAYLIST)
            making = self._making[meta.id] = Making(self, path, playlist)
            making.start()
            making.done.addBoth(self._made, meta.id)
        return making

    def _made(self, result: Any, recording_id: str) -> None:
        self._making.pop(recording_id, None)
        if isinstance(result, Failure):
            _log.failure("Could not make the MP4 of recording {id}", result, id=recording_id)
        else:
            d = self._blocking(files.refresh_size, self.root, recording_id)
            d.addErrback(
                lambda f: _log.failure("Could not count recording {id}", f, id=recording_id)
            )

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


#: Fragmented MP4: an empty ``moov`` first, a fragment per keyframe, written in order.
FRAGMENTED = "+frag_keyframe+empty_moov+default_base_moof"
#: Seconds a download that has read all there is waits before it looks again.
TAIL_POLL = 0.05
#: Bytes per read of a download that follows a growing MP4.
TAIL_CHUNK = 1 << 20


def fragmented_argv(ffmpeg: str, playlist: str, out: str) -> list:
    """ffmpeg remuxing an HLS playlist to fragmented MP4 (``-c copy``). It only ever
    appends (never seeks back to patch), so what is in the file may be sent at once. The
    empty ``moov`` comes before any sample, so ADTS AAC is framed for MP4 by the filter
    (in a plain MP4 the muxer does that itself, as it writes its ``moov`` last)."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", playlist,
        "-map", "0", "-c", "copy", "-bsf:a", "aac_adtstoasc",
        "-movflags", FRAGMENTED, "-f", "mp4", out,
    ]  # fmt: skip


def _close(f: Any) -> None:
    f.close()


def _open_either(part: str, path: str) -> Any:
    """The growing file, or the finished one if it was renamed meanwhile."""
    try:
        return open(part, "rb")
    except FileNotFoundError:
        return open(path, "rb")


def _read_at(f: Any, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def _fire(d: Deferred) -> None:
    if not d.called:
        d.callback(None)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


class Making:
    """One whole-recording MP4 being made: ffmpeg writes fragmented MP4 to
    ``<path>.part``, which becomes ``path`` once whole. ``done`` fires when it is over
    (fails with ``RemuxError`` when no MP4 could be made); ``tail()`` follows the file."""

    def __init__(self, library: Library, path: str, playlist: str):
        self._library = library
        self._blocking = library._blocking
        self._reactor = library._reactor
        self.path = path
        self.part = path + ".part"
        self._playlist = playlist
        self.over = False
        self.error: Failure | None = None
        self.done: Deferred = Deferred()
        self._waiters: list[Deferred] = []

    def start(self) -> None:
        d = Deferred.fromCoroutine(self._make())
        d.addBoth(self._over)

    async def _make(self) -> None:
        ffmpeg = self._library._binary()
        made = self.part
        try:
            try:
                await self._library._run(fragmented_argv(ffmpeg, self._playlist, self.part))
            except RemuxError as e:
                if await self._blocking(_size, self.part) > 0:
                    raise
                # Not where followers look: a plain MP4 is rewritten at its end.
                await self._blocking(_remove, self.part)
                _log.info("Fragmented MP4 failed ({why}): making a plain one", why=e)
                made = self.path + ".plain"
                await self._library._run(remux_argv(ffmpeg, self._playlist, made))
            await self._blocking(os.replace, made, self.path)
        except BaseException:
            await self._blocking(_remove, self.part)
            await self._blocking(_remove, self.path + ".plain")
            raise

    def _over(self, result: Any) -> None:
        self.over = True
        if isinstance(result, Failure):
            self.error = result
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            _fire(d)
        if self.error is None:
            self.done.callback(None)
        else:
            self.done.errback(self.error)

    async def more(self) -> None:
        """Wait a little for the file to grow (at most ``TAIL_POLL`` s), or for the end."""
        if self.over:
            return
        d: Deferred = Deferred()
        self._waiters.append(d)
        timer = self._reactor.callLater(TAIL_POLL, _fire, d)
        await d
        if timer.active():
            timer.cancel()
        if d in self._waiters:
            self._waiters.remove(d)

    async def finished(self) -> None:
        """Wait until the MP4 is whole at ``path``; RemuxError when it cannot be."""
        if not self.over:
            d: Deferred = Deferred()
            self.done.addBoth(lambda r: d.callback(None))
            await d
        if self.error is not None:
            self.error.raiseException()

    def tail(self) -> Tail:
        return Tail(self, self._blocking)


class Tail:
    """One download reading a ``Making`` from its first byte as the file grows."""

    def __init__(self, making: Making, blocking: Callable[..., Deferred]):
        self._making = making
        self._blocking = blocking
        self._file: Any = None
        self.offset = 0

    async def read(self) -> bytes:
        """The next bytes; b"" at the end of the whole MP4; RemuxError when it failed.

        While the file grows, a short read is only what ffmpeg has written so far, and
        an empty one means waiting for more. A fragmented run that fails has written
        nothing (else it fails the download), and the plain MP4 made instead is read
        only once whole."""
        making = self._making
        while True:
            over = making.over
            if making.error is not None:
                making.error.raiseException()
            if self._file is None:
                if over or await self._blocking(_size, making.part) > 0:
                    self._file = await self._blocking(_open_either, making.part, making.path)
            if self._file is not None:
                data = await self._blocking(_read_at, self._file, self.offset, TAIL_CHUNK)
                if data or over:
                    self.offset += len(data)
                    return data
            await making.more()

    async def close(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            await self._blocking(_close, f)
