"""Who is watching: distinct clients seen recently, and the session and all-time peaks."""

from __future__ import annotations

from collections.abc import Callable

#: A viewer counts while seen within this many seconds.
VIEWER_TIMEOUT = 60.0


class Viewers:
    def __init__(self, now: Callable[[], float], overall_max: int = 0):
        self._now = now
        self._seen: dict[str, float] = {}
        self.session_max = 0
        self.overall_max = overall_max
        self.online = False

    def seen(self, client_key: str) -> None:
        """A client (IP + user agent, or a chat socket) showed it is here."""
        if not self.online:
            return
        self._seen[client_key] = self._now()
        self._update_peaks()

    def count(self) -> int:
        if not self.online:
            return 0
        cutoff = self._now() - VIEWER_TIMEOUT
        for key in [k for k, t in self._seen.items() if t < cutoff]:
            del self._seen[key]
        return len(self._seen)

    def _update_peaks(self) -> None:
        current = self.count()  # drops clients gone quiet before counting
        self.session_max = max(self.session_max, current)
        self.overall_max = max(self.overall_max, current)

    def stream_started(self) -> None:
        self.online = True
        self.session_max = 0
        self._seen.clear()

    def stream_stopped(self) -> None:
        self.online = False
        self._seen.clear()
