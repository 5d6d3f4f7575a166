"""RedisStore against a real Redis: the IStore contract, plus what only a shared,
networked store has to get right (several nodes, ids across restarts, key prefixes).

Redis is found at ``OWNCAST_TEST_REDIS`` (``host:port``, default ``127.0.0.1:6379``).
These tests do not skip when it is unreachable: ``start`` fails and every test errors.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import txredisapi
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from owncast.interfaces import IStore
from owncast.store.redis import (
    DuplicateRecordError,
    RedisStore,
    RedisUnavailableError,
    StoreUnavailableError,
)
from owncast.store.redisbus import RedisChatBus
from owncast.store.redisconfig import RedisConfig
from tests.daemon import wait_until
from tests.helpers import redis_config
from tests.redisserver import started_redis
from tests.test_store import StoreContract


def _reactor():
    from twisted.internet import reactor

    return reactor


def _connection() -> Any:
    """A plain connection to the test Redis, to look at or clear its keys."""
    config = redis_config()
    return txredisapi.Connection(config.host, config.port, reconnect=False)


def _message(i: int, timestamp: float | None = None, visible: bool = True) -> dict:
    return {
        "id": f"m{i}",
        "type": "CHAT",
        "author": "a",
        "body": str(i),
        "visible": visible,
        "timestamp": 100.0 + i if timestamp is None else timestamp,
    }


class RedisCase(unittest.TestCase):
    """Each test gets its own key prefix; cleanup deletes every key under it."""

    def setUp(self):
        self.prefix = f"owncast-test:{uuid.uuid4().hex}:"
        self.addCleanup(self._delete_keys, self.prefix)

    async def new_store(self, prefix: str | None = None) -> RedisStore:
        """A started store on the test prefix (or ``prefix``), stopped in cleanup."""
        prefix = self.prefix if prefix is None else prefix
        store = RedisStore(_reactor(), redis_config(key_prefix=prefix, connect_timeout=5.0))
        await store.start()
        self.addCleanup(store.stop)
        return store

    async def raw_keys(self, prefix: str) -> list[str]:
        redis = await _connection()
        try:
            return sorted(await redis.keys(prefix + "*"))
        finally:
            await redis.disconnect()

    async def _delete_keys(self, prefix: str) -> None:
        redis = await _connection()
        try:
            keys = await redis.keys(prefix + "*")
            if keys:
                await redis.delete(keys)
        finally:
            await redis.disconnect()


class RedisStoreTests(StoreContract, RedisCase):
    async def setUp(self):
        RedisCase.setUp(self)
        await StoreContract.setUp(self)

    def make(self):
        return self.new_store()


class RedisOnlyTests(RedisCase):
    async def test_webhook_ids_are_not_reused_after_delete_or_restart(self):
        """Deleting the newest webhook, or restarting, never hands its id out again."""
        store = await self.new_store()
        first = await store.add_webhook("https://a.example", ["CHAT"], 1.0)
        second = await store.add_webhook("https://b.example", ["CHAT"], 2.0)
        self.assertTrue(await store.delete_webhook(second["id"]))
        third = await store.add_webhook("https://c.example", ["CHAT"], 3.0)
        self.assertEqual([first["id"], second["id"], third["id"]], ["1", "2", "3"])
        await store.stop()
        again = await self.new_store()
        fourth = await again.add_webhook("https://d.example", ["CHAT"], 4.0)
        self.assertEqual(fourth["id"], "4")
        self.assertEqual([h["id"] for h in await again.list_webhooks()], ["1", "3", "4"])

    async def test_two_nodes_on_one_prefix_share_state(self):
        """A write through one RedisStore is read through another on the same prefix."""
        one = await self.new_store()
        two = await self.new_store()
        await one.set_settings({"name": "shared"})
        await one.add_token({"token": "t", "name": "bot", "scopes": [], "timestamp": 1.0})
        hook = await one.add_webhook("https://a.example", ["CHAT"], 1.0)
        await one.add_message(_message(0))
        await one.add_sample("viewers", 5.0, 3)

        self.assertEqual(await two.get_settings(), {"name": "shared"})
        await two.touch_token("t", 9.0)
        self.assertEqual(
            await one.list_tokens(),
            [{"token": "t", "name": "bot", "scopes": [], "timestamp": 1.0, "lastUsed": 9.0}],
        )
        await two.touch_webhook(hook["id"], 8.0)
        self.assertEqual((await one.list_webhooks())[0]["lastUsed"], 8.0)
        other = await two.add_webhook("https://b.example", ["CHAT"], 2.0)
        self.assertNotEqual(other["id"], hook["id"])
        await two.add_message(_message(1))
        await two.set_visibility(["m0"], False)
        self.assertEqual(
            [(m["id"], m["visible"]) for m in await one.list_messages()],
            [("m0", False), ("m1", True)],
        )
        self.assertEqual(await two.list_samples("viewers", 0), [(5.0, 3.0)])
        await two.prune_samples(10.0)
        self.assertEqual(await one.list_samples("viewers", 0), [])

    async def test_limit_returns_the_newest_in_oldest_first_order(self):
        """``limit`` keeps the newest N that match, listed oldest first."""
        store = await self.new_store()
        for i in range(250):
            await store.add_message(_message(i, visible=i % 3 != 0))
        newest = await store.list_messages(None, False, 4)
        self.assertEqual([m["id"] for m in newest], ["m246", "m247", "m248", "m249"])
        visible = await store.list_messages(None, True, 4)
        self.assertEqual([m["id"] for m in visible], ["m244", "m245", "m247", "m248"])
        # Hidden messages far back: the search pages past the first hundred.
        await store.set_visibility([f"m{i}" for i in range(100, 250)], False)
        early = await store.list_messages(None, True, 3)
        self.assertEqual([m["id"] for m in early], ["m95", "m97", "m98"])
        self.assertEqual(await store.list_messages(None, False, 0), [])
        self.assertEqual(len(await store.list_messages(None, False, None)), 250)

    async def test_order_is_insertion_and_since_is_by_timestamp(self):
        """Messages list in the order added; ``since`` filters on their timestamps."""
        store = await self.new_store()
        for i, timestamp in enumerate((50.0, 10.0, 30.0, 40.0)):
            await store.add_message(_message(i, timestamp=timestamp))
        self.assertEqual([m["id"] for m in await store.list_messages()], ["m0", "m1", "m2", "m3"])
        self.assertEqual([m["id"] for m in await store.list_messages(20.0)], ["m0", "m2", "m3"])
        self.assertEqual([m["id"] for m in await store.list_messages(20.0, False, 2)], ["m2", "m3"])
        self.assertEqual(await store.list_messages(50.0), [])

    async def test_values_round_trip_exactly(self):
        """Floats keep every digit; empty lists stay lists; unicode survives."""
        store = await self.new_store()
        when = 1_700_000_000.123456
        await store.add_token(
            {
                "token": "t",
                "name": "ü",
                "scopes": [],
                "timestamp": when,
                "lastUsed": when + 0.000001,
            }
        )
        [token] = await store.list_tokens()
        self.assertEqual(
            token,
            {
                "token": "t",
                "name": "ü",
                "scopes": [],
                "timestamp": when,
                "lastUsed": when + 0.000001,
            },
        )
        await store.add_message(dict(_message(0, timestamp=when), body="héllo 🎉", extra=[]))
        [message] = await store.list_messages(when - 0.000001)
        self.assertEqual(
            (message["timestamp"], message["body"], message["extra"]), (when, "héllo 🎉", [])
        )
        await store.add_sample("cpu", when, 0.1 + 0.2)
        await store.add_sample("cpu", when, 0.1 + 0.2)
        self.assertEqual(await store.list_samples("cpu", 0), [(when, 0.1 + 0.2)] * 2)

    async def test_duplicates_are_refused(self):
        """A token or message id already stored is an error, and the first one stays."""
        store = await self.new_store()
        record = {"token": "t", "name": "first", "scopes": [], "timestamp": 1.0}
        await store.add_token(record)
        with self.assertRaises(DuplicateRecordError):
            await store.add_token(dict(record, name="second"))
        self.assertEqual([t["name"] for t in await store.list_tokens()], ["first"])
        await store.add_message(_message(0))
        with self.assertRaises(DuplicateRecordError):
            await store.add_message(dict(_message(0), body="other"))
        self.assertEqual([m["body"] for m in await store.list_messages()], ["0"])

    async def test_touching_a_deleted_record_does_not_revive_it(self):
        """touch_* after delete_* leaves nothing behind."""
        store = await self.new_store()
        await store.add_token({"token": "t", "name": "n", "scopes": [], "timestamp": 1.0})
        hook = await store.add_webhook("https://a.example", [], 1.0)
        await store.delete_token("t")
        await store.delete_webhook(hook["id"])
        await store.touch_token("t", 2.0)
        await store.touch_webhook(hook["id"], 2.0)
        self.assertEqual(await store.list_tokens(), [])
        self.assertEqual(await store.list_webhooks(), [])
        self.assertEqual(await self.raw_keys(self.prefix), [self.prefix + "webhooks:next"])

    async def test_prefixes_keep_deployments_apart(self):
        """Stores on different prefixes share nothing, and write only under their prefix."""
        other_prefix = f"owncast-test:{uuid.uuid4().hex}:"
        self.addCleanup(self._delete_keys, other_prefix)
        mine = await self.new_store()
        theirs = await self.new_store(other_prefix)
        await mine.set_settings({"a": 1})
        await mine.add_webhook("https://a.example", [], 1.0)
        await mine.add_sample("cpu", 1.0, 1.0)
        self.assertEqual(await theirs.get_settings(), {})
        self.assertEqual(await theirs.list_webhooks(), [])
        self.assertEqual(await theirs.list_samples("cpu", 0), [])
        self.assertEqual((await theirs.add_webhook("https://b.example", [], 1.0))["id"], "1")
        keys = await self.raw_keys(self.prefix)
        self.assertIn(self.prefix + "settings", keys)
        self.assertTrue(all(k.startswith(self.prefix) for k in keys))

    async def test_provides_interface_before_start(self):
        """The class itself provides IStore, not only a started instance."""
        self.assertTrue(
            verifyObject(IStore, RedisStore(_reactor(), RedisConfig(key_prefix=self.prefix)))
        )

    async def test_unreachable_redis_fails_start(self):
        """start() fails with RedisUnavailableError instead of waiting forever."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        store = RedisStore(_reactor(), RedisConfig("127.0.0.1", port, connect_timeout=0.5))
        with self.assertRaises(RedisUnavailableError):
            await store.start()
        await store.stop()

    async def test_calls_before_start_fail(self):
        """A store that was never started says so instead of hanging."""
        store = RedisStore(_reactor(), RedisConfig(key_prefix=self.prefix))
        with self.assertRaises(RuntimeError):
            await store.get_settings()


