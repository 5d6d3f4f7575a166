"""Webhook delivery: ``WebhookDispatcher`` on a fake clock with a fake ``post``, and the real
daemon posting to a small ``twisted.web`` receiver on a loopback port.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.policies import WrappingFactory
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from owncast.api.http import iso
from owncast.chat.bus import LocalChatBus
from owncast.core import events
from owncast.core.chat import ChatHub
from owncast.core.events import EventBus
from owncast.core.webhooks import (
    CONCURRENCY,
    MAX_QUEUE,
    RETRY_DELAYS,
    TIMEOUT,
    WebhookDispatcher,
    event_data,
)
from tests.daemon import start_daemon, wait_until
from tests.helpers import Client, make_context, result_of

KEY = "e2e-webhook-stream-key"
ADMIN = ("admin", KEY)
WAIT = 10.0


class Call:
    def __init__(self, url: str, body: bytes):
        self.url = url
        self.raw = body
        self.body = json.loads(body)
        self.cancelled = False
        self.d: Deferred = Deferred(self._cancel)

    def _cancel(self, d: Deferred) -> None:
        self.cancelled = True


class FakePost:
    """``post(url, body)``: records each call; the test answers through ``call.d``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, url: str, body: bytes) -> Deferred:
        call = Call(url, body)
        self.calls.append(call)
        return call.d

    @property
    def pending(self) -> list[Call]:
        return [c for c in self.calls if not c.d.called]

    def answer_all(self, code: int = 200) -> None:
        """Answer every call, including those the answers start, until none is left."""
        while self.pending:
            self.pending[0].d.callback(code)


class Harness:
    """A dispatcher over a context's store, with hooks added through the store."""

    def __init__(self, testcase: unittest.TestCase):
        self.clock = Clock()
        self.ctx = make_context(Path(testcase.mktemp()), clock=self.clock)
        self.post = FakePost()
        self.dispatcher = WebhookDispatcher(self.ctx.webhooks, self.clock, self.post)
        self.bus = EventBus()
        self.bus.subscribe(self.dispatcher)
        self.hub = ChatHub(
            self.ctx.store,
            self.clock.seconds,
            events=self.bus,
            bus=LocalChatBus(),
            settings={"name": "Hooked server"},
        )

    def hook(self, url: str, *names: str) -> dict:
        record = result_of(self.ctx.store.add_webhook(url, list(names), self.clock.seconds()))
        result_of(Deferred.fromCoroutine(self.ctx.webhooks.reload()))
        return record

    def hooks(self) -> dict[str, dict]:
        return {h["url"]: h for h in result_of(self.ctx.store.list_webhooks())}

    def run(self, coroutine: Any) -> Any:
        return result_of(Deferred.fromCoroutine(coroutine))


