"""The chat server's sockets without a websocket client: admission and fan-out with fake
protocols and transports, direct sends on real loopback sockets under a real Twisted TCP
transport whose reactor is a ``MemoryReactor`` (no event loop runs; the tests call
``doWrite`` themselves, because the kernel's partial sends and resets are what they
check), and the HTTP upgrade behind a real ``Site``: what each open socket keeps."""

import gc
import json
import secrets
import socket
import struct
import weakref
from pathlib import Path
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from owncast.chat import fanout
from owncast.chat.fanout import Peer, fan_out, text_frame
from owncast.chat.protocol import MAX_FRAME, ChatFactory
from owncast.chat.server import (
    KEEPALIVE_INTERVAL,
    MAX_PER_IP,
    ChatServer,
)
from owncast.runtime.compat import pending_bytes
from tests.fakes import tcp_pair
from tests.helpers import make_context, result_of


class FakeProto:
    """What ``ChatServer`` needs of a protocol, with no websocket behind it: an open one,
    as Autobahn's ``state`` says."""

    STATE_OPEN = WebSocketProtocol.STATE_OPEN  # as on Autobahn's protocols
    state = WebSocketProtocol.STATE_OPEN

    def __init__(
        self,
        ip: str = "10.0.0.1",
        user_agent: str = "ua",
        transport: Any = None,
        ignored: bool = False,
    ):
        self.ip = ip
        self.user_agent = user_agent
        self.client_id = secrets.token_hex(8)
        self.ignored = ignored
        self.transport = transport if transport is not None else StringTransport()
        self.dropped = False
        self.close_codes: list = []

    def dropConnection(self, abort: bool = False) -> None:
        self.dropped = True

    def sendClose(self, code: int | None = None, reason: str | None = None) -> None:
        self.close_codes.append(code)


class TcpLikeTransport(FileDescriptor):
    """A Twisted ``FileDescriptor`` with no socket (so nothing is sent directly) whose send
    buffer holds ``pending`` bytes, recording what is written to it."""

    def __init__(self, pending: int = 0):
        super().__init__(reactor=MemoryReactor())
        self._tempDataLen = pending
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


def peer_on(transport: Any) -> Peer:
    """The fan-out's view of an open websocket on ``transport``."""
    return Peer(FakeProto(transport=transport))


def decode_frame(frame: bytes) -> tuple[int, bytes]:
    """(opcode byte, payload) of one unmasked server frame; the whole frame must be used."""
    first, second = frame[0], frame[1]
    assert not second & 0x80, "server frames are not masked"
    length, offset = second & 0x7F, 2
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, offset = int.from_bytes(frame[2:10], "big"), 10
    assert len(frame) == offset + length, (len(frame), offset, length)
    return first, frame[offset:]


def make_server(testcase: unittest.TestCase, server_url: str = "") -> tuple[ChatServer, Any]:
    ctx = make_context(Path(testcase.mktemp()), clock=Clock())
    return ChatServer(ctx.chat, ctx.viewers, ctx.reactor, lambda: server_url), ctx


