"""``owncast.runtime.compat``: every Twisted and Autobahn internal the daemon relies on,
exercised on real objects (a loopback TCP connection under a real ``tcp.Server`` on a
memory reactor, a real ``HTTPChannel``, a real Autobahn handshake in memory), the
start-up self-test, and that a missing internal fails loudly instead of guessing.

``.ci/compat-matrix`` runs this module against the oldest and newest Twisted and Autobahn
that ``setup.cfg`` allows."""

from __future__ import annotations

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket import protocol as ws_protocol
from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web import http

from owncast.runtime import compat
from tests.fakes import tcp_pair

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def open_websocket() -> tuple[WebSocketServerProtocol, StringTransport]:
    """A real Autobahn server protocol through its opening handshake, in memory."""
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
    address = IPv4Address("TCP", "127.0.0.1", 40000)
    protocol = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    transport.registerProducer(protocol, True)  # as twisted.web's channel would have
    protocol.dataReceived(HANDSHAKE)
    assert transport.value().startswith(b"HTTP/1.1 101 "), transport.value()
    return protocol, transport


class SelfTestTests(unittest.TestCase):
    """``self_test`` passes on the installed versions and names what is missing."""

    def test_installed_versions_pass(self) -> None:
        """Every internal is there, with the expected type and behaviour."""
        compat.self_test()

    def test_a_missing_internal_is_named_with_the_versions(self) -> None:
        """A renamed internal (removed here, as a release that renamed it would) stops the
        self-test with its name and the versions."""
        cases = [
            (FileDescriptor, "dataBuffer", "dataBuffer"),
            (FileDescriptor, "SEND_LIMIT", "SEND_LIMIT"),
            (FileDescriptor, "bufferSize", "bufferSize"),
            (tcp.Connection, "_aborting", "_aborting"),
            (http.HTTPChannel, "_receivedHeaderSize", "_receivedHeaderSize"),
            (ws_protocol.WebSocketServerProtocol, "CONFIG_ATTRS", "CONFIG_ATTRS"),
        ]
        for cls, name, named in cases:
            owners = [(k, vars(k)[name]) for k in cls.__mro__ if name in vars(k)]
            for owner, _ in owners:
                delattr(owner, name)
            try:
                with self.assertRaises(compat.IncompatibleInternalsError) as caught:
                    compat.self_test()
            finally:
                for owner, value in owners:
                    setattr(owner, name, value)
            message = str(caught.exception)
            self.assertIn(named, message)
            self.assertIn(compat.versions(), message)
        compat.self_test()  # all restored

    def test_a_changed_type_is_refused(self) -> None:
        """An internal that is still there but means something else is refused too."""
        owner = next(k for k in tcp.Connection.__mro__ if "_aborting" in vars(k))
        self.patch(owner, "_aborting", None)
        with self.assertRaises(compat.IncompatibleInternalsError) as caught:
            compat.self_test()
        self.assertIn("tcp.Connection._aborting", str(caught.exception))

    def test_a_queue_that_is_no_longer_counted_is_caught(self) -> None:
        """Bytes written but not seen as queued (say the queue moved to a new field)
        fail the self-test: a direct send would overtake them."""
        self.patch(
            FileDescriptor,
            "write",
            lambda self, data: self.__dict__.setdefault("_elsewhere", []).append(data),
        )
        with self.assertRaises(compat.IncompatibleInternalsError) as caught:
            compat.self_test()
        self.assertIn("dataBuffer/offset/_tempDataLen", str(caught.exception))


