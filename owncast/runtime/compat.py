"""Every private or undocumented Twisted and Autobahn internal the daemon relies on.

The measured hot paths (the HLS fast path, direct socket writes, the chat fan-out) and a
few memory savings read or set attributes that neither project promises to keep. They
are all here, behind small named functions, so that a release that renames one fails
loudly: ``self_test()`` (run by the daemon at start-up and by ``tests.test_compat``)
drives real Twisted and Autobahn objects in memory and raises ``IncompatibleInternalsError``
naming the internal and the installed versions. Nothing here catches ``AttributeError``:
a guess of 0 for an unreadable send buffer would put new bytes on the socket ahead of
queued ones.

Tested range (``setup.cfg`` pins it; ``.ci/compat-matrix`` runs the tests at both ends):
Twisted 24.3.0 to 26.10, Autobahn 23.6.2 to 26.11 (each end run with Python 3.11).

Twisted ``FileDescriptor`` (``tcp.Connection``):
    ``dataBuffer``, ``offset``, ``_tempDataLen``  bytes queued for the peer: the fan-out drops
        laggards by it, and nothing may bypass the queue while it holds anything.
    ``_aborting``, ``_writeDisconnecting``, ``disconnecting``, ``connected``, ``TLS``
        whether a write may go straight to the socket.
    ``socket``  the socket a direct ``send`` goes to.
    ``doWrite()``  hands the queue to the socket now, so a large body is queued alone
        (no 1 MB join per HLS segment).
    ``SEND_LIMIT``, ``bufferSize``  bytes offered to ``send`` / taken from ``recv`` per
        wake-up (the fast path raises one, the RTMP ingest the other).
Twisted ``HTTPChannel``:
    ``requests``, ``_handlingRequest``, ``line_mode``, ``_buffer``, ``_busyReceiving``,
    ``paused``, ``persistent``, ``_receivedHeaderSize``  whether the channel is between
        requests, so a fast answer cannot overtake one twisted.web is still writing;
        ``requests`` is also emptied after a websocket upgrade (4 KiB a socket);
        whether it is partway through a request's head (slow heads are timed out).
Autobahn ``WebSocketProtocol``:
    ``state``, ``STATE_OPEN``  the fan-out writes pre-built frames only to open sockets
        (RFC 6455: no data frame after a Close frame).
    ``sendCloseFrame(code, reasonUtf8)``  the only way to send 1001/1003/1007
        (``sendClose`` accepts 1000 and 3000-4999 only).
    ``CONFIG_ATTRS``  the option names, set once on a protocol class instead of copied
        into every connection (1.7 KiB a socket).
    ``http_headers``, ``http_request_data``, ``http_response_data``  the parsed handshake,
        dropped once open (1.4 KiB a socket).
"""

from __future__ import annotations

import inspect
import socket
from typing import TYPE_CHECKING, Any

from twisted.copyright import version as twisted_version
from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

if TYPE_CHECKING:
    from twisted.web.http import HTTPChannel

# Autobahn, twisted.web and twisted's test transports are imported where they are used, so
# that a process using only the transport accessors (the ingest benchmark's server) does
# not load them: Autobahn alone is ~20 MiB of resident memory.


class IncompatibleInternalsError(RuntimeError):
    """An internal this module relies on is missing or has changed."""


def versions() -> str:
    import autobahn

    return f"Twisted {twisted_version}, Autobahn {autobahn.__version__}"


# -- Twisted transports ------------------------------------------------------------------
def pending_bytes(transport: Any) -> int:
    """Bytes a TCP transport still holds for the peer (an attribute read, not a syscall);
    0 for a transport that is not a ``FileDescriptor`` (TLS wrapper, test double)."""
    if isinstance(transport, FileDescriptor):
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    return 0


def direct_socket(transport: Any) -> Any:
    """The socket under a plain TCP transport, or None (only there may a write bypass
    the transport's queue)."""
    return transport.socket if isinstance(transport, tcp.Connection) else None


def may_send_directly(transport: Any) -> bool:
    """Whether bytes may go to ``direct_socket(transport)`` now: plain TCP, open for
    writing, nothing queued ahead of them. Only for a transport that has a direct socket."""
    return not (
        transport.TLS
        or not transport.connected
        or transport.disconnecting
        or transport._aborting
        or transport._writeDisconnecting
        or len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    )


