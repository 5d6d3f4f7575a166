"""Run the real ``twistd owncast`` daemon as a child process, for end-to-end tests.

``Daemon`` spawns ``twistd --nodaemon --pidfile= owncast ...`` from the repository root
with the real reactor, collects its output, waits until ``GET /api/status`` answers and
stops it with SIGTERM (SIGKILL after a deadline). ``start_daemon`` also registers the
stop as a cleanup of the test, so no process outlives a failing test.

Waiting is always polling with ``deferLater`` against a deadline, never ``time.sleep``.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectError
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.web.client import ResponseFailed, ResponseNeverReceived

REPO_ROOT = Path(__file__).resolve().parent.parent
TWISTD = os.path.join(sys.prefix, "bin", "twistd")

#: How long a daemon may take to answer ``/api/status`` after being spawned.
START_TIMEOUT = 30.0
#: How long a daemon may take to exit after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05

_GENERATED_KEY = re.compile(r"Generated a stream key[^\n]*: (\S+)[ \t]*$", re.M)


#: Ports handed to servers the tests start: below Linux's ephemeral range (32768-60999), so
#: no client socket of a parallel test (a slowloris test opens hundreds) can take one
#: between the pick and the server's bind, as a port from ``bind(0)`` could.
_PORTS = range(20_000, 32_000)
_random = random.SystemRandom()


def free_port() -> int:
    """A TCP port that was free on every interface a moment ago."""
    for _ in range(200):
        port = _random.choice(_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port found")


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = POLL_INTERVAL
) -> Any:
    """Poll ``predicate`` (may be async) until it returns something truthy, or fail."""
    deadline = reactor.seconds() + timeout
    while True:
        result = predicate()
        if hasattr(result, "__await__"):
            result = await result
        if result:
            return result
        if reactor.seconds() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await sleep(interval)


class DaemonExitedError(Exception):
    """The daemon ended while we were waiting for it to come up."""


class ProcessOutput(ProcessProtocol):
    """A child process's stdout and stderr as one byte string, and how it ended."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self.ended: Deferred = Deferred()
        self.running = True
        self.saved = False

    def outReceived(self, data: bytes) -> None:
        self.output += data

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Any) -> None:
        self.running = False
        self.exit_code = getattr(reason.value, "exitCode", None)
        self.exit_signal = getattr(reason.value, "signal", None)
        self.ended.callback(None)


class Response:
    """What the e2e tests need of an HTTP answer: status, headers, raw body, JSON body."""

    def __init__(self, code: int, headers: Any, content: bytes):
        self.code = code
        self.headers = headers
        self.content = content

    @property
    def json(self) -> Any:
        return json.loads(self.content)

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def __repr__(self) -> str:
        return f"<Response {self.code} {self.content[:300]!r}>"


async def http(
    method: str,
    url: str,
    body: Any = None,
    raw: bytes | None = None,
    auth: tuple[str, str] | None = None,
    bearer: str | None = None,
    timeout: float = 10.0,
) -> Response:
    """One HTTP request on a fresh (non-persistent) connection, read to the end."""
    kwargs: dict[str, Any] = {"persistent": False, "timeout": timeout}
    headers: dict[str, list[str]] = {}
    if auth is not None:
        kwargs["auth"] = auth
    if bearer is not None:
        headers["Authorization"] = [f"Bearer {bearer}"]
    if raw is not None:
        kwargs["data"] = raw
        headers["Content-Type"] = ["application/json"]
    elif body is not None:
        kwargs["data"] = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = ["application/json"]
    if headers:
        kwargs["headers"] = headers
    response = await treq.request(method, url, **kwargs)
    content = await response.content()
    return Response(response.code, response.headers, content)


