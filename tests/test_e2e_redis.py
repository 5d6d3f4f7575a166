"""Two daemons on one Redis (``--redis``) share settings, tokens, webhooks, chat history,
and live chat (a message sent through one node reaches the sockets of the other)."""

from __future__ import annotations

import secrets
from pathlib import Path

import txredisapi
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from tests.daemon import start_daemon, wait_until
from tests.helpers import REDIS
from tests.test_chat_e2e import connected


class SharedRedisTests(unittest.TestCase):
    timeout = 120

    async def asyncCleanupKeys(self, prefix_db: int) -> None:
        host, port = REDIS.split(":")
        conn = await txredisapi.Connection(host, int(port), dbid=prefix_db, reconnect=False)
        try:
            await conn.flushdb()
        finally:
            await conn.disconnect()

    async def test_two_nodes_share_state(self):
        # A database of its own, so flushing it in cleanup touches nothing else.
        db = 9 + secrets.randbelow(5)
        self.addCleanup(lambda: self.asyncCleanupKeys(db))
        await self.asyncCleanupKeys(db)
        url = f"redis://{REDIS}/{db}"
        key = "shared-key-" + secrets.token_hex(4)
        first = await start_daemon(
            self, Path(self.mktemp()).resolve(), args=["--redis", url, "--streamkey", key]
        )
        second = await start_daemon(
            self, Path(self.mktemp()).resolve(), args=["--redis", url, "--streamkey", key]
        )
        auth = ("admin", key)
        response = await first.post("/api/admin/config/name", {"value": "Shared"}, auth=auth)
        self.assertEqual(response.code, 200)
        response = await first.post(
            "/api/admin/accesstokens/create",
            {"name": "bot", "scopes": ["CAN_SEND_SYSTEM_MESSAGES"]},
            auth=auth,
        )
        token = response.json["token"]
        listener = await connected(self, first.web_port)
        response = await second.post(
            "/api/integrations/chat/system", {"body": "from node two"}, bearer=token
        )
        self.assertEqual(response.code, 200, response.content)
        history = (await first.get("/api/chat")).json
        self.assertEqual([m["body"] for m in history], ["from node two"])
        await wait_until(lambda: listener.of_type("SYSTEM"), 10, "the message on node one")
        [live] = listener.of_type("SYSTEM")
        self.assertEqual((live["body"], live["id"]), ("from node two", history[0]["id"]))
        # Settings reach the other node within its refresh interval, and survive restarts.
        deadline = 50
        while (await second.get("/api/config")).json["name"] != "Shared" and deadline:
            deadline -= 1
            await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual((await second.get("/api/config")).json["name"], "Shared")
        await second.stop()
        await second.start()
        self.assertEqual((await second.get("/api/config")).json["name"], "Shared")
        # Nothing went to SQLite files in the data dirs.
        self.assertFalse((first.datadir / "owncast.db").exists())