class AdmissionTests(unittest.TestCase):
    """``ChatServer.admit``: the optional Origin list and the per-address cap."""

    def setUp(self) -> None:
        ctx = make_context(Path(self.mktemp()), clock=Clock())
        ctx.chat.settings = ctx.settings  # as the service tree wires it
        self.settings = ctx.settings
        self.url = ""
        self.server = ChatServer(ctx.chat, ctx.viewers, ctx.reactor, lambda: self.url)

    def allow(self, *origins: str) -> None:
        self.settings.update({"chatAllowedOrigins": list(origins)})

    def test_any_origin_without_a_list(self) -> None:
        """As Owncast 0.0.7: with no origins listed, every page may open the chat."""
        for origin in ("http://evil.example", "null", "https://embed.example:8443"):
            self.assertIsNone(self.server.admit("10.0.0.1", origin, "live.example:8080"))

    def test_no_origin_is_not_a_browser(self) -> None:
        """No Origin header (a bot, a native client) is admitted."""
        self.assertIsNone(self.server.admit("10.0.0.1", None, "live.example:8080"))
        self.assertIsNone(self.server.admit("10.0.0.1", "", "live.example:8080"))

    def test_same_host_origin_admitted(self) -> None:
        """A page served by this host (same host and port) may connect, list or not."""
        self.allow("https://embed.example")
        admit = self.server.admit
        self.assertIsNone(admit("10.0.0.1", "http://live.example:8080", "live.example:8080"))
        self.assertIsNone(admit("10.0.0.1", "http://LIVE.example", "live.example"))
        self.assertIsNone(admit("10.0.0.1", "http://live.example:80", "live.example"))

    def test_server_url_origin_admitted(self) -> None:
        """The configured serverUrl (e.g. behind a TLS proxy) is an allowed origin."""
        self.allow("https://embed.example")
        origin, host = "https://live.example.com", "127.0.0.1:8080"
        self.assertIsNotNone(self.server.admit("10.0.0.1", origin, host))
        self.url = "https://live.example.com"
        self.assertIsNone(self.server.admit("10.0.0.1", origin, host))
        self.assertIsNone(self.server.admit("10.0.0.1", "https://live.example.com:443", host))

    def test_other_origins_refused_once_listed(self) -> None:
        """With a list: another site, another port, another scheme's port, or garbage is
        refused; a listed origin is admitted."""
        self.allow("https://embed.example")
        self.url = "https://live.example.com"
        host = "live.example:8080"
        self.assertIsNone(self.server.admit("10.0.0.1", "https://embed.example", host))
        self.assertIsNone(self.server.admit("10.0.0.1", "https://EMBED.example:443", host))
        for origin in (
            "http://evil.example",
            "http://live.example:9090",
            "null",
            "http://live.example.com",
            "https://live.example.com.evil.example",
            "http://live.example:notaport",
        ):
            self.assertIsNotNone(self.server.admit("10.0.0.1", origin, host), origin)

    def test_per_ip_cap_enforced_and_released(self) -> None:
        """At most 20 sockets per address; closing one makes room again."""
        protos = [FakeProto("10.0.0.7", f"ua{n}") for n in range(MAX_PER_IP)]
        for proto in protos[:-1]:
            self.server.opened(proto)
        self.assertIsNone(self.server.admit("10.0.0.7", None, "h"))
        self.server.opened(protos[-1])
        self.assertIsNotNone(self.server.admit("10.0.0.7", None, "h"))
        self.assertIsNone(self.server.admit("10.0.0.8", None, "h"), "other addresses are fine")
        self.server.closed(protos[0])
        self.assertIsNone(self.server.admit("10.0.0.7", None, "h"))
        self.server.closed(protos[0])  # a second close changes nothing
        self.server.opened(FakeProto("10.0.0.7"))
        self.assertIsNotNone(self.server.admit("10.0.0.7", None, "h"))
        for proto in protos[1:]:
            self.server.closed(proto)
        self.assertIsNone(self.server.admit("10.0.0.7", None, "h"))


