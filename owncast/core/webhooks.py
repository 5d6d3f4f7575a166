"""Webhook delivery: every subscribed URL gets ``{"type": EVENT, "eventData": {...}}``.

Deliveries wait in a bounded queue and run a few at a time, each with a 10 s timeout
and retries with back-off, so a slow or dead receiver never delays chat or ingest
(Owncast 0.0.7 had no timeout at all). ``lastUsed`` is recorded on success.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from owncast.api.http import iso
from owncast.core import events

_log = Logger()

TIMEOUT = 10.0
RETRY_DELAYS = (1.0, 4.0, 16.0)
MAX_QUEUE = 1000
CONCURRENCY = 4


def event_data(event_type: str, data: dict) -> dict:
    """The ``eventData`` of an event, in the shape receivers expect."""
    if event_type in (events.STREAM_STARTED, events.STREAM_STOPPED, events.STREAM_TITLE_UPDATED):
        keys = ("name", "summary", "streamTitle", "id", "timestamp")
        out = {k: data[k] for k in keys if k in data}
    else:
        out = dict(data)
    if isinstance(out.get("timestamp"), (int, float)):
        out["timestamp"] = iso(out["timestamp"])
    return out


def treq_poster(reactor: Any) -> Callable[[str, bytes], Deferred]:
    """POST JSON with treq over our reactor; fires with the status code."""
    from treq.client import HTTPClient
    from twisted.web.client import Agent

    client = HTTPClient(Agent(reactor, connectTimeout=TIMEOUT))

    async def post(url: str, body: bytes) -> int:
        response = await client.post(
            url, data=body, headers={b"Content-Type": [b"application/json"]}
        )
        await response.content()
        return response.code

    return lambda url, body: Deferred.fromCoroutine(post(url, body))


class WebhookDispatcher:
    def __init__(self, store: Any, clock: Any, post: Callable[[str, bytes], Deferred]):
        self._store = store
        self._clock = clock
        self._post = post
        self._hooks: list[dict] = []
        self._queue: deque[tuple[dict, bytes, int]] = deque()
        self._running = 0
        self.delivered = 0
        self.failed = 0

    async def reload(self) -> None:
        self._hooks = await self._store.list_webhooks()

    def __call__(self, event_type: str, data: dict) -> None:
        """An ``EventBus`` subscriber: queue one delivery per subscribed webhook."""
        targets = [h for h in self._hooks if event_type in h["events"]]
        if not targets:
            return
        body = json.dumps({"type": event_type, "eventData": event_data(event_type, data)})
        for hook in targets:
            if len(self._queue) >= MAX_QUEUE:
                dropped = self._queue.popleft()
                _log.warn("Webhook queue full; dropped a delivery to {url}", url=dropped[0]["url"])
            self._queue.append((hook, body.encode("utf-8"), 0))
        self._pump()

    def _pump(self) -> None:
        while self._queue and self._running < CONCURRENCY:
            hook, body, attempt = self._queue.popleft()
            self._running += 1
            d = Deferred.fromCoroutine(self._deliver(hook, body, attempt))
            d.addErrback(lambda f: _log.failure("webhook delivery crashed", f))
            d.addBoth(self._done)

    def _done(self, _: Any) -> None:
        self._running -= 1
        self._pump()

    async def _deliver(self, hook: dict, body: bytes, attempt: int) -> None:
        try:
            d = self._post(hook["url"], body)
            d.addTimeout(TIMEOUT, self._clock)
            code = await d
            ok = 200 <= code < 300
            reason = f"HTTP {code}"
        except Exception as e:  # noqa: BLE001 - any failure is retried, then logged
            ok, reason = False, e.__class__.__name__
        if ok:
            self.delivered += 1
            await self._store.touch_webhook(hook["id"], self._clock.seconds())
            hook["lastUsed"] = self._clock.seconds()
            return
        if attempt < len(RETRY_DELAYS):
            delay = RETRY_DELAYS[attempt]
            deferLater(self._clock, delay, self._requeue, hook, body, attempt + 1)
            return
        self.failed += 1
        _log.warn("Webhook delivery to {url} failed: {reason}", url=hook["url"], reason=reason)

    def _requeue(self, hook: dict, body: bytes, attempt: int) -> None:
        self._queue.append((hook, body, attempt))
        self._pump()