def flush_queue(transport: Any) -> Any:
    """Hand what an open ``FileDescriptor`` has queued to its socket now (what the reactor
    does when the socket is writable); the result of ``doWrite``. Others are left alone."""
    if (
        isinstance(transport, FileDescriptor)
        and transport.connected
        and not transport.disconnecting
        and not transport.disconnected
    ):
        return transport.doWrite()
    return None


def set_send_limit(transport: Any, limit: int) -> None:
    """Offer ``send`` up to ``limit`` bytes at a time (Twisted's default: 128 KiB)."""
    if isinstance(transport, FileDescriptor):
        transport.SEND_LIMIT = limit


def set_read_size(transport: Any, size: int) -> None:
    """Take up to ``size`` bytes per ``recv`` (Twisted's default: 64 KiB)."""
    if isinstance(transport, FileDescriptor):
        transport.bufferSize = size


# -- twisted.web -------------------------------------------------------------------------
def channel_idle(channel: Any) -> bool:
    """Whether a connected ``HTTPChannel`` is between requests with nothing half-read, so
    an answer written now cannot overtake or split one twisted.web is handling."""
    return not (
        channel.requests
        or channel._handlingRequest
        or not channel.line_mode
        or channel._buffer
        or channel._busyReceiving
        or channel.paused
        or not channel.persistent
        or channel._receivedHeaderSize
        or channel.transport.disconnecting
    )


def reading_head(channel: Any) -> bool:
    """Whether an ``HTTPChannel`` has part of a request's head (its request line and
    headers) and is waiting for the rest: no request handled, no body being read."""
    return bool(
        channel.line_mode
        and not channel._handlingRequest
        and (channel._buffer or channel._receivedHeaderSize)
    )


def forget_requests(channel: HTTPChannel) -> None:
    """Drop an ``HTTPChannel``'s list of requests (after a websocket took its transport)."""
    channel.requests.clear()


# -- Autobahn ----------------------------------------------------------------------------
def ws_open(protocol: Any) -> bool:
    """Whether an Autobahn websocket takes data frames (open; not closing or closed)."""
    return bool(protocol.state == protocol.STATE_OPEN)


def ws_close_with(protocol: Any, code: int, reason: bytes) -> None:
    """Send a Close frame with any valid code (1001, 1003, 1007 included)."""
    protocol.sendCloseFrame(code=code, reasonUtf8=reason)


def ws_option_names(protocol_class: Any) -> tuple[str, ...]:
    """The names of the options a factory copies onto each new connection."""
    return tuple(protocol_class.CONFIG_ATTRS)


def ws_forget_handshake(protocol: Any) -> None:
    """Drop the parsed opening handshake of an open websocket."""
    protocol.http_headers = protocol.http_request_data = protocol.http_response_data = None


# -- the self-test -----------------------------------------------------------------------
_HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _expect(ok: object, internal: str, what: str) -> None:
    if not ok:
        raise IncompatibleInternalsError(
            f"{internal}: {what}. owncast relies on it (owncast/runtime/compat.py) and "
            f"supports the range pinned in setup.cfg; installed: {versions()}"
        )


def _attribute(obj: object, name: str, kind: type | tuple[type, ...], owner: str) -> None:
    internal = f"{owner}.{name}"
    _expect(hasattr(obj, name), internal, "missing")
    value = getattr(obj, name)
    _expect(isinstance(value, kind), internal, f"is {type(value).__name__}, not {kind}")


class _NoReactor:
    """What a ``FileDescriptor`` asks of its reactor while the self-test writes to it."""

    def addWriter(self, _: object) -> None:
        pass

    def removeWriter(self, _: object) -> None:
        pass


