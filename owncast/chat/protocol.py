"""The chat websocket at ``/entry``, speaking Owncast 0.0.7's messages.

Wire protocol: one flat JSON object per text frame, dispatched on ``type``; field names
as 0.0.7's models (chatMessage.go, nameChangeEvent.go, userJoinedEvent.go, pingMessage.go).

Client -> server:
    {"type": "CHAT", "author": str, "body": str}          a message typed by the viewer
    {"type": "NAME_CHANGE", "oldName": str, "newName": str}
    {"type": "USER_JOINED", "username": str}
    {"type": "PONG"}                                       answer to PING (optional)
Server -> client:
    {"type": "CHAT", "author", "body", "id", "visible", "timestamp"}
    {"type": "SYSTEM", "author" (the server name), "body", "id", "visible", "timestamp"}
    {"type": "CHAT_ACTION", "author"?, "body", "id", "visible", "timestamp"}
    {"type": "CHAT_ACTION", "body", "id", "visible", "timestamp", "ephemeral": true}
        a notice (the stream title changed): to connected clients only, never stored
    {"type": "NAME_CHANGE", "oldName", "newName", "image", "id"}        no timestamp
    {"type": "USER_JOINED", "username", "id", "timestamp"}     only while live
    {"type": "VISIBILITY-UPDATE", "author"?, "body", "id", "visible", "timestamp"}
        the stored message, one frame per id
    {"type": "PING"}                                       every 30 s

Bodies are HTML: markdown rendered as a document (``<p>...</p>``) and sanitized. An
``author`` that is empty is left out, as 0.0.7's ``omitempty`` did. The server assigns
ids and timestamps (RFC 3339). 7 s after joining, a client gets the welcome message, if
the owner set one: a ``SYSTEM`` message with the id ``initial-message-1``, to it alone.
A message refused (too long, sent too fast) gets a ``SYSTEM`` notice to its sender only.

A client offering the sub-protocol ``IGNORE_CLIENT`` (an embed) is not counted as a
viewer. Any ``Origin`` is admitted unless the operator lists origins (``ChatServer.admit``).
Binary frames, frames that are not a JSON object with a ``type``, and oversized frames
close that one connection (0.0.7 skipped them, or crashed on a missing type).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, cast

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.logger import Logger
from twisted.web.http import HTTPChannel

from owncast.core.errors import ApiError
from owncast.core.times import iso
from owncast.runtime.compat import (
    forget_requests,
    ws_close_with,
    ws_forget_handshake,
    ws_open,
    ws_option_names,
)

_log = Logger()

IGNORE_CLIENT = "IGNORE_CLIENT"
#: Largest frame accepted from a client; bigger ones close the connection.
MAX_FRAME = 16 * 1024


def wire(message: dict) -> dict:
    """A hub message as clients see it: RFC 3339 timestamps, no internal fields, no empty
    ``author`` (0.0.7: ``omitempty``)."""
    out = {k: v for k, v in message.items() if k != "rawBody" and (k != "author" or v)}
    if isinstance(out.get("timestamp"), (int, float)):
        out["timestamp"] = iso(out["timestamp"])
    return out


def release_upgrade_request(transport: Any) -> None:
    """Let go of the twisted.web channel that carried the websocket's upgrade request.

    ``WebSocketResource.render`` hands the TCP transport to the websocket protocol but
    leaves the ``HTTPChannel`` registered as the transport's producer, and that channel
    keeps the never-finished upgrade ``Request`` (headers, body buffer): 4 KiB of RSS
    for as long as the websocket lives. Nothing reads from the channel again, and it
    never pauses the transport (it thinks it is still handling a request), so unhook it
    and drop its request list, which lets both go by reference counting.
    """
    channel = getattr(transport, "producer", None)
    if isinstance(channel, HTTPChannel):
        transport.unregisterProducer()
        forget_requests(channel)


class ChatProtocol(WebSocketServerProtocol):
    client_id: str | None = None
    ignored = False
    ip = ""

    def connectionMade(self) -> None:
        super().connectionMade()
        release_upgrade_request(self.transport)

    def onConnect(self, request: Any) -> str | None:
        server = self.factory.server
        transport: Any = self.transport
        self.ip = server.client_ip(transport.getPeer().host, request.headers)
        self.user_agent = request.headers.get("user-agent", "")[:500]
        refusal = server.admit(
            self.ip, request.headers.get("origin"), request.headers.get("host", "")
        )
        if refusal:
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, refusal)
        self.ignored = IGNORE_CLIENT in (request.protocols or [])
        return IGNORE_CLIENT if self.ignored else None

    def onOpen(self) -> None:
        # The parsed handshake is not used once open: 1.4 KiB of RSS a connection.
        ws_forget_handshake(self)
        try:
            self.client_id = secrets.token_hex(16)
            self.factory.server.opened(self)
        except Exception:
            _log.failure("chat open failed")
            self.dropConnection(abort=True)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            ws_close_with(self, 1003, b"binary frames are not accepted")
            return
        try:
            message = json.loads(payload)
        except (ValueError, RecursionError):
            ws_close_with(self, 1007, b"frames must be JSON objects")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            ws_close_with(self, 1007, b"frames must be JSON objects with a type")
            return
        try:
            d = self.factory.server.received(self, message)
        except ApiError as e:  # a refused message, or the store out of reach (503)
            self.send_json(self.factory.server.notice(e.message))
            return
        except Exception:
            _log.failure("chat message from {ip} failed", ip=self.ip)
            return
        if d is not None:
            d.addErrback(self._failed)

    def _failed(self, failure: Any) -> None:
        if failure.check(ApiError):
            self.send_json(self.factory.server.notice(failure.value.message))
        else:
            _log.failure("chat message from {ip} failed", failure, ip=self.ip)

    def onClose(self, wasClean: bool, code: int, reason: str) -> None:
        if self.client_id is not None:
            self.factory.server.closed(self)

    def send_json(self, message: dict) -> None:
        if ws_open(self):
            self.sendMessage(json.dumps(wire(message)).encode("utf-8"))


class ChatFactory(WebSocketServerFactory):
    protocol = ChatProtocol

    def __init__(self, server: Any):
        super().__init__()
        self.server = server
        self.setProtocolOptions(
            maxFramePayloadSize=MAX_FRAME,
            maxMessagePayloadSize=MAX_FRAME,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=2,
            failByDrop=True,
            autoPingInterval=0,
        )

    def setProtocolOptions(self, *args: Any, **options: Any) -> None:
        """Set the options as class attributes of a protocol subclass too: autobahn
        copies every option the protocol class lacks onto each new connection (29
        attributes: 1.7 KiB of RSS a connection)."""
        super().setProtocolOptions(*args, **options)
        # A function option (``perMessageCompressionAccept``) must stay a plain function
        # on the class, not become a method.
        options = {
            name: staticmethod(value) if callable(value) else value
            for name in ws_option_names(ChatProtocol)
            for value in (getattr(self, name),)
        }
        self.protocol = cast(
            "type[ChatProtocol]", type(ChatProtocol.__name__, (ChatProtocol,), options)
        )
