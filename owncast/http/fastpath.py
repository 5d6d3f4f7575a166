"""An HTTP channel that answers plain ``GET /hls/...`` requests from memory itself.

Players poll their variant playlist every segment and fetch every segment once, so with
many viewers nearly every request is for a handful of files already in memory
(``HlsResource``). Through twisted.web each costs about 170 µs of CPU: parsing into a
``Request``, resource lookup, header objects, ``finish``. This channel looks at the raw
bytes first and, for the plainest requests only, writes the answer straight away.

What takes the fast path: a whole ``GET /hls/<name> HTTP/1.1`` request in one read, on a
keep-alive connection with no request in progress, no header that changes the answer
(ranges, conditionals, a body, ``Connection: close``, an upgrade), for a file
``HlsResource.from_memory`` can answer or, while the broadcast is in low-latency mode,
for the LL-HLS renditions (``owncast.http.llfast``, which also holds blocking reloads and
preload-hint parts here until they can be answered). Everything else (a cold file, a
404, HEAD, a range request, HTTP/1.0, a request split over reads) goes to twisted.web
untouched, and a fast answer carries the same status, headers and body as twisted.web's
would.

The channel also times out slow request heads: a request whose line and headers have
not all arrived ``HEAD_TIMEOUT`` seconds after its first byte is answered 408 and its
connection closed, however the bytes trickle in (the idle timeout alone restarts with
every byte). A request that arrives whole in one read, as nearly all do, costs nothing
for it; fast answers never reach that code at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.server import version as server_version

from owncast.api.http import viewer_key_of
from owncast.core.throttle import TrustedProxies
from owncast.http.hls import LARGE_BODY, send_ahead
from owncast.http.llfast import MAX_BEHIND, LlFastPath
from owncast.runtime.compat import channel_idle, reading_head, set_send_limit
from owncast.runtime.netio import direct_socket, pending_bytes, send_now

PREFIX = b"/hls/"
_FAST_START = b"GET " + PREFIX
#: A request whose header block is larger than this goes to twisted.web.
MAX_HEAD = 8 * 1024
#: Headers after which the answer is not a plain 200 with the whole file.
_NOT_PLAIN = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"expect",
        b"upgrade",
        b"range",
        b"if-range",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-match",
        b"if-none-match",
    )
)
#: Bytes a client may leave unread before its requests go back to twisted.web (which
#: stops reading from a client that does not read its answers).
MAX_UNREAD = 4 * 1024 * 1024
#: Bytes a TCP transport offers the socket per send (Twisted's default is 128 KiB).
SEND_LIMIT = 1024 * 1024
#: Seconds from a request's first byte until its head (line and headers) must be in.
HEAD_TIMEOUT = 5.0
#: Request heads whose reading is remembered (``HlsFastPath.answer``), up to this size.
_HEADS_KEPT = 1024
_HEAD_KEPT_SIZE = 2048
_UNSEEN = object()
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


#: ``(X-Forwarded-For, Forwarded)`` of a request that has either, as sent
Forwarding = tuple[bytes | None, bytes | None]


def plain_get(
    data: bytes, prefix: bytes = PREFIX
) -> tuple[bytes, bytes | None, int, Forwarding | None] | None:
    """``(path after prefix, user agent, bytes used, forwarding headers or None)`` when
    ``data`` starts with a whole, plain HTTP/1.1 GET of a path under ``prefix``; None
    for anything else."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD)
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    parts = lines[0].split(b" ")
    if (
        len(parts) != 3
        or parts[0] != b"GET"
        or parts[2] != b"HTTP/1.1"
        or not parts[1].startswith(prefix)
    ):
        return None
    agent = forwarded_for = forwarded = None
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or b" " in name or b"\t" in name:  # also a folded line
            return None
        name = name.lower()
        if name in _NOT_PLAIN:
            return None
        if name == b"user-agent":
            if agent is not None:
                return None
            agent = value.strip()
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens or b"upgrade" in tokens:
                return None
        elif name == b"x-forwarded-for":  # repeated: one list, as twisted.web joins it
            forwarded_for = (
                value.strip() if forwarded_for is None else forwarded_for + b"," + value.strip()
            )
        elif name == b"forwarded":
            forwarded = value.strip() if forwarded is None else forwarded + b"," + value.strip()
    forwarding = None if forwarded_for is None and forwarded is None else (forwarded_for, forwarded)
    return parts[1][len(prefix) :], agent, end + 4, forwarding


