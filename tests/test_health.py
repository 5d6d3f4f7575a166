"""``/healthz`` and ``/readyz``: liveness always, readiness only while this node can serve.

In memory on a fake clock first (which check fails, how often the store is read), then
the real daemon on a Redis of the test's own, which the test freezes (SIGSTOP) to make
the store unreachable and thaws again.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.resource import Resource

from owncast.http.health import Liveness, Readiness, ReadinessResource
from tests.daemon import start_daemon, wait_until
from tests.redisserver import started_redis


class FakeListener:
    def __init__(self, name: str, port: Any = None):
        self.name = name
        self.port = port


class FakeStore:
    """A store read that answers at once, fails, or waits until told."""

    def __init__(self) -> None:
        self.reads = 0
        self.pending: list[Deferred] = []
        self.mode = "ok"

    def read(self) -> Deferred:
        self.reads += 1
        if self.mode == "ok":
            return succeed({})
        if self.mode == "fail":
            return Deferred.fromCoroutine(self._fail())
        d: Deferred = Deferred()
        self.pending.append(d)
        return d

    async def _fail(self) -> None:
        raise ConnectionRefusedError()


class ProbeTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = FakeStore()
        self.listeners = [FakeListener("web", object()), FakeListener("rtmp", object())]
        self.readiness = Readiness(self.clock, self.store.read, lambda: self.listeners)
        self.readiness.serving = True
        root = Resource()
        root.putChild(b"healthz", Liveness())
        root.putChild(b"readyz", ReadinessResource(self.readiness))
        self.http = StubTreq(root)

    async def get(self, path: str) -> tuple[int, Any]:
        response = await self.http.get("http://example.org" + path)
        body = await response.content()
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-store"])
        return response.code, json.loads(body)

    async def test_liveness_answers_whatever_else_is_wrong(self):
        self.readiness.serving = False
        self.store.mode = "fail"
        self.assertEqual(await self.get("/healthz"), (200, {"status": "ok"}))

    async def test_ready_when_serving_listening_and_the_store_answers(self):
        code, body = await self.get("/readyz")
        self.assertEqual(code, 200)
        self.assertEqual(
            body,
            {"ready": True, "checks": {"started": "ok", "web": "ok", "rtmp": "ok", "store": "ok"}},
        )

    async def test_not_ready_before_start_and_once_stopping(self):
        self.readiness.serving = False
        code, body = await self.get("/readyz")
        self.assertEqual(code, 503)
        self.assertEqual(body["checks"]["started"], "not serving")
        self.assertIs(body["ready"], False)

    async def test_not_ready_while_a_listener_is_not_listening(self):
        self.listeners[1].port = None
        code, body = await self.get("/readyz")
        self.assertEqual(code, 503)
        self.assertEqual(body["checks"]["rtmp"], "not listening")
        self.assertEqual(body["checks"]["web"], "ok")

    async def test_not_ready_when_the_store_fails_or_does_not_answer_in_time(self):
        self.store.mode = "fail"
        code, body = await self.get("/readyz")
        self.assertEqual(
            (code, body["checks"]["store"]), (503, "unreachable (ConnectionRefusedError)")
        )
        self.clock.advance(5)
        self.store.mode = "hang"
        answer = Deferred.fromCoroutine(self.get("/readyz"))
        self.assertNoResult(answer)
        self.clock.advance(2.0)
        self.http.flush()
        code, body = self.successResultOf(answer)
        self.assertEqual((code, body["checks"]["store"]), (503, "unreachable (TimeoutError)"))

    async def test_many_probes_cost_one_store_read_a_second(self):
        self.store.mode = "hang"
        answers = [Deferred.fromCoroutine(self.get("/readyz")) for _ in range(20)]
        self.assertEqual(self.store.reads, 1)
        self.store.pending[0].callback({})
        self.http.flush()
        for answer in answers:
            self.assertEqual(self.successResultOf(answer)[0], 200)
        self.store.mode = "ok"
        for _ in range(10):
            await self.get("/readyz")
        self.assertEqual(self.store.reads, 1)
        self.clock.advance(1.0)
        await self.get("/readyz")
        self.assertEqual(self.store.reads, 2)


class DaemonProbeTests(unittest.TestCase):
    timeout = 60

    async def test_readyz_follows_the_store_and_healthz_does_not(self):
        redis = await started_redis(self)  # of this test's own: frozen without harm
        daemon = await start_daemon(
            self, Path(self.mktemp()).resolve(), args=["--redis", redis.url]
        )

        async def ready() -> tuple[int, dict]:
            response = await daemon.get("/readyz")
            return response.code, response.json

        code, body = await ready()
        self.assertEqual(code, 200, body)
        self.assertEqual(set(body["checks"]), {"started", "web", "rtmp", "store"})

        redis.signal(signal.SIGSTOP)
        await wait_until(lambda: _code_is(ready, 503), 15, "/readyz to say 503")
        code, body = await ready()
        self.assertEqual(body["checks"]["store"], "unreachable (TimeoutError)")
        self.assertEqual((await daemon.get("/healthz")).code, 200)

        redis.signal(signal.SIGCONT)
        await wait_until(lambda: _code_is(ready, 200), 15, "/readyz to say 200 again")


async def _code_is(ready: Any, code: int) -> bool:
    return (await ready())[0] == code
