"""Periodic samples of CPU, memory, disk and viewers, kept 24 h in the store.

Each sampler is a ``GuardedTimerService``: a sample that fails is logged and the next
one is taken on time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psutil
from twisted.logger import Logger

from owncast.runtime.timers import GuardedTimerService

SAMPLE_INTERVAL = 60.0
KEEP_SECONDS = 24 * 3600

_log = Logger()


def read_hardware(disk_path: str) -> dict[str, float]:
    """CPU (since the previous call), memory and disk use in percent. Blocking: run in a thread."""
    return {
        "cpu": psutil.cpu_percent(interval=None),
        "memory": psutil.virtual_memory().percent,
        "disk": psutil.disk_usage(disk_path).percent,
    }


class _Sampler(GuardedTimerService):
    def __init__(self, interval: float, clock: Any):
        super().__init__(interval, self.sample, clock, _log, f"{self.name} sampling")

    async def sample(self) -> None:
        raise NotImplementedError


class HardwareSampler(_Sampler):
    name = "hardware-stats"

    def __init__(
        self,
        store: Any,
        clock: Any,
        blocking: Callable,
        disk_path: str,
        interval: float = SAMPLE_INTERVAL,
    ):
        super().__init__(interval, clock)
        self._store = store
        self._blocking = blocking
        self._disk_path = disk_path

    async def sample(self) -> None:
        values = await self._blocking(read_hardware, self._disk_path)
        now = self.now()
        for kind, value in values.items():
            await self._store.add_sample(kind, now, value)
        await self._store.prune_samples(now - KEEP_SECONDS)


class ViewerSampler(_Sampler):
    name = "viewer-stats"

    def __init__(self, store: Any, clock: Any, viewers: Any, interval: float = SAMPLE_INTERVAL):
        super().__init__(interval, clock)
        self._store = store
        self._viewers = viewers

    async def sample(self) -> None:
        await self._store.add_sample("viewers", self.now(), self._viewers.count())
