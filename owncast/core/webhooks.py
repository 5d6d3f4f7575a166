"""Webhooks: the registry of subscribed URLs, and delivery of ``{"type", "eventData"}``.

The admin API changes webhooks through ``WebhookRegistry``, which keeps them in the store
and in memory. ``WebhookDispatcher`` hears events and delivers them: deliveries wait in a
bounded queue and run a few at a time, each with a 10 s timeout and retries with back-off,
so a slow or dead receiver never delays chat or ingest (Owncast 0.0.7 had no timeout at
all). ``lastUsed`` is recorded on success. The HTTP client is handed in (``post``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from owncast.core import events
from owncast.core.times import iso
from owncast.interfaces import IStore

_log = Logger()

TIMEOUT = 10.0
RETRY_DELAYS = (1.0, 4.0, 16.0)
MAX_QUEUE = 1000
CONCURRENCY = 4


def event_data(event_type: str, data: dict) -> dict:
    """The ``eventData`` of an event, in the shape receivers expect."""
    if event_type in (events.STREAM_STARTED, events.STREAM_STOPPED, events.STREAM_TITLE_UPDATED):
        # 0.0.7 (core/webhooks/stream.go) sends these three and nothing else.
        out = {k: data[k] for k in ("name", "summary", "streamTitle") if k in data}
    elif event_type == events.CHAT:
        # 0.0.7's WebhookChatMessage: no type, author left out when empty.
        keys = ("author", "body", "rawBody", "id", "visible", "timestamp")
        out = {k: data[k] for k in keys if k in data and (k != "author" or data[k])}
    else:
        out = dict(data)
    if isinstance(out.get("timestamp"), (int, float)):
        out["timestamp"] = iso(out["timestamp"])
    return out


class WebhookRegistry:
    """The webhooks: stored durably, kept in memory for the dispatcher.

    Records are the store's ``{id, url, events, timestamp, lastUsed}``. Listing reads the
    store again, so a change made through another node sharing it shows at once.
    """

    def __init__(self, store: IStore):
        self._store = store
        self._hooks: list[dict] = []

    async def reload(self) -> None:
        self._hooks = await self._store.list_webhooks()

    async def all(self) -> list[dict]:
        await self.reload()
        return list(self._hooks)

    def subscribed(self, event_type: str) -> list[dict]:
        """The webhooks that hear ``event_type`` (from memory: called for every event)."""
        return [h for h in self._hooks if event_type in h["events"]]

    async def create(self, url: str, names: list[str], now: float) -> dict:
        record = await self._store.add_webhook(url, names, now)
        await self.reload()
        return record

    async def delete(self, webhook_id: str) -> bool:
        existed = await self._store.delete_webhook(webhook_id)
        await self.reload()
        return bool(existed)

    async def used(self, hook: dict, now: float) -> None:
        """A delivery to ``hook`` succeeded at ``now``."""
        await self._store.touch_webhook(hook["id"], now)
        hook["lastUsed"] = now


class WebhookDispatcher:
    """An ``EventBus`` subscriber that delivers events to the registry's webhooks.

    ``post(url, body)`` sends one JSON body and fires with the HTTP status code.
    """

    def __init__(
        self, registry: WebhookRegistry, clock: Any, post: Callable[[str, bytes], Deferred]
    ):
        self._registry = registry
        self._clock = clock
        self._post = post
        self._queue: deque[tuple[dict, bytes, int]] = deque()
        self._running = 0
        self.delivered = 0
        self.failed = 0

    @property
    def queued(self) -> int:
        """Deliveries waiting for a free slot (retries waiting for their delay excluded)."""
        return len(self._queue)

    def __call__(self, event_type: str, data: dict) -> None:
        """An ``EventBus`` subscriber: queue one delivery per subscribed webhook."""
        targets = self._registry.subscribed(event_type)
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
            await self._registry.used(hook, self._clock.seconds())
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
