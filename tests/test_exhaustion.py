"""HTTP connections cannot be hoarded: slow request heads are timed out (408), idle
keep-alive connections close, and one address holds a bounded share of connections,
while the server keeps answering everyone else."""

from __future__ import annotations

from pathlib import Path

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from owncast.core.throttle import TrustedProxies
from owncast.http.fastpath import HEAD_TIMEOUT
from owncast.http.site import IDLE_TIMEOUT, MAX_PER_ADDRESS, WEB_ROOT, OwncastSite, build_site
from tests.daemon import http, sleep, start_daemon, wait_until
from tests.helpers import make_context

HEAD = b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n"


class _Memory:
    """A site on a fake clock and channels over in-memory transports."""

    def __init__(self, testcase: unittest.TestCase, websocket=None):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        ctx = make_context(Path(testcase.mktemp()), clock=self.clock)
        built = build_site(ctx, WEB_ROOT, websocket)
        self.site = OwncastSite(built.resource, built.hls_fast, reactor=self.clock)

    def connect(self, host: str = "10.0.0.2", port: int = 5000) -> tuple:
        address = IPv4Address("TCP", host, port)
        channel = self.site.buildProtocol(address)
        if channel is None:
            return None, None
        transport = StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        return channel, transport


class HeadTimeoutTests(unittest.TestCase):
    def test_a_trickled_head_is_answered_408_and_closed(self):
        memory = _Memory(self)
        channel, transport = memory.connect()
        channel.dataReceived(HEAD)
        for second in range(int(HEAD_TIMEOUT) - 1):
            memory.clock.advance(1)
            channel.dataReceived(b"X-Slow-%d: y\r\n" % second)  # each byte resets idling
        memory.clock.advance(0.5)
        self.assertFalse(transport.disconnecting)
        memory.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 "), transport.value())

    def test_a_head_split_over_reads_in_time_is_served_and_kept(self):
        memory = _Memory(self)
        channel, transport = memory.connect()
        channel.dataReceived(HEAD)
        memory.clock.advance(HEAD_TIMEOUT - 1)
        channel.dataReceived(b"\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"), transport.value())
        memory.clock.advance(HEAD_TIMEOUT * 2)
        self.assertFalse(transport.disconnecting)
        # The next request has its own deadline.
        transport.clear()
        channel.dataReceived(HEAD)
        memory.clock.advance(HEAD_TIMEOUT + 0.1)
        self.assertTrue(transport.disconnecting)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 "))

    def test_whole_requests_leave_no_timer(self):
        memory = _Memory(self)
        channel, transport = memory.connect()
        for _ in range(3):
            channel.dataReceived(HEAD + b"\r\n")
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 3)
        self.assertIsNone(channel._head_call)
        memory.clock.advance(HEAD_TIMEOUT + 1)
        self.assertFalse(transport.disconnecting)

    def test_a_closed_connection_leaves_no_timer(self):
        memory = _Memory(self)
        channel, _ = memory.connect()
        channel.dataReceived(HEAD)
        self.assertTrue(channel._head_call.active())
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            [c for c in memory.clock.getDelayedCalls() if c.func == channel._head_timed_out], []
        )

    def test_an_idle_keep_alive_connection_is_closed(self):
        memory = _Memory(self)
        channel, transport = memory.connect()
        channel.dataReceived(HEAD + b"\r\n")
        memory.clock.advance(IDLE_TIMEOUT - 0.5)
        self.assertFalse(transport.disconnecting)
        memory.clock.advance(1)
        self.assertTrue(transport.disconnecting)


