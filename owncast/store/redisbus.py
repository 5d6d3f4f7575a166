"""The Redis chat bus: how what the chat hub broadcasts reaches the chat sockets of every node.

One node (the default) needs nothing but a function call (``owncast.chat.bus``). Several
nodes that share a Redis store (``--redis``) share chat through Redis pub/sub:
``RedisChatBus`` publishes each message to one channel that every node subscribes to,
its own included, so every node delivers every message in the one order Redis gave them.

Pub/sub keeps nothing: a node that is cut off from Redis misses what is published
meanwhile (its viewers still get the history from the store when they reload), and
txredisapi reconnects and the bus subscribes again. Messages are stored before they are
published, so nothing is lost for good.
"""

from __future__ import annotations

import json
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from owncast.chat.bus import Listener, deliver
from owncast.interfaces import IChatBus

_log = Logger()


class _Subscriber(txredisapi.SubscriberProtocol):
    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.factory.bus._received(message)


class _SubscriberFactory(txredisapi.SubscriberFactory):
    """Subscribes every connection it makes (the first and each reconnection)."""

    protocol = _Subscriber

    def __init__(self, bus: RedisChatBus, password: str | None):
        super().__init__()
        self.bus = bus
        self.password = password
        self.subscribed: Deferred = Deferred()

    def addConnection(self, conn: Any) -> None:
        super().addConnection(conn)
        if self.disconnectCalled:
            return
        d = conn.subscribe(self.bus.channel)
        d.addCallbacks(self._subscribed, lambda f: _log.failure("Could not subscribe", f))

    def _subscribed(self, _: Any) -> None:
        if not self.subscribed.called:
            self.subscribed.callback(None)


@implementer(IChatBus)
class RedisChatBus:
    """Several nodes: one Redis pub/sub channel, ``<prefix>chat:db<N>``. Channels are
    not per database, so the name carries the database as well as the prefix: the
    deployments that the store keeps apart hear only their own chat."""

    def __init__(
        self,
        reactor: Any,
        host: str = "127.0.0.1",
        port: int = 6379,
        dbid: int | None = None,
        password: str | None = None,
        key_prefix: str = "owncast:",
        connect_timeout: float = 10.0,
    ):
        self._reactor = reactor
        self._host, self._port, self._dbid, self._password = host, port, dbid, password
        self._timeout = connect_timeout
        self.channel = f"{key_prefix}chat:db{dbid or 0}"
        self._listeners: list[Listener] = []
        self._publisher: Any = None
        self._subscriber: _SubscriberFactory | None = None

    def start(self) -> Deferred:
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self._publisher = txredisapi.lazyConnection(
            host=self._host,
            port=self._port,
            dbid=self._dbid,
            password=self._password,
            connectTimeout=self._timeout,
            convertNumbers=False,
        )
        factory = self._subscriber = _SubscriberFactory(self, self._password)
        factory.startConnecting(txredisapi._makeEndpoint(self._host, self._port, self._timeout))
        try:
            await self._publisher.ping().addTimeout(self._timeout, self._reactor)
            await factory.subscribed.addTimeout(self._timeout, self._reactor)
        except Exception as e:
            await self.stop()
            why = "no connection" if isinstance(e, defer.TimeoutError) else repr(e)
            raise ConnectionError(
                f"chat bus: could not reach Redis at {self._host}:{self._port}: {why}"
            ) from e

    def stop(self) -> Deferred:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        publisher, self._publisher = self._publisher, None
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            await subscriber.disconnect()
        if publisher is not None:
            await publisher.disconnect()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, message: dict) -> Deferred:
        if self._publisher is None:
            raise RuntimeError("the chat bus is not started")
        return self._publisher.publish(self.channel, json.dumps(message))

    def _received(self, raw: Any) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            _log.warn("Ignored a chat bus message that is not JSON")
            return
        if isinstance(message, dict):
            deliver(self._listeners, message)