class TransportTests(unittest.TestCase):
    """The ``FileDescriptor`` accessors on a real TCP transport."""

    def test_pending_bytes_counts_both_buffers(self) -> None:
        """Written bytes are pending until the socket takes them, whichever of the
        transport's two buffers holds them; other transports hold none."""
        transport, client = tcp_pair(self)
        self.assertEqual(compat.pending_bytes(transport), 0)
        transport.write(b"x" * 10)
        self.assertEqual(compat.pending_bytes(transport), 10)
        transport.SEND_LIMIT = 4  # doWrite moves the list into dataBuffer, sends 4
        transport.doWrite()
        transport.write(b"y" * 3)
        self.assertEqual(compat.pending_bytes(transport), 9)
        while compat.pending_bytes(transport):
            transport.doWrite()
        self.assertEqual(client.recv(100), b"x" * 10 + b"y" * 3)
        self.assertEqual(compat.pending_bytes(StringTransport()), 0)

    def test_pending_bytes_fails_loudly(self) -> None:
        """A TCP transport whose queue cannot be read raises rather than reading as 0."""
        transport, _ = tcp_pair(self)
        del transport._tempDataLen
        self.assertRaises(AttributeError, compat.pending_bytes, transport)
        self.assertRaises(AttributeError, compat.may_send_directly, transport)

    def test_direct_socket(self) -> None:
        transport, _ = tcp_pair(self)
        self.assertIs(compat.direct_socket(transport), transport.socket)
        self.assertIsNone(compat.direct_socket(StringTransport()))

    def test_may_send_directly(self) -> None:
        """Only an open, plain, empty TCP transport takes bytes past its queue."""
        transport, _ = tcp_pair(self)
        self.assertTrue(compat.may_send_directly(transport))
        transport.write(b"queued")
        self.assertFalse(compat.may_send_directly(transport))
        compat.flush_queue(transport)
        self.assertTrue(compat.may_send_directly(transport))
        transport.loseConnection()
        self.assertFalse(compat.may_send_directly(transport))

        aborted, _ = tcp_pair(self)
        aborted.abortConnection()
        self.assertFalse(compat.may_send_directly(aborted))

        half_closed, _ = tcp_pair(self)
        half_closed.loseWriteConnection()
        self.assertFalse(compat.may_send_directly(half_closed))

    def test_flush_queue_sends_now(self) -> None:
        """What the transport queued goes to the socket in the call; nothing on other
        transports or a closed one."""
        transport, client = tcp_pair(self)
        transport.write(b"head")
        self.assertIsNone(compat.flush_queue(transport))
        self.assertEqual(client.recv(100), b"head")
        self.assertEqual(compat.pending_bytes(transport), 0)
        other = StringTransport()
        other.write(b"kept")
        self.assertIsNone(compat.flush_queue(other))
        self.assertEqual(other.value(), b"kept")

    def test_send_limit_and_read_size(self) -> None:
        """Both sizes land on a TCP transport and are what it then uses; other transports
        are left alone."""
        transport, client = tcp_pair(self)
        compat.set_send_limit(transport, 3)
        compat.set_read_size(transport, 2)
        self.assertEqual((transport.SEND_LIMIT, transport.bufferSize), (3, 2))
        transport.write(b"abcdef")
        transport.doWrite()
        self.assertEqual(client.recv(100), b"abc")
        received: list[bytes] = []
        transport.protocol.dataReceived = received.append
        client.sendall(b"xyz")
        for _ in range(10_000):
            transport.doRead()
            if received:
                break
        self.assertEqual(received[0], b"xy")
        other = StringTransport()
        compat.set_send_limit(other, 3)
        compat.set_read_size(other, 2)
        self.assertFalse(hasattr(other, "SEND_LIMIT") or hasattr(other, "bufferSize"))


class _Pending(http.Request):
    """A request whose resource never finishes it."""

    def process(self) -> None:
        pass


class WebTests(unittest.TestCase):
    """The ``HTTPChannel`` accessors."""

    def channel(self) -> http.HTTPChannel:
        channel = http.HTTPChannel()
        channel.timeOut = None
        channel.requestFactory = _Pending
        channel.makeConnection(StringTransport())
        return channel

    def test_channel_idle_between_requests_only(self) -> None:
        """Idle when new; not while a request is half read or unanswered, nor after the
        client asked to close; idle again once the answer is finished."""
        channel = self.channel()
        self.assertTrue(compat.channel_idle(channel))
        channel.dataReceived(b"GET / HTTP/1.1\r\n")
        self.assertFalse(compat.channel_idle(channel), "half-read request")
        channel.dataReceived(b"Host: x\r\n\r\n")
        self.assertFalse(compat.channel_idle(channel), "request not answered")
        [request] = channel.requests
        request.finish()
        self.assertTrue(compat.channel_idle(channel))
        channel.dataReceived(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        channel.requests[0].finish()
        self.assertFalse(compat.channel_idle(channel), "not persistent")

    def test_forget_requests(self) -> None:
        """The channel lets go of its unanswered requests."""
        channel = self.channel()
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(len(channel.requests), 1)
        compat.forget_requests(channel)
        self.assertEqual(channel.requests, [])


class AutobahnTests(unittest.TestCase):
    """The Autobahn accessors on a real protocol through a real handshake."""

    def test_open_then_closing_from_autobahn_state(self) -> None:
        """Open after the handshake; not open once a Close frame (with a code that
        ``sendClose`` refuses) has gone out, nor once the connection is dropped."""
        protocol, transport = open_websocket()
        self.assertTrue(compat.ws_open(protocol))
        compat.ws_close_with(protocol, 1001, b"going away")
        self.assertTrue(transport.value().endswith(b"\x88\x0c\x03\xe9going away"))
        self.assertFalse(compat.ws_open(protocol))
        self.assertEqual(protocol.state, protocol.STATE_CLOSING)

    def test_a_peer_close_is_seen(self) -> None:
        """A Close frame from the peer (answered by Autobahn) also ends 'open'."""
        protocol, transport = open_websocket()
        mask = b"\x00\x00\x00\x00"
        protocol.dataReceived(b"\x88\x82" + mask + b"\x03\xe8")  # masked Close 1000
        self.assertFalse(compat.ws_open(protocol))

    def test_forget_handshake(self) -> None:
        protocol, _ = open_websocket()
        self.assertIsNotNone(protocol.http_headers)
        compat.ws_forget_handshake(protocol)
        self.assertIsNone(protocol.http_headers)
        self.assertIsNone(protocol.http_request_data)
        self.assertIsNone(protocol.http_response_data)
        self.assertTrue(compat.ws_open(protocol))

    def test_option_names_are_the_factory_options(self) -> None:
        """Every name is an option the factory sets, including the ones we set."""
        names = compat.ws_option_names(WebSocketServerProtocol)
        factory = WebSocketServerFactory()
        factory.setProtocolOptions(maxFramePayloadSize=123)
        self.assertIn("maxFramePayloadSize", names)
        for name in names:
            self.assertTrue(hasattr(factory, name), name)
        self.assertEqual(factory.maxFramePayloadSize, 123)
