"""What the HTTP apps share: the domain objects, and saving settings.

It is built once, by the service tree (``owncast.service.build``), from objects that do
no I/O until the tree starts. It holds no behaviour of its own beyond ``save``, which
keeps the store and the in-memory settings in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from owncast.core.chat import ChatHub
from owncast.core.events import EventBus
from owncast.core.samples import StatsHistory
from owncast.core.settings import Settings
from owncast.core.stream import StreamState
from owncast.core.throttle import AuthThrottle
from owncast.core.tokens import TokenRegistry
from owncast.core.viewers import Viewers
from owncast.core.webhooks import WebhookRegistry
from owncast.interfaces import IFfmpegProbe, IStore
from owncast.stats.logbuffer import LogBuffer


def _no_ffmpeg() -> str | None:
    return None


@dataclass
class AppContext:
    #: the clock (the reactor in the daemon, a ``task.Clock`` in tests)
    reactor: IReactorTime
    store: IStore
    settings: Settings
    tokens: TokenRegistry
    webhooks: WebhookRegistry
    stream: StreamState
    viewers: Viewers
    chat: ChatHub
    events: EventBus
    logs: LogBuffer
    history: StatsHistory
    probe: IFfmpegProbe
    throttle: AuthThrottle
    datadir: Path
    webroot: Path
    #: Runs blocking file work off the reactor thread: ``blocking(fn, *args) -> Deferred``.
    blocking: Callable[..., Deferred]
    #: ``--ffmpeg``: wins over the ``ffmpegPath`` setting for this run.
    ffmpeg_option: str | None = None
    #: The ffmpeg to run when neither the option nor the setting names one.
    ffmpeg_default: Callable[[], str | None] = field(default=_no_ffmpeg)
    #: The recordings library (``owncast.recordings.library.Library``), None without one.
    recordings: Any = None

    def now(self) -> float:
        return self.reactor.seconds()

    async def save(self, values: dict) -> None:
        """Store settings durably, then make them current."""
        await self.store.set_settings(values)
        self.settings.update(values)

    def ffmpeg_path(self) -> str | None:
        return self.ffmpeg_option or self.settings["ffmpegPath"] or self.ffmpeg_default()
