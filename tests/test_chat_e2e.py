"""End to end: chat over real websockets against the real ``twistd owncast`` daemon.

Two autobahn clients connect to ``ws://127.0.0.1:PORT/entry`` over the real reactor; the
HTTP APIs (admin and integrations) drive moderation and system messages. Waiting is
polling with ``deferLater`` against deadlines (``tests.daemon.wait_until``).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial import unittest

from tests.daemon import Daemon, start_daemon, wait_until

KEY = "e2e-chat-stream-key"
ADMIN = ("admin", KEY)
#: How long a message may take to cross the daemon (generous for a loaded machine).
WAIT = 10.0


class WsClient(WebSocketClientProtocol):
    """A chat socket that records what it gets, and whether and how it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[bytes] = []
        self.opened = False
        self.closed: tuple[bool, int | None, str | None] | None = None

    def onOpen(self) -> None:
        self.opened = True

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.frames.append(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.closed = (wasClean, code, reason)

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in map(json.loads, self.frames) if m.get("type") == kind]

    def send_json(self, message: dict) -> None:
        self.sendMessage(json.dumps(message).encode("utf-8"))


async def dial(testcase: unittest.TestCase, port: int, **options: Any) -> WsClient:
    """Connect TCP and start the handshake; the test's cleanup hangs up and waits."""
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/entry", reactor=reactor, **options)
    factory.setProtocolOptions(openHandshakeTimeout=WAIT, closeHandshakeTimeout=2)
    factory.protocol = WsClient
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=WAIT)
    client = await endpoint.connect(factory)

    async def hang_up() -> None:
        if client.closed is None:
            if client.opened:
                client.sendClose()
            else:
                client.dropConnection(abort=True)
            await wait_until(lambda: client.closed is not None, WAIT, "the socket to close")

    testcase.addCleanup(hang_up)
    return client


async def connected(testcase: unittest.TestCase, port: int, **options: Any) -> WsClient:
    """A client whose handshake succeeded."""
    client = await dial(testcase, port, **options)
    await wait_until(lambda: client.opened or client.closed, WAIT, "the websocket handshake")
    testcase.assertTrue(client.opened, f"handshake failed: {client.closed}")
    return client


def logged_errors(output: str) -> list[str]:
    """The last line of every traceback in a daemon's output (the error itself)."""
    errors, in_traceback = [], False
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("Traceback"):
            in_traceback = True
        elif (
            in_traceback
            and text
            and not text.startswith(("File ", "^"))
            and not line.startswith(("\t    ", "      "))
        ):
            errors.append(text)
            in_traceback = False
    return errors


def tmpdir(testcase: unittest.TestCase) -> Path:
    return Path(testcase.mktemp()).resolve()


