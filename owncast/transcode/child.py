"""One ffmpeg run as a ``ProcessProtocol``: its events go to the ``Transcoder`` that
spawned it (``owncast.transcode.process``), its stderr to the log, rate-limited."""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from zope.interface import implementer

_log = Logger()


@implementer(IPushProducer)
class FfmpegProtocol(ProcessProtocol):
    """One ffmpeg run: forwards its events to the ``Transcoder``, logs its stderr.

    It is also the push producer registered on ffmpeg's stdin, which tells the
    transcoder when the pipe is full.
    """

    #: a process transport (IProcessTransport, IConsumer), set by ``spawnProcess``
    transport: Any

    #: stderr lines logged per window; the rest are counted and reported once.
    max_lines = 30
    window = 10.0

    def __init__(self, owner: Any, audio: bool, video: bool = True):
        self._owner = owner
        #: the tracks this run reads (its FLV header announces them)
        self.audio = audio
        self.video = video
        self.pid: int | None = None
        self.ended = False
        #: True once we asked it to end: its exit is not a crash.
        self.expected = False
        self.signal_call: Any = None
        self.tail: deque[str] = deque(maxlen=3)
        self._waiters: list[Deferred] = []
        self._partial = b""
        self._window_start = -1e9
        self._lines = 0
        self._suppressed = 0

    def when_ended(self) -> Deferred:
        if self.ended:
            return succeed(None)
        d: Deferred = Deferred()
        self._waiters.append(d)
        return d

    def stop(self, clock: Any, grace: float, kill_timeout: float) -> Deferred:
        """Close stdin, TERM after ``grace`` seconds, KILL ``kill_timeout`` seconds later;
        fire once it has ended. Its exit is expected from now on (not a crash)."""
        if not self.expected and not self.ended:
            self.expected = True
            try:
                # A registered producer would keep the pipe open; then EOF lets ffmpeg
                # flush its encoders and write the last segment.
                self.transport.unregisterProducer()
                self.transport.closeStdin()
            except Exception:
                _log.failure("Could not close ffmpeg's stdin")
            self.signal_call = clock.callLater(grace, self._signal, clock, "TERM", kill_timeout)
        self.expected = True
        return self.when_ended()

    def _signal(self, clock: Any, signal: str, kill_timeout: float) -> None:
        self.signal_call = None
        if self.ended:
            return
        _log.info("Sending {signal} to ffmpeg (pid {pid})", signal=signal, pid=self.pid)
        try:
            self.transport.signalProcess(signal)
        except ProcessExitedAlready:
            return
        except OSError:
            _log.failure("Could not signal ffmpeg")
        if signal == "TERM":
            self.signal_call = clock.callLater(
                kill_timeout, self._signal, clock, "KILL", kill_timeout
            )

    def connectionMade(self) -> None:
        self.pid = self.transport.pid
        self._owner._process_started(self)

    def outReceived(self, data: bytes) -> None:
        pass  # ffmpeg writes nothing to stdout here

    def errReceived(self, data: bytes) -> None:
        lines = (self._partial + data).replace(b"\r", b"\n").split(b"\n")
        self._partial = lines.pop()[-4096:]
        for line in lines:
            self._line(line)

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            return
        self.tail.append(line)
        lowered = line.lower()
        if self.audio and "matches no streams" in lowered:
            self._owner._audio_missing(self)
        now = self._owner._now()
        if now - self._window_start >= self.window:
            if self._suppressed:
                _log.warn(
                    "ffmpeg: {count} more lines not logged", count=self._suppressed, pid=self.pid
                )
            self._window_start, self._lines, self._suppressed = now, 0, 0
        self._lines += 1
        if self._lines > self.max_lines:
            self._suppressed += 1
        elif "error" in lowered or "fatal" in lowered:
            _log.warn("ffmpeg: {line}", line=line, pid=self.pid)
        else:
            _log.info("ffmpeg: {line}", line=line, pid=self.pid)

    def processEnded(self, reason: Any) -> None:
        if self.signal_call is not None and self.signal_call.active():
            self.signal_call.cancel()
        self.signal_call = None
        if self._partial:
            self._line(self._partial)
            self._partial = b""
        self.ended = True
        self._owner._process_ended(self, reason)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    # IPushProducer, for ffmpeg's stdin
    def pauseProducing(self) -> None:
        self._owner._stdin_paused(self, True)

    def resumeProducing(self) -> None:
        self._owner._stdin_paused(self, False)

    def stopProducing(self) -> None:
        pass
