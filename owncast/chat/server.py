"""The chat service: who is connected, admission (origin, per-IP cap), flood limits,
keepalive, the welcome message, and broadcasting hub messages to every socket.

Any ``Origin`` is admitted, as Owncast 0.0.7 did (its chat carries no ambient
credentials, so refusing other sites' pages protects little and breaks bots and embeds);
an operator who wants a list sets ``chatAllowedOrigins``, and then only this server's own
origin and the listed ones get in.

It sits between the websocket protocol (thin: parse and forward) and the chat hub
(which knows nothing of sockets). Timers belong here, in a Service, because a Site
never starts the factory behind a ``WebSocketResource``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from owncast.chat.fanout import Peer, fan_out, text_frame
from owncast.chat.protocol import wire
from owncast.core.chat import SYSTEM, new_id
from owncast.core.errors import ValidationError
from owncast.core.throttle import TrustedProxies
from owncast.runtime.compat import ws_close_with

_log = Logger()

KEEPALIVE_INTERVAL = 30.0
MAX_PER_IP = 20
#: Flood limit per connection: a burst of ``FLOOD_BURST``, refilled at ``FLOOD_RATE``/s;
#: a client that empties it is muted for ``FLOOD_MUTE`` seconds.
FLOOD_RATE = 0.6
FLOOD_BURST = 5
FLOOD_MUTE = 10.0
#: Seconds after joining that a client gets the welcome message (0.0.7's delay, "so
#: people notice this message come in").
WELCOME_DELAY = 7.0
#: Client messages the flood limit counts (0.0.7 counted every message it read).
_FLOODABLE = frozenset({"CHAT", "NAME_CHANGE", "USER_JOINED"})


class _Bucket:
    __slots__ = ("tokens", "updated", "muted_until")

    def __init__(self, now: float):
        self.tokens = float(FLOOD_BURST)
        self.updated = now
        self.muted_until = 0.0


def _origin_key(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        return None
    return parts.hostname.lower(), str(port)


class ChatServer(Service):
    name = "chat"

    def __init__(
        self,
        hub: Any,
        viewers: Any,
        clock: Any,
        server_url: Any = lambda: "",
        proxies: TrustedProxies | None = None,
    ):
        self.hub = hub
        #: ``--trustedproxy``: whose forwarding headers name the client's address
        self.proxies = proxies if proxies is not None else TrustedProxies()
        self.viewers = viewers
        self.clock = clock
        self._server_url = server_url
        self.peers: dict[Any, Peer] = {}
        self._buckets: dict[Any, _Bucket] = {}
        self._per_ip: dict[str, int] = {}
        self._welcomes: dict[Any, Any] = {}
        self._keepalive: LoopingCall | None = None
        self._ping = text_frame(b'{"type": "PING"}')
        hub.listeners.append(self.broadcast)

    # -- service -----------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._keepalive = LoopingCall(self._sweep)
        self._keepalive.clock = self.clock
        self._keepalive.start(KEEPALIVE_INTERVAL, now=False).addErrback(
            lambda f: _log.failure("chat keepalive stopped", f)
        )

    def stopService(self) -> None:
        super().stopService()
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        for call in self._welcomes.values():
            call.cancel()
        self._welcomes.clear()
        for proto in list(self.peers):
            try:
                ws_close_with(proto, 1001, b"server shutting down")
            except Exception:
                _log.failure("closing a chat socket failed")

    def _sweep(self) -> None:
        try:
            self._send_all(self._ping)
            self.count_viewers()
        except Exception:
            _log.failure("chat keepalive sweep failed")

    def count_viewers(self) -> None:
        """Every open chat socket not marked IGNORE_CLIENT is a viewer right now."""
        for proto in self.peers:
            if not proto.ignored:
                self.viewers.seen(self._viewer_key(proto))

    # -- admission and registry --------------------------------------------------------
    def client_ip(self, peer: str, headers: dict[str, str]) -> str:
        """The address a connection counts against and its viewer is told apart by: the
        peer, or behind a trusted proxy the client the proxy names."""
        return self.proxies.client(peer, headers.get("x-forwarded-for"), headers.get("forwarded"))

    def admit(self, ip: str, origin: str | None, host: str) -> str | None:
        """Why a handshake is refused, or None. Any origin gets in unless the operator
        set ``chatAllowedOrigins``; no ``Origin`` header means no browser."""
        allowed = self.hub.setting("chatAllowedOrigins", [])
        if origin and allowed:
            mine = {_origin_key("http://" + host)} if host else set()
            if self._server_url():
                mine.add(_origin_key(self._server_url()))
            mine.update(_origin_key(o) for o in allowed)
            theirs = _origin_key(origin)
            if theirs is None or theirs not in mine:
                return "this origin may not open the chat"
        if self._per_ip.get(ip, 0) >= MAX_PER_IP:
            return "too many connections from this address"
        return None

    def opened(self, proto: Any) -> None:
        self._per_ip[proto.ip] = self._per_ip.get(proto.ip, 0) + 1
        self.peers[proto] = Peer(proto)
        self._buckets[proto] = _Bucket(self.clock.seconds())
        self.hub.connect(proto.client_id, proto.ip, proto.user_agent)
        if not proto.ignored:
            self.viewers.seen(self._viewer_key(proto))
            self._welcomes[proto] = self.clock.callLater(WELCOME_DELAY, self._welcome, proto)

    def _welcome(self, proto: Any) -> None:
        """The welcome message, to this one client (never stored), if the owner set one."""
        self._welcomes.pop(proto, None)
        try:
            message = self.hub.welcome()
            if message is not None and proto in self.peers:
                proto.send_json(message)
        except Exception:
            _log.failure("sending the welcome message failed")

    def closed(self, proto: Any) -> None:
        if self.peers.pop(proto, None) is None:
            return
        welcome = self._welcomes.pop(proto, None)
        if welcome is not None:
            welcome.cancel()
        self._buckets.pop(proto, None)
        left = self._per_ip.get(proto.ip, 1) - 1
        if left > 0:
            self._per_ip[proto.ip] = left
        else:
            self._per_ip.pop(proto.ip, None)
        self.hub.disconnect(proto.client_id)

    @staticmethod
    def _viewer_key(proto: Any) -> str:
        return f"{proto.ip} {proto.user_agent}"

    # -- messages in -------------------------------------------------------------------
    def received(self, proto: Any, message: dict) -> Deferred | None:
        kind = message["type"]
        if kind in _FLOODABLE:
            self._check_flood(proto)
        if kind == "CHAT":
            return Deferred.fromCoroutine(
                self.hub.receive_chat(proto.client_id, message.get("author"), message.get("body"))
            )
        if kind == "NAME_CHANGE":
            self.hub.name_change(proto.client_id, message.get("oldName"), message.get("newName"))
        elif kind == "USER_JOINED":
            live = bool(getattr(self.viewers, "online", True))
            self.hub.user_joined(proto.client_id, message.get("username"), live)
        elif kind == "PONG" and not proto.ignored:
            self.viewers.seen(self._viewer_key(proto))
        return None

    def _check_flood(self, proto: Any) -> None:
        bucket = self._buckets[proto]
        now = self.clock.seconds()
        if now < bucket.muted_until:
            raise ValidationError("You are sending messages too fast; wait a moment.")
        bucket.tokens = min(FLOOD_BURST, bucket.tokens + (now - bucket.updated) * FLOOD_RATE)
        bucket.updated = now
        if bucket.tokens < 1:
            bucket.muted_until = now + FLOOD_MUTE
            raise ValidationError(
                f"You are sending messages too fast; muted for {FLOOD_MUTE:.0f} s."
            )
        bucket.tokens -= 1

    def notice(self, text: str) -> dict:
        """A SYSTEM message for one client only (never stored)."""
        return {
            "type": SYSTEM,
            "id": new_id(),
            "author": self.hub.server_name(),
            "body": text,
            "visible": True,
            "timestamp": self.clock.seconds(),
        }

    # -- messages out ------------------------------------------------------------------
    def broadcast(self, message: dict) -> None:
        frame = text_frame(json.dumps(wire(message)).encode("utf-8"))
        self._send_all(frame)

    def _send_all(self, frame: bytes) -> None:
        for peer in fan_out(frame, self.peers.values()):
            _log.info("Dropping a chat client that stopped reading")
            peer.drop()