class PlainSocket(Protocol):
    """The least a websocket client can be: an HTTP upgrade written by hand, masked
    text frames out, unmasked text frames in (RFC 6455), over a Twisted TCP connection."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.buffer = b""
        self.head = b""
        self.status: int | None = None
        self.payloads: list[bytes] = []

    @classmethod
    async def open(cls, testcase: unittest.TestCase, port: int, origin: str) -> PlainSocket:
        socket = cls(origin)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=WAIT)
        await connectProtocol(endpoint, socket)
        testcase.addCleanup(socket.transport.loseConnection)
        await wait_until(lambda: socket.status is not None, WAIT, "the handshake answer")
        return socket

    def connectionMade(self) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                "GET /entry HTTP/1.1\r\n"
                "Host: chat.invalid\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                f"Origin: {self.origin}\r\n"
                "User-Agent: plain-e2e/1.0\r\n\r\n"
            ).encode()
        )

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if self.status is None:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            self.head, self.buffer = head, rest
            self.status = int(head.split(b" ", 2)[1])
        while len(self.buffer) >= 2:
            length, offset = self.buffer[1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < offset + length:
                return
            opcode = self.buffer[0] & 0x0F
            if opcode == 0x1:
                self.payloads.append(self.buffer[offset : offset + length])
            self.buffer = self.buffer[offset + length :]

    def send_text(self, text: str) -> None:
        payload = text.encode("utf-8")
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes((0x81, 0x80 | len(payload))) + mask + masked)

    def messages(self) -> list[dict]:
        return [m for m in map(json.loads, self.payloads) if m.get("type") == "CHAT"]

    def close(self) -> None:
        self.transport.write(bytes((0x88, 0x80)) + os.urandom(4))


class ChatEndToEndTests(unittest.TestCase):
    timeout = 60

    async def test_chat_moderation_and_persistence(self) -> None:
        """Two real sockets: CHAT from one reaches both; a system message from the
        integrations API and a hide from the admin API reach both; /api/admin/clients lists
        both while connected; after a restart /api/chat still has the messages."""
        datadir = tmpdir(self)
        daemon = await start_daemon(self, datadir, args=["--streamkey", KEY])
        port = daemon.web_port
        alice = await connected(self, port, useragent="alice-e2e/1.0")
        bob = await connected(
            self, port, useragent="bob-e2e/1.0", origin=f"http://127.0.0.1:{port}"
        )

        listed = (await daemon.get("/api/admin/clients", auth=ADMIN)).json
        self.assertEqual(sorted(c["userAgent"] for c in listed), ["alice-e2e/1.0", "bob-e2e/1.0"])
        for entry in listed:
            self.assertEqual(entry["ipAddress"], "127.0.0.1")
            self.assertEqual(entry["messageCount"], 0)
            self.assertTrue(entry["clientID"])
            self.assertTrue(entry["connectedAt"])

        alice.send_json({"type": "CHAT", "author": "alice", "body": "hello *world*"})
        await wait_until(
            lambda: alice.of_type("CHAT") and bob.of_type("CHAT"),
            WAIT,
            "the chat message on both sockets",
        )
        [chat] = bob.of_type("CHAT")
        self.assertEqual(alice.of_type("CHAT"), [chat])
        self.assertEqual((chat["author"], chat["body"]), ("alice", "<p>hello <em>world</em></p>"))

        listed = (await daemon.get("/api/admin/clients", auth=ADMIN)).json
        by_agent = {c["userAgent"]: c for c in listed}
        self.assertEqual(by_agent["alice-e2e/1.0"]["messageCount"], 1)
        self.assertEqual(by_agent["alice-e2e/1.0"]["username"], "alice")

        created = await daemon.post(
            "/api/admin/accesstokens/create",
            {"name": "e2e bot", "scopes": ["CAN_SEND_SYSTEM_MESSAGES"]},
            auth=ADMIN,
        )
        self.assertEqual(created.code, 200, created)
        sent = await daemon.post(
            "/api/integrations/chat/system",
            {"body": "Server **notice**"},
            bearer=created.json["token"],
        )
        self.assertEqual(sent.code, 200, sent)
        await wait_until(
            lambda: alice.of_type("SYSTEM") and bob.of_type("SYSTEM"),
            WAIT,
            "the system message on both sockets",
        )
        [system] = alice.of_type("SYSTEM")
        self.assertEqual(bob.of_type("SYSTEM"), [system])
        self.assertIn("<strong>notice</strong>", system["body"])

        hidden = await daemon.post(
            "/api/admin/chat/updatemessagevisibility",
            {"visible": False, "idArray": [chat["id"]]},
            auth=ADMIN,
        )
        self.assertEqual(hidden.code, 200, hidden)
        await wait_until(
            lambda: alice.of_type("VISIBILITY-UPDATE") and bob.of_type("VISIBILITY-UPDATE"),
            WAIT,
            "the visibility update on both sockets",
        )
        for client in (alice, bob):
            [update] = client.of_type("VISIBILITY-UPDATE")
            self.assertEqual((update["id"], update["visible"]), (chat["id"], False))

        history = (await daemon.get("/api/chat")).json
        self.assertEqual([m["id"] for m in history], [system["id"]])

        # Restart with the sockets still open: the daemon closes them on the way down,
        # with a close handshake (not just by exiting).
        await daemon.stop()
        self.assertIn("Server Shut Down.", daemon.outputs[-1])
        self.assertEqual(logged_errors(daemon.outputs[-1]), [])
        await wait_until(lambda: alice.closed and bob.closed, WAIT, "the sockets to close")
        closes = [alice.closed, bob.closed]  # checked last, after persistence
        await daemon.start()
        history = (await daemon.get("/api/chat")).json
        self.assertEqual([(m["id"], m["type"]) for m in history], [(system["id"], "SYSTEM")])
        # Moderators see users' messages, hidden ones too (0.0.7's moderation history).
        everything = (await daemon.get("/api/admin/chat/messages", auth=ADMIN)).json
        self.assertEqual([(m["id"], m["visible"]) for m in everything], [(chat["id"], False)])
        self.assertEqual((await daemon.get("/api/admin/clients", auth=ADMIN)).json, [])
        for closed in closes:
            self.assertTrue(closed[0], f"socket not closed with a close handshake: {closed}")

    async def test_plain_client_with_a_foreign_origin_chats(self) -> None:
        """A bare websocket client (a hand-written RFC 6455 handshake and masked frames,
        no library) that sends ``Origin: http://other.example`` and a Host the server
        does not know gets the chat, as with Owncast 0.0.7, and chats with a browser-like
        client."""
        daemon = await start_daemon(self, tmpdir(self), args=["--streamkey", KEY])
        port = daemon.web_port
        plain = await PlainSocket.open(self, port, origin="http://other.example")
        self.assertEqual(plain.status, 101, plain.head)
        viewer = await connected(self, port, useragent="viewer-e2e/1.0")
        plain.send_text(json.dumps({"type": "CHAT", "author": "embed", "body": "hi **all**"}))
        await wait_until(lambda: viewer.of_type("CHAT"), WAIT, "the plain client's message")
        [chat] = viewer.of_type("CHAT")
        self.assertEqual(
            (chat["author"], chat["body"]), ("embed", "<p>hi <strong>all</strong></p>")
        )
        viewer.send_json({"type": "CHAT", "author": "viewer", "body": "welcome"})
        await wait_until(lambda: len(plain.messages()) >= 2, WAIT, "both messages, plainly")
        self.assertEqual(
            [(m["type"], m["author"]) for m in plain.messages()],
            [("CHAT", "embed"), ("CHAT", "viewer")],
        )
        listed = (await daemon.get("/api/admin/clients", auth=ADMIN)).json
        self.assertIn("plain-e2e/1.0", [c["userAgent"] for c in listed])
        plain.close()

    async def test_bad_frames_close_only_that_socket(self) -> None:
        """Over real TCP a binary frame and a non-JSON frame each close their socket; a
        third socket keeps chatting, and the daemon logs no traceback."""
        daemon: Daemon = await start_daemon(self, tmpdir(self), args=["--streamkey", KEY])
        port = daemon.web_port
        binary, garbage, good = [await connected(self, port) for _ in range(3)]
        binary.sendMessage(b"\x00\xff", isBinary=True)
        garbage.sendMessage(b"this is not json")
        await wait_until(lambda: binary.closed and garbage.closed, WAIT, "bad sockets to close")
        good.send_json({"type": "CHAT", "author": "good", "body": "still here"})
        await wait_until(lambda: good.of_type("CHAT"), WAIT, "the chat message")
        self.assertIsNone(good.closed)
        self.assertEqual(len((await daemon.get("/api/admin/clients", auth=ADMIN)).json), 1)
        self.assertEqual(logged_errors(daemon.output), [])