class PayloadTests(unittest.TestCase):
    """What receivers get: ``{"type", "eventData"}`` in Owncast's shapes."""

    def setUp(self) -> None:
        self.h = Harness(self)
        self.h.hook("http://hooks.example/all", *events.WEBHOOK_EVENTS)

    def delivered(self) -> dict[str, dict]:
        bodies = {c.body["type"]: c.body for c in self.h.post.calls}
        for body in bodies.values():
            self.assertEqual(set(body), {"type", "eventData"})
        return bodies

    def test_chat_events_from_the_hub(self) -> None:
        """CHAT (with rawBody), NAME_CHANGE, USER_JOINED and VISIBILITY-UPDATE carry the
        message as eventData, timestamps as RFC 3339; SYSTEM messages are no webhook event."""
        h = self.h
        chat = h.run(h.hub.send_user("alice", "hello **there**"))
        h.hub.name_change("c1", "alice", "alicia")
        h.hub.user_joined("c1", "alicia")
        h.run(h.hub.set_visibility([chat["id"]], False))
        h.run(h.hub.send_system("not a webhook event"))
        bodies = self.delivered()
        self.assertEqual(set(bodies), {"CHAT", "NAME_CHANGE", "USER_JOINED", "VISIBILITY-UPDATE"})
        data = bodies["CHAT"]["eventData"]
        self.assertEqual(data["author"], "alice")
        self.assertEqual(data["body"], "<p>hello <strong>there</strong></p>")
        self.assertEqual(data["rawBody"], "hello **there**")
        self.assertEqual(data["id"], chat["id"])
        self.assertNotIn("type", data)  # 0.0.7's WebhookChatMessage has none
        self.assertEqual(set(data), {"author", "body", "rawBody", "id", "visible", "timestamp"})
        self.assertIs(data["visible"], True)
        self.assertEqual(data["timestamp"], iso(h.clock.seconds()))
        renamed = bodies["NAME_CHANGE"]["eventData"]
        self.assertEqual((renamed["oldName"], renamed["newName"]), ("alice", "alicia"))
        self.assertEqual(bodies["USER_JOINED"]["eventData"]["username"], "alicia")
        hidden = bodies["VISIBILITY-UPDATE"]["eventData"]
        self.assertEqual((hidden["id"], hidden["visible"]), (chat["id"], False))

    def test_stream_events_carry_name_summary_title(self) -> None:
        """Stream events give name, summary and streamTitle, as 0.0.7 did, never other
        fields of what was emitted."""
        info = {
            "name": "My server",
            "summary": "About it",
            "streamTitle": "Live now",
            "streamKey": "must not leak",
            "id": "evt1",
            "timestamp": 1_700_000_100.0,
        }
        for kind in (events.STREAM_STARTED, events.STREAM_STOPPED, events.STREAM_TITLE_UPDATED):
            self.h.bus.emit(kind, info)
        bodies = self.delivered()
        for kind in (events.STREAM_STARTED, events.STREAM_STOPPED, events.STREAM_TITLE_UPDATED):
            self.assertEqual(
                bodies[kind]["eventData"],
                {
                    "name": "My server",
                    "summary": "About it",
                    "streamTitle": "Live now",
                },
            )

    def test_event_data_does_not_change_its_input(self) -> None:
        """Shaping eventData leaves the hub's message alone."""
        message = {"type": "CHAT", "body": "b", "timestamp": 5.0}
        self.assertEqual(event_data("CHAT", message)["timestamp"], iso(5.0))
        self.assertEqual(message["timestamp"], 5.0)


