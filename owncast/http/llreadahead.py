"""Reading LL-HLS players' next requests straight from their sockets, as their answers go
out, instead of one poll event each.

A low-latency player asks again the moment it has its answer: by the time thousands of
held requests are answered (``owncast.http.llfast``), most of their next requests are
in the sockets already, and the reactor's dispatch of a read plus the channel's way to
the fast path would cost as much as the answer itself. ``ReadAhead`` reads them in one
loop: a request seen before (the same bytes from thousands of players) is held or
answered straight away, and once one is held the others like it join its waiters
directly; anything else takes the channel's usual way. A client that has not asked yet
costs a ``recv`` that finds nothing and is read by the reactor as usual, as are an end
of the connection or an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.python import log

from owncast.http.llrequest import PART, blocking, plan_of
from owncast.http.llrequest import PLAYLIST as PLAYLIST_KIND
from owncast.runtime.compat import channel_idle
from owncast.runtime.netio import pending_bytes

#: Bytes taken per read ahead: a request head (Twisted's reads take 64 KiB).
READ_SIZE = 64 * 1024
#: Reads one ``catch_up`` round makes at most before the reactor polls again.
CATCH_UP_READS = 4096
#: Requests whose reading is remembered (thousands of viewers send the same ones).
_KEPT = 1024
_UNSEEN = object()


class ReadAhead:
    """Next requests read from the sockets of clients just answered.

    ``hold(channel, renditions, got)`` holds or answers a request read here (``got`` is
    ``(plan, agent, forwarding)``), False when it is not the fast path's after all;
    ``seen(channel, agent, forwarding)`` counts the viewer of a playlist request;
    ``request_of(data)`` reads a request head as ``fastpath.plain_get`` does;
    ``renditions()`` gives the broadcast's renditions now."""

    def __init__(
        self,
        clock: Any,
        hold: Callable[[Any, Any, Any], bool],
        seen: Callable[[Any, bytes | None, Any], None],
        request_of: Callable[[bytes], Any],
        renditions: Callable[[], Any],
    ) -> None:
        self._clock = clock
        self._hold = hold
        self._seen = seen
        self._request_of = request_of
        self._renditions = renditions
        #: whole single requests read ahead -> (plan, agent, forwarding), or None
        self._requests: dict[bytes, Any] = {}
        #: channels answered at once (not held), read by ``catch_up``
        self._answered: list[Any] = []
        self._catching_up: Any = None

    def answered(self, channel: Any) -> None:
        """``channel`` was answered at once: its next request is read with the others
        answered now, once this batch of reads is done (``catch_up``)."""
        self._answered.append(channel)
        if self._catching_up is None:
            self._catching_up = self._clock.callLater(0, self.catch_up)

    def catch_up(self) -> None:
        """Read the next requests of the clients answered at once since the last poll.

        A viewer behind the live edge (just joined, or after a stall) asks for parts and
        playlists that exist: each is answered at once and the next follows a moment
        later. One poll event each would cost more per answer than the held path, so a
        server that fell behind could never catch up; instead they are read here in
        rounds, straight after the poll's batch (before the next poll), each round the
        clients answered in the one before, as long as a round finds most of them ready.
        Those not ready yet are left to the reactor."""
        self._catching_up = None
        reads = 0
        while self._answered and reads < CATCH_UP_READS:
            channels, self._answered = self._answered, []
            renditions = self._renditions()
            if not renditions:
                self._answered = []
                return
            read = self.read(channels, renditions, checked=False)
            reads += len(channels)
            if read * 2 < len(channels):
                break
        if self._answered and self._catching_up is None:
            self._catching_up = self._clock.callLater(0, self.catch_up)

    def read(
        self,
        channels: list[Any],
        renditions: Any,
        checked: bool = True,
        missed: list[Any] | None = None,
    ) -> int:
        """Read the next requests of ``channels`` and hold or answer them.

        Only a connection the reactor would read now (``readable``); ``checked``: known
        to be, as one whose held request was just answered whole, directly, with nothing
        come behind it. The number of requests read; the clients that had not asked yet
        are added to ``missed``, when given."""
        requests = self._requests
        second = int(self._clock.seconds())
        #: request bytes (their hash already made) -> (waiters, deadline) of the group
        #: the first of its kind joined
        joined: dict[bytes, tuple[dict[Any, float], float]] = {}
        read = 0
        for channel in channels:
            if not (checked or readable(channel)):
                continue
            try:
                data = channel.direct.recv(READ_SIZE)
            except OSError:  # nothing yet, or an error the reactor finds on its next poll
                if missed is not None:
                    missed.append(channel)
                continue
            if not data:  # the end: the reactor finds it too
                continue
            read += 1
            try:
                got = requests.get(data, _UNSEEN)
                if got is _UNSEEN:
                    got = self._learn(data)
                if got is None:
                    channel.dataReceived(data)
                    continue
                group = joined.get(data)
                if group is not None:  # held as the first was (nothing changed since)
                    waiting, deadline = group
                    waiting[channel] = deadline
                    channel.held = waiting
                    if got[0][0] == PLAYLIST_KIND and channel.seen_at != second:
                        channel.seen_at = second
                        self._seen(channel, got[1], got[2])
                elif self._hold(channel, renditions, got):
                    waiting = channel.held
                    if waiting is not None:
                        joined[data] = (waiting, waiting[channel])
                else:
                    channel.dataReceived(data)
                    continue
                if channel.reset_at != second:
                    channel.took(second)
            except Exception:
                log.err(None, "LL-HLS: reading ahead")
                channel.transport.abortConnection()
        return read

    def _learn(self, data: bytes) -> Any:
        """``(plan, agent, forwarding)`` of ``data`` when it is one whole plain request
        for a blocking reload or a part, remembered; None for anything else."""
        request = self._request_of(data)
        got = None
        if request is not None and request[2] == len(data):
            name, agent, _, forwarding = request
            plan = plan_of(name)
            if plan is not None and (plan[0] == PART or blocking(plan)):
                got = (plan, agent, forwarding)  # a part or a blocking reload
        if len(data) <= 2048:
            if len(self._requests) >= _KEPT:
                self._requests.clear()
            self._requests[data] = got
        return got


def readable(channel: Any) -> bool:
    """Whether the reactor would read ``channel`` now: held by nothing, open, idle
    (twisted.web stops reading while it handles a request) and with nothing queued for
    the client (a client that does not read its answers is not read from until it
    does)."""
    transport = channel.transport
    return (
        channel.direct is not None
        and channel.held is None
        and transport is not None
        and not transport.disconnecting
        and not transport.disconnected
        and not pending_bytes(transport)
        and channel_idle(channel)
    )
