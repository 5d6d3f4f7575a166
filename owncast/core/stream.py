"""The broadcast's lifecycle as an explicit state machine: idle -> live -> ended -> live ...

The RTMP ingest drives it (``start``/``stop``); the HTTP API reads it and may ask for a
``disconnect``. It knows nothing of sockets: the publisher hands in a callable that
drops its connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from owncast.interfaces import IStream

IDLE, LIVE, ENDED = "idle", "live", "ended"


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
        return self.state == LIVE

    def start(self, remote_addr: str, details: dict, drop: Callable[[], None]) -> None:
        if self.state == LIVE:
            raise RuntimeError("a broadcast is already live")
        now = self._now()
        self.state = LIVE
        self.last_connect_time = now
        self.broadcaster = {"remoteAddr": remote_addr, "time": now, "streamDetails": details}
        self._drop = drop
        self._notify("STREAM_STARTED")

    def stop(self) -> None:
        if self.state != LIVE:
            return
        self.state = ENDED
        self.last_disconnect_time = self._now()
        self.broadcaster = None
        self._drop = None
        self._notify("STREAM_STOPPED")

    def disconnect(self) -> bool:
        if self.state != LIVE:
            return False
        drop = self._drop
        self.stop()
        if drop is not None:
            drop()
        return True

    def _notify(self, event: str) -> None:
        for listener in list(self.listeners):
            listener(event, self)
