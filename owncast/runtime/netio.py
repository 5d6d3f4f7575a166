"""Writing to a Twisted TCP transport without its buffer when it holds nothing.

Twisted's ``transport.write`` only buffers: the bytes go out on a later reactor turn,
after an ``epoll_ctl`` to watch the socket, an epoll event dispatched to ``doWrite`` and
another ``epoll_ctl`` to stop watching it, several times the cost of the ``send``
itself. ``send_now`` sends on the socket at once when a plain TCP transport holds
nothing unsent, and hands ``transport.write`` only what the kernel does not take (a
remainder, or everything on an error), which keeps the bytes in order and lets Twisted
notice a dead peer. Whatever else is written to the transport goes through its buffer,
so while any of it is queued, new bytes queue behind it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def pending_bytes(transport: Any) -> int:
    """Bytes a Twisted TCP transport still holds for the peer (0 if it cannot say): an
    attribute lookup, not a syscall."""
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except AttributeError:
        return 0


def direct_socket(transport: Any) -> Any:
    """The socket under a Twisted TCP transport, or None: only there may a write bypass
    the transport's buffer (and only while it is not TLS)."""
    return transport.socket if isinstance(transport, tcp.Connection) else None


def send_now(transport: Any, sock: Any, data: bytes) -> None:
    """Write ``data`` to ``transport``, straight to ``sock`` (its ``direct_socket``) when
    the transport holds nothing and is plain TCP, open for writing."""
    if (
        sock is None
        or transport.TLS
        or not transport.connected
        or transport.disconnecting
        or transport._aborting
        or transport._writeDisconnecting
        or pending_bytes(transport)
    ):
        transport.write(data)
        return
    try:
        sent = sock.send(data)
    except OSError:
        # EAGAIN/EINTR: the buffer is full, try later; ECONNRESET/EPIPE: the transport's
        # own write fails the same way and closes the connection properly.
        transport.write(data)
        return
    if sent < len(data):
        transport.write(data[sent:])