class DeliveryTests(unittest.TestCase):
    """Who gets called, retries, timeouts, lastUsed, the queue bound and concurrency."""

    def setUp(self) -> None:
        self.h = Harness(self)

    def chat(self, n: int = 0) -> None:
        self.h.bus.emit(
            events.CHAT,
            {"type": "CHAT", "id": f"m{n}", "body": str(n), "timestamp": self.h.clock.seconds()},
        )

    def test_only_subscribed_hooks_called(self) -> None:
        """Each event goes to the hooks subscribed to it, once each, and nowhere else."""
        self.h.hook("http://a.example/", events.CHAT)
        self.h.hook("http://b.example/", events.STREAM_STARTED)
        self.h.hook("http://c.example/", events.USER_JOINED, events.CHAT)
        self.chat()
        self.assertEqual(
            sorted(c.url for c in self.h.post.calls), ["http://a.example/", "http://c.example/"]
        )
        self.h.bus.emit(events.STREAM_STOPPED, {"name": "n", "summary": "s", "streamTitle": "t"})
        self.assertEqual(len(self.h.post.calls), 2)
        self.h.bus.emit(events.STREAM_STARTED, {"name": "n", "summary": "s", "streamTitle": "t"})
        self.assertEqual(self.h.post.calls[-1].url, "http://b.example/")
        self.assertEqual(len(self.h.post.calls), 3)

    def test_no_hooks_no_calls(self) -> None:
        """Without webhooks nothing is posted."""
        self.chat()
        self.assertEqual(self.h.post.calls, [])

    def test_retries_with_back_off_then_give_up(self) -> None:
        """A failing receiver is retried after 1, 4 and 16 s, then given up on."""
        self.h.hook("http://down.example/", events.CHAT)
        self.chat()
        post = self.h.post
        post.calls[0].d.callback(500)
        for n, delay in enumerate(RETRY_DELAYS, start=1):
            self.h.clock.advance(delay - 0.01)
            self.assertEqual(len(post.calls), n, f"retry {n} came early")
            self.h.clock.advance(0.01)
            self.assertEqual(len(post.calls), n + 1, f"retry {n} did not come")
            self.assertEqual(post.calls[-1].raw, post.calls[0].raw)
            if n % 2:
                post.calls[-1].d.errback(ConnectionRefusedError())
            else:
                post.calls[-1].d.callback(404)
        self.h.clock.advance(1000)
        self.assertEqual(len(post.calls), len(RETRY_DELAYS) + 1)
        self.assertEqual((self.h.dispatcher.delivered, self.h.dispatcher.failed), (0, 1))
        self.assertIsNone(self.h.hooks()["http://down.example/"]["lastUsed"])

    def test_timeout_is_a_failure_and_retried(self) -> None:
        """A receiver silent for 10 s is cut off (the request cancelled) and retried."""
        self.h.hook("http://slow.example/", events.CHAT)
        self.chat()
        post = self.h.post
        self.h.clock.advance(TIMEOUT - 0.01)
        self.assertFalse(post.calls[0].d.called)
        self.assertFalse(post.calls[0].cancelled)
        self.h.clock.advance(0.01)
        self.assertTrue(post.calls[0].cancelled, "the request must be cancelled")
        self.assertEqual(len(post.calls), 1)
        self.h.clock.advance(RETRY_DELAYS[0])
        self.assertEqual(len(post.calls), 2)
        post.calls[1].d.callback(200)
        self.assertEqual((self.h.dispatcher.delivered, self.h.dispatcher.failed), (1, 0))

    def test_success_touches_last_used(self) -> None:
        """A 2xx answer records lastUsed in the store, as /api/admin/webhooks shows it."""
        self.h.hook("http://ok.example/", events.CHAT)
        self.h.hook("http://quiet.example/", events.STREAM_STARTED)
        self.h.clock.advance(30)
        self.chat()
        self.h.post.calls[0].d.callback(204)
        hooks = self.h.hooks()
        self.assertEqual(hooks["http://ok.example/"]["lastUsed"], self.h.clock.seconds())
        self.assertIsNone(hooks["http://quiet.example/"]["lastUsed"])
        listed = Client(self.h.ctx).admin_get("/api/admin/webhooks")
        by_url = {w["url"]: w for w in listed}
        self.assertEqual(by_url["http://ok.example/"]["lastUsed"], iso(self.h.clock.seconds()))
        self.assertIsNone(by_url["http://quiet.example/"]["lastUsed"])

    def test_concurrency_capped(self) -> None:
        """At most CONCURRENCY deliveries are in flight; the rest wait their turn."""
        self.h.hook("http://a.example/", events.CHAT)
        self.h.hook("http://b.example/", events.CHAT)
        for n in range(10):
            self.chat(n)
        post = self.h.post
        self.assertEqual(len(post.pending), CONCURRENCY)
        post.pending[0].d.callback(200)
        self.assertEqual(len(post.pending), CONCURRENCY)
        self.assertEqual(len(post.calls), CONCURRENCY + 1)
        most = 0
        while post.pending:
            most = max(most, len(post.pending))
            post.pending[0].d.callback(200)
        self.assertEqual(most, CONCURRENCY)
        self.assertEqual(len(post.calls), 20)
        self.assertEqual(self.h.dispatcher.delivered, 20)

    def test_retry_waits_do_not_hold_a_slot(self) -> None:
        """A delivery waiting to be retried does not block the others."""
        self.h.hook("http://a.example/", events.CHAT)
        for n in range(CONCURRENCY):
            self.chat(n)
        for call in list(self.h.post.pending):
            call.d.callback(503)
        self.chat(99)
        self.assertEqual(self.h.post.calls[-1].body["eventData"]["id"], "m99")

    def test_queue_bounded(self) -> None:
        """With every slot busy, at most MAX_QUEUE deliveries wait; the oldest go first."""
        self.h.hook("http://a.example/", events.CHAT)
        extra = 5
        total = CONCURRENCY + MAX_QUEUE + extra
        for n in range(total):
            self.chat(n)
        post = self.h.post
        self.assertEqual(len(post.calls), CONCURRENCY)
        post.answer_all()
        delivered = [c.body["eventData"]["id"] for c in post.calls]
        self.assertEqual(len(delivered), CONCURRENCY + MAX_QUEUE)
        dropped = {f"m{n}" for n in range(CONCURRENCY, CONCURRENCY + extra)}
        self.assertEqual(set(delivered), {f"m{n}" for n in range(total)} - dropped)
        self.assertEqual(delivered[-1], f"m{total - 1}")

    def test_crashing_store_does_not_jam_the_queue(self) -> None:
        """If recording lastUsed fails, the slot is still freed for the next delivery."""
        self.h.hook("http://a.example/", events.CHAT)

        def broken(*args: Any) -> Deferred:
            raise RuntimeError("disk on fire")

        self.h.ctx.store.touch_webhook = broken
        for n in range(CONCURRENCY + 2):
            self.chat(n)
        self.h.post.answer_all()
        self.assertEqual(len(self.h.post.calls), CONCURRENCY + 2)
        self.flushLoggedErrors(RuntimeError)


