"""Writing to a Twisted TCP transport without its buffer when it holds nothing.

Twisted's ``transport.write`` only buffers: the bytes go out on a later reactor turn,
after an ``epoll_ctl`` to watch the socket, an epoll event dispatched to ``doWrite`` and
another ``epoll_ctl`` to stop watching it, several times the cost of the ``send``
itself. ``send_now`` sends on the socket at once when a plain TCP transport holds
nothing unsent, and hands ``transport.write`` only what the kernel does not take (a
remainder, or everything on an error), which keeps the bytes in order and lets Twisted
notice a dead peer. Whatever else is written to the transport goes through its buffer,
so while any of it is queued, new bytes queue behind it. What this reads of the
transport's internals is in ``owncast.runtime.compat``.

``read_now`` is the other way round: it reads a peer's next request as soon as it is
known to be likely there (the LL-HLS fast path, after answering thousands of held
requests), without the reactor's dispatch of a poll event (its logging context: about 3 µs of
Python a read).
"""

from __future__ import annotations

from typing import Any

from twisted.python import log

from owncast.runtime.compat import direct_socket, may_send_directly, pending_bytes

__all__ = ["direct_socket", "pending_bytes", "read_now", "send_now"]


def send_now(transport: Any, sock: Any, data: bytes) -> bool:
    """Write ``data`` to ``transport``, straight to ``sock`` (its ``direct_socket``) when
    the transport holds nothing and is plain TCP, open for writing; whether all of it
    went that way (nothing is left queued)."""
    if sock is None or not may_send_directly(transport):
        transport.write(data)
        return False
    try:
        sent = sock.send(data)
    except OSError:
        # EAGAIN/EINTR: the buffer is full, try later; ECONNRESET/EPIPE: the transport's
        # own write fails the same way and closes the connection properly.
        transport.write(data)
        return False
    if sent < len(data):
        transport.write(data[sent:])
        return False
    return True


def read_now(transport: Any) -> None:
    """Read what the peer of an open plain TCP ``transport`` has sent, now, as the reactor
    does when its socket is readable (``doRead``: the protocol's ``dataReceived``), without
    waiting for the next poll and the reactor's per-event dispatch. A socket with nothing
    to read costs one ``recv`` that finds nothing. An end or an error of the connection is
    left where the reactor finds it on its next poll (the socket stays readable); an
    exception from the protocol is logged and aborts the connection, as the reactor does.
    Only for a transport the reactor reads from: not paused, not closing."""
    try:
        transport.doRead()
    except Exception:
        log.err(None, "reading ahead of the reactor")
        transport.abortConnection()
