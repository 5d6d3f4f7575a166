"""The in-process chat bus: one node, ``publish`` calls every listener at once.

Several nodes share chat through Redis instead (``owncast.store.redisbus``).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from owncast.interfaces import IChatBus

_log = Logger()

Listener = Callable[[dict], None]


def deliver(listeners: list[Listener], message: dict) -> None:
    for listener in list(listeners):
        try:
            listener(message)
        except Exception:
            _log.failure("A chat listener failed")


@implementer(IChatBus)
class LocalChatBus:
    """One node: ``publish`` calls every listener at once."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def start(self) -> Deferred:
        return succeed(None)

    def stop(self) -> Deferred:
        return succeed(None)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, message: dict) -> Deferred:
        deliver(self._listeners, message)
        return succeed(None)
