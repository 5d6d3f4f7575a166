"""The recent log events behind ``/api/admin/logs``: a ring buffer observing twisted.logger."""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.logger import ILogObserver, LogLevel, formatEvent
from zope.interface import implementer

_LEVELS = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warning",
    LogLevel.error: "error",
    LogLevel.critical: "error",
}


@implementer(ILogObserver)
class LogBuffer:
    """Keeps the last ``size`` events, and the last ``size`` warnings and errors apart."""

    def __init__(self, size: int = 500):
        self._all: deque[dict] = deque(maxlen=size)
        self._warnings: deque[dict] = deque(maxlen=size)

    def __call__(self, event: dict[str, Any]) -> None:
        level = _LEVELS.get(event.get("log_level"), "info")
        if level == "debug":
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}: {failure.getErrorMessage()}" if text else failure.getErrorMessage()
        entry = {"time": event.get("log_time", 0.0), "level": level, "message": text}
        self._all.append(entry)
        if level in ("warning", "error"):
            self._warnings.append(entry)

    def entries(self) -> list[dict]:
        return list(self._all)

    def warnings(self) -> list[dict]:
        return list(self._warnings)
