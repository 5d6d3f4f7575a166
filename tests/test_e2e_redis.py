"""Two daemons on one Redis (``--redis``) share settings, tokens, webhooks, chat history,
and live chat (a message sent through one node reaches the sockets of the other); a node
rides out an outage of its Redis."""

from __future__ import annotations

import secrets
from pathlib import Path

import txredisapi
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from tests.daemon import sleep, start_daemon, wait_until
from tests.helpers import REDIS
from tests.redisserver import started_redis
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
        self.assertEqual([m["body"] for m in history], ["<p>from node two</p>"])
        await wait_until(lambda: listener.of_type("SYSTEM"), 10, "the message on node one")
        [live] = listener.of_type("SYSTEM")
        self.assertEqual((live["body"], live["id"]), ("<p>from node two</p>", history[0]["id"]))
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


class RedisOutageTests(unittest.TestCase):
    """A node whose Redis goes away: changes answer 503 at once, what is in memory is
    still served, the outage is logged once, and the node recovers by itself."""

    timeout = 120

    async def test_a_node_rides_out_a_redis_outage(self):
        server = await started_redis(self)
        key = "outage-key-" + secrets.token_hex(4)
        node = await start_daemon(
            self, Path(self.mktemp()).resolve(), args=["--redis", server.url, "--streamkey", key]
        )
        auth = ("admin", key)
        response = await node.post("/api/admin/config/name", {"value": "Before"}, auth=auth)
        self.assertEqual(response.code, 200)
        hook = {"url": "https://hooks.example/x", "events": ["CHAT"]}
        self.assertEqual((await node.post("/api/admin/webhooks/create", hook, auth=auth)).code, 200)
        webhooks = (await node.get("/api/admin/webhooks", auth=auth)).json

        await server.stop()
        for _ in range(3):
            # within a second (the request's own timeout), a clear JSON answer
            response = await node.post(
                "/api/admin/config/name", {"value": "During"}, auth=auth, timeout=1.0
            )
            self.assertEqual(response.code, 503, response)
            self.assertEqual(response.json["success"], False)
            self.assertIn("Redis", response.json["message"])
        self.assertEqual((await node.get("/api/config", timeout=1.0)).json["name"], "Before")
        self.assertEqual((await node.get("/api/admin/webhooks", auth=auth)).json, webhooks)
        self.assertEqual((await node.get("/api/status", timeout=1.0)).code, 200)
        await sleep(6)  # a shared-state refresh or more: nothing more is logged

        await server.start()

        async def saved() -> bool:
            answer = await node.post("/api/admin/config/name", {"value": "After"}, auth=auth)
            return answer.code == 200

        await wait_until(saved, 20, "a change to be saved again", interval=0.5)
        self.assertEqual((await node.get("/api/config")).json["name"], "After")
        self.assertEqual(node.output.count("is unreachable"), 1, node.output)
        self.assertEqual(node.output.count("reachable again"), 1, node.output)
        self.assertNotIn("Traceback", node.output)