class FanOutTests(unittest.TestCase):
    """``fan_out`` and ``text_frame``, and dropping clients that stop reading."""

    def test_same_bytes_object_to_every_transport(self) -> None:
        """One encoded frame: the identical bytes object is written to every transport."""
        transports = [TcpLikeTransport() for _ in range(5)]
        frame = text_frame(b'{"type": "PING"}')
        laggards = fan_out(frame, [peer_on(t) for t in transports])
        self.assertEqual(laggards, [])
        for t in transports:
            self.assertEqual(len(t.writes), 1)
            self.assertIs(t.writes[0], frame)

    def test_only_open_sockets_get_frames(self) -> None:
        """Whether a socket is open is Autobahn's own ``state``: closing (a Close frame
        went out) and closed sockets are skipped."""
        protos = [FakeProto(transport=TcpLikeTransport()) for _ in range(3)]
        protos[0].state = WebSocketProtocol.STATE_CLOSING
        protos[1].state = WebSocketProtocol.STATE_CLOSED
        self.assertEqual(fan_out(text_frame(b"{}"), [Peer(p) for p in protos]), [])
        self.assertEqual([len(p.transport.writes) for p in protos], [0, 0, 1])

    def test_server_broadcast_encodes_once(self) -> None:
        """ChatServer.broadcast hands the same frame object to each socket."""
        server, ctx = make_server(self)
        protos = [FakeProto(transport=TcpLikeTransport()) for _ in range(3)]
        for proto in protos:
            server.opened(proto)
        result_of(Deferred.fromCoroutine(ctx.chat.send_system("hello")))
        written = [p.transport.writes for p in protos]
        self.assertTrue(all(len(w) == 1 for w in written))
        self.assertTrue(all(w[0] is written[0][0] for w in written))
        opcode, payload = decode_frame(written[0][0])
        self.assertEqual(opcode, 0x81)
        self.assertEqual(json.loads(payload)["body"], "<p>hello</p>")

    def test_text_frame_length_boundaries(self) -> None:
        """Lengths 0..125 use one length byte, up to 65535 two more, beyond that eight."""
        for n, header in ((0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70000, 10)):
            payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
            frame = text_frame(payload)
            self.assertEqual(len(frame) - n, header, n)
            opcode, decoded = decode_frame(frame)
            self.assertEqual((opcode, decoded), (0x81, payload), n)

    def test_pending_bytes(self) -> None:
        """Pending bytes come from the transport's buffers; other transports say 0."""
        t = TcpLikeTransport(pending=7)
        t.dataBuffer, t.offset = b"x" * 10, 4
        self.assertEqual(pending_bytes(t), 13)
        self.assertEqual(pending_bytes(StringTransport()), 0)

    def test_slow_reader_by_bytes_dropped(self) -> None:
        """A socket holding more than 256 KiB unsent is dropped; the others keep receiving."""
        server, ctx = make_server(self)
        slow = FakeProto(transport=TcpLikeTransport(pending=fanout.MAX_BACKLOG_BYTES + 1))
        fast = [FakeProto(transport=TcpLikeTransport()) for _ in range(2)]
        for proto in (fast[0], slow, fast[1]):
            server.opened(proto)
        result_of(Deferred.fromCoroutine(ctx.chat.send_system("one")))
        self.assertTrue(slow.dropped)
        self.assertEqual(slow.transport.writes, [])
        for proto in fast:
            self.assertFalse(proto.dropped)
            self.assertEqual(len(proto.transport.writes), 1)
        server.closed(slow)
        result_of(Deferred.fromCoroutine(ctx.chat.send_system("two")))
        for proto in fast:
            self.assertEqual(len(proto.transport.writes), 2)

    def test_slow_reader_by_frames_dropped(self) -> None:
        """A socket whose buffer stays non-empty for more than 256 frames is dropped."""
        server, _ = make_server(self)
        slow = FakeProto(transport=TcpLikeTransport(pending=10))
        fast = FakeProto(transport=TcpLikeTransport())
        server.opened(slow)
        server.opened(fast)
        for n in range(fanout.MAX_BACKLOG_FRAMES):
            server.broadcast({"type": "SYSTEM", "body": str(n)})
        self.assertFalse(slow.dropped)
        self.assertEqual(len(slow.transport.writes), fanout.MAX_BACKLOG_FRAMES)
        server.broadcast({"type": "SYSTEM", "body": "last straw"})
        self.assertTrue(slow.dropped)
        self.assertEqual(len(slow.transport.writes), fanout.MAX_BACKLOG_FRAMES)
        self.assertFalse(fast.dropped)
        self.assertEqual(len(fast.transport.writes), fanout.MAX_BACKLOG_FRAMES + 1)

    def test_draining_reader_kept(self) -> None:
        """A socket whose buffer empties now and then is never dropped."""
        server, _ = make_server(self)
        reader = FakeProto(transport=TcpLikeTransport(pending=10))
        server.opened(reader)
        for n in range(3 * fanout.MAX_BACKLOG_FRAMES):
            reader.transport._tempDataLen = 0 if n % 200 == 199 else 10
            server.broadcast({"type": "SYSTEM", "body": str(n)})
        self.assertFalse(reader.dropped)
        self.assertEqual(len(reader.transport.writes), 3 * fanout.MAX_BACKLOG_FRAMES)

    def test_keepalive_on_fake_protocols(self) -> None:
        """The keepalive sweep writes a PING frame to every socket every 30 s."""
        server, _ = make_server(self)
        protos = [FakeProto(transport=TcpLikeTransport()) for _ in range(3)]
        for proto in protos:
            server.opened(proto)
        server.startService()
        server.clock.advance(KEEPALIVE_INTERVAL)
        for proto in protos:
            [frame] = proto.transport.writes
            self.assertEqual(json.loads(decode_frame(frame)[1]), {"type": "PING"})
        for proto in protos:
            server.closed(proto)
        server.stopService()
        server.clock.advance(KEEPALIVE_INTERVAL)
        self.assertEqual([len(p.transport.writes) for p in protos], [1, 1, 1])


def available(sock: socket.socket) -> bytes:
    """Whatever the socket has received so far, without waiting."""
    chunks = []
    sock.setblocking(False)
    try:
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(5)
    return b"".join(chunks)


