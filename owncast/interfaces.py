"""The seams between the domain and what stores or carries its state.

Each interface has an embedded implementation (SQLite, in-process) and may
have a distributed one (Redis); both must pass the same test suite.
Every method returns a ``Deferred``: implementations never block the reactor.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IStore(Interface):
    """Durable state: settings, access tokens, webhooks, chat messages, stats samples.

    Records are plain dicts of JSON-able values; times are POSIX seconds (float).
    A write has reached durable storage when its Deferred fires.
    """

    def start() -> object:
        """Open the storage and migrate its schema; fires when ready."""

    def stop() -> object:
        """Release the storage; fires when closed."""

    def get_settings() -> object:
        """Fire with a dict of every stored setting (key -> JSON value)."""

    def set_settings(values: dict) -> object:
        """Store several settings in one transaction."""

    def add_token(record: dict) -> object:
        """Store an access token ``{token, name, scopes, timestamp, lastUsed}``."""

    def delete_token(token: str) -> object:
        """Delete a token; fire with True when it existed."""

    def list_tokens() -> object:
        """Fire with every token record, oldest first."""

    def touch_token(token: str, when: float) -> object:
        """Record that a token was used at ``when``."""

    def add_webhook(url: str, events: list, timestamp: float) -> object:
        """Store a webhook; fire with its record ``{id, url, events, timestamp, lastUsed}``."""

    def delete_webhook(webhook_id: str) -> object:
        """Delete a webhook; fire with True when it existed."""

    def list_webhooks() -> object:
        """Fire with every webhook record, oldest first."""

    def touch_webhook(webhook_id: str, when: float) -> object:
        """Record that a webhook was delivered to at ``when``."""

    def add_message(record: dict) -> object:
        """Store a chat message ``{id, type, author, body, visible, timestamp}``."""

    def list_messages(since: float | None, visible_only: bool, limit: int | None) -> object:
        """Fire with messages newer than ``since``, oldest first; the newest ``limit``."""

    def set_visibility(ids: list, visible: bool) -> object:
        """Change the visibility of messages; fire with the updated records."""

    def add_sample(kind: str, when: float, value: float) -> object:
        """Store one stats sample (``cpu``, ``memory``, ``disk``, ``viewers``)."""

    def list_samples(kind: str, since: float) -> object:
        """Fire with ``[(when, value)]`` of that kind newer than ``since``, oldest first."""

    def prune_samples(before: float) -> object:
        """Delete samples older than ``before``."""


class IFfmpegProbe(Interface):
    """Asks an ffmpeg binary what it is and what it can do."""

    def version(path: str) -> object:
        """Fire with the version line of the ffmpeg at ``path``, or fail."""

    def encoders(path: str) -> object:
        """Fire with the set of encoder names that ffmpeg offers."""


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

    def start() -> object:
        """Connect; fires once messages published are delivered."""

    def stop() -> object:
        """Disconnect; fires when done."""

    def subscribe(listener: object) -> None:
        """Call ``listener(message)`` for every message published on any node."""

    def publish(message: dict) -> object:
        """Hand ``message`` to every node; fires once it is handed over."""


class ISegmentStorage(Interface):
    """Somewhere finished HLS segments are copied to and served from, besides the local
    HLS directory (S3-compatible storage, or a directory a CDN serves)."""

    def put(key: str, data: bytes, content_type: str, cache_control: str) -> object:
        """Store ``data`` under ``key`` (``hls/<variant>/<name>``); fires once readable."""

    def delete(key: str) -> object:
        """Remove ``key``; fires when done (also when it was not there)."""

    def url(key: str) -> str:
        """The absolute URL players fetch ``key`` from."""


class ITranscoder(Interface):
    """Turns the FLV of one broadcast at a time into HLS.

    The ingest calls ``start()`` when a publisher goes live, ``write(data)`` with the FLV
    bytes (the FLV header first, then whole or partial tags, timestamps already right),
    and ``stop()`` when the broadcast ends.
    """

    live = Attribute("True between start() and stop()")

    def start() -> object:
        """A broadcast begins: ffmpeg is spawned once the FLV header has arrived.

        Fires (never fails) when ffmpeg was spawned or is waiting for the FLV header.
        """

    def write(data: bytes) -> None:
        """FLV bytes of the live broadcast; ignored when not live."""

    def stop() -> object:
        """The broadcast ended: fire once no ffmpeg process is left."""

    def reload() -> object:
        """Restart ffmpeg with the current settings (the playlists continue)."""
