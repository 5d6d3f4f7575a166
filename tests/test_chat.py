"""The chat websocket in memory: the real ``ChatFactory``/``ChatServer``/``ChatHub`` spoken to
by autobahn clients over ``autobahn.twisted.testing``'s in-memory agent, on a fake clock.

The pumps are flushed by the tests themselves (``Pumper``), so nothing here touches the
global reactor; admission, fan-out and the upgrade are in ``test_chat_sockets``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autobahn.twisted.testing import MemoryReactorClockResolver, create_memory_agent
from autobahn.twisted.websocket import WebSocketClientProtocol
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial import unittest

from owncast.api.http import iso
from owncast.chat.fanout import text_frame
from owncast.chat.protocol import IGNORE_CLIENT, MAX_FRAME, ChatFactory
from owncast.chat.server import (
    FLOOD_BURST,
    FLOOD_MUTE,
    KEEPALIVE_INTERVAL,
    WELCOME_DELAY,
    ChatServer,
)
from owncast.core.chat import MAX_BODY_BYTES, WELCOME_ID
from owncast.core.errors import ApiError
from tests.helpers import Client, make_context, result_of

URL = "ws://localhost:8080/entry"


class Pumper:
    """The ``IPumper`` the memory agent wants, flushed on demand instead of by the reactor."""

    def __init__(self) -> None:
        self.pumps: list[Any] = []

    def add(self, pump: Any) -> None:
        self.pumps.append(pump)

    def flush(self) -> None:
        for _ in range(10):
            for pump in self.pumps:
                pump.flush()


class RecordingClient(WebSocketClientProtocol):
    """A viewer's socket that keeps every frame it gets and how it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[bytes] = []
        self.closed: tuple[bool, int | None, str | None] | None = None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.frames.append(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.closed = (wasClean, code, reason)

    @property
    def messages(self) -> list[dict]:
        return [json.loads(f) for f in self.frames]

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m.get("type") == kind]

    def send_json(self, message: dict) -> None:
        self.sendMessage(json.dumps(message).encode("utf-8"))


class ChatHarness:
    """The real chat stack on a fake clock, with a way to open in-memory client sockets."""

    def __init__(self, testcase: unittest.TestCase):
        self.clock = Clock()
        self.ctx = make_context(Path(testcase.mktemp()), clock=self.clock)
        self.hub = self.ctx.chat
        # As the service tree wires it: the hub reads the chat settings.
        self.hub.settings = self.ctx.settings
        self.viewers = self.ctx.viewers
        self.server = ChatServer(
            self.hub, self.viewers, self.clock, lambda: self.ctx.settings["serverUrl"]
        )
        self.factory = ChatFactory(self.server)
        # autobahn's own timers (handshake and close timeouts) run on the fake clock too.
        self.factory.reactor = self.clock
        self.pumper = Pumper()
        # A reactor that resolves names too: Autobahn before 24 needs one for its agent.
        self.agent = create_memory_agent(
            MemoryReactorClockResolver(), self.pumper, lambda: self.factory.buildProtocol(None)
        )

        self.clients: list[RecordingClient] = []
        self.started = False

    def _client(self) -> RecordingClient:
        client = RecordingClient()
        self.clients.append(client)
        return client

    def open(self, useragent: str = "test-browser/1.0", **options: Any) -> Deferred:
        """Start a handshake; the Deferred fires with the client once it is open.
        (It never fires for a refused handshake: look at ``clients[-1]`` then.)"""
        return self.agent.open(URL, dict(options, useragent=useragent), self._client)

    def connect(self, useragent: str = "test-browser/1.0", **options: Any) -> RecordingClient:
        d = self.open(useragent, **options)
        self.flush()
        return result_of(d)

    def flush(self) -> None:
        self.pumper.flush()

    def start(self, testcase: unittest.TestCase) -> None:
        """Start the chat service (keepalive); the test's cleanup hangs up and stops it."""
        self.server.startService()
        testcase.addCleanup(self.stop)

    def stop(self) -> None:
        # Clients hang up first, so stopping the service does not depend on how it closes
        # sockets itself (test_stop_service_closes_sockets checks that).
        for client in self.clients:
            if client.closed is None:
                client.sendClose()
        self.flush()
        self.server.stopService()

    def stored(self) -> list[dict]:
        return result_of(Deferred.fromCoroutine(self.hub.everything()))


