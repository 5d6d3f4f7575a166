"""Building blocks of the service tree: children that start in order, one after the other.

Twisted's ``MultiService`` starts its children in a loop and ignores what their
``startService`` returns, so a child cannot wait for an earlier one (the listeners for the
stored port settings, say). ``OrderedMultiService`` waits for each child's Deferred before
it starts the next, and stops them one by one in reverse, as buildbot's
``AsyncMultiService`` does. The tree is built whole before it starts: nothing is attached
to a running parent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

_log = Logger()


class OrderedMultiService(MultiService):
    """Starts children in the order they were added, each once the one before is up.

    ``startService`` returns a Deferred that fires when every child has started, or
    fails with the first child's failure (the children started so far are stopped
    again); ``stopService`` stops the started children in reverse order.
    """

    def startService(self) -> Deferred:
        Service.startService(self)
        return Deferred.fromCoroutine(self._start_children())

    async def _start_children(self) -> None:
        started: list[Service] = []
        for child in list(self):
            try:
                await maybeDeferred(child.startService)
            except BaseException:
                child.running = False  # it did not start: nothing to stop
                await self._stop_children(started)
                raise
            started.append(child)

    async def _stop_children(self, children: list[Any]) -> None:
        for child in reversed(children):
            if not child.running:
                continue
            try:
                await maybeDeferred(child.stopService)
            except Exception:  # noqa: BLE001 - the others must still stop
                _log.failure("stopping {name} failed", name=child.name)

    def stopService(self) -> Deferred:
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_children(list(self)))


class StartStopService(Service):
    """A named service around ``start()``/``stop()`` coroutines or Deferred makers."""

    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[Any] | Deferred | None],
        stop: Callable[[], Awaitable[Any] | Deferred | None] | None = None,
    ):
        self.setName(name)
        self._start = start
        self._stop = stop

    def startService(self) -> Deferred:
        super().startService()
        return _deferred(self._start)

    def stopService(self) -> Deferred:
        super().stopService()
        return _deferred(self._stop) if self._stop is not None else succeed(None)


def _deferred(fn: Callable[[], Any]) -> Deferred:
    result = maybeDeferred(fn)

    def awaited(value: Any) -> Any:
        if hasattr(value, "__await__"):
            return Deferred.fromCoroutine(value)
        return value

    return result.addCallback(awaited)


class ListenerService(Service):
    """Listens on an endpoint description (``tcp:8080``, ``systemd:domain=INET:index=0``).

    The description is asked for when the service starts, so it may come from settings
    read by an earlier child. A failure to listen fails the start (and so the daemon).
    """

    def __init__(
        self,
        name: str,
        reactor: Any,
        description: Callable[[], str],
        factory: Any,
        what: str,
    ):
        self.setName(name)
        self._reactor = reactor
        self._description = description
        self.factory = factory
        self._what = what
        self.port: IListeningPort | None = None

    def startService(self) -> Deferred:
        super().startService()
        description = self._description()
        d = serverFromString(self._reactor, description).listen(self.factory)

        def listening(port: IListeningPort) -> None:
            self.port = port
            host = port.getHost()
            _log.info(
                "{what} listening on {description} (port {port})",
                what=self._what,
                description=description,
                port=getattr(host, "port", "?"),
            )

        return d.addCallback(listening)

    def stopService(self) -> Deferred:
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening)
