"""Live with S3 storage: the real daemon publishes segments to a real S3-compatible
server while ffmpeg broadcasts, and a real player plays the stream from there."""

from __future__ import annotations

import uuid

import treq
from twisted.internet import reactor

from owncast.segments.s3 import S3SegmentStorage
from tests.daemon import wait_until
from tests.s3server import start_s3
from tests.test_live_e2e import SHOWINFO_SIZE, SIZES, LiveCase, spawn


class S3LiveTests(LiveCase):
    timeout = 120

    async def test_segments_are_played_from_s3(self):
        server = await start_s3(self, check_signatures=False)
        config = server.config(f"live-{uuid.uuid4().hex[:12]}", acl="public-read")
        await S3SegmentStorage(config, reactor, allow_private=True).create_bucket()
        daemon, auth = await self.start_live_daemon()
        response = await daemon.post("/api/admin/config/s3", {"value": config}, auth=auth)
        self.assertEqual(response.code, 200, response)
        publisher = self.publish(daemon, auth[1], 12)
        bucket_url = f"{server.endpoint}/{config['bucket']}/hls/"

        async def remote_segments() -> list[str] | None:
            response = await daemon.get("/hls/0/stream.m3u8")
            if response.code != 200:
                return None
            lines = response.content.decode().splitlines()
            remote = [ln for ln in lines if ln.startswith(bucket_url + "0/stream-")]
            return remote if len(remote) >= 2 else None

        remote = await wait_until(remote_segments, 30, "two segments listed from S3", 0.2)
        # The copy in S3 is the segment this server has.
        name = remote[-1].rpartition("/")[2]
        local = await daemon.get(f"/hls/0/{name}")
        stored = await treq.get(remote[-1], timeout=10)
        self.assertEqual(stored.code, 200)
        self.assertEqual(stored.headers.getRawHeaders("content-type"), ["video/mp2t"])
        self.assertEqual(await stored.content(), local.content)

        # A real player reads the playlist here and the segments from S3.
        player = spawn(
            self,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "level+info",
            "-i",
            f"{daemon.base}/hls/0/stream.m3u8",
            "-t",
            "2",
            "-vf",
            "showinfo",
            "-f",
            "null",
            "-",
        )
        await player.wait(40, "the player")
        text = player.stderr
        self.assertEqual(player.code, 0, text[-3000:])
        self.assertIn(bucket_url, text)  # it opened the segments there
        sizes = {(int(w), int(h)) for w, h in SHOWINFO_SIZE.findall(text)}
        self.assertEqual(sizes, {SIZES[0]}, text[-3000:])
        self.assertGreaterEqual(len(SHOWINFO_SIZE.findall(text)), 55, text[-3000:])
        await publisher.wait(30, "the publisher to finish")