class ChatProtocolTests(unittest.TestCase):
    """The wire protocol documented in ``owncast.chat.protocol``, end to end in memory."""

    def setUp(self) -> None:
        self.h = ChatHarness(self)

    def test_chat_reaches_everyone_with_server_ids_and_times(self) -> None:
        """A CHAT from one client reaches every client, the sender too; the server assigns
        id and timestamp (forged ones are ignored) and renders and sanitizes the body."""
        alice, bob = self.h.connect(), self.h.connect()
        self.h.clock.advance(5)
        alice.send_json(
            {
                "type": "CHAT",
                "author": "alice",
                "id": "forged-id",
                "timestamp": "2001-01-01T00:00:00Z",
                "visible": False,
                "body": "**bold** <script>alert(1)</script> [x](javascript:alert(1))",
            }
        )
        self.h.flush()
        for client in (alice, bob):
            [chat] = client.of_type("CHAT")
            self.assertEqual(chat["author"], "alice")
            self.assertNotEqual(chat["id"], "forged-id")
            self.assertTrue(chat["id"])
            self.assertEqual(chat["timestamp"], iso(self.h.clock.seconds()))
            self.assertIs(chat["visible"], True)
            self.assertIn("<strong>bold</strong>", chat["body"])
            self.assertNotIn("<script", chat["body"])
            self.assertNotIn('href="javascript', chat["body"])
            self.assertNotIn("rawBody", chat)
        self.assertEqual(alice.of_type("CHAT"), bob.of_type("CHAT"))
        [stored] = self.h.stored()
        self.assertEqual(stored["id"], alice.of_type("CHAT")[0]["id"])

    def test_user_joined_and_name_change_are_broadcast(self) -> None:
        """While live, USER_JOINED and NAME_CHANGE reach every client with 0.0.7's fields
        (a name change has no timestamp)."""
        self.h.viewers.stream_started()
        alice, bob = self.h.connect(), self.h.connect()
        alice.send_json({"type": "USER_JOINED", "username": " alice "})
        alice.send_json({"type": "NAME_CHANGE", "oldName": "alice", "newName": "alicia"})
        self.h.flush()
        for client in (alice, bob):
            [joined] = client.of_type("USER_JOINED")
            self.assertEqual(set(joined), {"type", "username", "id", "timestamp"})
            self.assertEqual(joined["username"], "alice")
            self.assertEqual(joined["timestamp"], iso(self.h.clock.seconds()))
            [renamed] = client.of_type("NAME_CHANGE")
            self.assertEqual({"type", "oldName", "newName", "image", "id"}, set(renamed))
            self.assertEqual((renamed["oldName"], renamed["newName"]), ("alice", "alicia"))
            self.assertTrue(renamed["id"])
        self.assertEqual(self.h.stored(), [], "joins and renames are not chat history")

    def test_joins_while_offline_reach_webhooks_only(self) -> None:
        """0.0.7 told connected clients of a join only while a broadcast was live; the
        USER_JOINED event (webhooks) fires either way."""
        heard: list[tuple[str, dict]] = []
        self.h.hub._events = self.h.ctx.events
        self.h.ctx.events.subscribe(lambda kind, data: heard.append((kind, data)))
        alice, bob = self.h.connect(), self.h.connect()
        alice.send_json({"type": "USER_JOINED", "username": "alice"})
        self.h.flush()
        self.assertEqual(bob.of_type("USER_JOINED"), [])
        self.assertEqual([kind for kind, _ in heard], ["USER_JOINED"])
        self.assertEqual(heard[0][1]["username"], "alice")

    def test_oversized_body_refused_to_sender_only(self) -> None:
        """A body over 2048 bytes (UTF-8) is refused with a SYSTEM message to the sender only
        and is not stored; exactly 2048 bytes passes."""
        alice, bob = self.h.connect(), self.h.connect()
        alice.send_json({"type": "CHAT", "author": "alice", "body": "é" * 1025})  # 2050 bytes
        self.h.flush()
        [notice] = alice.of_type("SYSTEM")
        self.assertIn(str(MAX_BODY_BYTES), notice["body"])
        self.assertTrue(notice["id"])
        self.assertEqual(alice.of_type("CHAT"), [])
        self.assertEqual(bob.frames, [])
        self.assertEqual(self.h.stored(), [])

        alice.send_json({"type": "CHAT", "author": "alice", "body": "x" * MAX_BODY_BYTES})
        self.h.flush()
        self.assertEqual(len(bob.of_type("CHAT")), 1)
        self.assertEqual(len(self.h.stored()), 1)

    def test_a_store_outage_is_told_to_the_sender(self) -> None:
        """While the store refuses writes (Redis out of reach: a 503 ApiError), the sender
        is told so in a SYSTEM message, as for a refused message; nothing is logged as a
        crash."""
        alice = self.h.connect()

        def unreachable(record):
            return fail(ApiError("the shared store (Redis) is unreachable"))

        self.patch(self.h.ctx.store, "add_message", unreachable)
        alice.send_json({"type": "CHAT", "author": "alice", "body": "anyone there?"})
        self.h.flush()
        [notice] = alice.of_type("SYSTEM")
        self.assertIn("unreachable", notice["body"])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_lone_surrogates_in_names_refused_and_in_bodies_replaced(self) -> None:
        """JSON may carry a lone surrogate (``"\\ud800"``), which UTF-8 cannot: in a name it
        is refused with a SYSTEM notice to the sender; in a body it shows as U+FFFD."""
        alice, bob = self.h.connect(), self.h.connect()
        alice.send_json({"type": "CHAT", "author": "al\ud800", "body": "hi"})
        alice.send_json({"type": "NAME_CHANGE", "oldName": "alice", "newName": "\udfffx"})
        self.h.flush()
        self.assertEqual(len(alice.of_type("SYSTEM")), 2)
        self.assertEqual(bob.frames, [])
        self.assertEqual(self.h.stored(), [])

        alice.send_json({"type": "CHAT", "author": "alice", "body": "a\udc00 **b**"})
        self.h.flush()
        [chat] = bob.of_type("CHAT")
        self.assertEqual(chat["body"], "<p>a\ufffd <strong>b</strong></p>")
        self.assertEqual(len(self.h.stored()), 1)

    def assert_closes_only_offender(self, send: Any) -> None:
        alice, bob = self.h.connect(), self.h.connect()
        self.h.flush()
        send(alice)
        self.h.flush()
        self.assertIsNotNone(alice.closed, "the offending connection must be closed")
        self.assertIsNone(bob.closed)
        self.assertEqual(len(self.h.hub.clients), 1)
        bob.send_json({"type": "CHAT", "author": "bob", "body": "still here"})
        self.h.flush()
        self.assertEqual(len(bob.of_type("CHAT")), 1)

    def test_binary_frame_closes_that_connection(self) -> None:
        """A binary frame closes that one connection; the others carry on."""
        self.assert_closes_only_offender(lambda c: c.sendMessage(b"\x00\x01", isBinary=True))

    def test_non_json_frame_closes_that_connection(self) -> None:
        """A text frame that is not JSON closes that one connection; the others carry on."""
        self.assert_closes_only_offender(lambda c: c.sendMessage(b"hello, not json"))

    def test_json_without_type_closes_that_connection(self) -> None:
        """A JSON frame that is not an object with a type closes that one connection."""
        self.assert_closes_only_offender(lambda c: c.sendMessage(b"[1, 2, 3]"))

    def test_oversized_frame_closes_that_connection(self) -> None:
        """A frame over 16 KiB closes that one connection; the others carry on."""
        big = json.dumps({"type": "CHAT", "author": "a", "body": "x" * (MAX_FRAME + 1)})
        self.assert_closes_only_offender(lambda c: c.sendMessage(big.encode()))
        self.assertEqual(self.h.stored()[0]["body"], "<p>still here</p>")

    def test_ignore_client_is_accepted_and_not_counted(self) -> None:
        """A socket offering IGNORE_CLIENT gets it back and is never counted as a viewer."""
        self.h.viewers.stream_started()
        embed = self.h.connect("embed/1.0", protocols=[IGNORE_CLIENT])
        self.assertEqual(embed.websocket_protocol_in_use, IGNORE_CLIENT)
        self.assertEqual(self.h.viewers.count(), 0)
        embed.send_json({"type": "PONG"})
        self.h.flush()
        self.assertEqual(self.h.viewers.count(), 0)

        viewer = self.h.connect("viewer/1.0")
        self.assertIsNone(viewer.websocket_protocol_in_use)
        self.assertEqual(self.h.viewers.count(), 1)
        self.h.start(self)
        self.h.clock.advance(KEEPALIVE_INTERVAL)
        self.assertEqual(self.h.viewers.count(), 1)
        self.assertEqual(len(self.h.hub.clients), 2, "embeds still show as chat clients")

    def test_any_origin_is_admitted_by_default(self) -> None:
        """As 0.0.7: a page on another site (or a bot naming one) gets the chat."""
        other = self.h.connect(origin="http://other.example")
        self.assertIsNone(other.closed)
        other.send_json({"type": "CHAT", "author": "embed", "body": "hi from elsewhere"})
        self.h.flush()
        self.assertEqual(other.of_type("CHAT")[0]["body"], "<p>hi from elsewhere</p>")

    def test_allowed_origins_limit_browsers(self) -> None:
        """With ``chatAllowedOrigins`` set, another site's handshake fails with 403; this
        host and the listed origins pass."""
        result_of(
            Deferred.fromCoroutine(
                self.h.ctx.save({"chatAllowedOrigins": ["https://embed.example"]})
            )
        )
        self.h.open(origin="http://evil.example")
        self.h.flush()
        refused = self.h.clients[-1]
        self.assertTrue(
            refused.http_status_line.startswith("HTTP/1.1 403"), refused.http_status_line
        )
        self.assertIsNotNone(refused.closed)
        self.assertEqual(self.h.hub.clients, {})
        self.assertEqual(self.h.server.peers, {})
        ok = self.h.connect(origin="http://localhost:8080")
        self.assertIsNone(ok.closed)
        listed = self.h.connect(origin="https://embed.example")
        self.assertIsNone(listed.closed)
        self.assertEqual(len(self.h.hub.clients), 2)

    def test_clients_registry_and_admin_api(self) -> None:
        """hub.clients and GET /api/admin/clients list connected sockets with their
        connectedAt, messageCount, userAgent, ipAddress, username and clientID."""
        alice = self.h.connect("alice-browser/2.0")
        connected_at = self.h.clock.seconds()
        self.h.clock.advance(3)
        bob = self.h.connect("bob-browser/3.0")
        alice.send_json({"type": "USER_JOINED", "username": "alice"})
        for n in range(3):
            alice.send_json({"type": "CHAT", "author": "alice", "body": f"hello {n}"})
        self.h.flush()

        listed = Client(self.h.ctx).admin_get("/api/admin/clients")
        by_agent = {c["userAgent"]: c for c in listed}
        self.assertEqual(set(by_agent), {"alice-browser/2.0", "bob-browser/3.0"})
        a = by_agent["alice-browser/2.0"]
        self.assertEqual(
            set(a),
            {
                "connectedAt",
                "messageCount",
                "userAgent",
                "ipAddress",
                "username",
                "clientID",
                "geo",
            },
        )
        self.assertEqual(a["connectedAt"], iso(connected_at))
        self.assertEqual(a["messageCount"], 3)
        self.assertEqual(a["username"], "alice")
        self.assertEqual(a["ipAddress"], "127.0.0.1")
        self.assertIn(a["clientID"], self.h.hub.clients)
        b = by_agent["bob-browser/3.0"]
        self.assertEqual((b["messageCount"], b["username"]), (0, None))
        self.assertNotEqual(a["clientID"], b["clientID"])

        bob.sendClose()
        self.h.flush()
        self.assertIsNotNone(bob.closed)
        listed = Client(self.h.ctx).admin_get("/api/admin/clients")
        self.assertEqual([c["userAgent"] for c in listed], ["alice-browser/2.0"])

    def test_flood_limit_mutes_then_recovers(self) -> None:
        """Five quick messages pass; the sixth is refused and the sender muted for 10 s
        (others unaffected); after the mute, messages pass again."""
        alice, bob = self.h.connect(), self.h.connect()
        for n in range(FLOOD_BURST):
            alice.send_json({"type": "CHAT", "author": "alice", "body": f"quick {n}"})
        self.h.flush()
        self.assertEqual(len(bob.of_type("CHAT")), FLOOD_BURST)
        self.assertEqual(alice.of_type("SYSTEM"), [])

        alice.send_json({"type": "CHAT", "author": "alice", "body": "one too many"})
        self.h.flush()
        self.assertEqual(len(alice.of_type("SYSTEM")), 1)
        self.assertEqual(len(bob.of_type("CHAT")), FLOOD_BURST)
        self.assertEqual(bob.of_type("SYSTEM"), [])

        bob.send_json({"type": "CHAT", "author": "bob", "body": "I may talk"})
        self.h.flush()
        self.assertEqual(bob.of_type("CHAT")[-1]["author"], "bob")

        self.h.clock.advance(FLOOD_MUTE / 2)
        alice.send_json({"type": "CHAT", "author": "alice", "body": "still muted"})
        self.h.flush()
        self.assertEqual(len(alice.of_type("SYSTEM")), 2)
        self.assertNotIn("<p>still muted</p>", [m["body"] for m in bob.of_type("CHAT")])

        self.h.clock.advance(FLOOD_MUTE / 2)
        alice.send_json({"type": "CHAT", "author": "alice", "body": "back again"})
        self.h.flush()
        self.assertEqual(bob.of_type("CHAT")[-1]["body"], "<p>back again</p>")
        self.assertEqual(len(alice.of_type("SYSTEM")), 2)
        self.assertEqual(len(self.h.stored()), FLOOD_BURST + 2)

    def test_name_changes_and_joins_count_toward_the_flood_limit(self) -> None:
        """0.0.7 rate-limited every message a client sent, renames included."""
        alice, bob = self.h.connect(), self.h.connect()
        for n in range(FLOOD_BURST + 1):
            alice.send_json({"type": "NAME_CHANGE", "oldName": f"a{n}", "newName": f"a{n + 1}"})
        self.h.flush()
        self.assertEqual(len(bob.of_type("NAME_CHANGE")), FLOOD_BURST)
        self.assertEqual(len(alice.of_type("SYSTEM")), 1)

    def test_welcome_message_after_7_s_to_the_joiner_only(self) -> None:
        """The owner's welcome message reaches a client 7 s after it joins, as a SYSTEM
        message from the server with 0.0.7's id, to it alone, and is never stored."""
        result_of(
            Deferred.fromCoroutine(
                self.h.ctx.save({"welcomeMessage": "Be **kind**", "name": "Casey's"})
            )
        )
        early = self.h.connect()
        embed = self.h.connect(protocols=[IGNORE_CLIENT])
        self.h.clock.advance(WELCOME_DELAY / 2)
        late = self.h.connect()
        self.h.clock.advance(WELCOME_DELAY / 2)
        self.h.flush()
        [welcome] = early.of_type("SYSTEM")
        self.assertEqual(
            welcome,
            {
                "type": "SYSTEM",
                "id": WELCOME_ID,
                "author": "Casey's",
                "body": "<p>Be <strong>kind</strong></p>",
                "visible": True,
                "timestamp": iso(self.h.clock.seconds()),
            },
        )
        self.assertEqual((late.frames, embed.frames), ([], []))
        self.h.clock.advance(WELCOME_DELAY / 2)
        self.h.flush()
        self.assertEqual(len(late.of_type("SYSTEM")), 1)
        self.assertEqual(len(early.of_type("SYSTEM")), 1)
        self.assertEqual(embed.frames, [])
        self.assertEqual(self.h.stored(), [])

    def test_no_welcome_without_a_message_or_after_leaving(self) -> None:
        gone = self.h.connect()
        stays = self.h.connect()
        gone.sendClose()
        self.h.flush()
        result_of(Deferred.fromCoroutine(self.h.ctx.save({"welcomeMessage": "hello"})))
        self.h.clock.advance(WELCOME_DELAY)
        self.h.flush()
        self.assertEqual(gone.of_type("SYSTEM"), [])
        self.assertEqual(len(stays.of_type("SYSTEM")), 1)
        result_of(Deferred.fromCoroutine(self.h.ctx.save({"welcomeMessage": ""})))
        third = self.h.connect()
        self.h.clock.advance(WELCOME_DELAY)
        self.h.flush()
        self.assertEqual(third.frames, [])

    def test_disabled_chat_drops_messages_silently(self) -> None:
        """While ``chatDisabled`` is on, chat, system and action messages go nowhere and
        are not stored (0.0.7 dropped them without a word); turned on again, chat works."""
        alice, bob = self.h.connect(), self.h.connect()
        client = Client(self.h.ctx)
        self.assertEqual(
            client.admin_post("/api/admin/config/chat/disable", {"value": True})[0], 200
        )
        alice.send_json({"type": "CHAT", "author": "alice", "body": "anyone?"})
        result_of(Deferred.fromCoroutine(self.h.hub.send_system("maintenance")))
        self.h.flush()
        self.assertEqual((alice.frames, bob.frames), ([], []))
        self.assertEqual(self.h.stored(), [])
        self.assertIs(client.get("/api/config")[1]["chatDisabled"], True)
        client.admin_post("/api/admin/config/chat/disable", {"value": False})
        alice.send_json({"type": "CHAT", "author": "alice", "body": "back"})
        self.h.flush()
        self.assertEqual(len(bob.of_type("CHAT")), 1)

    def test_title_change_is_a_notice_never_stored(self) -> None:
        """A new stream title reaches connected clients as an ephemeral CHAT_ACTION without
        an author (0.0.7's notice); it is not in the history, and an emptied title says
        nothing."""
        alice = self.h.connect()
        client = Client(self.h.ctx)
        client.admin_post("/api/admin/config/streamtitle", {"value": "Late show"})
        self.h.flush()
        [notice] = alice.of_type("CHAT_ACTION")
        self.assertEqual(set(notice), {"type", "id", "body", "visible", "timestamp", "ephemeral"})
        self.assertIs(notice["ephemeral"], True)
        self.assertEqual(
            notice["body"], "<p>Stream title changed to <strong>Late show</strong></p>"
        )
        self.assertEqual(self.h.stored(), [])
        self.assertEqual(client.get("/api/chat")[1], [])
        client.admin_post("/api/admin/config/streamtitle", {"value": ""})
        self.h.flush()
        self.assertEqual(len(alice.of_type("CHAT_ACTION")), 1)

    def test_keepalive_pings_everyone(self) -> None:
        """Every 30 s (fake clock) each client gets {"type": "PING"}."""
        clients = [self.h.connect(), self.h.connect(protocols=[IGNORE_CLIENT])]
        self.h.start(self)
        self.h.clock.advance(KEEPALIVE_INTERVAL - 1)
        self.h.flush()
        for client in clients:
            self.assertEqual(client.of_type("PING"), [])
        self.h.clock.advance(1)
        self.h.flush()
        for client in clients:
            self.assertEqual(client.messages, [{"type": "PING"}])
        self.h.clock.advance(KEEPALIVE_INTERVAL)
        self.h.flush()
        for client in clients:
            self.assertEqual(len(client.of_type("PING")), 2)

    def test_stop_service_closes_sockets(self) -> None:
        """Stopping the chat service closes every socket."""
        clients = [self.h.connect(), self.h.connect()]
        self.h.server.startService()
        self.h.server.stopService()
        self.h.flush()
        for client in clients:
            self.assertIsNotNone(client.closed)
        self.assertEqual(self.h.hub.clients, {})

    def test_hiding_broadcasts_visibility_update_per_id(self) -> None:
        """Hiding messages via the hub sends one VISIBILITY-UPDATE per id, visible false."""
        alice, bob = self.h.connect(), self.h.connect()
        for body in ("first", "second", "third"):
            alice.send_json({"type": "CHAT", "author": "alice", "body": body})
        self.h.flush()
        ids = [m["id"] for m in bob.of_type("CHAT")]
        result_of(Deferred.fromCoroutine(self.h.hub.set_visibility(ids[:2], False)))
        self.h.flush()
        for client in (alice, bob):
            updates = client.of_type("VISIBILITY-UPDATE")
            self.assertEqual([u["id"] for u in updates], ids[:2])
            for u in updates:
                self.assertIs(u["visible"], False)
                self.assertIsInstance(u["timestamp"], str)
        visible = [m["id"] for m in self.h.stored() if m["visible"]]
        self.assertEqual(visible, ids[2:])

    def test_big_frames_decode_on_a_real_client(self) -> None:
        """Frames built by ``text_frame`` around each length boundary decode in autobahn."""
        client = self.h.connect()
        sizes = (0, 1, 125, 126, 127, 65535, 65536, 70000)
        payloads = [b"a" * n for n in sizes]
        for payload in payloads:
            self.h.server._send_all(text_frame(payload))
        self.h.flush()
        self.assertEqual([len(f) for f in client.frames], list(sizes))
        self.assertEqual(client.frames, payloads)
