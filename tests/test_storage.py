"""Segment storage: the SigV4 signer, one contract for the directory and S3 storages
(S3: a real S3-compatible server checking signatures, ``tests.s3server``), and the
publisher that copies segments and rewrites playlists."""

from __future__ import annotations

import calendar
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from owncast.http.client import RefusedAddressError
from owncast.interfaces import ISegmentStorage
from owncast.segments.publisher import DELETE_AFTER, RETRY_AFTER, SegmentPublisher, list_segments
from owncast.segments.s3 import S3Error, S3SegmentStorage
from owncast.segments.sigv4 import EMPTY_SHA256, canonical_path, sign
from tests.fakes import DirectorySegmentStorage, inline
from tests.s3server import S3Server, start_s3


class SigV4Tests(unittest.TestCase):
    def test_the_published_s3_get_example(self):
        # AWS's "GET Object" example for Signature Version 4 (Range header, empty body).
        headers = sign(
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            {"Range": "bytes=0-9"},
            EMPTY_SHA256,
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            calendar.timegm((2013, 5, 24, 0, 0, 0)),
        )
        self.assertEqual(
            headers["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            "aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        )
        self.assertEqual(headers["x-amz-date"], "20130524T000000Z")

    def test_paths_are_encoded_once(self):
        self.assertEqual(canonical_path("/b/hls/0/a b+c~d.ts"), "/b/hls/0/a%20b%2Bc~d.ts")


async def signed_get(server: S3Server, url: str) -> tuple[int, bytes, str | None]:
    """GET a stored object with the server's key (anonymous reads are the bucket's policy)."""
    parts = urlsplit(url)
    headers = sign(
        "GET",
        parts.netloc,
        parts.path,
        {},
        EMPTY_SHA256,
        server.access_key,
        server.secret,
        "us-east-1",
        reactor.seconds(),
    )
    response = await treq.get(url, headers={k: [v] for k, v in headers.items()}, timeout=10)
    kind = response.headers.getRawHeaders("content-type", [None])[0]
    return response.code, await response.content(), kind


class StorageContract:
    """``storage`` is fresh per test; ``read_back(url)`` is the bytes there, or None."""

    storage: object

    async def read_back(self, url: str) -> bytes | None:
        raise NotImplementedError

    def test_provides_the_interface(self):
        verifyObject(ISegmentStorage, self.storage)

    async def test_put_read_overwrite_delete(self):
        key = "hls/0/stream-1700000000.ts"
        data = os.urandom(300_000)
        await self.storage.put(key, data, "video/mp2t", "public, max-age=1")
        url = self.storage.url(key)
        self.assertTrue(url.endswith("/hls/0/stream-1700000000.ts"), url)
        self.assertEqual(await self.read_back(url), data)
        await self.storage.put(key, b"again", "video/mp2t", "public, max-age=1")
        self.assertEqual(await self.read_back(url), b"again")
        await self.storage.delete(key)
        self.assertIsNone(await self.read_back(url))
        await self.storage.delete(key)  # already gone: no error


class DirectoryStorageTests(StorageContract, unittest.TestCase):
    def setUp(self):
        self.root = Path(self.mktemp())
        self.storage = DirectorySegmentStorage(self.root, "https://cdn.example/live", inline)

    async def read_back(self, url: str) -> bytes | None:
        path = self.root / url.removeprefix("https://cdn.example/live/")
        return path.read_bytes() if path.exists() else None

    def test_keys_cannot_leave_the_directory(self):
        for key in ("../x", "hls/../../x", "/etc/passwd", "hls//x", ""):
            with self.assertRaises(ValueError):
                self.storage.put(key, b"", "video/mp2t", "")


class S3StorageTests(StorageContract, unittest.TestCase):
    timeout = 60

    async def setUp(self):
        self.server = await start_s3(self)
        self.config = self.server.config(f"owncast-{uuid.uuid4().hex[:12]}")
        # The test server is on loopback: private targets must be allowed explicitly.
        self.storage = S3SegmentStorage(self.config, reactor, allow_private=True)
        await self.storage.create_bucket()

    async def read_back(self, url: str) -> bytes | None:
        code, body, kind = await signed_get(self.server, url)
        if code == 404:
            return None
        self.assertEqual((code, kind), (200, "video/mp2t"))
        return body

    async def test_a_wrong_secret_is_refused_by_the_server(self):
        wrong = S3SegmentStorage(
            dict(self.config, secret="not-the-secret"), reactor, allow_private=True
        )
        with self.assertRaises(S3Error) as caught:
            await wrong.put("hls/0/x.ts", b"x", "video/mp2t", "")
        self.assertEqual(caught.exception.code, 403)

    async def test_a_private_endpoint_is_refused_by_default(self):
        """Without the allowance nothing reaches the loopback server: the upload fails
        with the reason, and the object is not there."""
        refused = S3SegmentStorage(self.config, reactor)
        with self.assertRaises(RefusedAddressError) as caught:
            await refused.put("hls/0/x.ts", b"x", "video/mp2t", "")
        self.assertIn("--allowprivate", str(caught.exception))
        self.assertIsNone(await self.read_back(self.storage.url("hls/0/x.ts")))

    def test_players_fetch_from_the_serving_endpoint_when_set(self):
        storage = S3SegmentStorage(
            dict(self.config, servingEndpoint="https://cdn.example/"), reactor
        )
        self.assertEqual(storage.url("hls/0/stream-1.ts"), "https://cdn.example/hls/0/stream-1.ts")
        self.assertEqual(
            self.storage.url("hls/0/stream-1.ts"),
            f"{self.server.endpoint}/{self.config['bucket']}/hls/0/stream-1.ts",
        )


class _Recording:
    """An ISegmentStorage that keeps what it is given and fails on demand."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.failing = False

    def put(self, key, data, content_type, cache_control) -> Deferred:
        if self.failing:
            return fail(ConnectionRefusedError("storage is down"))
        self.objects[key] = data
        return succeed(None)

    def delete(self, key) -> Deferred:
        self.deleted.append(key)
        self.objects.pop(key, None)
        return succeed(None)

    def url(self, key) -> str:
        return "https://s3.example/bucket/" + key


VARIANT = (
    b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:1.0,\nstream-1.ts\n#EXTINF:1.0,\nstream-2.ts\n"
)


class PublisherTests(unittest.TestCase):
    def setUp(self):
        self.hls = Path(self.mktemp())
        for variant in ("0", "1"):
            (self.hls / variant).mkdir(parents=True)
            (self.hls / variant / "stream-1.ts").write_bytes(b"one" + variant.encode())
            (self.hls / variant / "stream-2.ts.tmp").write_bytes(b"partial")
            (self.hls / variant / "stream.m3u8").write_bytes(VARIANT)
        (self.hls / "stream.m3u8").write_bytes(b"#EXTM3U\n0/stream.m3u8\n")
        self.clock = Clock()
        self.settings = {"enabled": True, "endpoint": "https://s3.example", "bucket": "b"}
        self.storages: list[_Recording] = []
        self.changed: list = []
        self.publisher = SegmentPublisher(
            self.hls,
            lambda: self.settings,
            self._storage,
            inline,
            self.clock,
            self.changed.append,
        )

    def _storage(self, config: dict) -> _Recording:
        self.storages.append(_Recording())
        return self.storages[-1]

    def scan(self) -> None:
        d = Deferred.fromCoroutine(self.publisher.scan())
        self.assertTrue(d.called)

    def test_lists_finished_segments_oldest_first(self):
        (self.hls / "0" / "stream-10.ts").write_bytes(b"ten")
        (self.hls / "0" / "notes.txt").write_bytes(b"")
        self.assertEqual(
            list_segments(str(self.hls)),
            ["hls/0/stream-1.ts", "hls/1/stream-1.ts", "hls/0/stream-10.ts"],
        )

    def test_stored_segments_are_played_from_storage_the_rest_from_here(self):
        self.scan()
        [storage] = self.storages
        self.assertEqual(
            storage.objects, {"hls/0/stream-1.ts": b"one0", "hls/1/stream-1.ts": b"one1"}
        )
        self.assertEqual(self.changed, [None, b"0/stream.m3u8", b"1/stream.m3u8"])
        rewritten = self.publisher.rewrite(b"1/stream.m3u8", VARIANT)
        self.assertEqual(
            rewritten,
            VARIANT.replace(b"\nstream-1.ts", b"\nhttps://s3.example/bucket/hls/1/stream-1.ts"),
        )
        self.assertEqual(self.publisher.rewrite(b"stream.m3u8", b"0/stream.m3u8"), b"0/stream.m3u8")

    def test_a_segment_gone_from_here_is_deleted_from_storage_later(self):
        self.scan()
        (self.hls / "0" / "stream-1.ts").unlink()
        self.scan()
        self.clock.advance(DELETE_AFTER - 1)
        self.scan()
        self.assertEqual(self.storages[0].deleted, [])
        self.clock.advance(1)
        self.scan()
        self.assertEqual(self.storages[0].deleted, ["hls/0/stream-1.ts"])
        self.assertNotIn("hls/0/stream-1.ts", self.publisher.stored)

    def test_failed_uploads_are_retried_and_served_from_here_meanwhile(self):
        self.settings = dict(self.settings)
        self.scan()
        self.storages[0].failing = True
        (self.hls / "0" / "stream-3.ts").write_bytes(b"three")
        self.scan()
        self.assertEqual(self.publisher.failures, 1)
        self.assertEqual(self.publisher.rewrite(b"0/stream.m3u8", b"stream-3.ts"), b"stream-3.ts")
        self.storages[0].failing = False
        self.clock.advance(RETRY_AFTER - 0.5)
        self.scan()
        self.assertNotIn("hls/0/stream-3.ts", self.storages[0].objects)
        self.clock.advance(0.5)
        self.scan()
        self.assertEqual(self.storages[0].objects["hls/0/stream-3.ts"], b"three")
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_turning_s3_off_or_changing_it_starts_over(self):
        self.scan()
        self.settings = dict(self.settings, enabled=False)
        self.scan()
        self.assertIsNone(self.publisher.storage)
        self.assertEqual(self.publisher.rewrite(b"0/stream.m3u8", VARIANT), VARIANT)
        self.assertEqual(self.changed[-1], None)
        self.settings = dict(self.settings, enabled=True, bucket="other")
        self.scan()
        self.assertEqual(len(self.storages), 2)
        self.assertEqual(len(self.storages[1].objects), 2)

    def test_runs_every_half_second_while_the_service_runs(self):
        self.publisher.startService()
        self.assertEqual(len(self.storages[0].objects), 2)
        (self.hls / "0" / "stream-2.ts").write_bytes(b"two")
        self.clock.advance(0.5)
        self.assertIn("hls/0/stream-2.ts", self.storages[0].objects)
        self.publisher.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
