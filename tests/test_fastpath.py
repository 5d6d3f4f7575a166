"""The HLS fast path: which requests take it, and that its answers are twisted.web's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from owncast.core.throttle import TrustedProxies
from owncast.http.fastpath import MAX_HEAD, plain_get
from owncast.http.site import WEB_ROOT, OwncastSite, build_site
from tests.helpers import make_context

VARIANT = b"#EXTM3U\n#EXTINF:1.0,\nstream-1700000000.ts\n"
SMALL = bytes(range(256)) * 40
LARGE = os.urandom(600 * 1024)  # sent as headers, then the body on its own


def get(path: bytes, *headers: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    lines = [b"GET %s %s" % (path, version), b"Host: localhost", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class PlainGetTests(unittest.TestCase):
    def test_a_plain_get_is_taken_with_its_agent(self):
        data = get(b"/hls/0/stream.m3u8", b"User-Agent: hls.js", b"Connection: keep-alive")
        self.assertEqual(
            plain_get(data + b"GET /next"), (b"0/stream.m3u8", b"hls.js", len(data), None)
        )

    def test_anything_else_is_left_to_twisted_web(self):
        refused = [
            get(b"/hls/x", b"Range: bytes=0-1"),
            get(b"/hls/x", b"If-Modified-Since: Tue, 01 Jan 2030 00:00:00 GMT"),
            get(b"/hls/x", b"if-none-match: *"),
            get(b"/hls/x", b"Content-Length: 0"),
            get(b"/hls/x", b"Transfer-Encoding: chunked"),
            get(b"/hls/x", b"Connection: Close"),
            get(b"/hls/x", b"Connection: Upgrade", b"Upgrade: websocket"),
            get(b"/hls/x", b"User-Agent: a", b"User-Agent: b"),
            get(b"/hls/x", b"X-A: 1", b" folded"),
            get(b"/hls/x", b"Bad Name: 1"),
            get(b"/hls/x", b"no colon"),
            get(b"/hls/x", version=b"HTTP/1.0"),
            get(b"/api/status"),
            get(b"/hls/x")[:-2],  # not whole yet
            b"HEAD /hls/x HTTP/1.1\r\n\r\n",
            b"GET  /hls/x HTTP/1.1\r\n\r\n",
            get(b"/hls/x", b"X-Big: " + b"a" * MAX_HEAD),
        ]
        for data in refused:
            self.assertIsNone(plain_get(data), data)


class _Client(Protocol):
    """Keeps one connection; ``responses(n)`` parses n answers off it."""

    def __init__(self):
        self.buffer = b""
        self.waiter: tuple[int, Deferred] | None = None

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        self._check()

    def _take(self) -> tuple[int, dict, bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = self.buffer[:end].split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get(b"content-length", b"0"))
        if len(self.buffer) < end + 4 + size:
            return None
        body = self.buffer[end + 4 : end + 4 + size]
        self.buffer = self.buffer[end + 4 + size :]
        return int(lines[0].split(b" ")[1]), headers, body

    def _check(self) -> None:
        if self.waiter is None:
            return
        n, d = self.waiter
        self.got = getattr(self, "got", [])
        while len(self.got) < n:
            item = self._take()
            if item is None:
                return
            self.got.append(item)
        self.waiter = None
        got, self.got = self.got, []
        d.callback(got)

    def responses(self, n: int) -> Deferred:
        d: Deferred = Deferred()
        self.waiter = (n, d)
        self._check()
        return d


class LoopbackCase(unittest.TestCase):
    """A site listening on loopback (``self.port``) and raw HTTP/1.1 clients for it."""

    port: Any

    async def connect(self) -> _Client:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        client = await connectProtocol(endpoint, _Client())
        self.addCleanup(client.transport.loseConnection)
        return client

    async def exchange(self, client: _Client, *requests: bytes) -> list:
        client.transport.write(b"".join(requests))
        return await client.responses(len(requests))

    def assertSameAnswer(self, slow: tuple, fast: tuple) -> None:
        """The same status, headers (but the date) and body."""
        slow_headers, fast_headers = dict(slow[1]), dict(fast[1])
        for headers in (slow_headers, fast_headers):
            self.assertIn(b"date", headers)
            del headers[b"date"]
        self.assertEqual((slow[0], slow_headers, slow[2]), (fast[0], fast_headers, fast[2]))


class FastPathTests(LoopbackCase):
    def setUp(self):
        self.ctx = make_context(Path(self.mktemp()))
        hls = self.ctx.datadir / "hls"
        (hls / "0").mkdir(parents=True)
        (hls / "0" / "stream.m3u8").write_bytes(VARIANT)
        (hls / "0" / "stream-1700000000.ts").write_bytes(SMALL)
        (hls / "0" / "stream-1700000001.ts").write_bytes(LARGE)
        self.ctx.viewers.stream_started()
        self.site = build_site(self.ctx, WEB_ROOT)
        resource = self.site.hls_fast.hls
        self.slow: list[bytes] = []
        render = resource.render_GET

        def counted(request):
            self.slow.append(b"/".join(request.postpath))
            return render(request)

        resource.render_GET = counted
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def test_files_in_memory_are_answered_below_twisted_web_alike(self):
        client = await self.connect()
        for name, body in [
            (b"0/stream.m3u8", VARIANT),
            (b"0/stream-1700000000.ts", SMALL),
            (b"0/stream-1700000001.ts", LARGE),
        ]:
            request = get(b"/hls/" + name, b"User-Agent: test-player")
            [slow] = await self.exchange(client, request)  # fills memory
            [fast] = await self.exchange(client, request)
            self.assertEqual(self.slow, [name])
            self.slow.clear()
            self.assertEqual(fast[0], 200)
            self.assertEqual(fast[2], body)
            self.assertSameAnswer(slow, fast)
        self.assertEqual(self.ctx.viewers.count(), 1)

    async def test_viewers_behind_a_trusted_proxy_are_told_apart(self):
        """Fast and slow playlist answers count the client a trusted proxy names (a
        repeated header is one list); from anyone else the header is ignored."""
        client = await self.connect()

        async def watch(forwarded: bytes) -> None:
            request = get(b"/hls/0/stream.m3u8", b"User-Agent: player\r\n" + forwarded)
            [answer] = await self.exchange(client, request)
            self.assertEqual(answer[0], 200)

        await watch(b"X-Forwarded-For: 198.51.100.1")  # twisted.web's answer fills memory
        await watch(b"X-Forwarded-For: 198.51.100.2")
        await watch(b"X-Forwarded-For: 10.9.9.9\r\nX-Forwarded-For: 198.51.100.3")
        self.assertEqual(self.ctx.viewers.count(), 1)  # no trusted proxy: all from 127.0.0.1
        self.site.hls_fast.proxies = TrustedProxies(["127.0.0.1"])
        self.ctx.throttle.proxies = self.site.hls_fast.proxies
        await watch(b"X-Forwarded-For: 198.51.100.1")
        await watch(b"X-Forwarded-For: 198.51.100.2")
        await watch(b"X-Forwarded-For: 10.9.9.9\r\nX-Forwarded-For: 198.51.100.3")
        await watch(b"Forwarded: for=198.51.100.4")
        self.assertEqual(self.slow, [b"0/stream.m3u8"])
        keys = set(self.ctx.viewers._seen)
        self.assertEqual(
            {k.split(" ")[0] for k in keys},
            {"127.0.0.1", "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"},
        )

    async def test_pipelined_requests_are_answered_in_order(self):
        client = await self.connect()
        playlist = get(b"/hls/0/stream.m3u8")
        segment = get(b"/hls/0/stream-1700000000.ts")
        await self.exchange(client, playlist, segment)
        self.slow.clear()
        answers = await self.exchange(
            client, playlist, segment, get(b"/hls/0/nothing.ts"), playlist, segment
        )
        self.assertEqual([a[0] for a in answers], [200, 200, 404, 200, 200])
        self.assertEqual([a[2] for a in answers[3:]], [VARIANT, SMALL])
        self.assertEqual(self.slow[0], b"0/nothing.ts")  # the first two were fast

    async def test_a_rewritten_playlist_is_served_new_at_once(self):
        client = await self.connect()
        request = get(b"/hls/0/stream.m3u8")
        await self.exchange(client, request)
        path = self.ctx.datadir / "hls" / "0" / "stream.m3u8"
        newer = VARIANT + b"#EXTINF:1.0,\nstream-1700000001.ts\n"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(newer)
        os.replace(tmp, path)
        [answer] = await self.exchange(client, request)
        self.assertEqual(answer[2], newer)
        path.unlink()
        [answer] = await self.exchange(client, request)
        self.assertEqual(answer[0], 404)

    async def test_requests_that_are_not_plain_take_the_normal_path(self):
        client = await self.connect()
        name = b"/hls/0/stream-1700000000.ts"
        await self.exchange(client, get(name))
        self.slow.clear()
        [partial] = await self.exchange(client, get(name, b"Range: bytes=10-19"))
        self.assertEqual((partial[0], partial[2]), (206, SMALL[10:20]))
        [page] = await self.exchange(client, get(b"/js/page.js"))
        self.assertEqual(page[0], 200)
        [again] = await self.exchange(client, get(name))
        self.assertEqual(again[2], SMALL)
        self.assertEqual(self.slow, [b"0/stream-1700000000.ts"])  # the range only

    async def test_a_request_split_over_reads_is_answered(self):
        client = await self.connect()
        request = get(b"/hls/0/stream.m3u8")
        await self.exchange(client, request)
        client.transport.write(request[:20])
        await task.deferLater(reactor, 0.05, lambda: None)
        client.transport.write(request[20:])
        [answer] = await client.responses(1)
        self.assertEqual(answer[2], VARIANT)


class IdleTimeoutTests(unittest.TestCase):
    """Fast answers keep a connection alive as twisted.web's would: it is closed after
    the site's idle timeout counted from its last request (to within a second)."""

    def test_idle_timeout_counts_from_the_last_fast_request(self):
        clock = task.Clock()
        clock.advance(1_700_000_000)
        ctx = make_context(Path(self.mktemp()), clock=clock)
        (ctx.datadir / "hls" / "0").mkdir(parents=True)
        (ctx.datadir / "hls" / "0" / "stream.m3u8").write_bytes(VARIANT)
        built = build_site(ctx, WEB_ROOT)
        site = OwncastSite(built.resource, built.hls_fast, reactor=clock)
        channel = site.buildProtocol(IPv4Address("TCP", "10.0.0.2", 5000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.2", 5000))
        channel.makeConnection(transport)
        request = get(b"/hls/0/stream.m3u8")
        channel.dataReceived(request)  # slow: fills memory
        for _ in range(30):
            clock.advance(1)
            channel.dataReceived(request)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 31)
        self.assertEqual(built.hls_fast.hls.playlists.__len__(), 1)
        clock.advance(site.timeOut - 1.5)
        self.assertFalse(transport.disconnecting)
        clock.advance(1.5)
        self.assertTrue(transport.disconnecting)
