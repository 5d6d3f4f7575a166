"""The broadcast's lifecycle as an explicit state machine::

    idle -> live -> reconnecting -> live ...   (the publisher came back within the grace)
                                 -> ended -> live ...

The RTMP ingest drives it (``start``/``stop``, through ``owncast.core.broadcast``); the
HTTP API reads it and may ask for a ``disconnect``. It knows nothing of sockets: the
publisher hands in a callable that drops its connection.

*Reconnecting* is the grace after a publisher went away (OBS reconnecting, ffmpeg
restarted, a clean stop and start to change a setting): the broadcast is still on, so
``online`` stays true (an Owncast 0.0.7 client sees a live stream, as its players do),
no ``STREAM_STOPPED`` is sent, and a publisher that comes back resumes it without a
``STREAM_STARTED``. ``stop()`` when the grace is over ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from owncast.interfaces import IStream

IDLE, LIVE, RECONNECTING, ENDED = "idle", "live", "reconnecting", "ended"


@implementer(IStream)
class StreamState:
    def __init__(self, now: Callable[[], float], settings: Any = None):
        self._now = now
        self.state = IDLE
        self.last_connect_time: float | None = None
        self.last_disconnect_time: float | None = None
        if settings is not None:
            self.restore(settings)
        self.broadcaster: dict | None = None
        self._drop: Callable[[], None] | None = None
        self.listeners: list[Callable[[str, StreamState], None]] = []

    def restore(self, settings: Any) -> None:
        """Take the last broadcast's times from the stored settings (once they are read)."""
        self.last_connect_time = settings.get("lastConnectTime")
        self.last_disconnect_time = settings.get("lastDisconnectTime")

    @property
    def online(self) -> bool:
        return self.state in (LIVE, RECONNECTING)

    @property
    def reconnecting(self) -> bool:
        """True while the broadcast waits for its publisher to come back."""
        return self.state == RECONNECTING

    def start(self, remote_addr: str, details: dict, drop: Callable[[], None]) -> None:
        """A publisher is live: a new broadcast, or the one that was reconnecting."""
        if self.state == LIVE:
            raise RuntimeError("a broadcast is already live")
        resumed = self.state == RECONNECTING
        now = self._now()
        self.state = LIVE
        self.broadcaster = {"remoteAddr": remote_addr, "time": now, "streamDetails": details}
        self._drop = drop
        if not resumed:
            self.last_connect_time = now
            self._notify("STREAM_STARTED")

    def publisher_left(self) -> None:
        """The publisher went away; the broadcast stays on until ``stop()``."""
        if self.state == LIVE:
            self.state = RECONNECTING
            self._drop = None

    def stop(self) -> None:
        if self.state not in (LIVE, RECONNECTING):
            return
        self.state = ENDED
        self.last_disconnect_time = self._now()
        self.broadcaster = None
        self._drop = None
        self._notify("STREAM_STOPPED")

    def disconnect(self) -> bool:
        """Drop the publisher and end the broadcast now (also one that is reconnecting)."""
        if self.state not in (LIVE, RECONNECTING):
            return False
        drop = self._drop
        self.stop()
        if drop is not None:
            drop()
        return True

    def _notify(self, event: str) -> None:
        for listener in list(self.listeners):
            listener(event, self)
