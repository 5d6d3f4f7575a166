"""The chat hub: assigns ids and times, sanitizes, stores, and hands messages to listeners.

It knows nothing about websockets: the websocket layer registers a listener and calls
``receive``; the HTTP API reads history and sends messages for integrations.

As Owncast 0.0.7 (core/chat/server.go): while the ``chatDisabled`` setting is on, chat,
system and action messages are dropped without a word; notices (a changed stream title)
go to connected clients only and are never stored; ``USER_JOINED`` reaches clients only
while a broadcast is live (webhooks always hear it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from owncast.core.errors import ValidationError
from owncast.core.events import (
    CHAT,
    NAME_CHANGE,
    USER_JOINED,
    VISIBILITY_UPDATE,
    EventBus,
    new_id,
)
from owncast.core.markup import render_chat, render_server_message
from owncast.interfaces import IChatBus, IStore

_log = Logger()

#: ``/api/chat`` shows this much history (seconds) and at most this many messages.
HISTORY_WINDOW = 5 * 3600
HISTORY_LIMIT = 50
MAX_BODY_BYTES = 2048

SYSTEM, CHAT_ACTION = "SYSTEM", "CHAT_ACTION"
#: 0.0.7 gave every welcome message this id.
WELCOME_ID = "initial-message-1"


def check_body(body: Any, what: str = "body") -> str:
    if not isinstance(body, str) or not body.strip():
        raise ValidationError(f"{what} must be a non-empty string")
    if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise ValidationError(f"{what} must be at most {MAX_BODY_BYTES} bytes")
    return body


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{what} must be a non-empty string")
    name = name.strip()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON carries one, the store cannot
        raise ValidationError(f"{what} must be valid Unicode text") from None
    if len(name) > 100:
        raise ValidationError(f"{what} must be at most 100 characters")
    return name


#: Event types that webhooks hear about, from what the hub publishes.
_EVENT_TYPES = {CHAT, NAME_CHANGE, USER_JOINED, VISIBILITY_UPDATE}


class ChatHub:
    """Listeners get every message to broadcast (a dict, once); ``events`` hears the
    webhook-worthy ones. ``clients`` maps client ids to the seed's ``Client`` records.
    ``settings`` (the server's ``Settings``, or any mapping) gives ``name`` (system
    messages' author), ``chatDisabled``, ``welcomeMessage`` and ``chatAllowedOrigins``;
    without them chat is on, with no welcome and any origin, and speaks as "Owncast"."""

    def __init__(
        self,
        store: IStore,
        now: Callable[[], float],
        events: EventBus | None = None,
        *,
        bus: IChatBus,
        settings: Any = None,
    ):
        self._store = store
        self._now = now
        self.settings = settings
        self._events = events
        self._bus = bus
        self._bus.subscribe(self._deliver)
        self.listeners: list[Callable[[dict], None]] = []
        self.clients: dict[str, dict] = {}

    def _broadcast(self, message: dict) -> None:
        """To every node's listeners through the bus; to webhooks from this node only."""
        outgoing = {k: v for k, v in message.items() if k != "rawBody"}
        try:
            self._bus.publish(outgoing).addErrback(
                lambda f: _log.failure("Could not publish a chat message", f)
            )
        except Exception:
            _log.failure("Could not publish a chat message")
        if self._events is not None and message["type"] in _EVENT_TYPES:
            self._events.emit(message["type"], message)

    def _deliver(self, message: dict) -> None:
        for listener in list(self.listeners):
            listener(message)

    def setting(self, key: str, default: Any) -> Any:
        return self.settings.get(key, default) if self.settings is not None else default

    def server_name(self) -> str:
        return str(self.setting("name", "Owncast"))

    @property
    def disabled(self) -> bool:
        return bool(self.setting("chatDisabled", False))

    async def _publish(self, message: dict) -> dict:
        """Store and broadcast a message, unless chat is disabled (then it is dropped)."""
        if not self.disabled:
            await self._store.add_message(message)
            self._broadcast(message)
        return message

    # -- connected clients ---------------------------------------------------------------
    def connect(self, client_id: str, ip: str, user_agent: str) -> dict:
        record = {
            "connectedAt": self._now(),
            "messageCount": 0,
            "userAgent": user_agent,
            "ipAddress": ip,
            "username": None,
            "clientID": client_id,
        }
        self.clients[client_id] = record
        return record

    def disconnect(self, client_id: str) -> None:
        self.clients.pop(client_id, None)

    async def receive_chat(self, client_id: str, author: Any, body: Any) -> dict:
        """A chat message typed by a connected client."""
        record = self.clients.get(client_id)
        message = await self.send_user(author, body)
        if record is not None:
            record["messageCount"] += 1
            record["username"] = message["author"]
        return message

    def name_change(self, client_id: str, old: Any, new: Any) -> dict:
        new = check_name(new, "newName")
        old = old.strip()[:100] if isinstance(old, str) else ""
        record = self.clients.get(client_id)
        if record is not None:
            record["username"] = new
        # 0.0.7's NameChangeEvent: no timestamp. The image a client names is not passed
        # on: every other viewer's browser would fetch it.
        message = {"type": NAME_CHANGE, "id": new_id(), "oldName": old, "newName": new, "image": ""}
        self._broadcast(message)
        return message

    def user_joined(self, client_id: str, username: Any, live: bool = True) -> dict:
        """A client named itself on joining; connected clients hear of it only ``live``."""
        username = check_name(username, "username")
        record = self.clients.get(client_id)
        if record is not None:
            record["username"] = username
        message = {
            "type": USER_JOINED,
            "id": new_id(),
            "username": username,
            "timestamp": self._now(),
        }
        if live:
            self._broadcast(message)
        elif self._events is not None:
            self._events.emit(USER_JOINED, message)
        return message

    def _message(self, kind: str, author: str | None, body_html: str, **extra: Any) -> dict:
        return {
            "id": new_id(),
            "type": kind,
            "author": author,
            "body": body_html,
            "visible": True,
            "timestamp": self._now(),
            **extra,
        }

    async def send_user(self, author: str, body: str) -> dict:
        author = check_name(author, "user")
        raw = check_body(body)
        return await self._publish(self._message(CHAT, author, render_chat(raw), rawBody=raw))

    async def send_system(self, body: str) -> dict:
        html = render_server_message(check_body(body))
        return await self._publish(self._message(SYSTEM, self.server_name(), html))

    async def send_action(self, body: str, author: str | None = None) -> dict:
        """An action; with an author, 0.0.7 wrote the name in front of the body."""
        text = check_body(body)
        if author is not None:
            author = check_name(author, "author")
            text = f"{author} {text}"
        return await self._publish(self._message(CHAT_ACTION, author, render_chat(text)))

    def announce(self, markdown: str) -> dict | None:
        """A notice from the server (a changed stream title) for the clients connected
        now: an ephemeral ``CHAT_ACTION``, never stored, as 0.0.7."""
        if self.disabled:
            return None
        message = self._message(CHAT_ACTION, None, render_server_message(markdown), ephemeral=True)
        del message["author"]
        self._broadcast(message)
        return message

    def welcome(self) -> dict | None:
        """The welcome message a client gets on joining, or None when there is none."""
        text = str(self.setting("welcomeMessage", "")).strip()
        if not text or self.disabled:
            return None
        message = self._message(SYSTEM, self.server_name(), render_server_message(text))
        message["id"] = WELCOME_ID
        return message

    async def history(self) -> list[dict]:
        """What a viewer sees on joining: visible, recent, oldest first."""
        return await self._store.list_messages(
            since=self._now() - HISTORY_WINDOW, visible_only=True, limit=HISTORY_LIMIT
        )

    async def everything(self) -> list[dict]:
        return await self._store.list_messages(since=None, visible_only=False, limit=None)

    async def moderation(self) -> list[dict]:
        """What moderators see: users' ``CHAT`` messages of the history window, hidden
        ones too (0.0.7's moderation history)."""
        recent = await self._store.list_messages(
            since=self._now() - HISTORY_WINDOW, visible_only=False, limit=None
        )
        return [m for m in recent if m["type"] == CHAT]

    async def set_visibility(self, ids: list[str], visible: bool) -> list[dict]:
        changed = await self._store.set_visibility(ids, visible)
        for message in changed:
            self._broadcast(dict(message, type=VISIBILITY_UPDATE))
        return changed