class RedisConfigTests(unittest.TestCase):
    def test_from_url(self):
        """What ``--redis`` takes: the store and the chat bus get the same address."""
        self.assertEqual(
            RedisConfig.from_url("redis://:pw@cache:6380/2"),
            RedisConfig(host="cache", port=6380, dbid=2, password="pw"),
        )
        self.assertEqual(RedisConfig.from_url("127.0.0.1"), RedisConfig(dbid=0))
        self.assertEqual(RedisConfig.from_url("cache:6380").address, "cache:6380")
        for bad in ("http://x", "redis://h/notanumber", "redis://h:port/0", "redis:///0"):
            self.assertRaises(ValueError, RedisConfig.from_url, bad)


class _Log:
    """Log events of a test, the texts that match ``needle`` counted."""

    def __init__(self, testcase: unittest.TestCase):
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def count(self, needle: str) -> int:
        return sum(needle in (formatEvent(e) or "") for e in self.events)


class RedisOutageTests(unittest.TestCase):
    """A Redis of the test's own goes away and comes back while the store and the bus run."""

    timeout = 60

    async def test_writes_fail_fast_reads_come_from_memory_and_it_recovers(self):
        server = await started_redis(self)
        log = _Log(self)
        config = RedisConfig("127.0.0.1", server.port, key_prefix="outage:", connect_timeout=5.0)
        store = RedisStore(_reactor(), config)
        await store.start()
        self.addCleanup(store.stop)
        await store.set_settings({"name": "before"})
        await store.add_token({"token": "t1", "name": "bot", "scopes": [], "timestamp": 1.0})
        hook = await store.add_webhook("https://hooks.example/x", ["CHAT"], 2.0)
        for i in range(3):
            await store.add_message(_message(i))
        settings, tokens = await store.get_settings(), await store.list_tokens()
        hooks = await store.list_webhooks()
        history = await store.list_messages(since=100.0, visible_only=True, limit=10)
        await store.list_samples("cpu", 0.0)

        await server.stop()
        for _ in range(3):
            with self.assertRaises(StoreUnavailableError):
                # within a second, and not a TimeoutError from the deadline
                await store.set_settings({"name": "during"}).addTimeout(1.0, _reactor())
        with self.assertRaises(StoreUnavailableError):
            await store.add_message(_message(9)).addTimeout(1.0, _reactor())
        self.assertEqual(await store.get_settings(), settings)
        self.assertEqual(await store.list_tokens(), tokens)
        self.assertEqual(await store.list_webhooks(), hooks)
        newer = await store.list_messages(since=101.0, visible_only=True, limit=10)
        self.assertEqual(newer, [m for m in history if m["timestamp"] > 101.0])
        self.assertEqual(await store.list_samples("cpu", 10.0), [])
        with self.assertRaises(StoreUnavailableError):  # never read: nothing to serve
            await store.list_messages(since=None)
        # best-effort writes are dropped without a word
        await store.touch_token("t1", 5.0)
        await store.touch_webhook(hook["id"], 5.0)
        await store.add_sample("cpu", 5.0, 1.0)
        self.assertEqual(log.count("is unreachable"), 1)
        self.assertFalse(store.outage.up)

        await server.start()
        await wait_until(lambda: store.outage.up, 10, "the store to reconnect")
        await store.set_settings({"name": "after"})
        self.assertEqual((await store.get_settings())["name"], "after")
        self.assertEqual(log.count("is unreachable"), 1)
        self.assertEqual(log.count("reachable again"), 1)

    async def test_the_chat_bus_subscribes_again_by_itself(self):
        server = await started_redis(self)
        log = _Log(self)
        config = RedisConfig("127.0.0.1", server.port, key_prefix="outage:", connect_timeout=5.0)
        bus = RedisChatBus(_reactor(), config)
        heard: list[dict] = []
        bus.subscribe(heard.append)
        await bus.start()
        self.addCleanup(bus.stop)
        await bus.publish({"n": 1})
        await wait_until(lambda: heard, 5, "the first message")
        await server.stop()
        await wait_until(lambda: not bus.outage.up, 5, "the bus to notice")
        with self.assertRaises(StoreUnavailableError):
            await bus.publish({"n": 2}).addTimeout(1.0, _reactor())
        await server.start()
        await wait_until(lambda: bus.outage.up, 10, "the bus to subscribe again")
        await bus.publish({"n": 3})
        await wait_until(lambda: len(heard) == 2, 5, "the message after the outage")
        self.assertEqual(heard, [{"n": 1}, {"n": 3}])
        self.assertEqual(log.count("Redis"), 0)  # the store announces outages, not the bus
