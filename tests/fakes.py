"""Stand-ins the tests share, written once: what the daemon gets from threads, disks and
other services, made to run on the test's thread.

Builders of whole test set-ups (a context, an in-memory client) live in ``tests.helpers``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from owncast.interfaces import IMediaSink, ISegmentStorage
from owncast.media import MediaTag, flv
from owncast.segments.sigv4 import canonical_path

#: Where the fake clocks start: a plausible present (POSIX seconds, November 2023).
START = 1_700_000_000


def inline(fn: Callable[..., Any], *args: Any) -> Deferred:
    """A ``blocking`` runner that runs the work at once on the test's thread, as the
    thread pool would run it, and hands back a Deferred that has already fired."""
    try:
        return succeed(fn(*args))
    except Exception:
        return fail()


@implementer(IMediaSink)
class RecordingSink:
    """Keeps every tag it is handed, and counts broadcasts begun and ended."""

    def __init__(self):
        self.received: list[MediaTag] = []
        self.starts = 0
        self.stops = 0

    def begin(self):
        self.starts += 1
        return succeed(None)

    def media(self, tag):
        self.received.append(tag)

    def end(self):
        self.stops += 1
        return succeed(None)

    def tags(self) -> list[tuple[int, int, bytes]]:
        return [(t.kind, t.timestamp, t.payload) for t in self.received]

    def flv(self) -> bytes:
        """The broadcast as the FLV the transcoder would write to ffmpeg."""
        return flv.header() + flv.encode(self.received)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers never see half a segment


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


@implementer(ISegmentStorage)
class DirectorySegmentStorage:
    """Segment storage in a local directory served at ``base_url``: a second
    ``ISegmentStorage`` (besides S3) that the storage contract runs against, and a
    storage the publisher tests can look into. ``blocking`` runs the file work."""

    def __init__(self, root: str | os.PathLike, base_url: str, blocking: Callable[..., Deferred]):
        self.root = Path(root)
        self._base = base_url.rstrip("/")
        self._blocking = blocking

    def _file(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes, content_type: str, cache_control: str) -> Deferred:
        return self._blocking(_write, self._file(key), data)

    def delete(self, key: str) -> Deferred:
        return self._blocking(_remove, self._file(key))

    def url(self, key: str) -> str:
        return f"{self._base}/{canonical_path(key)}"


@implementer(IProcessTransport)
class FakeProcess:
    """Records what the code under test does to its child; the test decides when it exits."""

    def __init__(self, reactor, proto, executable, args, env, childFDs, pid):
        self.reactor = reactor
        self.proto = proto
        self.executable = executable
        self.args = list(args)
        self.env = env
        self.childFDs = childFDs
        self.pid = pid
        self.written: list[bytes] = []
        self.stdin_closed = False
        self.signals: list[str] = []
        self.producer = None

    @property
    def stdin(self) -> bytes:
        return b"".join(self.written)

    def write(self, data):
        assert not self.stdin_closed, "write after closeStdin"
        self.written.append(data)

    def writeSequence(self, seq):
        for data in seq:
            self.write(data)

    def registerProducer(self, producer, streaming):
        assert streaming
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def closeStdin(self):
        assert self.producer is None, "stdin would stay open with a producer registered"
        self.stdin_closed = True

    def closeStdout(self):
        pass

    def closeStderr(self):
        pass

    def closeChildFD(self, descriptor):
        pass

    def writeToChild(self, childFD, data):
        pass

    def loseConnection(self):
        self.closeStdin()

    def signalProcess(self, signalID):
        if self.pid is None:
            raise ProcessExitedAlready()
        self.signals.append(signalID)

    def getPeer(self):
        return None

    def getHost(self):
        return None

    def stderr(self, text: str) -> None:
        self.proto.childDataReceived(2, text.encode())

    def exit(self, code: int = 0, signal: int | None = None) -> None:
        self.pid = None
        if code == 0 and signal is None:
            reason = ProcessDone(0)
        else:
            reason = ProcessTerminated(code if signal is None else None, signal)
        self.proto.processEnded(Failure(reason))


class FakeProcessReactor(Clock):
    """IReactorProcess + IReactorTime: spawnProcess builds FakeProcesses, time is a Clock
    that starts at ``START``."""

    def __init__(self):
        super().__init__()
        self.advance(START)
        self.processes: list[FakeProcess] = []
        self.spawn_error: Exception | None = None
        self._next_pid = 1000

    def spawnProcess(
        self,
        processProtocol,
        executable,
        args=(),
        env=None,
        path=None,
        uid=None,
        gid=None,
        usePTY=False,
        childFDs=None,
    ):
        if self.spawn_error is not None:
            raise self.spawn_error
        self._next_pid += 1
        process = FakeProcess(
            self, processProtocol, executable, args, env, childFDs, self._next_pid
        )
        self.processes.append(process)
        processProtocol.makeConnection(process)
        return process


def tcp_pair(testcase: unittest.TestCase, small_buffers: bool = False) -> tuple[Any, Any]:
    """A real Twisted TCP transport (``tcp.Server``, on a ``MemoryReactorClock``, so it writes
    only when the test calls ``doWrite``) on one end of a loopback connection, and the
    plain client socket on the other end."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        if small_buffers:  # so that one big frame does not fit into the kernel at once
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(listener.getsockname())
        accepted, address = listener.accept()
    if small_buffers:
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.settimeout(5)
    transport = tcp.Server(accepted, Protocol(), address, None, 1, MemoryReactorClock())
    transport.protocol.makeConnection(transport)
    testcase.addCleanup(client.close)
    testcase.addCleanup(accepted.close)
    return transport, client


class TranscoderCase(unittest.TestCase):
    """A ``Transcoder`` over ``FakeProcessReactor`` at ``latency_level``; whatever a test
    left running must still be ended by ``stopService``."""

    latency_level = 1
    ffmpeg = "/opt/ffmpeg/bin/ffmpeg"

    def setUp(self) -> None:
        from owncast.core.settings import DEFAULT_VARIANT
        from owncast.transcode.process import TranscodeConfig, Transcoder

        self.reactor = FakeProcessReactor()
        self.output = Path(self.mktemp())
        self.config = TranscodeConfig(
            self.ffmpeg, [dict(DEFAULT_VARIANT)], "libx264", self.latency_level
        )
        self.transcoder = Transcoder(
            self.reactor, lambda: self.config, self.output, blocking=inline
        )
        self.transcoder.startService()

    def tearDown(self) -> None:
        d = self.transcoder.stopService()
        for process in self.reactor.processes:
            if process.pid is not None:
                process.exit(0)
        self.assertTrue(d.called)

    @property
    def processes(self) -> list[FakeProcess]:
        return self.reactor.processes

    def send(self, *tags: Any) -> None:
        for tag in tags:
            self.transcoder.media(tag)
