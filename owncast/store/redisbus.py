"""The Redis chat bus: how what the chat hub broadcasts reaches the chat sockets of every node.

One node (the default) needs nothing but a function call (``owncast.chat.bus``). Several
nodes that share a Redis store (``--redis``) share chat through Redis pub/sub:
``RedisChatBus`` publishes each message to one channel that every node subscribes to,
its own included, so every node delivers every message in the one order Redis gave them.

Pub/sub keeps nothing: a node that is cut off from Redis misses what is published
meanwhile (its viewers still get the history from the store when they reload). While
Redis is gone, publishing fails at once (``StoreUnavailableError``), and once it is back
the bus connects and subscribes again by itself (``owncast.store.redislink.Outage``,
quietly: the store announces the outage). Messages are stored before they are published,
so nothing is lost for good.
"""

from __future__ import annotations

import json
from typing import Any

import txredisapi
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from owncast.chat.bus import Listener, deliver
from owncast.interfaces import IChatBus
from owncast.store.redisconfig import RedisConfig
from owncast.store.redislink import Outage, StoreUnavailableError, connect, in_time

_log = Logger()


class _Subscriber(txredisapi.SubscriberProtocol):
    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.factory.bus._received(message)

    def connectionLost(self, why: Any) -> None:
        super().connectionLost(why)
        if not self.factory.disconnectCalled:
            self.factory.bus.outage.lost("the chat subscription was lost")


class _SubscriberFactory(txredisapi.SubscriberFactory):
    """Subscribes the one connection it makes; the bus makes a new factory after a loss."""

    protocol = _Subscriber
    reconnect = False

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

    def __init__(self, reactor: Any, config: RedisConfig | None = None):
        self._reactor = reactor
        self._config = config = config or RedisConfig()
        self.channel = f"{config.key_prefix}chat:db{config.dbid or 0}"
        self._listeners: list[Listener] = []
        self._publisher: Any = None
        self._subscriber: _SubscriberFactory | None = None
        self.outage = Outage(reactor, config, self._start, announce=False)

    def start(self) -> Deferred:
        self.outage = Outage(self._reactor, self._config, self._start, announce=False)
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        """Connect and subscribe (at start, and again after an outage). A subscriber left
        over is closed first: two at once would deliver messages twice."""
        config = self._config
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            await subscriber.disconnect()
        publisher = await connect(config, self._reactor)
        old, self._publisher = self._publisher, publisher
        if old is not None:
            old.disconnect().addErrback(lambda _: None)
        factory = self._subscriber = _SubscriberFactory(self, config.password)
        timeout = config.connect_timeout
        factory.startConnecting(txredisapi._makeEndpoint(config.host, config.port, timeout))
        await in_time(
            factory.subscribed, config, self._reactor, "chat bus: could not subscribe", self._close
        )

    def stop(self) -> Deferred:
        self.outage.stop()
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        publisher, self._publisher = self._publisher, None
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            await subscriber.disconnect()
        if publisher is not None:
            await publisher.disconnect()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, message: dict) -> Deferred:
        if self._publisher is None and self.outage.up:
            raise RuntimeError("the chat bus is not started")
        return Deferred.fromCoroutine(self._publish(json.dumps(message)))

    async def _publish(self, raw: str) -> None:
        if self._publisher is None:
            raise StoreUnavailableError()
        try:
            await self._publisher.publish(self.channel, raw)
        except txredisapi.ConnectionError as e:
            self.outage.lost(str(e) or type(e).__name__)
            raise StoreUnavailableError() from e

    def _received(self, raw: Any) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            _log.warn("Ignored a chat bus message that is not JSON")
            return
        if isinstance(message, dict):
            deliver(self._listeners, message)