class DirectSendTests(unittest.TestCase):
    """``fan_out`` on real TCP transports: a frame goes straight into an idle socket,
    never ahead of bytes the transport holds, and a dead peer never raises."""

    def test_idle_socket_gets_the_frame_at_once(self) -> None:
        """With nothing buffered the frame is sent in the call itself: no reactor turn,
        nothing left in the transport, the socket not even watched for writing."""
        transport, client = tcp_pair(self)
        frame = text_frame(b'{"type": "PING"}')
        self.assertEqual(fan_out(frame, [peer_on(transport)]), [])
        self.assertEqual(client.recv(100), frame)
        self.assertEqual(pending_bytes(transport), 0)
        self.assertNotIn(transport, transport.reactor.writers)

    def test_frame_queues_behind_bytes_the_transport_holds(self) -> None:
        """A frame written while autobahn's own bytes wait in the transport goes after
        them, through the transport."""
        transport, client = tcp_pair(self)
        transport.write(b"autobahn's own frame")
        frame = text_frame(b"after it")
        fan_out(frame, [peer_on(transport)])
        self.assertEqual(available(client), b"")
        transport.doWrite()
        self.assertEqual(client.recv(100), b"autobahn's own frame" + frame)

    def test_partial_send_keeps_order(self) -> None:
        """When the kernel takes only part of a frame the rest is queued, and the frames
        after it queue behind it: the peer gets every byte once, in order."""
        transport, client = tcp_pair(self, small_buffers=True)
        peer = peer_on(transport)
        frames = [
            text_frame(bytes([65 + n % 26]) * (200_000 if n == 0 else 1000 + n)) for n in range(5)
        ]
        fan_out(frames[0], [peer])
        got = available(client)
        self.assertGreater(len(got), 0, "part of the frame went out at once")
        self.assertGreater(pending_bytes(transport), 0, "the rest waits in the transport")
        for frame in frames[1:]:
            self.assertEqual(fan_out(frame, [peer]), [])
        expected = b"".join(frames)
        for _ in range(10_000):
            if len(got) == len(expected):
                break
            self.assertIsNone(transport.doWrite())
            got += available(client)
        self.assertEqual(got, expected)
        self.assertEqual(pending_bytes(transport), 0)

    def test_reset_peer_does_not_raise(self) -> None:
        """A peer that reset the connection costs no exception: its frame is left to the
        transport, whose own write reports the lost connection; the next peer still gets
        its frame at once."""
        dead, dead_client = tcp_pair(self)
        alive, client = tcp_pair(self)
        dead_client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        dead_client.close()  # RST
        frame = text_frame(b"hello")
        peers = [peer_on(dead), peer_on(alive)]
        for _ in range(2):  # ECONNRESET first, then EPIPE
            self.assertEqual(fan_out(frame, peers), [])
            self.assertIsInstance(dead.doWrite(), Exception)
        self.assertEqual(client.recv(100), frame * 2)

    def test_closing_transport_is_left_to_twisted(self) -> None:
        """After ``loseConnection`` frames go through the transport, which sends what it
        holds and then closes."""
        transport, client = tcp_pair(self)
        transport.loseConnection()
        frame = text_frame(b"last words")
        fan_out(frame, [peer_on(transport)])
        self.assertEqual(available(client), b"")
        self.assertIsNotNone(transport.doWrite())  # CONNECTION_DONE: all sent, now close
        self.assertEqual(client.recv(100), frame)