def _title(name: bytes) -> bytes:
    """``content-type`` -> ``Content-Type``, as twisted.web writes header names."""
    return b"-".join(part.capitalize() for part in name.split(b"-"))


class HlsFastPath:
    """Answers plain requests for HLS files in memory on an ``OwncastChannel``.

    ``hls`` is the ``HlsResource`` behind ``/hls/``; ``seen(viewer_key)`` counts a
    viewer for each playlist served (as its ``on_playlist`` hook does); ``headers`` are
    the lines every response of the site carries; ``clock`` dates the answers. With
    ``switch`` (the ``HlsSwitch`` at ``/hls/``), requests go to its LL-HLS renditions
    while the broadcast is in low-latency mode (``owncast.http.llfast``), as they do
    through twisted.web; ``quiet`` is called at its quiet moments (``LlFastPath``).
    """

    def __init__(
        self,
        hls: Any,
        seen: Callable[[str], None],
        clock: Any,
        headers: Iterable[tuple[bytes, bytes]] = (),
        switch: Any = None,
        proxies: TrustedProxies | None = None,
        quiet: Callable[[], None] = lambda: None,
    ):
        self.hls = hls
        self._seen = seen
        #: ``--trustedproxy``: whose forwarding headers name the viewer's address
        self.proxies = proxies if proxies is not None else TrustedProxies()
        self._switch = switch
        self._heads: dict[bytes, Any] = {}
        self.ll = (
            None
            if switch is None
            else LlFastPath(
                switch.ll, self._head, self._viewer, self._count, self.request_of, quiet
            )
        )
        #: requests answered here, below twisted.web (``/metrics`` counts them as 200s)
        self.answered = 0
        self._clock = clock
        fixed = [(b"server", server_version), *headers, (b"access-control-allow-origin", b"*")]
        self._fixed = b"".join(b"%s: %s\r\n" % (_title(n), v) for n, v in fixed)
        #: the second ``_head`` was last built for (the last answer's, near enough)
        self.second = -1
        self._common = b""

    def _head(self) -> bytes:
        """Status line, Date and the fixed lines, rebuilt once a second."""
        now = int(self._clock.seconds())
        if now != self.second:
            self.second = now
            self._common = (
                b"HTTP/1.1 200 OK\r\nDate: %s\r\n" % http.datetimeToString(now) + self._fixed
            )
        return self._common

    def request_of(self, data: bytes) -> tuple[bytes, bytes | None, int, Forwarding | None] | None:
        """``plain_get(data)``, read once per distinct request head: thousands of players
        ask for the same names with the same headers."""
        end = data.find(b"\r\n\r\n", 0, MAX_HEAD)
        if end < 0:
            return None
        head = data[: end + 4]
        request = self._heads.get(head, _UNSEEN)
        if request is _UNSEEN:
            request = plain_get(head)
            if len(head) <= _HEAD_KEPT_SIZE:
                if len(self._heads) >= _HEADS_KEPT:
                    self._heads.clear()
                self._heads[head] = request
        return request

    def answer(self, channel: Any, data: bytes) -> int:
        """Answer the request at the start of ``data``; the bytes it took, 0 when the
        request is not one for this path (``data`` is then left to twisted.web)."""
        request = self.request_of(data)
        if request is None:
            return 0
        name, agent, used, forwarding = request
        switch = self._switch
        if switch is not None and switch.output.live and name not in switch.FILES:
            assert self.ll is not None
            return used if self.ll.answer(channel, name, agent, forwarding) else 0
        hot = self.hls.from_memory(name)
        if hot is None:
            return 0
        transport = channel.transport
        if pending_bytes(transport) > MAX_UNREAD:
            return 0
        headers, body, playlist = hot
        if playlist:
            self._viewer(channel, agent, forwarding)
        head = b"%s%sContent-Length: %d\r\n\r\n" % (self._head(), headers, len(body))
        if len(body) >= LARGE_BODY:
            send_now(transport, channel.direct, head)
            send_ahead(transport)  # in case the headers had to queue
            transport.write(body)  # queued alone, so never copied
        else:
            send_now(transport, channel.direct, head + body)
        self.answered += 1
        return used

    def _viewer(self, channel: Any, agent: bytes | None, forwarding: Forwarding | None) -> None:
        """Count the viewer of a playlist request: its address and user agent, the
        address being the client a trusted proxy names when the peer is one."""
        host = channel.peer_host
        if forwarding is not None and self.proxies:
            forwarded_for, forwarded = (v if v is None else v.decode("latin-1") for v in forwarding)
            host = self.proxies.client(host, forwarded_for, forwarded)
        self._seen(viewer_key_of(host, agent))

    def _count(self, channel: Any, status: int, n: int) -> None:
        """``n`` answers of ``status`` went out from here (on ``channel`` and others of
        its site): 200s are ``answered``, others are added to the site's ``statuses`` (as
        twisted.web's are)."""
        if status == 200:
            self.answered += n
            return
        statuses = getattr(getattr(channel, "site", None), "statuses", None)
        if statuses is not None:
            statuses[status] = statuses.get(status, 0) + n


