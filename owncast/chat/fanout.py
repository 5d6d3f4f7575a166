"""Fan-out built for thousands of sockets: a frame is encoded once, and the same bytes
are written straight to every transport.

A client whose socket stops draining is dropped once 256 frames or 256 KiB pile up in
its send buffer, without slowing anyone else: the buffer size is read from the
transport, which costs an attribute lookup, not a syscall.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_BACKLOG_FRAMES = 256
MAX_BACKLOG_BYTES = 256 * 1024


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final websocket text frame (server to client) around ``payload``."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 0x10000:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


def pending_bytes(transport: Any) -> int:
    """Bytes a Twisted TCP transport still holds for the peer (0 if it cannot say)."""
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except AttributeError:
        return 0


class Peer:
    """What fan-out needs of one socket: its transport and how far behind it is."""

    __slots__ = ("transport", "backlog", "drop")

    def __init__(self, transport: Any, drop: Any):
        self.transport = transport
        self.backlog = 0  # frames written since its buffer was last empty
        self.drop = drop


def fan_out(frame: bytes, peers: Iterable[Peer]) -> list[Peer]:
    """Write ``frame`` to every peer; return the peers that fell too far behind."""
    laggards = []
    for peer in peers:
        transport = peer.transport
        waiting = pending_bytes(transport)
        if waiting:
            peer.backlog += 1
            if peer.backlog > MAX_BACKLOG_FRAMES or waiting > MAX_BACKLOG_BYTES:
                laggards.append(peer)
                continue
        else:
            peer.backlog = 0
        transport.write(frame)
    return laggards
