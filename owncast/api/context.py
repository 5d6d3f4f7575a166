"""What the HTTP apps share: references to the domain objects, and saving settings.

It holds no behaviour of its own beyond ``save``, which keeps the store and the
in-memory settings in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from owncast.core.chat import ChatHub
from owncast.core.events import EventBus
from owncast.core.settings import Settings
from owncast.core.stream import StreamState
from owncast.core.throttle import AuthThrottle
from owncast.core.tokens import TokenRegistry
from owncast.core.viewers import Viewers
from owncast.stats.logbuffer import LogBuffer


@dataclass
class AppContext:
    reactor: Any
    store: Any
    settings: Settings
    tokens: TokenRegistry
    stream: StreamState
    viewers: Viewers
    chat: ChatHub
    events: EventBus
    logs: LogBuffer
    probe: Any
    throttle: AuthThrottle
    datadir: Path
    webroot: Path
    ffmpeg_option: str | None = None
    ffmpeg_default: Callable[[], str | None] = field(default=lambda: None)
    #: Runs blocking file work off the reactor thread: ``blocking(fn, *args) -> Deferred``.
    blocking: Callable[..., Any] = field(default=None)
    #: The webhook dispatcher, told when webhooks are created or deleted.
    webhooks: Any = None
    #: The ffmpeg transcoder fed by the ingest (None in tests that do not need it).
    transcoder: Any = None

    def now(self) -> float:
        return self.reactor.seconds()

    async def save(self, values: dict) -> None:
        """Store settings durably, then make them current."""
        await self.store.set_settings(values)
        self.settings.update(values)

    async def change_title(self, title: str) -> None:
        """Store a new stream title; tell chat and webhooks (not for an emptied title)."""
        from owncast.core.events import STREAM_TITLE_UPDATED, stream_event

        await self.save({"streamTitle": title})
        if title:
            await self.chat.send_action(f"Stream title changed to **{title}**")
            self.events.emit(STREAM_TITLE_UPDATED, stream_event(self.settings, self.now()))

    def ffmpeg_path(self) -> str | None:
        return self.ffmpeg_option or self.settings["ffmpegPath"] or self.ffmpeg_default()
