"""The RTMP server protocol: handshake, then the publish command flow, media out as tags.

The protocol is thin: ``ChunkReader`` parses, AMF decodes, and a ``Broadcasts`` object
decides who may publish and where media goes. Each media message is classified once,
here, into a ``MediaTag`` (keyframe, sequence header, onMetaData) that the broadcast
hands to its media sink; nothing downstream parses the payload again. Anything malformed
raises, and only this connection is dropped. Flow handled (as OBS and ffmpeg send it):
``connect`` -> ``releaseStream`` / ``FCPublish`` -> ``createStream`` -> ``publish`` -> media ->
``FCUnpublish`` / ``deleteStream`` (or a closed socket).
Until it publishes with the right key a connection has ``AUTH_DEADLINE`` seconds and
holds one of its address's few slots (``RtmpFactory``), so idle ones cannot keep it out.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from owncast.core.broadcast import (
    Admission,
    AlreadyLiveError,
    Broadcast,
    Broadcasts,
    TooManyAttemptsError,
)
from owncast.core.throttle import address_key
from owncast.media import media_tag, metadata_tag
from owncast.rtmp import amf, chunks
from owncast.rtmp.chunks import ChunkReader, Message, encode_chunks
from owncast.rtmp.details import details_from_metadata, empty_details
from owncast.rtmp.handshake import ServerHandshake
from owncast.runtime import compat

_log = Logger()
_U32 = struct.Struct(">I")

OUT_CHUNK_SIZE = 4096
WINDOW_SIZE = 2_500_000
#: A publisher silent this long (seconds) is dropped so a reconnect can take over.
IDLE_TIMEOUT = 10.0
#: Seconds from accept to publishing with the right key (a few round trips for OBS or
#: ffmpeg); checked with the idle timer, so a multiple of ``IDLE_TIMEOUT / 4``.
AUTH_DEADLINE = 5.0
#: How much media (seconds) to let arrive before waking for it, and the largest mark.
WAKEUP_SECONDS = 0.15
MAX_LOW_WATER = 256 * 1024
#: Twisted's default read size, kept while the mark is small.
READ_SIZE = 64 * 1024
APP_NAME = "live"


class RtmpError(Exception):
    """The peer did something we refuse; the connection is closed."""


class RtmpSession(Protocol):
    #: a TCP transport (ITCPTransport, ISystemHandle), set by ``makeConnection``
    transport: Any

    def __init__(self, broadcasts: Broadcasts, clock: Any):
        self._broadcasts = broadcasts
        self._clock = clock
        self._handshake: ServerHandshake | None = ServerHandshake()
        self._reader = ChunkReader()
        self._received = 0
        self._acked = 0
        self._peer_window = WINDOW_SIZE
        self._app: str | None = None
        self._stream_id = 0
        self._publish_stream = 0
        self.broadcast: Broadcast | None = None
        self._details = empty_details()
        self._from_metadata: set[str] = set()
        self._media_bytes = {chunks.AUDIO: 0, chunks.VIDEO: 0}
        self._measured_since = 0.0
        self._idle_check: Any = None
        self._last_rx = clock.seconds()
        self._received_at_check = 0
        self._low_water = 1
        self._closing = False
        #: for ``Admission``: the address's share key and how far the connection got
        self.address = ""
        self.progress = 0
        self._opened = self._last_rx
        self._published = False

    # -- connection lifecycle ----------------------------------------------------------
    def connectionMade(self) -> None:
        self._schedule_idle_check()

    def connectionLost(self, reason: Any = None) -> None:
        self._closing = True
        if self._idle_check is not None and self._idle_check.active():
            self._idle_check.cancel()
        self._end_broadcast()

    def _drop(self, why: str) -> None:
        if not self._closing:
            self._closing = True
            _log.info("Dropping RTMP connection from {peer}: {why}", peer=self._peer(), why=why)
            self.transport.loseConnection()

    def give_up(self) -> None:
        """Close at once, unlogged (one that has not published: too slow, or making room)."""
        self._closing = True
        self.transport.abortConnection()

    def _peer(self) -> str:
        peer = self.transport.getPeer()
        return getattr(peer, "host", str(peer))

    def _peer_address(self) -> str:
        """``host:port`` (``[v6]:port``), as 0.0.7's ``remoteAddr`` gave it."""
        peer = self.transport.getPeer()
        host, port = getattr(peer, "host", None), getattr(peer, "port", None)
        if host is None or port is None:
            return str(peer)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _schedule_idle_check(self) -> None:
        self._idle_check = self._clock.callLater(IDLE_TIMEOUT / 4, self._check_idle)

    def _check_idle(self) -> None:
        if not self._published and self._clock.seconds() - self._opened >= AUTH_DEADLINE:
            self.give_up()
            return
        if self._clock.seconds() - self._last_rx >= IDLE_TIMEOUT:
            self._drop(f"nothing received for {IDLE_TIMEOUT:.0f} s")
            self.transport.abortConnection()
            return
        if self.broadcast is not None:
            self._tune_wakeups((self._received - self._received_at_check) / (IDLE_TIMEOUT / 4))
        self._received_at_check = self._received
        if self._clock.seconds() - self._measured_since >= IDLE_TIMEOUT:
            self._measure()
        self._schedule_idle_check()

    def _tune_wakeups(self, rate: float) -> None:
        """Wake for about every ``WAKEUP_SECONDS`` of media rather than every packet.

        Most of the ingest's CPU is the cost of a wake-up, not of parsing a byte, so the
        socket's receive low-water mark follows the measured rate (at most
        ``MAX_LOW_WATER``). A
        publisher that goes quiet still reaches us: the mark is a fraction of what it
        sent in the last interval, and a closed socket always wakes us.
        """
        mark = int(max(1, min(MAX_LOW_WATER, rate * WAKEUP_SECONDS)))
        if abs(mark - self._low_water) * 4 < self._low_water:
            return
        try:
            self.transport.getHandle().setsockopt(
                socket.SOL_SOCKET, getattr(socket, "SO_RCVLOWAT", 18), mark
            )
        except (AttributeError, OSError):
            return
        self._low_water = mark
        # One read must take what woke us: a transport reads at most ``bufferSize``
        # (64 KiB) per wake-up, and what it leaves is below the mark again, so a mark
        # above it would still wake us every 64 KiB.
        compat.set_read_size(self.transport, max(READ_SIZE, 2 * mark))

    # -- bytes in ----------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self._received += len(data)
        self._last_rx = self._clock.seconds()
        try:
            if self._handshake is not None:
                self.progress = 1
                reply, data = self._handshake.feed(data)
                if reply:
                    self.transport.write(reply)
                if not self._handshake.done:
                    return
                self._handshake = None
                self.progress = 2
            for message in self._reader.feed(data):
                self._dispatch(message)
                if self._closing:
                    return
            if self._received - self._acked >= self._peer_window:
                self._acked = self._received
                self._send(chunks.ACKNOWLEDGEMENT, _U32.pack(self._received & 0xFFFFFFFF))
        except (chunks.ChunkError, amf.AmfError, RtmpError, ValueError) as e:
            self._drop(str(e) or e.__class__.__name__)
        except Exception:
            _log.failure("RTMP session from {peer} failed", peer=self._peer())
            self._drop("internal error")

    def _dispatch(self, message: Message) -> None:
        kind = message.type
        if kind == chunks.VIDEO or kind == chunks.AUDIO:
            self._media(kind, message.timestamp, message.body, message.stream_id)
        elif kind == chunks.AGGREGATE:
            self._aggregate(message)
        elif kind == chunks.DATA_AMF0:
            self._data(message.body, message.timestamp)
        elif kind == chunks.DATA_AMF3:
            self._data(
                message.body[1:] if message.body[:1] == b"\x00" else message.body, message.timestamp
            )
        elif kind == chunks.COMMAND_AMF0:
            self._command(amf.decode_amf0(message.body), message.stream_id)
        elif kind == chunks.COMMAND_AMF3:
            body = message.body[1:] if message.body[:1] == b"\x00" else message.body
            self._command(amf.decode_amf0(body), message.stream_id)
        elif kind == chunks.WINDOW_ACK_SIZE and len(message.body) >= 4:
            self._peer_window = max(1, _U32.unpack_from(message.body)[0])
        # Set chunk size and abort were applied by the reader; acks, user control and
        # bandwidth messages need no answer from a server that only receives.

    # -- media -------------------------------------------------------------------------
    def _media(self, kind: int, timestamp: int, body: bytes, stream_id: int) -> None:
        broadcast = self.broadcast
        if broadcast is None or not body:
            return
        self._media_bytes[kind] += len(body)
        broadcast.media(media_tag(kind, timestamp, body))

    def _aggregate(self, message: Message) -> None:
        """Split an aggregate message into its FLV-style sub-messages, rebasing timestamps
        (each payload is sliced out once)."""
        body = message.body
        pos = 0
        offset = None
        while pos + 11 <= len(body):
            kind = body[pos]
            size = int.from_bytes(body[pos + 1 : pos + 4], "big")
            stamp = int.from_bytes(body[pos + 4 : pos + 7], "big") | (body[pos + 7] << 24)
            end = pos + 11 + size
            if end > len(body):
                raise RtmpError("truncated aggregate message")
            if offset is None:
                offset = message.timestamp - stamp
            payload = body[pos + 11 : end]
            stamp = (stamp + offset) & 0xFFFFFFFF
            if kind in (chunks.AUDIO, chunks.VIDEO):
                self._media(kind, stamp, payload, message.stream_id)
            elif kind == chunks.DATA_AMF0:
                self._data(payload, stamp)
            pos = end + 4  # skip the back pointer

    def _data(self, body: bytes, timestamp: int) -> None:
        values = amf.decode_amf0(body)
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
            self._from_metadata |= details_from_metadata(values[1], self._details)
            if self.broadcast is not None:
                payload = amf.encode_amf0("onMetaData", values[1])
                self.broadcast.media(metadata_tag(timestamp, payload, values[1]))

    def _measure(self) -> None:
        """Fill bitrates the metadata did not give, from what actually arrived."""
        now = self._clock.seconds()
        elapsed = now - self._measured_since
        if self.broadcast is not None and elapsed > 0:
            for kind, field in ((chunks.VIDEO, "videoBitrate"), (chunks.AUDIO, "audioBitrate")):
                measured = int(self._media_bytes[kind] * 8 / elapsed / 1000)
                if measured and field not in self._from_metadata:
                    self._details[field] = measured
        self._media_bytes = {chunks.AUDIO: 0, chunks.VIDEO: 0}
        self._measured_since = now

    # -- commands ----------------------------------------------------------------------
    def _command(self, values: list, stream_id: int) -> None:
        if not values or not isinstance(values[0], str):
            raise RtmpError("command without a name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], (int, float)) else 0
        args = values[2:]
        handler = getattr(self, "_cmd_" + name, None)
        if handler is not None:
            handler(txn, args, stream_id)

    def _cmd_connect(self, txn: float, args: list, stream_id: int) -> None:
        params = args[0] if args and isinstance(args[0], dict) else {}
        # Only strings and numbers from the client are used or echoed: an AMF3 object can
        # share itself by reference so that printing or encoding it never ends.
        app = params.get("app")
        app = app.split("?", 1)[0].strip("/") if isinstance(app, str) else ""
        if app != APP_NAME:
            self._send_command(
                "_error",
                txn,
                None,
                {
                    "level": "error",
                    "code": "NetConnection.Connect.Rejected",
                    "description": f"unknown application {app!r}; publish to /{APP_NAME}/<key>",
                },
            )
            self._drop(f"unknown application {app!r}")
            return
        self._app = app
        self.progress = 3
        self._send(chunks.WINDOW_ACK_SIZE, _U32.pack(WINDOW_SIZE))
        self._send(chunks.SET_PEER_BANDWIDTH, _U32.pack(WINDOW_SIZE) + b"\x02")
        self._send(chunks.SET_CHUNK_SIZE, _U32.pack(OUT_CHUNK_SIZE))
        self._out_chunk_size = OUT_CHUNK_SIZE
        encoding = params.get("objectEncoding")
        info = {
            "level": "status",
            "code": "NetConnection.Connect.Success",
            "description": "Connection succeeded.",
            "objectEncoding": encoding if isinstance(encoding, (int, float)) else 0,
        }
        props: dict = {"fmsVer": "FMS/3,5,7,7009", "capabilities": 31, "mode": 1}
        if isinstance(params.get("fourCcList"), list):
            # Enhanced RTMP: say which codecs we take (ffmpeg decodes them all).
            props["fourCcList"] = [c for c in params["fourCcList"] if isinstance(c, str)]
        self._send_command("_result", txn, props, info)

    def _cmd_releaseStream(self, txn: float, args: list, stream_id: int) -> None:
        self._send_command("_result", txn, None, amf.UNDEFINED)

    def _cmd_FCPublish(self, txn: float, args: list, stream_id: int) -> None:
        self._send_command(
            "onFCPublish", 0, None, {"code": "NetStream.Publish.Start", "description": "FCPublish"}
        )

    def _cmd_createStream(self, txn: float, args: list, stream_id: int) -> None:
        if self._app is None:
            raise RtmpError("createStream before connect")
        self._stream_id += 1
        if self._stream_id > 8:
            raise RtmpError("too many streams")
        self._send_command("_result", txn, None, self._stream_id)

    def _cmd_publish(self, txn: float, args: list, stream_id: int) -> None:
        if self._app is None:
            raise RtmpError("publish before connect")
        key = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        try:
            authorized = self._broadcasts.authorize(key, self._peer())
        except TooManyAttemptsError as e:
            self._status(stream_id, "error", "NetStream.Publish.Denied", f"{e}.")
            self._drop("too many failed attempts from this address")
            return
        if not authorized:
            self._status(stream_id, "error", "NetStream.Publish.BadName", "Invalid stream key.")
            self._drop("invalid stream key")
            return
        if not self._published:
            self._published = True
            self._authenticated()
        if self.broadcast is not None:
            raise RtmpError("publish twice on one connection")
        try:
            self._measured_since = self._clock.seconds()
            self.broadcast = self._broadcasts.begin(
                self._peer_address(), self._details, self.transport.loseConnection
            )
        except AlreadyLiveError:
            self._status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "Another broadcast is already live.",
            )
            self._drop("another broadcast is live")
            return
        self._publish_stream = stream_id
        # Tune wake-ups once a second of media has shown the rate, then every check.
        received, started = self._received, self._clock.seconds()

        def first_tuning() -> None:
            if self.broadcast is not None:
                elapsed = max(0.001, self._clock.seconds() - started)
                self._tune_wakeups((self._received - received) / elapsed)

        self._clock.callLater(1.0, first_tuning)
        # User control: Stream Begin on this stream.
        self._send(chunks.USER_CONTROL, b"\x00\x00" + _U32.pack(stream_id))
        self._status(stream_id, "status", "NetStream.Publish.Start", "Publishing live.")
        _log.info("Inbound stream connected from {peer}", peer=self._peer())

    def _authenticated(self) -> None:
        """The key was right: the connection no longer waits for admission."""

    def _cmd_FCUnpublish(self, txn: float, args: list, stream_id: int) -> None:
        self._end_broadcast()

    def _cmd_deleteStream(self, txn: float, args: list, stream_id: int) -> None:
        self._end_broadcast()

    _cmd_closeStream = _cmd_deleteStream

    def _end_broadcast(self) -> None:
        broadcast, self.broadcast = self.broadcast, None
        if broadcast is not None:
            broadcast.end()
            _log.info("Inbound stream disconnected")

    # -- bytes out ---------------------------------------------------------------------
    _out_chunk_size = chunks.DEFAULT_CHUNK_SIZE

    def _send(self, kind: int, body: bytes, stream_id: int = 0, csid: int = 0) -> None:
        message = Message(kind, stream_id, 0, body, csid)
        self.transport.write(encode_chunks(message, self._out_chunk_size))

    def _send_command(self, name: str, txn: float, *values: Any, stream_id: int = 0) -> None:
        self._send(chunks.COMMAND_AMF0, amf.encode_amf0(name, txn, *values), stream_id)

    def _status(self, stream_id: int, level: str, code: str, description: str) -> None:
        self._send_command(
            "onStatus",
            0,
            None,
            {"level": level, "code": code, "description": description},
            stream_id=stream_id,
        )


