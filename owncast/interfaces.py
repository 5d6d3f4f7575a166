"""The seams between the domain and what stores or carries its state.

Each interface has an embedded implementation (SQLite, in-process) and may
have a distributed one (Redis); both must pass the same test suite.
Every method returns a ``Deferred``: implementations never block the reactor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from owncast.media import MediaTag


class IStore(Interface):
    """Durable state: settings, access tokens, webhooks, chat messages, stats samples.

    Records are plain dicts of JSON-able values; times are POSIX seconds (float).
    A write has reached durable storage when its Deferred fires.
    """

    def start() -> Deferred[None]:
        """Open the storage and migrate its schema; fires when ready."""

    def stop() -> Deferred[None]:
        """Release the storage; fires when closed."""

    def get_settings() -> Deferred[dict]:
        """Fire with a dict of every stored setting (key -> JSON value)."""

    def set_settings(values: dict) -> Deferred[None]:
        """Store several settings in one transaction."""

    def add_token(record: dict) -> Deferred[None]:
        """Store an access token ``{token, name, scopes, timestamp, lastUsed}``."""

    def delete_token(token: str) -> Deferred[bool]:
        """Delete a token; fire with True when it existed."""

    def list_tokens() -> Deferred[list[dict]]:
        """Fire with every token record, oldest first."""

    def touch_token(token: str, when: float) -> Deferred[None]:
        """Record that a token was used at ``when``."""

    def add_webhook(url: str, events: list, timestamp: float) -> Deferred[dict]:
        """Store a webhook; fire with its record ``{id, url, events, timestamp, lastUsed}``."""

    def delete_webhook(webhook_id: str) -> Deferred[bool]:
        """Delete a webhook; fire with True when it existed."""

    def list_webhooks() -> Deferred[list[dict]]:
        """Fire with every webhook record, oldest first."""

    def touch_webhook(webhook_id: str, when: float) -> Deferred[None]:
        """Record that a webhook was delivered to at ``when``."""

    def add_message(record: dict) -> Deferred[None]:
        """Store a chat message ``{id, type, author, body, visible, timestamp}``."""

    def list_messages(
        since: float | None, visible_only: bool, limit: int | None
    ) -> Deferred[list[dict]]:
        """Fire with messages newer than ``since``, oldest first; the newest ``limit``."""

    def set_visibility(ids: list, visible: bool) -> Deferred[list[dict]]:
        """Change the visibility of messages; fire with the updated records."""

    def add_sample(kind: str, when: float, value: float) -> Deferred[None]:
        """Store one stats sample (``cpu``, ``memory``, ``disk``, ``viewers``)."""

    def list_samples(kind: str, since: float) -> Deferred[list]:
        """Fire with ``[(when, value)]`` of that kind newer than ``since``, oldest first."""

    def prune_samples(before: float) -> Deferred[None]:
        """Delete samples older than ``before``."""


class IFfmpegProbe(Interface):
    """Asks an ffmpeg binary what it is and what it can do (coroutines: the admin API
    awaits them while it checks a setting)."""

    def version(path: str) -> Awaitable[str]:
        """The version line of the ffmpeg at ``path``; a ``ValidationError`` otherwise."""

    def encoders(path: str) -> Awaitable[frozenset[str]]:
        """The names of the encoders that ffmpeg offers."""

    def check_codec(path: str, codec: object) -> Awaitable[str]:
        """``codec`` when it is a known encoder that ffmpeg offers; a ``ValidationError``
        otherwise."""


class IStream(Interface):
    """The state of the broadcast, as the HTTP API reads and drives it."""

    online = Attribute("True while a publisher is live")
    last_connect_time = Attribute("POSIX time the last broadcast started, or None")
    last_disconnect_time = Attribute("POSIX time the last broadcast ended, or None")
    broadcaster = Attribute("dict of remoteAddr, time, streamDetails, or None")

    def disconnect() -> bool:
        """Drop the publisher and end the broadcast; False when nothing was live."""


class IChatBus(Interface):
    """Carries what the chat hub broadcasts to the chat sockets of every node.

    Messages are JSON-able dicts. Every listener on every node gets every published
    message once, each node in the same order, the publishing node included.
    """

    def start() -> Deferred[None]:
        """Connect; fires once messages published are delivered."""

    def stop() -> Deferred[None]:
        """Disconnect; fires when done."""

    def subscribe(listener: Callable[[dict], None]) -> None:
        """Call ``listener(message)`` for every message published on any node."""

    def publish(message: dict) -> Deferred[None]:
        """Hand ``message`` to every node; fires once it is handed over."""


class ISegmentStorage(Interface):
    """Somewhere finished HLS segments are copied to and served from, besides the local
    HLS directory (S3-compatible storage, or a directory a CDN serves)."""

    def put(key: str, data: bytes, content_type: str, cache_control: str) -> Deferred[None]:
        """Store ``data`` under ``key`` (``hls/<variant>/<name>``); fires once readable."""

    def delete(key: str) -> Deferred[None]:
        """Remove ``key``; fires when done (also when it was not there)."""

    def url(key: str) -> str:
        """The absolute URL players fetch ``key`` from."""


class IMediaSink(Interface):
    """Takes the media of one broadcast at a time, as ``owncast.media.MediaTag``s.

    The ingest calls ``begin()`` when a publisher goes live, ``media(tag)`` for each
    onMetaData, sequence header and frame in the order they arrived (timestamps already
    right, keyframe and sequence-header flags set), and ``end()`` when the broadcast
    ends. Which tracks the publisher really sends shows in the metadata tag
    (``tag.metadata``) and the kinds of the first media tags.
    """

    def begin() -> Deferred[None]:
        """A broadcast begins; its tags may follow at once. Fires (never fails) once the
        sink has started on it (the transcoder: ffmpeg spawned, or a retry scheduled)."""

    def media(tag: MediaTag) -> None:
        """One ``MediaTag`` of the live broadcast; ignored when none is live."""

    def end() -> Deferred[None]:
        """The broadcast ended; fires once the sink has let go of it."""


class ITranscoder(IMediaSink):
    """Turns the media of one broadcast at a time into HLS with ffmpeg, which reads it as
    FLV on its stdin (written there, and only there)."""

    live = Attribute("True between begin() and end()")

    def reload() -> Deferred[None]:
        """Restart ffmpeg with the current settings (the playlists continue)."""
