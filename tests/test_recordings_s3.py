"""Recordings with S3 storage: segments a recording holds stay in the bucket after they
leave the live window (fake clock), the VOD playlists point at them, and removing the
recording deletes them there; end to end against the moto server, with ffmpeg playing a
recording's VOD from the bucket."""

from __future__ import annotations

import uuid
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest

from owncast.segments.publisher import DELETE_AFTER, SegmentPublisher
from owncast.segments.s3 import S3SegmentStorage
from tests.daemon import wait_until
from tests.fakes import inline
from tests.s3server import delete_recording_from_bucket, start_s3
from tests.test_live_e2e import LiveCase, run
from tests.test_storage import VARIANT, _Recording


class KeptSegmentsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.hls = Path(self.mktemp())
        (self.hls / "0").mkdir(parents=True)
        for n in (1, 2):
            (self.hls / "0" / f"stream-{n}.ts").write_bytes(b"seg%d" % n)
        (self.hls / "0" / "stream.m3u8").write_bytes(VARIANT)
        self.clock = Clock()
        self.storage = _Recording()
        self.kept = {"hls/0/stream-1.ts"}
        self.publisher = SegmentPublisher(
            self.hls,
            lambda: {"enabled": True},
            lambda config: self.storage,
            inline,
            self.clock,
            lambda name: None,
            keeps=self.kept.__contains__,
        )

    def scan(self) -> None:
        self.assertTrue(Deferred.fromCoroutine(self.publisher.scan()).called)

    def test_a_recorded_segment_stays_in_the_bucket_until_the_recording_goes(self) -> None:
        self.scan()
        for n in (1, 2):
            (self.hls / "0" / f"stream-{n}.ts").unlink()  # out of the live window
        self.scan()
        self.clock.advance(DELETE_AFTER + 1)
        self.scan()
        self.assertEqual(self.storage.deleted, ["hls/0/stream-2.ts"])  # not recorded
        self.assertIn("hls/0/stream-1.ts", self.storage.objects)
        url = "https://s3.example/bucket/hls/0/stream-1.ts"
        self.assertEqual(self.publisher.url_of("hls/0/stream-1.ts"), url)
        self.assertIsNone(self.publisher.url_of("hls/0/stream-2.ts"))
        self.publisher.remove(["hls/0/stream-1.ts"])
        self.assertEqual(self.storage.deleted, ["hls/0/stream-2.ts", "hls/0/stream-1.ts"])
        self.assertIsNone(self.publisher.url_of("hls/0/stream-1.ts"))

    def test_a_removed_recordings_segment_still_here_is_not_stored_again(self) -> None:
        """A recording removed while the ended live output still holds its segments: they
        leave the bucket and stay out (served from here), however often the scan runs."""
        self.scan()
        self.assertIn("hls/0/stream-1.ts", self.storage.objects)
        self.publisher.remove(["hls/0/stream-1.ts"])
        for _ in range(3):
            self.scan()
        self.assertNotIn("hls/0/stream-1.ts", self.storage.objects)
        self.assertIsNone(self.publisher.url_of("hls/0/stream-1.ts"))
        self.assertIn("hls/0/stream-2.ts", self.storage.objects)


class S3RecordingTests(LiveCase):
    timeout = 180

    async def test_vod_plays_from_the_bucket_and_deleting_empties_it(self) -> None:
        server = await start_s3(self, check_signatures=False)
        config = server.config(f"rec-{uuid.uuid4().hex[:12]}", acl="public-read")
        await S3SegmentStorage(config, reactor, allow_private=True).create_bucket()
        daemon, auth = await self.start_live_daemon()
        response = await daemon.post("/api/admin/config/s3", {"value": config}, auth=auth)
        self.assertEqual(response.code, 200, response)
        publisher = self.publish(daemon, auth[1], 8)
        await publisher.wait(40, "the publisher to finish")
        response = await daemon.post("/api/admin/disconnect", {}, auth=auth)
        self.assertEqual(response.code, 200)

        async def finished() -> dict | None:
            listed = (await daemon.get("/api/recordings")).json
            return listed[0] if listed and not listed[0]["live"] else None

        recording = await wait_until(finished, 15, "the recording to end")
        bucket_url = f"{server.endpoint}/{config['bucket']}/hls/"

        async def from_bucket() -> list[str] | None:
            body = (await daemon.get(f"/recordings/{recording['id']}/0/stream.m3u8")).content
            lines = [ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")]
            return lines if lines and all(ln.startswith(bucket_url) for ln in lines) else None

        segments = await wait_until(from_bucket, 15, "every VOD segment from the bucket", 0.2)
        player = await run(
            self, "-hide_banner", "-nostdin", "-loglevel", "level+info",
            "-i", f"{daemon.base}{recording['playlist']}", "-f", "null", "-", timeout=60,
        )  # fmt: skip
        self.assertEqual(player.code, 0, player.err[-2000:])
        self.assertIn(bucket_url.encode(), player.err)

        await delete_recording_from_bucket(self, daemon, recording["id"], segments, auth)
