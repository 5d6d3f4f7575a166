"""``/healthz`` and ``/readyz``: what load balancers and container probes ask.

* ``/healthz`` (liveness) answers 200 whenever the reactor can answer at all: a probe
  that gets no answer has found a hung or dead process, the one thing a restart fixes.
  It checks nothing else, so a storage outage never gets a healthy daemon killed.
* ``/readyz`` (readiness) answers 200 only while this node should get traffic: the
  service tree has started and is not stopping, every listener is listening, and the
  store answers a read within ``STORE_TIMEOUT``; else 503. The body says which check
  failed. Probes are cheap for us: one store read at most every ``FRESH_FOR`` seconds,
  however many probes (or strangers) ask, and concurrent asks share it.

Neither needs credentials, and neither says more than ``ok`` or what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

_log = Logger()

#: How long the store may take to answer the readiness read.
STORE_TIMEOUT = 2.0
#: How long one store check answers for.
FRESH_FOR = 1.0

OK = "ok"


def _json(request: Any, code: int, body: dict) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body).encode("utf-8")


class Liveness(Resource):
    """``/healthz``: 200 while the reactor turns."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return _json(request, 200, {"status": OK})

    render_HEAD = render_GET


class Readiness:
    """The checks behind ``/readyz``.

    ``store_read()`` is any cheap read of the store (a Deferred); ``listeners()`` gives
    the listener services (``.name``, and ``.port`` once listening); ``serving`` is set by
    the service tree once every child has started, and cleared as it begins to stop.
    """

    def __init__(
        self,
        clock: IReactorTime,
        store_read: Callable[[], Deferred],
        listeners: Callable[[], Iterable[Any]],
        timeout: float = STORE_TIMEOUT,
        fresh_for: float = FRESH_FOR,
    ):
        self._clock = clock
        self._store_read = store_read
        self._listeners = listeners
        self._timeout = timeout
        self._fresh_for = fresh_for
        self.serving = False
        self._store_state = "not checked"
        self._checked_at = -1e18
        self._waiting: list[Deferred] | None = None

    async def checks(self) -> dict[str, str]:
        """Each check's name and ``ok``, or what is wrong."""
        results = {"started": OK if self.serving else "not serving"}
        for listener in self._listeners():
            results[listener.name] = OK if listener.port is not None else "not listening"
        results["store"] = await self._store()
        return results

    async def _store(self) -> str:
        if self._clock.seconds() - self._checked_at < self._fresh_for:
            return self._store_state
        if self._waiting is not None:  # a read is under way: share its answer
            d: Deferred = Deferred()
            self._waiting.append(d)
            return await d
        self._waiting = []
        try:
            read = self._store_read()
            read.addTimeout(self._timeout, self._clock)
            await read
            state = OK
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            state = f"unreachable ({e.__class__.__name__})"
        self._store_state, self._checked_at = state, self._clock.seconds()
        waiting, self._waiting = self._waiting, None
        for d in waiting:
            d.callback(state)
        return state


class ReadinessResource(Resource):
    """``/readyz``: 200 with every check ``ok``, else 503 with what failed."""

    isLeaf = True

    def __init__(self, readiness: Readiness):
        super().__init__()
        self._readiness = readiness

    def render_GET(self, request: Any) -> Any:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = Deferred.fromCoroutine(self._answer(request, gone))
        d.addErrback(lambda f: _log.failure("/readyz failed", f))
        return NOT_DONE_YET

    render_HEAD = render_GET

    async def _answer(self, request: Any, gone: list[bool]) -> None:
        checks = await self._readiness.checks()
        if gone:
            return
        ready = all(state == OK for state in checks.values())
        body = _json(request, 200 if ready else 503, {"ready": ready, "checks": checks})
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()
