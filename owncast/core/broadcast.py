"""Who may publish, and what a live broadcast feeds: the bridge between ingest and the rest.

The RTMP session asks ``authorize`` and ``begin``; a ``Broadcast`` handle then carries
media tags to the sink (the transcoder, an ``IMediaSink``) and ends the stream state when
the publisher goes away. Only one broadcast is live at a time: a second publisher is
refused and the first goes on.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from owncast.core.stream import StreamState
from owncast.interfaces import IMediaSink
from owncast.media import MediaTag

_log = Logger()


class AlreadyLiveError(Exception):
    """Another publisher is live."""


@implementer(IMediaSink)
class NullSink:
    """A media sink that drops everything: the sink when no transcoder is given."""

    def begin(self) -> Deferred:
        return succeed(None)

    def media(self, tag: MediaTag) -> None:
        pass

    def end(self) -> Deferred:
        return succeed(None)


class Broadcast:
    """One live publish: the handle the ingest session holds."""

    def __init__(self, hub: Broadcasts, details: dict):
        self._hub = hub
        self._sink = hub.sink
        self.details = details
        self.ended = False

    def media(self, tag: MediaTag) -> None:
        """Hand one tag to the sink (per frame: kept to one check and one call)."""
        if not self.ended:
            self._sink.media(tag)

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._hub._ended(self)


class Broadcasts:
    def __init__(
        self,
        stream: StreamState,
        stream_key: Callable[[], str],
        sink: IMediaSink | None = None,
    ):
        self.stream = stream
        self._stream_key = stream_key
        self.sink: IMediaSink = sink if sink is not None else NullSink()
        self.current: Broadcast | None = None

    def authorize(self, key: str) -> bool:
        """Constant-time check of a publish key (a query string after it is ignored)."""
        key = key.split("?", 1)[0]
        expected = self._stream_key()
        return bool(expected) and hmac.compare_digest(
            key.encode("utf-8", "surrogatepass"), expected.encode("utf-8")
        )

    def begin(self, remote_addr: str, details: dict, drop: Callable[[], None]) -> Broadcast:
        if self.current is not None:
            raise AlreadyLiveError()
        broadcast = Broadcast(self, details)
        self.current = broadcast

        def dropped() -> None:
            broadcast.ended = True
            if self.current is broadcast:
                self.current = None
                self._end_sink()
            drop()

        self.sink.begin()
        self.stream.start(remote_addr, details, dropped)
        return broadcast

    def _ended(self, broadcast: Broadcast) -> None:
        if self.current is broadcast:
            self.current = None
            self.stream.stop()
            self._end_sink()

    def _end_sink(self) -> None:
        d = maybeDeferred(self.sink.end)
        d.addErrback(lambda f: _log.failure("ending the broadcast's media failed", f))
