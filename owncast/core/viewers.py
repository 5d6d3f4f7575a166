"""Who is watching: distinct clients seen recently, and the session and all-time peaks."""

from __future__ import annotations

from collections.abc import Callable

#: A viewer counts while seen within this many seconds.
VIEWER_TIMEOUT = 60.0


class Viewers:
    """Clients by the time they were last seen.

    Every playlist request of every player ends up in ``seen``, so it costs O(1): the
    dict is kept in last-seen order (a client seen again moves to the end), so clients
    gone quiet are always at its front and pruning stops at the first one still here.
    """

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
        known = self._seen.pop(client_key, None) is not None
        self._seen[client_key] = self._now()
        if not known:  # only a new client can raise the peaks
            self._update_peaks()

    def count(self) -> int:
        if not self.online:
            return 0
        cutoff = self._now() - VIEWER_TIMEOUT
        gone = []
        for key, last in self._seen.items():
            if last >= cutoff:
                break
            gone.append(key)
        for key in gone:
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