def _check_tcp() -> None:
    owner = "twisted.internet.tcp.Connection"
    ours, theirs = socket.socketpair()
    try:
        reactor: Any = _NoReactor()
        conn = tcp.Connection(ours, Protocol(), reactor=reactor)
        for name, kind in (
            ("dataBuffer", bytes),
            ("offset", int),
            ("_tempDataLen", int),
            ("_aborting", bool),
            ("_writeDisconnecting", bool),
            ("TLS", bool),
            ("SEND_LIMIT", int),
            ("bufferSize", int),
        ):
            _attribute(conn, name, kind, owner)
        _expect(conn.socket is ours, f"{owner}.socket", "is not the connection's socket")
        _expect(direct_socket(conn) is ours, f"{owner}.socket", "not found")
        _expect(callable(getattr(conn, "doWrite", None)), f"{owner}.doWrite", "missing")
        conn.connected = 1
        _expect(may_send_directly(conn), owner, "an idle connection refuses direct sends")
        conn.write(b"queued")
        _expect(
            pending_bytes(conn) == 6,
            f"{owner}.dataBuffer/offset/_tempDataLen",
            f"6 bytes written, {pending_bytes(conn)} seen as queued",
        )
        _expect(not may_send_directly(conn), owner, "direct sends allowed past queued bytes")
        flush_queue(conn)
        _expect(pending_bytes(conn) == 0, f"{owner}.doWrite", "left bytes queued")
        _expect(theirs.recv(16) == b"queued", f"{owner}.doWrite", "did not send")
        conn._aborting = True
        _expect(not may_send_directly(conn), f"{owner}._aborting", "ignored")
    finally:
        ours.close()
        theirs.close()


def _check_web() -> None:
    from twisted.internet.testing import StringTransport
    from twisted.web.http import HTTPChannel

    owner = "twisted.web.http.HTTPChannel"
    channel = HTTPChannel()
    channel.timeOut = None  # no timer
    channel.makeConnection(StringTransport())
    for name, kind in (
        ("requests", list),
        ("_handlingRequest", bool),
        ("line_mode", (bool, int)),
        ("_buffer", bytes),
        ("_busyReceiving", bool),
        ("paused", (bool, int)),
        ("persistent", (bool, int)),
        ("_receivedHeaderSize", int),
    ):
        _attribute(channel, name, kind, owner)
    _expect(channel_idle(channel), owner, "a new channel is not idle")
    _expect(not reading_head(channel), owner, "a new channel is reading a head")
    channel.dataReceived(b"GET / HT")
    _expect(reading_head(channel), owner, "half a request line is not seen")
    channel.dataReceived(b"TP/1.1\r\n")
    _expect(not channel_idle(channel), owner, "a half-read request looks idle")
    _expect(reading_head(channel), owner, "a request line without headers is not seen")
    forget_requests(channel)


def _check_autobahn() -> None:
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet.testing import StringTransport

    owner = "autobahn WebSocketServerProtocol"
    _attribute(WebSocketServerProtocol, "CONFIG_ATTRS", (tuple, list), owner)
    names = ws_option_names(WebSocketServerProtocol)
    _expect(names and all(isinstance(n, str) for n in names), f"{owner}.CONFIG_ATTRS", "empty")
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
    missing = [n for n in names if not hasattr(factory, n)]
    _expect(not missing, f"{owner}.CONFIG_ATTRS", f"names no factory option {missing}")
    parameters = inspect.signature(WebSocketServerProtocol.sendCloseFrame).parameters
    _expect(
        {"code", "reasonUtf8"} <= set(parameters), f"{owner}.sendCloseFrame", "signature changed"
    )
    address = IPv4Address("TCP", "127.0.0.1", 1)
    protocol: Any = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    protocol.dataReceived(_HANDSHAKE)
    _expect(transport.value().startswith(b"HTTP/1.1 101 "), owner, "in-memory handshake failed")
    _attribute(protocol, "state", int, owner)
    _expect(ws_open(protocol), f"{owner}.state", "not STATE_OPEN after the handshake")
    for name in ("http_headers", "http_request_data", "http_response_data"):
        _expect(name in vars(protocol), f"{owner}.{name}", "not set by the handshake")
    ws_forget_handshake(protocol)
    ws_close_with(protocol, 1001, b"self-test")
    _expect(transport.value().endswith(b"\x88\x0b\x03\xe9self-test"), owner, "no Close frame")
    _expect(not ws_open(protocol), f"{owner}.state", "still STATE_OPEN after a Close frame")
    protocol.connectionLost(Failure(ConnectionDone()))


def self_test() -> None:
    """Check every internal above on real objects in memory (a socket pair, no reactor
    turn, no timer); raise ``IncompatibleInternalsError`` naming the first one that is off."""
    _check_tcp()
    _check_web()
    _check_autobahn()