class PerAddressTests(unittest.TestCase):
    def test_an_address_holds_at_most_its_share(self):
        memory = _Memory(self)
        site = memory.site
        channels = [memory.connect("10.0.0.3", 1000 + i)[0] for i in range(MAX_PER_ADDRESS)]
        self.assertNotIn(None, channels)
        self.assertEqual(memory.connect("10.0.0.3", 9999), (None, None))
        self.assertEqual(site.refused, 1)
        self.assertIsNotNone(memory.connect("10.0.0.4")[0])  # another address is let in
        channels[0].connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(memory.connect("10.0.0.3", 9999)[0])  # a share came free
        self.assertEqual(site.connections, {"10.0.0.3": MAX_PER_ADDRESS, "10.0.0.4": 1})

    def test_an_ipv6_64_is_one_address(self):
        memory = _Memory(self)
        site = memory.site
        for i in range(MAX_PER_ADDRESS):
            address = IPv6Address("TCP", f"2001:db8:0:1::{i + 1:x}", 1000)
            self.assertIsNotNone(site.buildProtocol(address))
        self.assertIsNone(site.buildProtocol(IPv6Address("TCP", "2001:db8:0:1:ffff::1", 1)))
        self.assertIsNotNone(site.buildProtocol(IPv6Address("TCP", "2001:db8:0:2::1", 1)))

    def test_a_reverse_proxy_on_this_host_is_not_counted(self):
        memory = _Memory(self)
        for i in range(MAX_PER_ADDRESS * 2):
            self.assertIsNotNone(memory.connect("127.0.0.1", 1000 + i)[0])
        self.assertEqual(memory.site.connections, {})

    def test_a_trusted_reverse_proxy_elsewhere_is_not_counted(self):
        """``--trustedproxy 10.0.0.0/24``: the proxy carries every viewer's connection;
        the clients it names are told apart per request instead."""
        memory = _Memory(self)
        memory.site.proxies = TrustedProxies(["10.0.0.0/24"])
        for i in range(MAX_PER_ADDRESS * 2):
            self.assertIsNotNone(memory.connect("10.0.0.9", 1000 + i)[0])
        self.assertEqual(memory.site.connections, {})
        for i in range(MAX_PER_ADDRESS):
            self.assertIsNotNone(memory.connect("10.0.1.9", 1000 + i)[0])
        self.assertEqual(memory.connect("10.0.1.9", 9999), (None, None))

    def test_a_websocket_that_takes_a_connection_over_counts_no_more(self):
        factory = WebSocketServerFactory()
        factory.protocol = WebSocketServerProtocol
        memory = _Memory(self, WebSocketResource(factory))
        channel, transport = memory.connect("10.0.0.5")
        transport.protocol = channel  # as a TCP transport has it
        self.assertEqual(memory.site.connections, {"10.0.0.5": 1})
        channel.dataReceived(
            b"GET /entry HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.assertIn(b"HTTP/1.1 101 ", transport.value())
        self.assertEqual(memory.site.connections, {})
        transport.protocol.connectionLost(Failure(ConnectionDone()))  # the websocket's
        self.assertEqual(memory.site.connections, {})


class _Held(Protocol):
    """One client connection that is kept open until the server closes it."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.closed.callback(None)


async def hold(port: int, source: str) -> _Held:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(source, 0))
    return await connectProtocol(endpoint, _Held())


class DaemonTests(unittest.TestCase):
    """The real daemon under a slowloris and a connection hog."""

    timeout = 90

    async def poll_status(self, base: str, stop: list, failures: list) -> None:
        """GET /api/status every 0.2 s, each within 1 s, until ``stop`` is set."""
        while not stop:
            try:
                response = await http("GET", base + "/api/status", timeout=1.0)
                if response.code != 200:
                    failures.append(response.code)
            except Exception as e:  # noqa: BLE001 - any failure to answer in time counts
                failures.append(repr(e))
            await sleep(0.2)

    async def test_slow_heads_are_closed_while_status_keeps_answering(self):
        daemon = await start_daemon(self, Path(self.mktemp()).resolve())
        stop: list = []
        failures: list = []
        poller = Deferred.fromCoroutine(self.poll_status(daemon.base, stop, failures))
        clients: list[_Held] = []
        try:
            for group in range(10):
                source = f"127.0.0.{20 + group}"
                for _ in range(40):
                    client = await hold(daemon.web_port, source)
                    client.transport.write(HEAD)
                    clients.append(client)

            def trickle() -> None:
                for client in clients:
                    if not client.closed.called:
                        client.transport.write(b"X-Slow: y\r\n")

            trickler = task.LoopingCall(trickle)
            trickler.start(1.0)
            try:
                await wait_until(
                    lambda: all(c.closed.called for c in clients),
                    HEAD_TIMEOUT + 15,
                    "the server to close every slow connection",
                )
            finally:
                trickler.stop()
        finally:
            stop.append(True)
            await poller
            for client in clients:
                client.transport.abortConnection()
        self.assertEqual(failures, [])
        answered = [c for c in clients if c.received.startswith(b"HTTP/1.1 408 ")]
        self.assertEqual(len(answered), len(clients))

    async def test_one_address_holds_its_share_and_others_get_in(self):
        daemon = await start_daemon(self, Path(self.mktemp()).resolve())
        clients = [await hold(daemon.web_port, "127.0.0.40") for _ in range(MAX_PER_ADDRESS + 40)]
        self.addCleanup(lambda: [c.transport.abortConnection() for c in clients])
        await wait_until(
            lambda: sum(c.closed.called for c in clients) >= 40, 10, "the extra connections closed"
        )
        await sleep(0.5)
        self.assertEqual(sum(c.closed.called for c in clients), 40)
        response = await http("GET", daemon.base + "/api/status", timeout=1.0)
        self.assertEqual(response.code, 200)
        other = await hold(daemon.web_port, "127.0.0.41")
        other.transport.write(HEAD + b"Connection: close\r\n\r\n")
        await other.closed
        self.assertTrue(other.received.startswith(b"HTTP/1.1 200 OK"), other.received[:200])
