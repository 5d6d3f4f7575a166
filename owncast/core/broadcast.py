"""Who may publish, and what a live broadcast feeds: the bridge between ingest and the rest.

The RTMP session asks ``authorize`` and ``begin``; a ``Broadcast`` handle then carries
media tags to the sink (the transcoder, an ``IMediaSink``) and ends the stream state when
the publisher is gone for good: once the sink has let go of the broadcast (the transcoder
waits out a reconnect grace, during which a publisher that comes back resumes it). Only
one broadcast is live at a time: a second publisher is refused and the first goes on. A
wrong stream key counts against its address in the same ``AuthThrottle`` as the admin
password (they are one secret). ``Admission`` decides which connections that have not
published yet are held, so idle ones cannot crowd out the encoder.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from owncast.core.stream import StreamState
from owncast.core.throttle import AuthThrottle
from owncast.interfaces import IMediaSink
from owncast.media import MediaTag

_log = Logger()


class AlreadyLiveError(Exception):
    """Another publisher is live."""


class TooManyAttemptsError(Exception):
    """The address is penalized for wrong credentials; its key was not checked."""

    def __init__(self, wait: float):
        super().__init__(f"too many failed attempts; retry in {int(wait) + 1} s")
        self.wait = int(wait) + 1


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
        throttle: AuthThrottle | None = None,
    ):
        self.stream = stream
        self._stream_key = stream_key
        self.sink: IMediaSink = sink if sink is not None else NullSink()
        self.current: Broadcast | None = None
        #: the last broadcast while its publisher may still come back
        self._leaving: Broadcast | None = None
        #: shared with the HTTP API's auth in the daemon; None: keys are not throttled
        self.throttle = throttle

    def authorize(self, key: str, address: str | None = None) -> bool:
        """Constant-time check of a publish key (a query string after it is ignored).
        With a throttle and the publisher's ``address``: ``TooManyAttemptsError`` while
        the address is penalized, and a wrong key counts against it."""
        throttle = self.throttle
        if throttle is not None and address is not None:
            wait = throttle.retry_after(address)
            if wait > 0:
                raise TooManyAttemptsError(wait)
        key = key.split("?", 1)[0]
        expected = self._stream_key()
        good = bool(expected) and hmac.compare_digest(
            key.encode("utf-8", "surrogatepass"), expected.encode("utf-8")
        )
        if not good and throttle is not None and address is not None:
            throttle.failed(address)
        return good

    def begin(self, remote_addr: str, details: dict, drop: Callable[[], None]) -> Broadcast:
        if self.current is not None:
            raise AlreadyLiveError()
        broadcast = Broadcast(self, details)
        self.current = broadcast
        self._leaving = None  # a broadcast in its reconnect grace goes on with this one

        def dropped() -> None:
            broadcast.ended = True
            if self.current is broadcast:
                self.current = None
                self._end_sink(broadcast)
            drop()

        self.sink.begin()
        self.stream.start(remote_addr, details, dropped)
        return broadcast

    def _ended(self, broadcast: Broadcast) -> None:
        if self.current is broadcast:
            self.current = None
            self.stream.publisher_left()
            self._end_sink(broadcast)

    def _end_sink(self, broadcast: Broadcast) -> None:
        """The publisher is gone. The broadcast stays on (``reconnecting``) until the sink
        has let go of it: the transcoder holds its playlists for the reconnect grace, a
        sink without one lets go at once. A publisher back before then resumes it."""
        self._leaving = broadcast
        d = maybeDeferred(self.sink.end)
        d.addErrback(lambda f: _log.failure("ending the broadcast's media failed", f))
        d.addCallback(lambda _: self._let_go(broadcast))

    def _let_go(self, broadcast: Broadcast) -> None:
        if self._leaving is broadcast:
            self._leaving = None
            self.stream.stop()


class Candidate(Protocol):
    """A connection waiting to publish, as ``Admission`` sees it."""

    #: its address's share key (``throttle.address_key``)
    address: str
    #: how far it got: 0 nothing received, 1 handshaking, 2 handshake done, 3 connected
    progress: int


class Admission:
    """Which connections that have not yet published with the right key are held.

    Each address (an IPv6 /64 counts as one) holds at most ``per_address`` of them, all
    addresses together ``slots``. A newcomer is always taken: room is made by giving up
    the least advanced, then oldest, connection of its own address when that address is
    at its share, else of the address holding the most. So idle connections, however
    many, push out only each other (an encoder is through its handshake within a round
    trip), never one of an address that holds fewer than another. The session gives each
    one a short deadline besides (``rtmp.session.AUTH_DEADLINE``).
    """

    def __init__(self, slots: int = 64, per_address: int = 8):
        self.slots = slots
        self.per_address = per_address
        # address -> [(arrival number, connection)], oldest first
        self._waiting: dict[str, list[tuple[int, Any]]] = {}
        self._arrivals = 0
        self.count = 0

    def admit(self, newcomer: Candidate) -> list[Any]:
        """Hold ``newcomer``; return the connections given up for it (to be dropped)."""
        given_up = []
        mine = self._waiting.get(newcomer.address, [])
        if len(mine) >= self.per_address:
            given_up.append(self._give_up([mine]))
        elif self.count >= self.slots and self._waiting:
            most = max(len(held) for held in self._waiting.values())
            given_up.append(
                self._give_up([held for held in self._waiting.values() if len(held) == most])
            )
        self._arrivals += 1
        self._waiting.setdefault(newcomer.address, []).append((self._arrivals, newcomer))
        self.count += 1
        return given_up

    def settled(self, candidate: Candidate) -> None:
        """``candidate`` published or went away: it holds nothing any more."""
        held = self._waiting.get(candidate.address)
        if held is None:
            return
        for index, (_, waiting) in enumerate(held):
            if waiting is candidate:
                del held[index]
                self.count -= 1
                if not held:
                    del self._waiting[candidate.address]
                return

    def waiting(self, address: str) -> int:
        return len(self._waiting.get(address, ()))

    def _give_up(self, groups: list[list[tuple[int, Any]]]) -> Any:
        """The least advanced, then oldest, connection of ``groups``, no longer held."""
        _, victim = min(
            (entry for held in groups for entry in held),
            key=lambda entry: (entry[1].progress, entry[0]),
        )
        self.settled(victim)
        return victim