class Daemon:
    """One run of the real daemon. ``start`` it, talk to it over HTTP, ``stop`` or ``kill`` it.

    The same ``Daemon`` may be started again after it ended (same datadir, ports, args);
    ``output`` is that of the current run, ``outputs`` keeps every run's.
    """

    def __init__(
        self,
        datadir: Path | str | None,
        web_port: int | None = None,
        rtmp_port: int | None = None,
        args: Iterable[str] = (),
        http_port: int | None = None,
        log_dir: Path | str | None = None,
    ):
        """``web_port``/``rtmp_port`` (free ones by default) go on the command line; pass
        ``web_port=0`` to leave ``--webserverport`` off (e.g. when a ``--config`` file sets
        it) and ``http_port`` to say where the daemon will then listen. ``datadir=None``
        leaves ``--datadir`` off too."""
        self.datadir = Path(datadir) if datadir is not None else None
        self.web_port = free_port() if web_port is None else web_port
        self.rtmp_port = free_port() if rtmp_port is None else rtmp_port
        self.http_port = http_port or self.web_port
        #: which ports were picked here (and may be picked again): "web", "rtmp"
        self._picked = {
            name
            for name, given in (("web", web_port), ("rtmp", rtmp_port))
            if given is None and not (name == "web" and http_port)
        }
        self.args = list(args)
        self.log_dir = Path(log_dir) if log_dir is not None else self.datadir
        self.outputs: list[str] = []
        self._proto: ProcessOutput | None = None
        self._transport: Any = None

    # -- process -----------------------------------------------------------------------
    def argv(self) -> list[str]:
        argv = [TWISTD, "--nodaemon", "--pidfile=", "owncast"]
        if self.datadir is not None:
            argv += ["--datadir", str(self.datadir)]
        if self.web_port:
            argv += ["--webserverport", str(self.web_port)]
        if self.rtmp_port:
            argv += ["--rtmpport", str(self.rtmp_port)]
        return argv + self.args

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self._proto is not None and self._proto.running

    @property
    def pid(self) -> int | None:
        return self._transport.pid if self.running else None

    @property
    def output(self) -> str:
        if self._proto is None:
            return ""
        return self._proto.output.decode("utf-8", "replace")

    @property
    def exit_code(self) -> int | None:
        """The exit status of the last run, or None (running, or ended by a signal)."""
        return self._proto.exit_code if self._proto is not None else None

    @property
    def exit_signal(self) -> int | None:
        """The signal that ended the last run, or None."""
        return self._proto.exit_signal if self._proto is not None else None

    def spawn(self) -> None:
        """Start the process without waiting for it (see ``start``)."""
        if self.running:
            raise RuntimeError("daemon is already running")
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        self._proto = ProcessOutput()
        self._transport = reactor.spawnProcess(
            self._proto, self.argv()[0], self.argv(), env=env, path=str(REPO_ROOT)
        )

    async def start(self, timeout: float = START_TIMEOUT) -> Daemon:
        """Spawn the daemon and wait until ``GET /api/status`` answers 200. Ports this
        ``Daemon`` picked itself are picked again if another process took one meanwhile."""
        for attempt in range(3):
            self.spawn()
            try:
                await self.wait_ready(timeout)
                return self
            except DaemonExitedError:
                if attempt == 2 or not self._repick_ports():
                    raise
        return self

    def _repick_ports(self) -> bool:
        """After "Address already in use": new ports for those picked here; False when a
        port came from the test (its choice stands, and so does the failure)."""
        if "Address already in use" not in self.output or not self._picked:
            return False
        if "web" in self._picked:
            self.web_port = self.http_port = free_port()
        if "rtmp" in self._picked:
            self.rtmp_port = free_port()
        return True

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        proto = self._proto
        deadline = reactor.seconds() + timeout
        while True:
            if not proto.running:
                raise DaemonExitedError(
                    f"daemon exited (code {proto.exit_code}, signal {proto.exit_signal}) "
                    f"before answering:\n{self.output}"
                )
            try:
                response = await http("GET", self.base + "/api/status", timeout=2.0)
                if response.code == 200:
                    return
            except (ConnectError, ResponseFailed, ResponseNeverReceived, CancelledError):
                pass  # not listening yet, or busy booting
            if reactor.seconds() >= deadline:
                await self.stop()
                raise AssertionError(
                    f"daemon did not answer /api/status within {timeout} s:\n{self.output}"
                )
            await sleep(POLL_INTERVAL)

    async def wait_exit(self, timeout: float) -> bool:
        """Wait for the current run to end; True if it did within ``timeout``."""
        proto = self._proto
        if proto is None or not proto.running:
            return True
        try:
            await wait_until(lambda: not proto.running, timeout, "the daemon to exit")
        except AssertionError:
            return False
        return True

    def _signal(self, sig: int) -> None:
        if self.running:
            try:
                self._transport.signalProcess(sig)
            except Exception:  # noqa: BLE001 - it may have just exited
                pass

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it is still there after ``timeout``."""
        if self.running:
            self._signal(signal.SIGTERM)
            if not await self.wait_exit(timeout):
                self._signal(signal.SIGKILL)
                await self.wait_exit(timeout)
        self._finish_run()

    async def kill(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGKILL: no clean shutdown at all, as a crash or ``kill -9``."""
        if self.running:
            self._signal(signal.SIGKILL)
            await self.wait_exit(timeout)
        self._finish_run()

    def _finish_run(self) -> None:
        """Keep the output of a run that ended, in ``outputs`` and next to the datadir."""
        proto = self._proto
        if proto is None or proto.running or proto.saved:
            return
        proto.saved = True
        self.outputs.append(self.output)
        if self.log_dir is not None:
            path = self.log_dir.parent / f"{self.log_dir.name}-run{len(self.outputs)}.log"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(self.output, encoding="utf-8")
            except OSError:
                pass

    # -- output ------------------------------------------------------------------------
    def generated_keys(self) -> list[str]:
        """Stream keys this run logged as generated."""
        return _GENERATED_KEY.findall(self.output)

    # -- HTTP --------------------------------------------------------------------------
    async def request(self, method: str, path: str, **kwargs: Any) -> Response:
        return await http(method, self.base + path, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return await self.request("POST", path, body=body, **kwargs)


async def start_daemon(testcase: Any, datadir: Path | str | None, **kwargs: Any) -> Daemon:
    """Start a ``Daemon`` and make sure ``testcase`` stops it however the test ends."""
    daemon = Daemon(datadir, **kwargs)
    testcase.addCleanup(daemon.stop)
    await daemon.start()
    return daemon
