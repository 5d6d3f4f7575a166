"""How often something costly may be done, per client and by everyone together.

``core.throttle`` punishes failures (wrong passwords) and ``chat.server``'s buckets meter
a stream of cheap messages; neither counts successes over long windows. This counts them:
each limit is *at most n events in any window of w seconds* (a sliding window, so no burst
at a window's edge), checked per key (a client's address) and across all keys, with the
wait until the oldest event that blocks leaves its window. Viewers' clips use it: each
clip runs ffmpeg and takes disk, so a viewer (or all of them) gets a few, then waits.

Pure: the time is read from the ``now`` callable handed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

#: (events, seconds): at most that many events in any window that long.
Limit = tuple[int, float]


def _wait(times: deque[float], limits: tuple[Limit, ...], now: float) -> float:
    """Seconds until one more event fits every limit (0: now)."""
    wait = 0.0
    for count, window in limits:
        recent = [t for t in times if now - t < window]
        if len(recent) >= count:
            wait = max(wait, recent[-count] + window - now)
    return wait


class WindowLimiter:
    """Events counted per key and overall in sliding windows (``take`` records one).

    At most ``max_tracked`` keys are remembered: past it, keys idle for the longest window
    are forgotten first, then the earliest seen (the overall limit still holds then)."""

    def __init__(
        self,
        now: Callable[[], float],
        per_key: Iterable[Limit],
        overall: Iterable[Limit] = (),
        max_tracked: int = 100_000,
    ):
        self._now = now
        self._per_key = tuple(per_key)
        self._overall = tuple(overall)
        for count, window in self._per_key + self._overall:
            if count < 1 or window <= 0:
                raise ValueError(f"a limit needs events >= 1 and a window > 0: {count}/{window}")
        self._keep = max((w for _, w in self._per_key + self._overall), default=0.0)
        self._max_tracked = max_tracked
        self._keys: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _prune(self, times: deque[float], now: float) -> None:
        while times and now - times[0] >= self._keep:
            times.popleft()

    def retry_after(self, key: str) -> float:
        """Seconds before ``key`` may do one more (0: it may now); records nothing."""
        now = self._now()
        self._prune(self._all, now)
        wait = _wait(self._all, self._overall, now)
        times = self._keys.get(key)
        if times is not None:
            self._prune(times, now)
            if not times:
                del self._keys[key]
            else:
                wait = max(wait, _wait(times, self._per_key, now))
        return wait

    def take(self, key: str) -> float:
        """Record one event for ``key`` if every limit allows it and return 0; else record
        nothing and return the seconds to wait."""
        wait = self.retry_after(key)
        if wait > 0:
            return wait
        now = self._now()
        times = self._keys.get(key)
        if times is None:
            if len(self._keys) >= self._max_tracked:
                self._evict(now)
            times = self._keys[key] = deque()
        times.append(now)
        self._all.append(now)
        return 0.0

    def _evict(self, now: float) -> None:
        idle = [k for k, times in self._keys.items() if not times or now - times[-1] >= self._keep]
        for key in idle or list(self._keys)[: len(self._keys) // 10 + 1]:
            del self._keys[key]
