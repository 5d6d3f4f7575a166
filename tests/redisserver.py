"""A redis-server of a test's own, on a free port, that the test can stop and start again
(the shared test Redis on 6379 must stay up for everyone else)."""

from __future__ import annotations

import shutil
import signal
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from tests.daemon import ProcessOutput, free_port, sleep


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``, keeping nothing on disk."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._process: Any = None
        self._watch: ProcessOutput | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed (make test installs it)")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self._watch = ProcessOutput()
        self._process = reactor.spawnProcess(self._watch, binary, argv, env=None)
        deadline = reactor.seconds() + timeout
        while True:
            try:
                endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=1)
                probe = await connectProtocol(endpoint, Protocol())
                probe.transport.loseConnection()
                return
            except Exception:
                if reactor.seconds() > deadline or self._watch.ended.called:
                    raise AssertionError(
                        f"redis-server did not listen: {self._watch.output.decode()}"
                    ) from None
                await sleep(0.05)

    def signal(self, number: int) -> None:
        """Send the server a signal (``SIGSTOP`` freezes it: an outage that keeps the port)."""
        self._process.signalProcess(number)

    async def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None and not watch.ended.called:
            self._process.signalProcess(signal.SIGCONT)  # a frozen server must hear TERM
            self._process.signalProcess(signal.SIGTERM)
            await watch.ended


async def started_redis(testcase: Any) -> RedisServer:
    """A started ``RedisServer`` that ``testcase`` stops however it ends."""
    server = RedisServer()
    testcase.addCleanup(server.stop)
    await server.start()
    return server
