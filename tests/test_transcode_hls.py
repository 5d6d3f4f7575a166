"""``/hls/`` over a real loopback listener: types, cache rules, CORS, the playlist hook,
and that nothing outside the fixed names (no traversal) is ever served."""

from __future__ import annotations

import os
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.test.requesthelper import DummyRequest

from owncast.http.hls import HlsResource, single_range
from owncast.transcode.output import DISCONTINUITIES

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
        self._root = root
        self.port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    async def get(self, path: str, method: str = "GET", **kwargs):
        response = await treq.request(method, self.base + path, persistent=False, **kwargs)
        return response, await response.content()

    async def raw(self, path: bytes) -> bytes:
        return await self.raw_request(b"GET " + path + b" HTTP/1.0\r\nHost: x\r\n\r\n")

    async def raw_request(self, request: bytes) -> bytes:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        protocol = _Raw(request)
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

    async def test_a_low_latency_broadcasts_files(self):
        """Once a low-latency broadcast is over (after a restart: nothing live), its ended
        playlist is served from disk as any, and so are the segments and init sections it
        lists."""
        (self.hls / "0" / "init0.mp4").write_bytes(b"init")
        (self.hls / "0" / "seg1700000000.m4s").write_bytes(SEGMENT)
        for path, body in (("/hls/0/init0.mp4", b"init"), ("/hls/0/seg1700000000.m4s", SEGMENT)):
            response, got = await self.get(path)
            self.assertEqual((response.code, got), (200, body), path)
            self.assertEqual(self.header(response, "content-type"), "video/mp4")
            self.assertEqual(
                self.header(response, "cache-control"), "public, max-age=31536000, immutable"
            )
        for path in ("/hls/0/seg1.m4s", "/hls/0/part3.m4s", "/hls/0/init.mp4", "/hls/seg1.m4s"):
            response, _ = await self.get(path)
            self.assertEqual(response.code, 404, path)

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

    async def test_segments_from_memory_send_what_file_sent(self):
        """A segment from memory has the headers ``File`` gives the same segment off disk
        (type, length, ranges, Last-Modified, cache, CORS), and answers conditional and
        range requests the same way."""
        disk = HlsResource(self.hls, in_thread, max_cached_segment=0)
        self._root.putChild(b"disk", disk)
        path = "0/stream-1700000000.ts"
        await self.get("/hls/" + path)  # now in memory
        self.assertIn(str(self.hls / "0" / "stream-1700000000.ts"), self.resource.segments)

        def headers(response):
            return {
                name: values
                for name, values in response.headers.getAllRawHeaders()
                if name.lower() != b"date"
            }

        for method, extra in [
            ("GET", {}),
            ("HEAD", {}),
            ("GET", {"Range": ["bytes=10-19"]}),
            ("GET", {"Range": ["bytes=-5"]}),
            ("GET", {"Range": ["bytes=10230-"]}),
            ("GET", {"Range": ["bytes=5000-999999"]}),
            ("GET", {"Range": ["bytes=99999-"]}),  # unsatisfiable: 416, by File
            ("GET", {"Range": ["bytes=0-1,5-6"]}),  # several: multipart, by File
            ("GET", {"If-Modified-Since": ["Sat, 01 Jan 2000 00:00:00 GMT"]}),
            ("GET", {"If-Modified-Since": ["Fri, 01 Jan 2100 00:00:00 GMT"]}),
        ]:
            ours, body = await self.get("/hls/" + path, method=method, headers=extra)
            theirs, expected = await self.get("/disk/" + path, method=method, headers=extra)
            self.assertEqual(ours.code, theirs.code, (method, extra))
            if "," in extra.get("Range", [""])[0]:  # boundaries differ from one answer to the next
                self.assertEqual(ours.code, 206)
                self.assertTrue(self.header(ours, "content-type").startswith("multipart/"))
            else:
                self.assertEqual(body, expected, (method, extra))
                self.assertEqual(headers(ours), headers(theirs), (method, extra))
        self.assertEqual(len(disk.segments), 0)

    async def test_large_segments_arrive_whole(self):
        """A large body goes out behind its headers without being copied (``_send_large``):
        every byte arrives, over fresh and kept-alive connections, pipelined too."""
        big = os.urandom(1_000_000)
        (self.hls / "0" / "stream-1700000002.ts").write_bytes(big)
        for _ in range(2):  # read from disk, then from memory
            response, body = await self.get("/hls/0/stream-1700000002.ts")
            self.assertEqual(response.code, 200)
            self.assertEqual(response.length, 1_000_000)
            self.assertEqual(body, big)
        one = b"GET /hls/0/stream-1700000002.ts HTTP/1.1\r\nHost: x\r\n\r\n"
        reply = await self.raw_request(
            one + one + one.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        )
        parts = reply.split(b"HTTP/1.1 200 OK\r\n")
        self.assertEqual(len(parts), 4, reply[:200])
        for part in parts[1:]:
            head, _, body = part.partition(b"\r\n\r\n")
            self.assertIn(b"Content-Length: 1000000", head)
            self.assertEqual(body, big)

    async def test_segment_from_memory_after_it_was_deleted(self):
        """Segments never change under their name: once read, a late player still gets
        one ffmpeg has already deleted from the window."""
        await self.get("/hls/0/stream-1700000000.ts")
        (self.hls / "0" / "stream-1700000000.ts").unlink()
        response, body = await self.get("/hls/0/stream-1700000000.ts")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, SEGMENT)


