"""A growing delay per client address after repeated authentication failures.

After ``free`` failures an address is refused (HTTP 429, ``Retry-After``) for a
penalty that doubles with each further failure, up to ``max_penalty``. Refusing during
the penalty, rather than sleeping, keeps parallel guesses from slipping through.
A success clears the address; failures are forgotten after ``forget_after`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable


class AuthThrottle:
    def __init__(
        self,
        now: Callable[[], float],
        free: int = 5,
        base_penalty: float = 1.0,
        max_penalty: float = 300.0,
        forget_after: float = 900.0,
        max_tracked: int = 100_000,
    ):
        self._now = now
        self._free = free
        self._base = base_penalty
        self._max = max_penalty
        self._forget = forget_after
        self._max_tracked = max_tracked
        # address -> (failures, last failure time, blocked until)
        self._state: dict[str, tuple[int, float, float]] = {}

    def retry_after(self, address: str) -> float:
        """Seconds this address must still wait; 0 when it may try."""
        entry = self._state.get(address)
        if entry is None:
            return 0.0
        failures, last, blocked_until = entry
        now = self._now()
        if now - last > self._forget:
            del self._state[address]
            return 0.0
        return max(0.0, blocked_until - now)

    def failed(self, address: str) -> None:
        now = self._now()
        failures, last, _ = self._state.get(address, (0, now, now))
        if now - last > self._forget:
            failures = 0
        failures += 1
        blocked_until = now
        if failures > self._free:
            blocked_until = now + min(self._max, self._base * 2 ** (failures - self._free - 1))
        if address not in self._state and len(self._state) >= self._max_tracked:
            self._evict(now)
        self._state[address] = (failures, now, blocked_until)

    def succeeded(self, address: str) -> None:
        self._state.pop(address, None)

    def _evict(self, now: float) -> None:
        stale = [a for a, (_, last, _) in self._state.items() if now - last > self._forget]
        for address in stale or list(self._state)[: len(self._state) // 10 + 1]:
            del self._state[address]
