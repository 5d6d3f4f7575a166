"""``preview.gif``: a short animated preview of the live broadcast, refreshed every 15 s.

Owncast shows it in the directory and as the offline poster. While a broadcast is live a
loop on the reactor's clock (``interval``) makes one from the newest complete segment of
the last variant (the smallest one)::

    <output>/<last variant>/stream-<highest n>.ts    (``temp_file``: complete once named)
        -> a separate, short-lived ffmpeg: 3 s at 5 fps, 320 px wide, a 64-colour palette
        -> <output>/preview.gif.tmp
        -> os.replace to <output>/preview.gif, in a thread (readers never see half a GIF)

At most one preview ffmpeg runs at a time (a tick while one runs does nothing), a tick
whose newest segment already has its preview does nothing, and an ffmpeg that runs over
``timeout`` (10 s) is killed. ``stop()`` (the broadcast ended, or the transcoder's
service stops) ends the loop and kills the running ffmpeg; its Deferred fires once that
process has ended and its temporary file is gone. The last preview stays, as the poster
of the offline stream, until a new broadcast clears the output directory.

Every tick catches and logs its own errors, so one bad segment never stops the loop.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from owncast.transcode import ffenv

_log = Logger()

PREVIEW = "preview.gif"
PREVIEW_TMP = PREVIEW + ".tmp"
#: Seconds of the segment the preview shows, and its frame rate and width.
SECONDS = 3
FPS = 5
WIDTH = 320
GIF_FILTER = (
    f"fps={FPS},scale={WIDTH}:-2:flags=lanczos,split[a][b];"
    "[a]palettegen=max_colors=64[p];[b][p]paletteuse"
)
_SEGMENT = re.compile(r"stream-([0-9]{1,19})\.ts")


def preview_argv(ffmpeg: str, segment: str, output: str) -> list[str]:
    """The argv (``argv[0]`` is ``ffmpeg``) that turns ``segment`` into an animated GIF."""
    return [
        *ffenv.command(ffmpeg, "error", reads_stdin=False),
        "-threads", "1", "-t", str(SECONDS), "-i", segment,
        "-map", "0:v:0", "-an", "-sn",
        "-vf", GIF_FILTER, "-loop", "0", "-f", "gif", output,
    ]  # fmt: skip


def newest_segment(directory: str) -> str | None:
    """Blocking: the path of the highest-numbered complete segment in ``directory``."""
    best, best_number = None, -1
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return None
    for entry in entries:
        match = _SEGMENT.fullmatch(entry.name)
        if match is not None and int(match.group(1)) > best_number:
            best, best_number = entry.path, int(match.group(1))
    return best


def _discard(path: str) -> None:
    """Blocking: remove ``path`` if it is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _GifProtocol(ProcessProtocol):
    transport: IProcessTransport  # set by spawnProcess before any callback
    """One preview ffmpeg: keeps the end of its stderr, fires ``ended`` with its status."""

    def __init__(self) -> None:
        self.ended: Deferred = Deferred()
        self.done = False
        self.killed = False
        self.timeout_call: Any = None
        self.tail: deque[str] = deque(maxlen=3)

    def connectionMade(self) -> None:
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        pass

    def errReceived(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                self.tail.append(line.strip()[:300])

    def kill(self) -> None:
        if self.done:
            return
        self.killed = True
        try:
            self.transport.signalProcess("KILL")
        except ProcessExitedAlready:
            pass
        except OSError:
            _log.failure("Could not kill the preview ffmpeg")

    def processEnded(self, reason: Any) -> None:
        self.done = True
        if self.timeout_call is not None and self.timeout_call.active():
            self.timeout_call.cancel()
        self.timeout_call = None
        self.ended.callback(getattr(reason.value, "exitCode", None))


class PreviewMaker:
    """Refreshes ``<output_dir>/preview.gif`` while a broadcast is live.

    ``reactor`` provides ``IReactorProcess`` and ``IReactorTime``; ``config`` returns the
    transcoder's current settings (``.ffmpeg``, ``.variants``); ``blocking(fn, *args)``
    runs file work off the reactor thread. The transcoder calls ``start()`` when a
    broadcast goes live and ``stop()`` when it ends or its service stops.
    """

    def __init__(
        self,
        reactor: Any,
        config: Callable[[], Any],
        output_dir: str | os.PathLike,
        blocking: Callable[..., Deferred],
        *,
        interval: float = 15.0,
        timeout: float = 10.0,
        env: dict | None = None,
    ):
        self._reactor = reactor
        self._config = config
        self.output_dir = os.fspath(output_dir)
        self._blocking = blocking
        self.interval = interval
        self.timeout = timeout
        self._env = env
        self._loop: LoopingCall | None = None
        #: bumped by start/stop, so a refresh of an earlier broadcast changes nothing
        self._generation = 0
        self._refreshing: Deferred | None = None
        self._waiters: list[Deferred] = []
        self._proc: _GifProtocol | None = None
        self._last_segment: str | None = None

    @property
    def live(self) -> bool:
        return self._loop is not None

    @property
    def pid(self) -> int | None:
        """The running preview ffmpeg's process id, or None."""
        proc = self._proc
        return proc.transport.pid if proc is not None and not proc.done else None

    def start(self) -> None:
        """A broadcast went live: refresh every ``interval`` seconds, first after one."""
        self._generation += 1
        self._last_segment = None
        if self._proc is not None:
            self._proc.kill()  # a preview of the broadcast before: not wanted any more
        if self._loop is None:
            self._loop = LoopingCall(self._tick)
            self._loop.clock = self._reactor
            self._loop.start(self.interval, now=False)

    def stop(self) -> Deferred:
        """The broadcast ended: no more refreshes; fires once no preview ffmpeg is left."""
        self._generation += 1
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        if self._proc is not None:
            self._proc.kill()
        if self._refreshing is None:
            return succeed(None)
        d: Deferred = Deferred()
        self._waiters.append(d)
        return d

    def _tick(self) -> None:
        try:
            self.refresh()
        except Exception:
            _log.failure("The preview refresh failed")

    def refresh(self) -> Deferred:
        """One refresh now, unless one is running or nothing is live; never fails."""
        if self._refreshing is not None or self._loop is None:
            return succeed(None)
        d = self._refreshing = Deferred.fromCoroutine(self._refresh(self._generation))
        d.addErrback(lambda failure: _log.failure("Could not make preview.gif", failure))
        d.addBoth(self._refreshed)
        return d

    def _refreshed(self, result: Any) -> None:
        self._refreshing = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    async def _refresh(self, generation: int) -> None:
        config = self._config()
        if not config.ffmpeg or not config.variants:
            return
        variant = os.path.join(self.output_dir, str(len(config.variants) - 1))
        segment = await self._blocking(newest_segment, variant)
        if segment is None or segment == self._last_segment or generation != self._generation:
            return
        tmp = os.path.join(self.output_dir, PREVIEW_TMP)
        proto = _GifProtocol()
        argv = preview_argv(config.ffmpeg, segment, tmp)
        ffenv.spawn(self._reactor, proto, argv, self._env)
        self._proc = proto
        proto.timeout_call = self._reactor.callLater(self.timeout, self._timed_out, proto)
        try:
            code = await proto.ended
        finally:
            if self._proc is proto:
                self._proc = None
        if code == 0 and not proto.killed and generation == self._generation:
            self._last_segment = segment
            await self._blocking(os.replace, tmp, os.path.join(self.output_dir, PREVIEW))
            return
        if not proto.killed:
            _log.warn(
                "The preview ffmpeg failed (exit code {code}) on {segment}: {tail}",
                code=code,
                segment=segment,
                tail=" | ".join(proto.tail) or "(no output)",
            )
        await self._blocking(_discard, tmp)

    def _timed_out(self, proto: _GifProtocol) -> None:
        proto.timeout_call = None
        if not proto.done:
            _log.warn("The preview ffmpeg ran over {timeout} s; killing it", timeout=self.timeout)
            proto.kill()