def client_frame(payload: bytes) -> bytes:
    """A masked websocket text frame (client to server), payload under 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + mask + masked


def server_frames(data: bytes) -> list[bytes]:
    """The payloads of the unmasked frames in ``data`` (under 64 KiB each)."""
    payloads = []
    while data:
        n, start = data[1] & 0x7F, 2
        if n == 126:
            n, start = int.from_bytes(data[2:4], "big"), 4
        payloads.append(data[start : start + n])
        data = data[start + n :]
    return payloads


HANDSHAKE = (
    b"GET /entry HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nUser-Agent: test/1.0\r\n\r\n"
)


class UpgradeTests(unittest.TestCase):
    """The chat websocket behind a real ``twisted.web`` ``Site`` and autobahn's
    ``WebSocketResource``, over an in-memory transport: what each open socket keeps."""

    def setUp(self) -> None:
        self.clock = Clock()
        ctx = make_context(Path(self.mktemp()), clock=self.clock)
        self.server = ChatServer(ctx.chat, ctx.viewers, self.clock)
        factory = ChatFactory(self.server)
        factory.reactor = self.clock
        root = Resource()
        root.putChild(b"entry", WebSocketResource(factory))
        self.site = Site(root, reactor=self.clock)
        self.requests: list[weakref.ref] = []
        requests = self.requests

        class Recorded(Request):
            def __init__(self, *args: Any, **kwargs: Any):
                super().__init__(*args, **kwargs)
                requests.append(weakref.ref(self))

        self.site.requestFactory = Recorded

    def upgrade(self, handshake: bytes = HANDSHAKE) -> StringTransport:
        """A socket through the HTTP upgrade; its transport (``value()``: what it got)."""
        address = IPv4Address("TCP", "10.0.0.1", 40000)
        transport = StringTransport(peerAddress=address)
        transport.protocol = self.site.buildProtocol(address)
        transport.protocol.makeConnection(transport)
        transport.protocol.dataReceived(handshake)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101 "), transport.value())
        return transport

    def test_upgrade_request_released_and_socket_works(self) -> None:
        """Once autobahn has taken the transport over, neither the transport nor anything
        else keeps twisted.web's channel or the upgrade request; chat still flows."""
        transport = self.upgrade()
        gc.collect()
        self.assertEqual(len(self.requests), 1)
        self.assertIsNone(self.requests[0](), "the upgrade request is still referenced")
        self.assertIsNone(transport.producer)

        head = len(transport.value())
        message = {"type": "CHAT", "author": "alice", "body": "hello"}
        transport.protocol.dataReceived(client_frame(json.dumps(message).encode()))
        [chat] = [json.loads(p) for p in server_frames(transport.value()[head:])]
        self.assertEqual((chat["type"], chat["body"]), ("CHAT", "<p>hello</p>"))

    def test_open_socket_keeps_no_handshake_or_option_copies(self) -> None:
        """An open socket reads its options from its class, not from copies in its own
        dict, and drops its parsed handshake."""
        proto = self.upgrade().protocol
        self.assertEqual(proto.maxFramePayloadSize, MAX_FRAME)
        self.assertFalse(set(proto.CONFIG_ATTRS) & set(vars(proto)))
        self.assertIsNone(proto.http_headers)
        self.assertEqual(list(self.server.peers), [proto])

    def test_a_browser_offering_compression_gets_an_uncompressed_socket(self) -> None:
        """Browsers offer permessage-deflate; the socket opens without it (one frame is
        written to every socket as it is, and a deflate context per socket is costly)."""
        offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        transport = self.upgrade(HANDSHAKE[:-2] + offer + b"\r\n")
        head = transport.value().partition(b"\r\n\r\n")[0].lower()
        self.assertNotIn(b"sec-websocket-extensions", head)
        self.assertEqual(list(self.server.peers), [transport.protocol])

    def test_nothing_is_broadcast_to_a_socket_after_its_close_frame(self) -> None:
        """RFC 6455 5.5.1: after sending a Close frame, no more data frames."""
        transport = self.upgrade()
        proto = transport.protocol
        proto.closeHandshakeTimeout = 0  # no timer on the global reactor
        proto.sendClose(1000, "bye")
        head = len(transport.value())
        self.assertEqual(transport.value()[-7:-5], b"\x88\x05")  # the Close frame went out
        self.server.broadcast({"type": "SYSTEM", "id": "x", "body": "after close"})
        self.assertEqual(transport.value()[head:], b"")
        other = self.upgrade()
        start = len(other.value())
        self.server.broadcast({"type": "SYSTEM", "id": "y", "body": "still open"})
        [payload] = server_frames(other.value()[start:])
        self.assertEqual(json.loads(payload)["body"], "still open")

    def test_nothing_is_broadcast_after_the_peer_closes(self) -> None:
        """A Close frame from the client (answered by Autobahn) stops broadcasts to it
        at once, before ``onClose``."""
        transport = self.upgrade()
        # Autobahn unregisters a producer as it drops the connection: a TCP transport
        # takes that with none registered, a StringTransport wants one.
        transport.registerProducer(transport.protocol, True)
        transport.protocol.dataReceived(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # Close 1000
        head = len(transport.value())
        self.server.broadcast({"type": "SYSTEM", "id": "x", "body": "after close"})
        self.assertEqual(transport.value()[head:], b"")
