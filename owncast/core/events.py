"""Server events (stream started/stopped, title changed, chat) for webhooks and other listeners."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

STREAM_STARTED = "STREAM_STARTED"
STREAM_STOPPED = "STREAM_STOPPED"
STREAM_TITLE_UPDATED = "STREAM_TITLE_UPDATED"
CHAT = "CHAT"
NAME_CHANGE = "NAME_CHANGE"
USER_JOINED = "USER_JOINED"
VISIBILITY_UPDATE = "VISIBILITY-UPDATE"

WEBHOOK_EVENTS = (
    CHAT,
    NAME_CHANGE,
    USER_JOINED,
    VISIBILITY_UPDATE,
    STREAM_STARTED,
    STREAM_STOPPED,
    STREAM_TITLE_UPDATED,
)

_log = Logger()


def new_id() -> str:
    """An id for a chat message or event, as short as Owncast's."""
    return secrets.token_urlsafe(9)


def stream_event(settings: Any, now: float, **extra: Any) -> dict:
    """The data of a stream event (started, stopped, title updated), as Owncast sends it."""
    return {
        "id": new_id(),
        "name": settings["name"],
        "summary": settings["summary"],
        "streamTitle": settings["streamTitle"],
        "timestamp": now,
        **extra,
    }


class EventBus:
    """Calls every subscriber with ``(event_type, data)``; one failing subscriber hurts no other."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[str, dict], object]] = []

    def subscribe(self, fn: Callable[[str, dict], object]) -> None:
        self._subscribers.append(fn)

    def emit(self, event_type: str, data: dict) -> None:
        for fn in list(self._subscribers):
            try:
                fn(event_type, data)
            except Exception:
                _log.failure("event subscriber failed on {event_type}", event_type=event_type)
