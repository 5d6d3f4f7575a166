"""Who may publish, and what a live broadcast feeds: the bridge between ingest and the rest.

The RTMP session asks ``authorize`` and ``begin``; a ``Broadcast`` handle then carries FLV
bytes to the transcoder and ends the stream state when the publisher goes away. Only one
broadcast is live at a time: a second publisher is refused and the first goes on.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from owncast.core.stream import StreamState

_log = Logger()


class AlreadyLiveError(Exception):
    """Another publisher is live."""


class NullSink:
    """A media sink that drops everything: used until a transcoder is attached."""

    def start(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def stop(self) -> Deferred:
        return succeed(None)


class Broadcast:
    """One live publish: the handle the ingest session holds."""

    def __init__(self, hub: Broadcasts, details: dict):
        self._hub = hub
        self.details = details
        self.ended = False

    def write(self, data: bytes) -> None:
        if not self.ended:
            self._hub.sink.write(data)

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._hub._ended(self)


class Broadcasts:
    def __init__(self, stream: StreamState, stream_key: Callable[[], str], sink: Any = None):
        self.stream = stream
        self._stream_key = stream_key
        self.sink = sink if sink is not None else NullSink()
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
                self._stop_sink()
            drop()

        self.sink.start()
        self.stream.start(remote_addr, details, dropped)
        return broadcast

    def _ended(self, broadcast: Broadcast) -> None:
        if self.current is broadcast:
            self.current = None
            self.stream.stop()
            self._stop_sink()

    def _stop_sink(self) -> None:
        d = self.sink.stop()
        if d is not None:
            d.addErrback(lambda f: _log.failure("stopping the transcoder failed", f))
