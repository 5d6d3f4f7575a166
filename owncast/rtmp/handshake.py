"""The RTMP handshake, server side, as a pure object.

We answer with the simple handshake: S1 carries a zero version field, which tells
digest-capable clients (ffmpeg, OBS) to skip digest validation, and S2 echoes C1.
"""

from __future__ import annotations

import os
import struct

HANDSHAKE_SIZE = 1536
RTMP_VERSION = 3


class HandshakeError(ValueError):
    pass


class ServerHandshake:
    """Feed bytes until ``done``; ``feed`` returns bytes to send and leftover stream bytes."""

    def __init__(self, uptime_ms: int = 0):
        self._buffer = bytearray()
        self._state = "c0c1"
        self._uptime = uptime_ms & 0xFFFFFFFF
        self.done = False

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        self._buffer += data
        reply = b""
        if self._state == "c0c1" and len(self._buffer) >= 1 + HANDSHAKE_SIZE:
            version = self._buffer[0]
            if version not in (3, 6):  # 6 is RTMPE, which we answer as plain RTMP
                raise HandshakeError(f"unsupported RTMP version {version}")
            c1 = bytes(self._buffer[1 : 1 + HANDSHAKE_SIZE])
            del self._buffer[: 1 + HANDSHAKE_SIZE]
            s1 = struct.pack(">II", self._uptime, 0) + os.urandom(HANDSHAKE_SIZE - 8)
            reply = bytes([RTMP_VERSION]) + s1 + c1
            self._state = "c2"
        if self._state == "c2" and len(self._buffer) >= HANDSHAKE_SIZE:
            del self._buffer[:HANDSHAKE_SIZE]
            self._state = "done"
            self.done = True
            rest = bytes(self._buffer)
            self._buffer.clear()
            return reply, rest
        return reply, b""