class OwncastChannel(http.HTTPChannel):
    """``HTTPChannel`` that offers each request to the site's ``hls_fast`` first, while
    no request is in progress on it (``compat.channel_idle``: so answers stay in order),
    and closes it when a request's head takes longer than ``head_timeout`` to arrive.

    A request the fast path holds (LL-HLS blocking reload) parks the channel in its
    waiters (``held``): what the client sends meanwhile waits behind it, up to
    ``MAX_BEHIND`` bytes, and is read once ``release`` is called.

    The site hears of it leaving (``site.released``: per-address connection counts)."""

    peer_host = ""
    direct: Any = None
    fast: HlsFastPath | None = None
    #: the second the idle timeout was last moved on (``took``)
    reset_at = -1
    head_timeout = HEAD_TIMEOUT
    #: the peer address the site counts this connection against, if any
    counted: str | None = None
    #: the timer of the request head being read, while one is
    _head_call: Any = None
    #: the waiters (channel -> deadline) this channel's held request is in, while one is
    held: dict[Any, float] | None = None
    #: the second the LL-HLS fast path last counted this connection's viewer
    seen_at = -1
    _behind = b""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.fast = getattr(getattr(self, "site", None), "hls_fast", None)
        transport: Any = self.transport
        self.direct = direct_socket(transport)
        set_send_limit(transport, SEND_LIMIT)
        peer = transport.getPeer()
        self.peer_host = getattr(peer, "host", None) or str(peer)

    def dataReceived(self, data: bytes) -> None:
        if self.held is not None:
            self._wait_behind(data)
            return
        fast = self.fast
        if fast is not None:
            while data.startswith(_FAST_START) and channel_idle(self):
                used = fast.answer(self, data)
                if not used:
                    break
                self.took(fast.second)
                if used == len(data):  # nearly always: one whole request per read
                    return
                data = data[used:]
                if self.held is not None:
                    self._wait_behind(data)
                    return
        super().dataReceived(data)
        # Whole requests leave no head behind: only a partial one starts (and a finished
        # one stops) the timer.
        if reading_head(self) != (self._head_call is not None):
            self._time_head()

    def took(self, second: int) -> None:
        """A request was answered (or held) below twisted.web in ``second``: the idle
        timeout (30 s) moves on, at most once a second (moving a DelayedCall for every
        request would cost more than the answer)."""
        if second != self.reset_at:
            self.reset_at = second
            self.resetTimeout()

    def _wait_behind(self, data: bytes) -> None:
        self._behind += data
        if len(self._behind) > MAX_BEHIND:
            self._behind = b""
            self.loseConnection()

    def release(self) -> bool:
        """The held request was answered: read what came behind it; whether anything
        had."""
        self.held = None
        behind = self._behind
        if not behind:
            return False
        self._behind = b""
        self.dataReceived(behind)
        return True

    def _time_head(self) -> None:
        call = self._head_call
        if call is None:
            transport: Any = self.transport
            if transport is not None and not transport.disconnecting:
                self._head_call = self.callLater(self.head_timeout, self._head_timed_out)
        else:
            self._head_call = None
            call.cancel()

    def _head_timed_out(self) -> None:
        self._head_call = None
        transport: Any = self.transport
        if reading_head(self) and transport is not None:
            transport.write(_TIMED_OUT)
            self.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.held is not None:  # the client left while held: it is waited for no more
            self.held.pop(self, None)
            self.held = None
        if self._head_call is not None:
            self._time_head()
        super().connectionLost(reason)
        released = getattr(getattr(self, "site", None), "released", None)
        if released is not None:
            released(self)
