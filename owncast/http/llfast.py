"""LL-HLS answered below twisted.web: held requests parked on the channel, one answer
built per position and written to every client waiting for it.

Every low-latency viewer holds a blocking playlist request and a preload-hint part
request open all the time, and both are answered the moment the next part lands (five
times a second): with thousands of viewers that is tens of thousands of answers a second,
nearly all due at the same instant. Through twisted.web each costs a ``Request``, a
Deferred on the rendition, a timer and a playlist rendered for it alone. Here
(``OwncastChannel`` hands over the plain ``GET /hls/...`` requests while the broadcast is
in low-latency mode):

* a request that can be answered now is, with bytes written straight to the socket;
* a held one is parked: the channel goes into a group of clients waiting for the same
  thing (``(msn, part, skip)`` of one rendition, or one part number). The channel keeps
  reading, so a client that leaves is dropped from its group at once
  (``OwncastChannel.connectionLost``), and anything it sends meanwhile waits its turn;
* one Deferred per rendition (``Rendition.wait`` for the next part) wakes all groups; the
  parts go out first (viewers are waiting on those bytes), then the playlists. Each is
  rendered and framed once (``LlHlsResource.playlist_bytes`` caches by the renditions'
  ``version``) and the same bytes object goes to every waiter;
* a group has one timer, for its oldest waiter: after three target durations a waiter
  is answered 503, as ``LlHlsResource`` does;
* the answered clients' next requests are read from their sockets straight away
  (``owncast.http.llreadahead``), not one poll event each.

Anything else (a bad or odd query, a 404, the thumbnail) is left to twisted.web, and
every answer here carries the status, headers and body ``LlHlsResource`` gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python import log

from owncast.http.llhls import IMMUTABLE, MP4, PLAYLIST, LlHlsResource
from owncast.http.llreadahead import ReadAhead
from owncast.http.llrequest import INIT, MASTER, PART, plan_of
from owncast.http.llrequest import PLAYLIST as PLAYLIST_KIND
from owncast.llhls.rendition import Rendition
from owncast.runtime.netio import send_now

_OK = b"HTTP/1.1 200 OK\r\n"
_STATUS = {
    404: (b"HTTP/1.1 404 Not Found\r\n", b"not found"),
    503: (b"HTTP/1.1 503 Service Unavailable\r\n", b"try again"),
}
_PLAIN = b"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-cache\r\n"
#: Bytes a client may send behind a held request before it is cut off.
MAX_BEHIND = 64 * 1024
#: Passes over the answered clients reading their next requests (``_landed``).
READ_PASSES = 3
#: Request names whose reading is remembered (thousands of viewers ask the same ones).
_PLANS_KEPT = 1024
_UNSEEN = object()


class _Group:
    """Channels waiting for the same answer, oldest first, with their deadlines."""

    __slots__ = ("waiting", "timer")

    def __init__(self) -> None:
        self.waiting: dict[Any, float] = {}
        self.timer: Any = None


class _Watched:
    """The groups of one rendition and the Deferred that wakes them."""

    __slots__ = (
        "renditions",
        "rendition",
        "index",
        "playlists",
        "parts",
        "pending",
        "media",
        "landed_at",
    )

    def __init__(self, renditions: Sequence[Rendition], index: int) -> None:
        #: all renditions of the broadcast (the playlist reports the others)
        self.renditions = renditions
        self.rendition = renditions[index]
        self.index = index
        self.playlists: dict[tuple[int, int, bool], _Group] = {}
        self.parts: dict[int, _Group] = {}
        self.pending: Deferred[None] | None = None
        #: framed part answers: index -> (second built, bytes)
        self.media: dict[int, tuple[int, bytes]] = {}
        #: when its last part landed (clock seconds)
        self.landed_at = -1.0


class LlFastPath:
    """The low-latency half of ``HlsFastPath``: ``resource`` is the ``LlHlsResource`` at
    ``/hls/`` (its renditions, variants, caches and clock); ``head()`` gives the status
    line, Date and fixed header lines of a 200; ``seen(channel, agent, forwarding)``
    counts the viewer of a playlist request;
    ``counted(channel, status, n)`` is told of the answers sent; ``request_of(data)``
    reads a request head as ``fastpath.plain_get`` does; ``quiet()`` is called when
    every watched rendition's part has just landed and been answered (the longest time
    before the next: ``heap.FullCollections.quiet``)."""

    def __init__(
        self,
        resource: LlHlsResource,
        head: Callable[[], bytes],
        seen: Callable[[Any, bytes | None, Any], None],
        counted: Callable[[Any, int, int], None],
        request_of: Callable[[bytes], Any] = lambda data: None,
        quiet: Callable[[], None] = lambda: None,
    ) -> None:
        self.resource = resource
        self._quiet = quiet
        self._head = head
        self._seen = seen
        self._counted = counted
        self._clock = resource.clock
        self._watched: dict[int, _Watched] = {}
        self._for: Any = None
        self._plans: dict[bytes, Any] = {}
        self._framed: dict[bytes, tuple[int, bytes]] = {}
        #: the answered clients' next requests, read from their sockets
        self._reader = ReadAhead(self._clock, self._quick, seen, request_of, resource.renditions)
        #: (second, seconds a request is held at most), worked out once a second
        self._limit = (-1, 3.0)

    # -- answering -----------------------------------------------------------------------

    def answer(
        self, channel: Any, name: bytes, agent: bytes | None, forwarding: Any = None
    ) -> bool:
        """Answer (or park) ``GET /hls/<name>``; False leaves it to twisted.web."""
        plan = self._plans.get(name, _UNSEEN)
        if plan is _UNSEEN:
            plan = plan_of(name)
            if len(name) <= 256:
                if len(self._plans) >= _PLANS_KEPT:
                    self._plans.clear()
                self._plans[name] = plan
        if plan is None:
            return False
        kind, n, a, b, skip = plan
        renditions = self.resource.renditions()
        if kind == MASTER:
            if not renditions:
                return False
            body = self.resource.master_bytes()
            self._send(channel, self._frame(PLAYLIST, b"no-cache", body))
            return True
        if n >= len(renditions):
            return False
        rendition = renditions[n]
        if kind == PLAYLIST_KIND:
            return self._playlist(channel, renditions, n, a, b, skip, agent, forwarding)
        if kind == PART:
            return self._part(channel, renditions, n, a)
        if kind == INIT:
            data = rendition.inits.get(a)
        else:
            segment = rendition.segment(a)
            data = segment.data if segment is not None else None
        if data is None:
            return False
        self._send(channel, self._frame(MP4, IMMUTABLE, data))
        return True

    def _playlist(
        self,
        channel: Any,
        renditions: Any,
        n: int,
        msn: int | None,
        part: int | None,
        skip: bool,
        agent: bytes | None,
        forwarding: Any,
    ) -> bool:
        rendition = renditions[n]
        if msn is not None and msn > rendition.open.msn + 2:
            return False  # the 400 is twisted.web's to give
        # A viewer is counted once a second at most, not for each of its five reloads.
        second = int(self._clock.seconds())
        if channel.seen_at != second:
            channel.seen_at = second
            self._seen(channel, agent, forwarding)
        if msn is None:
            body = self.resource.playlist_bytes(renditions, n, skip)
            self._send(channel, self._frame(PLAYLIST, b"no-cache", body))
        elif rendition.has(msn, part):
            self._send(channel, self._held_playlist(renditions, n, skip))
        else:
            watched = self._watch(renditions, n)
            key = (msn, -1 if part is None else part, skip)
            group = watched.playlists.get(key)
            if group is None:
                group = watched.playlists[key] = _Group()
            self._park(channel, group)
        return True

    def _part(self, channel: Any, renditions: Any, n: int, index: int) -> bool:
        rendition = renditions[n]
        watched = self._watch(renditions, n)
        if rendition.part(index) is not None:
            self._send(channel, self._part_answer(watched, index))
            return True
        if index != rendition.next_part or rendition.ended:
            return False  # 404, twisted.web's
        group = watched.parts.get(index)
        if group is None:
            group = watched.parts[index] = _Group()
        self._park(channel, group)
        return True

    def _frame(self, kind: bytes, cache: bytes, body: bytes, status: bytes = _OK) -> bytes:
        head = self._head()
        if status is not _OK:
            head = status + head[len(_OK) :]
        return b"%sContent-Type: %s\r\nCache-Control: %s\r\nContent-Length: %d\r\n\r\n%s" % (
            head,
            kind,
            cache,
            len(body),
            body,
        )

    def _held_playlist(self, renditions: Any, n: int, skip: bool) -> bytes:
        """The answer to a blocking reload, framed once per playlist (and second)."""
        body = self.resource.playlist_bytes(renditions, n, skip)
        second = int(self._clock.seconds())
        framed = self._framed.get(body)  # the same bytes object while the position holds
        if framed is None or framed[0] != second:
            cache = b"public, max-age=%d" % renditions[n].target_duration
            if len(self._framed) >= _PLANS_KEPT:
                self._framed.clear()
            framed = self._framed[body] = (second, self._frame(PLAYLIST, cache, body))
        return framed[1]

    def _part_answer(self, watched: _Watched, index: int) -> bytes:
        second = int(self._clock.seconds())
        built = watched.media.get(index)
        if built is None or built[0] != second:
            part = watched.rendition.part(index)
            assert part is not None
            if len(watched.media) > 64:
                watched.media.clear()
            built = watched.media[index] = (second, self._frame(MP4, IMMUTABLE, part.data))
        return built[1]

    def _status(self, code: int) -> bytes:
        line, body = _STATUS[code]
        head = line + self._head()[len(_OK) :]
        return b"%s%sContent-Length: %d\r\n\r\n%s" % (head, _PLAIN, len(body), body)

    def _send(self, channel: Any, data: bytes, code: int = 200) -> None:
        transport = channel.transport
        if transport is None or getattr(transport, "disconnected", False):
            return
        send_now(transport, channel.direct, data)
        self._counted(channel, code, 1)
        self._reader.answered(channel)

    # -- holding -------------------------------------------------------------------------

    def _park(self, channel: Any, group: _Group) -> None:
        now = self._clock.seconds()
        second, limit = self._limit
        if int(now) != second:
            renditions = self.resource.renditions()
            limit = 3 * max((r.target_duration for r in renditions), default=1)
            self._limit = (int(now), limit)
        deadline = now + limit
        group.waiting[channel] = deadline
        channel.held = group.waiting
        if group.timer is None:
            group.timer = self._clock.callLater(limit, self._expire, group)

    def _expire(self, group: _Group) -> None:
        """503 for the waiters of ``group`` past their deadline; the timer moves on to
        the next one."""
        group.timer = None
        now = self._clock.seconds()
        late = []
        for channel, deadline in group.waiting.items():
            if deadline > now:
                group.timer = self._clock.callLater(deadline - now, self._expire, group)
                break
            late.append(channel)
        if late:
            self._release(late, group, self._status(503), 503)

    def _release(
        self,
        channels: Any,
        group: _Group,
        data: bytes,
        code: int = 200,
        answered: list[Any] | None = None,
    ) -> None:
        """Answer ``channels`` (all of ``group``'s waiters, or those out of time) with
        ``data``, the same bytes object for each; those answered are added to
        ``answered`` when given."""
        waiting = group.waiting
        if channels is waiting:  # all of them: the group is done
            group.waiting = {}
        else:
            for channel in channels:
                waiting.pop(channel, None)
        if not group.waiting and group.timer is not None:
            group.timer.cancel()
            group.timer = None
        sent, last = 0, None
        for channel in list(channels):
            channel.held = None
            transport = channel.transport
            if transport is None or transport.disconnected:
                continue
            try:
                whole = send_now(transport, channel.direct, data)
                sent, last = sent + 1, channel
                # A client that sent more while held has had it read now (and may be
                # held again), one with part of its answer queued is read by the
                # reactor once that is out: neither is read ahead.
                if not channel.release() and whole and answered is not None:
                    answered.append(channel)
            except Exception:
                log.err(None, "LL-HLS: answering a held request")
        if sent:
            self._counted(last, code, sent)

    def _watch(self, renditions: Any, n: int) -> _Watched:
        """The groups of rendition ``n``; its wake-up armed."""
        if renditions is not self._for:
            self._for = renditions
            self._watched = {}
        watched = self._watched.get(n)
        if watched is None or watched.rendition is not renditions[n]:
            watched = self._watched[n] = _Watched(renditions, n)
        if watched.pending is None and not watched.rendition.ended:
            self._arm(watched)
        return watched

    def _arm(self, watched: _Watched) -> None:
        rendition = watched.rendition
        pending = rendition.wait(rendition.open.msn, len(rendition.open.parts))
        watched.pending = pending
        pending.addCallback(lambda _: self._landed(watched))
        pending.addErrback(log.err, "LL-HLS: waking held requests")

    def _landed(self, watched: _Watched) -> None:
        """A part landed (or the rendition ended): answer whoever it was for."""
        watched.pending = None
        rendition = watched.rendition
        renditions = watched.renditions
        watched.landed_at = self._clock.seconds()
        answered: list[Any] = []
        for index in [i for i in watched.parts if rendition.part(i) is not None]:
            group = watched.parts.pop(index)
            self._release(group.waiting, group, self._part_answer(watched, index), 200, answered)
        if rendition.ended:
            for index in list(watched.parts):
                group = watched.parts.pop(index)
                self._release(group.waiting, group, self._status(404), 404)
        ready = [k for k in watched.playlists if rendition.has(k[0], None if k[1] < 0 else k[1])]
        answers: dict[bool, bytes] = {}
        for key in ready:
            group = watched.playlists.pop(key)
            skip = key[2]
            if skip not in answers:
                answers[skip] = self._held_playlist(renditions, watched.index, skip)
            self._release(group.waiting, group, answers[skip], 200, answered)
        if not rendition.ended:
            self._arm(watched)
            if renditions is self.resource.renditions():
                # Clients not there yet on the first pass have had its whole length to
                # ask by the next: a few passes while most of them have.
                for _ in range(READ_PASSES):
                    missed: list[Any] = []
                    read = self._reader.read(answered, renditions, missed=missed)
                    if not missed or read < len(missed):
                        break
                    answered = missed
                if self._all_landed():
                    self._quiet()

    def _all_landed(self) -> bool:
        """Whether every watched rendition's latest part landed within half a part
        target (renditions' parts land together, a few ms apart)."""
        now = self._clock.seconds()
        return all(
            now - w.landed_at <= w.rendition.part_target / 2
            for w in self._watched.values()
            if not w.rendition.ended
        )

    def _quick(self, channel: Any, renditions: Any, got: Any) -> bool:
        """Hold or answer a request read ahead; False when it is not for here after all
        (nothing done)."""
        (kind, n, a, b, skip), agent, forwarding = got
        if n >= len(renditions):
            return False
        if kind == PART:
            return self._part(channel, renditions, n, a)
        return self._playlist(channel, renditions, n, a, b, skip, agent, forwarding)