# -- the real daemon -----------------------------------------------------------------------


class _Recorder(Resource):
    isLeaf = True

    def __init__(self, received: list[dict]):
        super().__init__()
        self.received = received

    def render_POST(self, request: Any) -> bytes:
        self.received.append(
            {
                "path": request.path.decode(),
                "contentType": request.getHeader(b"content-type"),
                "body": json.loads(request.content.read()),
            }
        )
        return b"ok"


class _Silent(Protocol):
    """Accepts a connection, reads the request, never answers."""

    def dataReceived(self, data: bytes) -> None:
        self.factory.received += data


class _SilentFactory(Factory):
    protocol = _Silent

    def __init__(self) -> None:
        self.received = b""


def listen(testcase: unittest.TestCase, factory: Any) -> str:
    """Listen on a loopback port; cleanup stops listening and closes every connection."""
    tracked = WrappingFactory(factory)  # .protocols: the connections still open
    port = reactor.listenTCP(0, tracked, interface="127.0.0.1")

    async def close() -> None:
        await port.stopListening()
        for proto in list(tracked.protocols):
            proto.transport.abortConnection()
        await wait_until(lambda: not tracked.protocols, WAIT, "receiver connections to close")

    testcase.addCleanup(close)
    return f"http://127.0.0.1:{port.getHost().port}"