def _broken(*args):
    raise OSError("disk on fire")


class ManualBlocking:
    """``blocking`` whose reads run only when the test says so."""

    def __init__(self):
        self.calls: list = []

    def __call__(self, fn, *args):
        d: Deferred = Deferred()
        self.calls.append((fn, args, d))
        return d

    def run(self) -> int:
        calls, self.calls = self.calls, []
        for fn, args, d in calls:
            try:
                result = fn(*args)
            except Exception:
                d.errback()
            else:
                d.callback(result)
        return len(calls)


class HlsMemoryTests(unittest.TestCase):
    """The in-memory playlists (kept while the file is unchanged) and segments (LRU by
    bytes), and that requests arriving while a file is being read share that one read."""

    def setUp(self):
        self.hls = Path(self.mktemp())
        (self.hls / "0").mkdir(parents=True)
        self.playlist = self.hls / "0" / "stream.m3u8"
        self.playlist.write_bytes(VARIANT)
        for n in range(4):
            (self.hls / "0" / f"stream-{n}.ts").write_bytes(bytes([n]) * 1000)
        self.blocking = ManualBlocking()
        self.hooked: list = []
        self.resource = self.make()

    def make(self, **kwargs) -> HlsResource:
        return HlsResource(self.hls, self.blocking, self.hooked.append, **kwargs)

    def request(self, name: bytes, headers: dict | None = None, resource=None) -> DummyRequest:
        request = DummyRequest(name.split(b"/"))
        for key, value in (headers or {}).items():
            request.requestHeaders.setRawHeaders(key, [value])
        result = (resource or self.resource).render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()
        return request

    def body(self, request: DummyRequest) -> bytes:
        self.assertEqual(request.finished, 1)
        return b"".join(request.written)

    def replace(self, body: bytes) -> None:
        """Rewrite the playlist as ffmpeg does: a temporary file renamed over it."""
        temporary = self.playlist.with_name("stream.m3u8.tmp")
        temporary.write_bytes(body)
        temporary.replace(self.playlist)

    def test_playlist_kept_while_the_file_is_unchanged(self):
        first = self.request(b"0/stream.m3u8")
        self.assertEqual(first.finished, 0)
        self.assertEqual(self.blocking.run(), 1)
        self.assertEqual(self.body(first), VARIANT)

        for _ in range(3):
            again = self.request(b"0/stream.m3u8")
            self.assertEqual(self.body(again), VARIANT)  # from memory
        self.assertEqual(self.blocking.calls, [])
        headers = again.responseHeaders
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/vnd.apple.mpegurl"])
        self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"no-cache, no-store"])
        self.assertEqual(headers.getRawHeaders(b"access-control-allow-origin"), [b"*"])
        self.assertIsNone(headers.getRawHeaders(b"last-modified"))
        self.assertEqual(len(self.hooked), 4)

    def test_a_rewritten_playlist_is_read_again_at_once(self):
        """No TTL: the first request after ffmpeg replaced the playlist gets the new one,
        however soon (here: the same mtime second, same size)."""
        self.request(b"0/stream.m3u8")
        self.blocking.run()
        changed = VARIANT.replace(b"1700000000", b"1700000001")
        self.replace(changed)
        later = self.request(b"0/stream.m3u8")
        self.assertEqual(self.blocking.run(), 1)
        self.assertEqual(self.body(later), changed)
        self.assertEqual(self.body(self.request(b"0/stream.m3u8")), changed)
        self.assertEqual(self.blocking.calls, [])

    def test_a_playlist_rewritten_in_place_is_read_again(self):
        self.request(b"0/stream.m3u8")
        self.blocking.run()
        ended = VARIANT + b"#EXT-X-ENDLIST\n"
        self.playlist.write_bytes(ended)
        later = self.request(b"0/stream.m3u8")
        self.blocking.run()
        self.assertEqual(self.body(later), ended)

    def test_a_removed_playlist_is_404_at_once_and_remembered(self):
        self.request(b"0/stream.m3u8")
        self.blocking.run()
        self.playlist.unlink()
        gone = self.request(b"0/stream.m3u8")
        self.assertEqual(self.blocking.run(), 1)
        self.assertEqual(gone.responseCode, 404)
        self.assertEqual(self.request(b"0/stream.m3u8").responseCode, 404)
        self.assertEqual(self.blocking.calls, [])  # the 404 is remembered
        self.replace(VARIANT)
        back = self.request(b"0/stream.m3u8")
        self.assertEqual(self.blocking.run(), 1)
        self.assertEqual(self.body(back), VARIANT)
        self.assertEqual(len(self.hooked), 2)  # 404s are not viewers

    def test_a_request_during_a_read_shares_it(self):
        """While a read is in flight even an unchanged playlist waits for it (so it never
        gets an older copy than a request before it)."""
        self.request(b"0/stream.m3u8")
        self.blocking.run()
        self.replace(MASTER)
        waiting = [self.request(b"0/stream.m3u8") for _ in range(3)]
        self.assertEqual(len(self.blocking.calls), 1)
        self.blocking.run()
        for request in waiting:
            self.assertEqual(self.body(request), MASTER)

    def test_the_discontinuity_sequence_is_still_added(self):
        self.playlist.write_bytes(b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:1.0,\nstream-5.ts\n")
        (self.hls / "0" / DISCONTINUITIES).write_bytes(b"3\n")
        first = self.request(b"0/stream.m3u8")
        self.blocking.run()
        second = self.request(b"0/stream.m3u8")
        for request in (first, second):
            self.assertIn(b"\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n", self.body(request))

    def test_concurrent_playlist_misses_share_one_read(self):
        requests = [self.request(b"0/stream.m3u8") for _ in range(5)]
        self.assertEqual(len(self.blocking.calls), 1)
        self.blocking.run()
        for request in requests:
            self.assertEqual(self.body(request), VARIANT)
        self.assertEqual(len(self.hooked), 5)

    def test_concurrent_segment_misses_share_one_read(self):
        requests = [self.request(b"0/stream-1.ts") for _ in range(5)]
        requests.append(self.request(b"0/stream-2.ts"))
        self.assertEqual(len(self.blocking.calls), 2)  # one per file
        self.blocking.run()
        for request in requests[:5]:
            self.assertEqual(self.body(request), b"\x01" * 1000)
            self.assertEqual(
                request.responseHeaders.getRawHeaders(b"content-type"), [b"video/mp2t"]
            )
        self.assertEqual(self.body(requests[5]), b"\x02" * 1000)
        again = self.request(b"0/stream-1.ts")
        self.assertEqual(self.body(again), b"\x01" * 1000)  # from memory, no read
        self.assertEqual(self.blocking.calls, [])

    def test_a_failed_read_fails_every_waiter_and_is_not_kept(self):
        requests = [self.request(b"0/stream.m3u8") for _ in range(3)]

        fn, args, d = self.blocking.calls[0]
        self.blocking.calls[0] = (_broken, args, d)
        self.blocking.run()
        for request in requests:
            self.assertEqual(request.responseCode, 500)
            self.assertEqual(request.finished, 1)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 3)
        self.assertEqual(self.resource.playlists, {})
        self.request(b"0/stream.m3u8")
        self.assertEqual(len(self.blocking.calls), 1)  # the next request reads again

    def test_a_client_that_left_gets_nothing_the_others_are_served(self):
        left = self.request(b"0/stream-1.ts")
        stayed = self.request(b"0/stream-1.ts")
        left.processingFailed(Failure(ConnectionDone()))
        self.blocking.run()
        self.assertEqual((left.finished, left.written), (0, []))
        self.assertEqual(self.body(stayed), b"\x01" * 1000)

    def test_segments_lru_bounded_by_bytes(self):
        resource = self.make(segment_cache_bytes=2500)

        def fetch(n: int) -> None:
            request = self.request(b"0/stream-%d.ts" % n, resource=resource)
            self.blocking.run()
            self.assertEqual(self.body(request), bytes([n]) * 1000)

        def kept() -> list[int]:
            return [
                n for n in range(4) if str(self.hls / "0" / f"stream-{n}.ts") in resource.segments
            ]

        fetch(0)
        fetch(1)
        self.assertEqual(kept(), [0, 1])
        fetch(0)  # from memory: 0 is now the most recently used
        fetch(2)
        self.assertEqual(kept(), [0, 2])
        self.assertLessEqual(resource.segments.size, 2500)
        self.assertEqual(resource.segments.size, 2000)
        fetch(3)
        self.assertEqual(kept(), [2, 3])

    def test_large_segments_are_streamed_and_not_kept(self):
        resource = self.make(max_cached_segment=999)
        request = self.request(b"0/stream-1.ts", resource=resource)
        self.blocking.run()
        self.assertEqual(self.body(request), b"\x01" * 1000)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"), [b"video/mp2t"])
        self.assertEqual(
            request.responseHeaders.getRawHeaders(b"cache-control"),
            [b"public, max-age=31536000, immutable"],
        )
        self.assertEqual(len(resource.segments), 0)

    def test_missing_segment_is_404_and_not_kept(self):
        request = self.request(b"0/stream-9.ts")
        self.blocking.run()
        self.assertEqual(request.responseCode, 404)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"cache-control"), [b"no-cache"])
        self.assertEqual(len(self.resource.segments), 0)


