"""Keeping a node in step with others that share its store (``--redis``).

Settings, tokens and webhooks are read at start and then kept in memory; when several
nodes share one store, this ``GuardedTimerService`` reloads them every few seconds so a change
made through any node reaches all of them. With the embedded SQLite store there is only
one node and this service is not started. While the store is unreachable a reload keeps
what is in memory and says nothing (the store has announced the outage).
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from owncast.runtime.timers import GuardedTimerService
from owncast.store.redislink import StoreUnavailableError

REFRESH_INTERVAL = 5.0

_log = Logger()


class SharedStateRefresher(GuardedTimerService):
    name = "shared-state"

    def __init__(self, ctx: Any, interval: float = REFRESH_INTERVAL):
        super().__init__(interval, self.refresh, ctx.reactor, _log, "refreshing shared state")
        self._ctx = ctx

    async def refresh(self) -> None:
        ctx = self._ctx
        try:
            ctx.settings.reload(await ctx.store.get_settings())
            await ctx.tokens.refresh(ctx.now())
            await ctx.webhooks.reload()
        except StoreUnavailableError:
            pass
