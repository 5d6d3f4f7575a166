"""Keeping a node in step with others that share its store (``--redis``).

Settings, tokens and webhooks are read at start and then kept in memory; when several
nodes share one store, this ``TimerService`` reloads them every few seconds so a change
made through any node reaches all of them. With the embedded SQLite store there is only
one node and this service is not started.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

REFRESH_INTERVAL = 5.0

_log = Logger()


class SharedStateRefresher(TimerService):
    name = "shared-state"

    def __init__(self, ctx: Any, interval: float = REFRESH_INTERVAL):
        super().__init__(interval, self._tick)
        self.clock = ctx.reactor
        self._ctx = ctx

    def _tick(self) -> Deferred:
        d = Deferred.fromCoroutine(self.refresh())
        d.addErrback(lambda f: _log.failure("refreshing shared state failed", f))
        return d

    async def refresh(self) -> None:
        ctx = self._ctx
        ctx.settings.reload(await ctx.store.get_settings())
        await ctx.tokens.refresh(ctx.now())
        if ctx.webhooks is not None:
            await ctx.webhooks.reload()
