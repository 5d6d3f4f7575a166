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
"""

from __future__ import annotations

from typing import Any

from owncast.runtime.compat import direct_socket, may_send_directly, pending_bytes

__all__ = ["direct_socket", "pending_bytes", "send_now"]


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