class WebhookEndToEndTests(unittest.TestCase):
    timeout = 60

    async def test_daemon_posts_chat_and_title_events(self) -> None:
        """The real daemon posts CHAT (from the integrations API) and STREAM_TITLE_UPDATED
        (from the admin API) to a subscribed receiver, and records lastUsed."""
        received: list[dict] = []
        base = listen(self, Site(_Recorder(received)))
        daemon = await start_daemon(
            self, Path(self.mktemp()).resolve(), args=["--streamkey", KEY, "--allowprivate"]
        )
        hook = await daemon.post(
            "/api/admin/webhooks/create",
            {"url": base + "/hook", "events": ["CHAT", "STREAM_TITLE_UPDATED"]},
            auth=ADMIN,
        )
        self.assertEqual(hook.code, 200, hook)
        self.assertIsNone(hook.json["lastUsed"])
        token = await daemon.post(
            "/api/admin/accesstokens/create",
            {"name": "hook bot", "scopes": ["CAN_SEND_MESSAGES"]},
            auth=ADMIN,
        )
        self.assertEqual(token.code, 200, token)

        sent = await daemon.post(
            "/api/integrations/chat/user",
            {"user": "hookbot", "body": "hello **hooks**"},
            bearer=token.json["token"],
        )
        self.assertEqual(sent.code, 200, sent)
        titled = await daemon.post(
            "/api/admin/config/streamtitle", {"value": "Hooked title"}, auth=ADMIN
        )
        self.assertEqual(titled.code, 200, titled)
        config = (await daemon.get("/api/config")).json

        await wait_until(lambda: len(received) >= 2, WAIT, "both webhook deliveries")
        by_type = {r["body"]["type"]: r for r in received}
        self.assertEqual(set(by_type), {"CHAT", "STREAM_TITLE_UPDATED"})
        for delivery in received:
            self.assertEqual(delivery["path"], "/hook")
            self.assertTrue(delivery["contentType"].startswith(b"application/json"))
            self.assertEqual(set(delivery["body"]), {"type", "eventData"})

        chat = by_type["CHAT"]["body"]["eventData"]
        self.assertEqual(chat["author"], "hookbot")
        self.assertEqual(chat["body"], "<p>hello <strong>hooks</strong></p>")
        self.assertEqual(chat["rawBody"], "hello **hooks**")
        self.assertIs(chat["visible"], True)
        self.assertIsInstance(chat["timestamp"], str)
        history = (await daemon.get("/api/chat")).json
        self.assertEqual([m["id"] for m in history if m["type"] == "CHAT"], [chat["id"]])

        title = by_type["STREAM_TITLE_UPDATED"]["body"]["eventData"]
        self.assertEqual(title.get("streamTitle"), "Hooked title")
        self.assertEqual(title.get("name"), config["name"], title)
        self.assertEqual(title.get("summary"), config["summary"], title)

        async def last_used() -> Any:
            [listed] = (await daemon.get("/api/admin/webhooks", auth=ADMIN)).json
            return listed["lastUsed"]

        self.assertIsInstance(await wait_until(last_used, WAIT, "lastUsed"), str)

    async def test_silent_receiver_does_not_delay_chat(self) -> None:
        """A receiver that never answers does not hold chat up: the message is in
        /api/chat at once while the delivery hangs."""
        silent = _SilentFactory()
        base = listen(self, silent)
        daemon = await start_daemon(
            self, Path(self.mktemp()).resolve(), args=["--streamkey", KEY, "--allowprivate"]
        )
        hook = await daemon.post(
            "/api/admin/webhooks/create", {"url": base + "/hook", "events": ["CHAT"]}, auth=ADMIN
        )
        self.assertEqual(hook.code, 200, hook)
        token = await daemon.post(
            "/api/admin/accesstokens/create",
            {"name": "bot", "scopes": ["CAN_SEND_MESSAGES"]},
            auth=ADMIN,
        )
        for n in range(3):
            sent = await daemon.post(
                "/api/integrations/chat/user",
                {"user": "bot", "body": f"message {n}"},
                bearer=token.json["token"],
                timeout=2.0,
            )
            self.assertEqual(sent.code, 200, sent)
            history = (await daemon.get("/api/chat", timeout=2.0)).json
            self.assertEqual(
                [m["body"] for m in history], [f"<p>message {i}</p>" for i in range(n + 1)]
            )
        await wait_until(
            lambda: b"POST /hook" in silent.received,
            WAIT,
            "the delivery to reach the silent receiver",
        )
        [listed] = (await daemon.get("/api/admin/webhooks", auth=ADMIN)).json
        self.assertIsNone(listed["lastUsed"])

    async def test_private_receivers_are_refused_without_allowprivate(self) -> None:
        """By default the daemon refuses to deliver to loopback (any spelling of it): the
        receiver hears nothing, and the log says why once, naming --allowprivate."""
        received: list[dict] = []
        base = listen(self, Site(_Recorder(received)))
        port = base.rpartition(":")[2]
        daemon = await start_daemon(self, Path(self.mktemp()).resolve(), args=["--streamkey", KEY])
        urls = [
            f"{base}/hook",
            f"http://localhost:{port}/hook",
            f"http://127.1:{port}/hook",
            f"http://2130706433:{port}/hook",
            f"http://[::ffff:127.0.0.1]:{port}/hook",
        ]
        for url in urls:
            hook = await daemon.post(
                "/api/admin/webhooks/create", {"url": url, "events": ["CHAT"]}, auth=ADMIN
            )
            self.assertEqual(hook.code, 200, hook)
        token = await daemon.post(
            "/api/admin/accesstokens/create",
            {"name": "bot", "scopes": ["CAN_SEND_MESSAGES"]},
            auth=ADMIN,
        )
        sent = await daemon.post(
            "/api/integrations/chat/user", {"user": "bot", "body": "hi"}, bearer=token.json["token"]
        )
        self.assertEqual(sent.code, 200, sent)
        await wait_until(
            lambda: daemon.output.count("Outbound request refused") >= len(urls),
            WAIT,
            "every refusal to be logged",
        )
        self.assertIn("private targets need --allowprivate", daemon.output)
        for listed in (await daemon.get("/api/admin/webhooks", auth=ADMIN)).json:
            self.assertIsNone(listed["lastUsed"])
        self.assertEqual(received, [])
