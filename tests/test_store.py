"""The IStore contract, as a mixin every implementation's test case runs (SQLite here;
a Redis store will run the same tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from twisted.internet.defer import maybeDeferred
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from owncast.interfaces import IStore
from owncast.store.sqlite import MIGRATIONS, SqliteStore
from tests.helpers import make_store, result_of


class StoreContract:
    """Behaviour any IStore must show. ``make`` returns a started, empty store, or a
    Deferred or coroutine of one; the tests await every call, so a store whose Deferreds
    fire later (over a network) runs them as well as one whose Deferreds have fired."""

    def make(self):
        raise NotImplementedError

    async def setUp(self):
        self.store = await maybeDeferred(self.make)

    def test_provides_interface(self):
        self.assertTrue(verifyObject(IStore, self.store))

    async def test_settings_roundtrip_json_values(self):
        values = {
            "name": "x",
            "tags": ["a"],
            "s3": {"enabled": False},
            "nsfw": True,
            "port": 8080,
            "none": None,
        }
        await self.store.set_settings(values)
        await self.store.set_settings({"name": "y"})
        self.assertEqual(await self.store.get_settings(), {**values, "name": "y"})

    async def test_tokens(self):
        record = {
            "token": "t1",
            "name": "bot",
            "scopes": ["HAS_ADMIN_ACCESS"],
            "timestamp": 10.0,
            "lastUsed": None,
        }
        await self.store.add_token(record)
        await self.store.add_token(dict(record, token="t2", timestamp=11.0))
        await self.store.touch_token("t1", 20.0)
        tokens = await self.store.list_tokens()
        self.assertEqual([t["token"] for t in tokens], ["t1", "t2"])
        self.assertEqual(tokens[0]["lastUsed"], 20.0)
        self.assertEqual(tokens[0]["scopes"], ["HAS_ADMIN_ACCESS"])
        self.assertTrue(await self.store.delete_token("t1"))
        self.assertFalse(await self.store.delete_token("t1"))
        self.assertEqual([t["token"] for t in await self.store.list_tokens()], ["t2"])

    async def test_webhooks(self):
        first = await self.store.add_webhook("https://a.example", ["CHAT"], 1.0)
        second = await self.store.add_webhook("https://b.example", ["STREAM_STARTED"], 2.0)
        self.assertNotEqual(first["id"], second["id"])
        self.assertIsInstance(first["id"], str)
        await self.store.touch_webhook(first["id"], 5.0)
        hooks = await self.store.list_webhooks()
        self.assertEqual([h["url"] for h in hooks], ["https://a.example", "https://b.example"])
        self.assertEqual(hooks[0]["lastUsed"], 5.0)
        self.assertTrue(await self.store.delete_webhook(first["id"]))
        self.assertFalse(await self.store.delete_webhook(first["id"]))
        # A deleted id is never handed out again.
        third = await self.store.add_webhook("https://c.example", ["CHAT"], 3.0)
        self.assertNotIn(third["id"], (first["id"], second["id"]))

    async def test_messages(self):
        for i in range(5):
            await self.store.add_message(
                {
                    "id": f"m{i}",
                    "type": "CHAT",
                    "author": "a",
                    "body": str(i),
                    "visible": True,
                    "timestamp": 100.0 + i,
                    "rawBody": str(i),
                }
            )
        changed = await self.store.set_visibility(["m1", "m1", "nope"], False)
        self.assertEqual([(m["id"], m["visible"]) for m in changed], [("m1", False)])
        everything = await self.store.list_messages(None, False, None)
        self.assertEqual([m["id"] for m in everything], ["m0", "m1", "m2", "m3", "m4"])
        self.assertEqual(everything[0]["rawBody"], "0")
        recent = await self.store.list_messages(101.5, True, 2)
        self.assertEqual([m["id"] for m in recent], ["m3", "m4"])
        visible = await self.store.list_messages(None, True, None)
        self.assertNotIn("m1", [m["id"] for m in visible])

    async def test_samples(self):
        for t, v in ((1.0, 10), (2.0, 20), (3.0, 30)):
            await self.store.add_sample("cpu", t, v)
        await self.store.add_sample("memory", 2.0, 50)
        self.assertEqual(await self.store.list_samples("cpu", 1.5), [(2.0, 20), (3.0, 30)])
        await self.store.prune_samples(2.5)
        self.assertEqual(await self.store.list_samples("cpu", 0), [(3.0, 30)])
        self.assertEqual(await self.store.list_samples("memory", 0), [])


class SqliteStoreTests(StoreContract, unittest.TestCase):
    def make(self):
        return make_store()

    def test_file_is_wal_and_versioned(self):
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        store = make_store(str(path))
        result_of(store.set_settings({"a": 1}))
        result_of(store.stop())
        conn = sqlite3.connect(path)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(conn.execute("PRAGMA user_version").fetchone()[0], len(MIGRATIONS))
        conn.close()
        # Reopening does not re-run migrations and keeps the data.
        store = make_store(str(path))
        self.assertEqual(result_of(store.get_settings()), {"a": 1})
        result_of(store.stop())

    def test_failed_write_is_rolled_back(self):
        record = {"token": "dup", "name": "n", "scopes": [], "timestamp": 1.0}
        result_of(self.store.add_token(record))
        d = self.store.add_token(record)
        self.failureResultOf(d, sqlite3.IntegrityError)
        self.assertEqual(len(result_of(self.store.list_tokens())), 1)

    def test_sql_injection_is_data(self):
        evil = "x'); DROP TABLE settings; --"
        result_of(self.store.set_settings({evil: evil}))
        self.assertEqual(result_of(self.store.get_settings()), {evil: evil})

    async def test_default_runner_uses_a_thread(self):
        from twisted.internet import reactor

        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(str(path), reactor=reactor)
        await store.start()
        self.addCleanup(store.stop)
        await store.set_settings({"k": "v"})
        self.assertEqual(await store.get_settings(), {"k": "v"})
