"""Building blocks for in-memory tests: a context on a fake clock, an inline store, StubTreq,
and where the real Redis of the Redis tests is. The stand-ins they use are in ``tests.fakes``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from owncast.api.context import AppContext
from owncast.chat.bus import LocalChatBus
from owncast.core.chat import ChatHub
from owncast.core.events import EventBus
from owncast.core.samples import StatsHistory
from owncast.core.settings import Settings
from owncast.core.stream import StreamState
from owncast.core.throttle import AuthThrottle
from owncast.core.tokens import TokenRegistry
from owncast.core.viewers import Viewers
from owncast.core.webhooks import WebhookRegistry
from owncast.http.site import WEB_ROOT, build_root
from owncast.stats.logbuffer import LogBuffer
from owncast.store.redisconfig import RedisConfig
from owncast.store.sqlite import SqliteStore
from owncast.transcode.probe import FfmpegProbe, bundled_ffmpeg
from tests.fakes import inline

STREAM_KEY = "test-stream-key-0123"
ADMIN = ("admin", STREAM_KEY)

#: The Redis the Redis tests use (they do not skip when it is down: they fail).
REDIS = os.environ.get("OWNCAST_TEST_REDIS", "127.0.0.1:6379")


def redis_config(**options: Any) -> RedisConfig:
    """A ``RedisConfig`` for the test Redis, with ``options`` (``key_prefix``...)."""
    host, _, port = REDIS.rpartition(":")
    return RedisConfig(host, int(port), **options)


def result_of(d: Any) -> Any:
    """The result of a Deferred that has already fired (inline store, fake clock)."""
    results: list = []
    d.addBoth(results.append)
    assert results, "Deferred has not fired"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def run(coroutine: Any) -> Any:
    """The result of a coroutine that finishes at once (inline store, fake clock)."""
    return result_of(Deferred.fromCoroutine(coroutine))


def make_store(path: str = ":memory:") -> SqliteStore:
    store = SqliteStore(path, runner=inline)
    result_of(store.start())
    return store


def make_context(
    datadir: Path,
    store: SqliteStore | None = None,
    clock: Clock | None = None,
    reactor: Any = None,
    stored: dict | None = None,
    overrides: dict | None = None,
) -> AppContext:
    """A full context on a fake clock; ``reactor`` (the real one) only where ffmpeg must run."""
    clock = clock or Clock()
    if clock.seconds() == 0:
        clock.advance(1_700_000_000)
    store = store or make_store()
    for sub in ("emoji", "logo"):
        (datadir / sub).mkdir(parents=True, exist_ok=True)
    initial = {"streamKey": STREAM_KEY, **(stored or {})}
    result_of(store.set_settings(initial))
    settings = Settings(result_of(store.get_settings()), overrides)
    tokens = TokenRegistry(store)
    tokens.load(result_of(store.list_tokens()))
    webhooks = WebhookRegistry(store)
    result_of(Deferred.fromCoroutine(webhooks.reload()))
    return AppContext(
        reactor=clock,
        store=store,
        settings=settings,
        tokens=tokens,
        webhooks=webhooks,
        stream=StreamState(clock.seconds, settings),
        viewers=Viewers(clock.seconds),
        chat=ChatHub(store, clock.seconds, bus=LocalChatBus(), settings=settings),
        events=EventBus(),
        logs=LogBuffer(),
        history=StatsHistory(store, clock.seconds),
        probe=FfmpegProbe(reactor if reactor is not None else clock),
        throttle=AuthThrottle(clock.seconds),
        datadir=datadir,
        webroot=WEB_ROOT,
        ffmpeg_default=bundled_ffmpeg,
        blocking=inline,
    )


class Client:
    """StubTreq over the whole resource tree, with JSON helpers that return (status, body)."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.stub = StubTreq(build_root(ctx, WEB_ROOT))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        auth: Any = None,
        headers: dict | None = None,
    ) -> tuple[int, Any, Any]:
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        if auth is not None:
            kwargs["auth"] = auth
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["data"] = json.dumps(body).encode()
            kwargs["headers"]["Content-Type"] = ["application/json"]
        d = self.stub.request(method, "http://owncast.test" + path, **kwargs)
        response = self._settle(d)
        content = self._settle(response.content())
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = content
        return response.code, parsed, response

    def _settle(self, d: Any) -> Any:
        """Pump the in-memory connection until ``d`` fires (static files stream in chunks)."""
        fired: list = []
        d.addBoth(lambda r: fired.append(r) or r)
        for _ in range(1000):
            if fired:
                break
            self.stub.flush()
        return result_of(d)

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any, Any]:
        return self.request("POST", path, body=body, **kwargs)

    def admin_get(self, path: str) -> Any:
        code, body, _ = self.get(path, auth=ADMIN)
        assert code == 200, (code, body)
        return body

    def admin_post(self, path: str, body: Any) -> tuple[int, Any]:
        code, parsed, _ = self.post(path, body, auth=ADMIN)
        return code, parsed


class LiveServer:
    """The resource tree on a real loopback port, for what must cross real sockets
    (static files, processes run by the real reactor). ``stop`` in cleanup."""

    def __init__(self, ctx: AppContext):
        from twisted.internet import reactor

        from owncast.http.site import build_site

        self.port = reactor.listenTCP(0, build_site(ctx, WEB_ROOT), interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    async def request(
        self, method: str, path: str, body: Any = None, auth: Any = None, raw: bytes | None = None
    ) -> tuple[int, bytes, Any]:
        import treq

        kwargs: dict[str, Any] = {}
        if auth is not None:
            kwargs["auth"] = auth
        if body is not None:
            kwargs["json"] = body
        if raw is not None:
            kwargs["data"] = raw
        response = await treq.request(method, self.base + path, persistent=False, **kwargs)
        return response.code, await response.content(), response

    def stop(self) -> Any:
        return self.port.stopListening()
