"""Low-latency mode end to end with what sits behind the live stream: the real daemon, ffmpeg
publishing over RTMP (blue, killed, then red within the reconnect grace) and ffmpeg as the
player. The stream goes on through the reconnect, the broadcast becomes one recording
ffmpeg reads from start to end, and with S3 the complete segments are fetched from the
bucket (parts from the server) and a recording's segments stay there."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import treq
from twisted.internet import reactor

from owncast.segments.s3 import S3SegmentStorage
from tests.daemon import Daemon, sleep, wait_until
from tests.s3server import delete_recording_from_bucket, start_s3
from tests.test_live_e2e import FIRST_SEGMENT_WITHIN, OFFLINE_WITHIN, LiveCase, run, spawn
from tests.test_live_publishers import frames, player_args, runs, source_args
from tests.test_recordings_e2e import decoded_seconds

#: Seconds each publisher sends.
PART = 8


class LowLatencyCase(LiveCase):
    async def start_low_latency_daemon(self) -> tuple[Daemon, tuple[str, str]]:
        daemon, auth = await self.start_live_daemon()
        response = await daemon.post(
            "/api/admin/config/video/lowlatency", {"value": True}, auth=auth
        )
        self.assertEqual(response.code, 200, response)
        return daemon, auth

    async def ll_playlist(self, daemon: Daemon, segments: int = 2) -> str:
        async def ready() -> str | None:
            response = await daemon.get("/hls/0/stream.m3u8")
            text = response.content.decode("utf-8", "replace")
            ok = response.code == 200 and text.count("#EXTINF") >= segments
            return text if ok and "#EXT-X-PART:" in text else None

        return await wait_until(ready, FIRST_SEGMENT_WITHIN + 10, "an LL-HLS playlist", 0.2)

    async def finished_recording(self, daemon: Daemon) -> dict:
        async def finished() -> list | None:
            listed = await self.get_json(daemon, "/api/recordings")
            return listed if listed and not listed[0]["live"] else None

        listed = await wait_until(finished, 15, "the recording to end")
        self.assertEqual(len(listed), 1, listed)
        return listed[0]


class LowLatencyRecordingTests(LowLatencyCase):
    timeout = 240

    async def test_reconnect_keeps_playing_and_stays_one_readable_recording(self) -> None:
        """Through a reconnect inside the grace the LL-HLS playlist goes on after a
        discontinuity with a new init section and a player reading it sees blue then red
        to the end; the broadcast is one recording whose VOD (fMP4 with EXT-X-MAP) and MP4
        ffmpeg decode whole, blue then red, with the right duration."""
        daemon, auth = await self.start_low_latency_daemon()
        url = self.rtmp_url(daemon, auth[1])
        blue = spawn(self, *source_args(url, 60, video="blue"))
        await self.ll_playlist(daemon)
        player = spawn(self, *player_args(f"{daemon.base}/hls/0/stream.m3u8"))
        await sleep(PART)
        await blue.kill()
        await sleep(3)
        red = spawn(self, *source_args(url, PART, video="red"))

        async def joined() -> str | None:
            text = (await daemon.get("/hls/0/stream.m3u8")).content.decode()
            after = text.partition("#EXT-X-DISCONTINUITY")[2]
            return text if after.count("#EXTINF") >= 2 else None

        text = await wait_until(joined, 20, "the playlist to go on after a discontinuity", 0.2)
        maps = re.findall(r'#EXT-X-MAP:URI="(init\d+\.mp4)"', text)
        self.assertEqual(len(set(maps)), 2, text)
        numbers = [int(n) for n in re.findall(r"^seg(\d+)\.m4s$", text, re.M)]
        self.assertEqual(numbers, list(range(numbers[0], numbers[0] + len(numbers))), text)
        await red.wait(PART + 20)
        await self.wait_online(daemon, False, OFFLINE_WITHIN)
        await player.wait(30, "the player to reach the end of the playlist")
        self.assertEqual(player.code, 0, player.stderr[-3000:])
        seen = [c for c, n in runs(frames(player.stderr)) if n > 10]
        self.assertEqual(seen, ["blue", "red"], runs(frames(player.stderr)))

        recording = await self.finished_recording(daemon)
        duration = recording["duration"]
        self.assertGreater(duration, 2 * PART - 4, recording)
        self.assertLess(duration, 2 * PART + 4, recording)
        assert daemon.datadir is not None
        folder = daemon.datadir / "recordings" / recording["id"] / "0"
        vod = (folder / "stream.m3u8").read_text()
        self.assertIn("#EXT-X-MAP:", vod)
        self.assertIn("#EXT-X-DISCONTINUITY", vod)
        self.assertTrue(vod.endswith("#EXT-X-ENDLIST\n"), vod)
        reader = await run(
            self, "-hide_banner", "-nostdin", "-i", str(folder / "stream.m3u8"),
            "-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-", timeout=60,
        )  # fmt: skip
        self.assertEqual(reader.code, 0, reader.stderr[-2000:])
        self.assertEqual([c for c, n in runs(frames(reader.stderr)) if n > 10], ["blue", "red"])
        self.assertLessEqual(abs(decoded_seconds(reader.stderr) - duration), 1.0)

        response = await daemon.get(recording["download"])
        self.assertEqual(response.code, 200)
        mp4 = self.mktemp() + ".mp4"
        Path(mp4).write_bytes(response.content)
        check = await run(self, "-hide_banner", "-nostdin", "-i", mp4, "-f", "null", "-")
        self.assertEqual(check.code, 0, check.stderr[-2000:])
        self.assertLessEqual(abs(decoded_seconds(check.stderr) - duration), 1.0)

        response = await daemon.post(
            "/api/admin/recordings/clip", {"id": recording["id"], "start": 3, "end": 9}, auth=auth
        )
        self.assertEqual(response.code, 200, response)
        response = await daemon.get(response.json["download"])
        self.assertEqual(response.code, 200)
        Path(mp4).write_bytes(response.content)
        check = await run(self, "-hide_banner", "-nostdin", "-i", mp4, "-f", "null", "-")
        self.assertEqual(check.code, 0, check.stderr[-2000:])
        self.assertLessEqual(abs(decoded_seconds(check.stderr) - 6.0), 1.0)  # 1 s segments

    async def test_killed_daemon_keeps_every_finished_segment(self) -> None:
        """kill -9 mid-broadcast, start again: the low-latency recording is ended, holds
        every complete segment written (at most the last is lost) with its init section,
        and ffmpeg reads it to the end."""
        daemon, auth = await self.start_low_latency_daemon()
        publisher = self.publish(daemon, auth[1], 60)
        assert daemon.datadir is not None
        live = daemon.datadir / "hls" / "0"

        def written() -> list[int]:
            return sorted(int(p.name[3:-4]) for p in live.glob("seg*.m4s"))

        await wait_until(lambda: len(written()) >= 6, FIRST_SEGMENT_WITHIN + 10, "6 segments")
        await daemon.kill()
        await publisher.wait(15, "the publisher to notice")
        finished = written()

        await daemon.start()
        listed = await self.get_json(daemon, "/api/recordings")
        self.assertEqual(len(listed), 1, listed)
        recording = listed[0]
        self.assertFalse(recording["live"], recording)
        folder = daemon.datadir / "recordings" / recording["id"] / "0"
        vod = (folder / "stream.m3u8").read_text()
        kept = [int(n) for n in re.findall(r"^seg(\d+)\.m4s$", vod, re.M)]
        self.assertIn(kept, (finished, finished[:-1]))
        self.assertTrue(vod.endswith("#EXT-X-ENDLIST\n"), vod)
        reader = await run(
            self, "-hide_banner", "-nostdin", "-i", str(folder / "stream.m3u8"),
            "-f", "null", "-", timeout=60,
        )  # fmt: skip
        self.assertEqual(reader.code, 0, reader.stderr[-2000:])
        self.assertLessEqual(abs(decoded_seconds(reader.stderr) - recording["duration"]), 1.0)


class LowLatencyS3Tests(LowLatencyCase):
    timeout = 180

    async def test_segments_from_the_bucket_parts_from_here_recording_kept_there(self) -> None:
        """With S3 on, the LL-HLS playlist names complete segments by their bucket URL (the
        same bytes this server has, as video/mp4) while parts and the init section stay
        relative; a player reads it; the recording's segments stay in the bucket after
        the live window let them go, and leave it with the recording."""
        server = await start_s3(self, check_signatures=False)
        config = server.config(f"ll-{uuid.uuid4().hex[:12]}", acl="public-read")
        await S3SegmentStorage(config, reactor, allow_private=True).create_bucket()
        daemon, auth = await self.start_low_latency_daemon()
        response = await daemon.post("/api/admin/config/s3", {"value": config}, auth=auth)
        self.assertEqual(response.code, 200, response)
        publisher = self.publish(daemon, auth[1], 24)
        bucket_url = f"{server.endpoint}/{config['bucket']}/hls/"

        async def from_bucket() -> str | None:
            text = (await daemon.get("/hls/0/stream.m3u8")).content.decode()
            remote = re.findall(rf"^{re.escape(bucket_url)}0/seg\d+\.m4s$", text, re.M)
            return text if len(remote) >= 2 else None

        text = await wait_until(from_bucket, 30, "LL-HLS segments listed from S3", 0.2)
        self.assertRegex(text, r'#EXT-X-MAP:URI="init\d+\.mp4"')
        self.assertRegex(text, r'#EXT-X-PART:[^\n]*URI="part\d+\.m4s"')
        self.assertRegex(text, r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part\d+\.m4s"')
        remote = [ln for ln in text.splitlines() if ln.startswith(bucket_url)]
        name = remote[-1].rpartition("/")[2]
        local = await daemon.get(f"/hls/0/{name}")
        stored = await treq.get(remote[-1], timeout=10)
        self.assertEqual(stored.code, 200)
        self.assertEqual(stored.headers.getRawHeaders("content-type"), ["video/mp4"])
        self.assertEqual(await stored.content(), local.content)

        player = await run(
            self, "-hide_banner", "-nostdin", "-loglevel", "level+info",
            "-i", f"{daemon.base}/hls/0/stream.m3u8", "-t", "3", "-f", "null", "-", timeout=40,
        )  # fmt: skip
        self.assertEqual(player.code, 0, player.stderr[-3000:])
        self.assertIn(bucket_url, player.stderr)  # it opened the segments there

        await publisher.wait(40, "the publisher to finish")
        response = await daemon.post("/api/admin/disconnect", {}, auth=auth)
        self.assertEqual(response.code, 200)
        recording = await self.finished_recording(daemon)

        async def vod_from_bucket() -> list[str] | None:
            body = (await daemon.get(f"/recordings/{recording['id']}/0/stream.m3u8")).content
            lines = [ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")]
            return lines if lines and all(ln.startswith(bucket_url) for ln in lines) else None

        segments = await wait_until(vod_from_bucket, 15, "every VOD segment from the bucket", 0.2)
        self.assertGreater(len(segments), 15)  # more than the live window (12) held
        codes = [(await treq.get(url, timeout=10)).code for url in segments]
        self.assertEqual(set(codes), {200})

        await delete_recording_from_bucket(self, daemon, recording["id"], segments, auth)
