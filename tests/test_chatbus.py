"""Chat buses: one contract for the in-process bus and the Redis pub/sub bus (real Redis
at ``OWNCAST_TEST_REDIS``, default 127.0.0.1:6379; no skipping when it is down)."""

from __future__ import annotations

import uuid

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from owncast.chat.bus import LocalChatBus
from owncast.interfaces import IChatBus
from owncast.store.redisbus import RedisChatBus
from owncast.store.redisconfig import RedisConfig
from tests.daemon import wait_until
from tests.helpers import redis_config


async def until(check) -> None:
    await wait_until(check, 5.0, "the chat bus", 0.01)


class ChatBusContract:
    """``node()`` gives a started bus of the same deployment (another node, where the
    bus has such a thing)."""

    async def node(self):
        raise NotImplementedError

    async def test_provides_the_interface(self):
        verifyObject(IChatBus, await self.node())

    async def test_every_node_gets_every_message_in_order(self):
        a, b = await self.node(), await self.node()
        got_a: list = []
        got_b: list = []
        a.subscribe(got_a.append)
        b.subscribe(got_b.append)
        sent = [
            {"type": "CHAT", "id": str(i), "body": f"<p>{i} ünï</p>", "n": [i, 1.5, None]}
            for i in range(50)
        ]
        for i, message in enumerate(sent):
            await (a if i % 2 else b).publish(message)
        await until(lambda: len(got_a) == len(got_b) == 50)
        self.assertEqual(got_a, sent)
        self.assertEqual(got_b, sent)

    async def test_a_failing_listener_does_not_stop_the_others(self):
        bus = await self.node()
        got: list = []

        def broken(message):
            raise RuntimeError("listener bug")

        bus.subscribe(broken)
        bus.subscribe(got.append)
        await bus.publish({"id": "1"})
        await until(lambda: got)
        self.assertEqual(got, [{"id": "1"}])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class LocalChatBusTests(ChatBusContract, unittest.TestCase):
    def setUp(self):
        self.bus = LocalChatBus()

    async def node(self):
        await self.bus.start()
        return self.bus

    def test_delivers_at_once(self):
        got: list = []
        self.bus.subscribe(got.append)
        self.bus.publish({"id": "x"})
        self.assertEqual(got, [{"id": "x"}])


class RedisChatBusTests(ChatBusContract, unittest.TestCase):
    def setUp(self):
        self.prefix = f"owncast-test:{uuid.uuid4().hex}:"

    async def node(self, prefix: str | None = None):
        bus = RedisChatBus(reactor, redis_config(key_prefix=prefix or self.prefix))
        await bus.start()
        self.addCleanup(bus.stop)
        return bus

    async def test_deployments_with_other_prefixes_do_not_hear_each_other(self):
        ours, theirs = await self.node(), await self.node(prefix=self.prefix + "other:")
        got: list = []
        theirs.subscribe(got.append)
        ours.subscribe(got.append)
        await ours.publish({"id": "ours"})
        await until(lambda: got)
        await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(got, [{"id": "ours"}])

    async def test_subscribes_again_after_losing_redis(self):
        bus = await self.node()
        got: list = []
        bus.subscribe(got.append)
        # The subscriber's connection breaks (as on a Redis restart or a network cut).
        [connection] = bus._subscriber.pool
        connection.transport.abortConnection()
        await until(lambda: not bus._subscriber.pool or bus._subscriber.pool[0] is not connection)

        async def published() -> bool:
            await bus.publish({"id": "again"})
            return bool(got)

        for _ in range(100):
            if await published():
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(got[0], {"id": "again"})

    async def test_start_fails_loudly_without_redis(self):
        bus = RedisChatBus(reactor, RedisConfig("127.0.0.1", 1, connect_timeout=0.5))
        with self.assertRaises(ConnectionError):
            await bus.start()
