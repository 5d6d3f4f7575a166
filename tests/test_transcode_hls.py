"""``/hls/`` over a real loopback listener: types, cache rules, CORS, the playlist hook,
and that nothing outside the fixed names (no traversal) is ever served."""

from __future__ import annotations

from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from owncast.transcode.hls import HlsResource

MASTER = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n0/stream.m3u8\n"
VARIANT = b"#EXTM3U\n#EXTINF:1.0,\nstream-1700000000.ts\n"
SEGMENT = bytes(range(256)) * 40


def in_thread(fn, *args):
    return deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)


class _Raw(Protocol):
    """Sends one request exactly as written (no client-side path normalisation)."""

    def __init__(self, request: bytes):
        self.request = request
        self.received = b""
        self.done: Deferred = Deferred()

    def connectionMade(self):
        self.transport.write(self.request)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.done.callback(self.received)


class HlsResourceTests(unittest.TestCase):
    def setUp(self):
        root_dir = Path(self.mktemp())
        self.hls = root_dir / "hls"
        (self.hls / "0").mkdir(parents=True)
        (root_dir / "secret.txt").write_bytes(b"SECRET")
        (self.hls / "secret.txt").write_bytes(b"SECRET")
        (self.hls / "stream.m3u8").write_bytes(MASTER)
        (self.hls / "0" / "stream.m3u8").write_bytes(VARIANT)
        (self.hls / "0" / "stream-1700000000.ts").write_bytes(SEGMENT)
        (self.hls / "0" / "stream-1700000001.ts.tmp").write_bytes(b"partial")
        (self.hls / "thumbnail.jpg").write_bytes(b"\xff\xd8\xff\xe0jpeg")
        self.hooked: list = []
        root = Resource()
        self.resource = HlsResource(self.hls, in_thread, on_playlist=self.hooked.append)
        root.putChild(b"hls", self.resource)
        self.port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    async def get(self, path: str, method: str = "GET", **kwargs):
        response = await treq.request(method, self.base + path, persistent=False, **kwargs)
        return response, await response.content()

    async def raw(self, path: bytes) -> bytes:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        protocol = _Raw(b"GET " + path + b" HTTP/1.0\r\nHost: x\r\n\r\n")
        await connectProtocol(endpoint, protocol)
        return await protocol.done

    def header(self, response, name: str) -> str | None:
        values = response.headers.getRawHeaders(name)
        return values[0] if values else None

    async def test_master_playlist(self):
        """Playlists: the HLS type, never cached, readable from any origin, hook called."""
        response, body = await self.get("/hls/stream.m3u8")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, MASTER)
        self.assertEqual(self.header(response, "content-type"), "application/vnd.apple.mpegurl")
        self.assertEqual(self.header(response, "cache-control"), "no-cache, no-store")
        self.assertEqual(self.header(response, "access-control-allow-origin"), "*")
        self.assertIsNone(self.header(response, "last-modified"))
        self.assertEqual(len(self.hooked), 1)
        self.assertEqual(self.hooked[0].path, b"/hls/stream.m3u8")

    async def test_variant_playlist(self):
        response, body = await self.get("/hls/0/stream.m3u8")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, VARIANT)
        self.assertEqual(len(self.hooked), 1)

    async def test_playlist_head(self):
        response, body = await self.get("/hls/0/stream.m3u8", method="HEAD")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"")
        self.assertEqual(self.header(response, "content-type"), "application/vnd.apple.mpegurl")

    async def test_segment(self):
        """Segments: MPEG-TS, cached for good (their names are never reused), ranges work."""
        response, body = await self.get("/hls/0/stream-1700000000.ts")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, SEGMENT)
        self.assertEqual(self.header(response, "content-type"), "video/mp2t")
        self.assertEqual(
            self.header(response, "cache-control"), "public, max-age=31536000, immutable"
        )
        self.assertEqual(self.header(response, "access-control-allow-origin"), "*")
        response, body = await self.get(
            "/hls/0/stream-1700000000.ts", headers={"Range": ["bytes=10-19"]}
        )
        self.assertEqual(response.code, 206)
        self.assertEqual(body, SEGMENT[10:20])
        self.assertEqual(self.hooked, [])

    async def test_thumbnail(self):
        response, body = await self.get("/hls/thumbnail.jpg")
        self.assertEqual(response.code, 200)
        self.assertEqual(body[:3], b"\xff\xd8\xff")
        self.assertEqual(self.header(response, "content-type"), "image/jpeg")
        self.assertEqual(self.header(response, "cache-control"), "public, max-age=10")

    async def test_missing_files_are_404_and_not_cached(self):
        for path in ("/hls/1/stream.m3u8", "/hls/0/stream-1700000001.ts"):
            response, _ = await self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(self.header(response, "cache-control"), "no-cache", path)
        self.assertEqual(self.hooked, [])

    async def test_other_names_are_404(self):
        for path in (
            "/hls",
            "/hls/",
            "/hls/0/",
            "/hls/secret.txt",
            "/hls/0/stream-1700000001.ts.tmp",
            "/hls/0/stream.m3u8.bak",
            "/hls/100/stream.m3u8",
            "/hls/0/stream-1700000000.ts/x",
            "/hls/0/0/stream.m3u8",
            "/hls/stream-1.ts",
        ):
            response, body = await self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertNotIn(b"SECRET", body)

    async def test_traversal_is_404(self):
        """Raw request paths (as a hostile client sends them) never leave the directory."""
        for path in (
            b"/hls/../secret.txt",
            b"/hls/%2e%2e/secret.txt",
            b"/hls/0/../../secret.txt",
            b"/hls/0%2f..%2f..%2fsecret.txt",
            b"/hls/0/..%2f..%2fsecret.txt",
            b"/hls/%2fetc%2fpasswd",
            b"/hls//etc/passwd",
            b"/hls/0/stream.m3u8%00.ts",
        ):
            reply = await self.raw(path)
            self.assertTrue(reply.startswith(b"HTTP/1.0 404"), (path, reply[:40]))
            self.assertNotIn(b"SECRET", reply)

    async def test_encoded_slash_still_matches_the_strict_name(self):
        """Segments decode before matching: ``0%2Fstream.m3u8`` is the same fixed name."""
        reply = await self.raw(b"/hls/0%2Fstream.m3u8")
        self.assertTrue(reply.startswith(b"HTTP/1.0 200"), reply[:40])

    async def test_only_get_and_head(self):
        response, _ = await self.get("/hls/stream.m3u8", method="POST")
        self.assertEqual(response.code, 405)

    async def test_hook_errors_are_logged(self):
        def broken(request):
            raise RuntimeError("counter broke")

        self.resource._on_playlist = broken
        response, body = await self.get("/hls/stream.m3u8")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, MASTER)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