class SingleRangeTests(unittest.TestCase):
    def test_ranges(self):
        for header, expected in [
            (b"bytes=10-19", (10, 19)),
            (b"bytes=10-", (10, 99)),
            (b"bytes=-5", (95, 99)),
            (b"bytes=-500", (0, 99)),
            (b"bytes=90-500", (90, 99)),
            (b"Bytes = 0-0", (0, 0)),
            (b"bytes=100-", None),  # unsatisfiable: File says 416
            (b"bytes=-0", None),
            (b"bytes=5-4", None),
            (b"bytes=0-1,3-4", None),
            (b"bytes=a-b", None),
            (b"bytes=+1-2", None),
            (b"items=0-1", None),
            (b"bytes 0-1", None),
            (b"bytes=-", None),
        ]:
            self.assertEqual(single_range(header, 100), expected, header)

    def test_numbers_longer_than_int_takes(self):
        """Bounds of thousands of digits (``int`` refuses over 4300) are huge, not errors."""
        many = b"9" * 5000
        for header, expected in [
            (b"bytes=" + many + b"-", None),
            (b"bytes=0-" + many, (0, 99)),
            (b"bytes=-" + many, (0, 99)),
            (b"bytes=" + b"0" * 5000 + b"5-7", (5, 7)),
        ]:
            self.assertEqual(single_range(header, 100), expected, header[:12])