class RtmpFactory(Factory):
    """Builds a session per connection. Connections that have not published yet are held
    by ``admission`` (64 in all, 8 per address, each for ``AUTH_DEADLINE`` at most); a
    newcomer always gets in, in place of a less advanced one (``core.broadcast.Admission``).
    A publisher holds no slot, and only one can be live."""

    pending_slots = 64
    pending_per_address = 8

    def __init__(self, broadcasts: Broadcasts, clock: Any):
        self.broadcasts = broadcasts
        self.clock = clock
        self.connections = 0
        self.admission = Admission(self.pending_slots, self.pending_per_address)
        #: connections given up to make room, since the last time that was logged
        self.given_up = 0
        self._reported = -60.0

    def buildProtocol(self, addr: Any) -> RtmpSession | None:
        session = _AdmittedSession(self.broadcasts, self.clock)
        session.factory = self
        return session

    def admit(self, session: _AdmittedSession) -> None:
        for victim in self.admission.admit(session):
            victim.give_up()
            self.given_up += 1
        now = self.clock.seconds()
        if self.given_up and now - self._reported >= 60:
            _log.warn(
                "RTMP: {count} connection(s) that had not published made room for newer "
                "ones (the latest from {peer}): more are connecting than publish",
                count=self.given_up,
                peer=session.address,
            )
            self.given_up, self._reported = 0, now


class _AdmittedSession(RtmpSession):
    factory: RtmpFactory

    def connectionMade(self) -> None:
        self.factory.connections += 1
        self.address = address_key(self._peer())
        self.factory.admit(self)
        super().connectionMade()

    def _authenticated(self) -> None:
        self.factory.admission.settled(self)

    def give_up(self) -> None:
        self.factory.admission.settled(self)
        super().give_up()

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.connections -= 1
        self.factory.admission.settled(self)
        super().connectionLost(reason)
