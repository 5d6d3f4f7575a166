"""The stats history the dashboard charts: samples the collectors stored, newest day."""

from __future__ import annotations

from collections.abc import Callable

from owncast.interfaces import IStore

#: How far back the admin charts reach (seconds).
STATS_WINDOW = 24 * 3600


class StatsHistory:
    def __init__(self, store: IStore, now: Callable[[], float], window: float = STATS_WINDOW):
        self._store = store
        self._now = now
        self._window = window

    async def series(self, kind: str) -> list:
        """``[(when, value)]`` of one kind (``cpu``, ``memory``, ``disk``, ``viewers``)."""
        return await self._store.list_samples(kind, self._now() - self._window)
