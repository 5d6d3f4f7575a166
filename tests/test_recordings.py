"""Recordings in memory: the pure rules (playlists, retention, clip spans), the recorder
on a fake clock over a stand-in HLS folder (segments kept as ffmpeg's window deletes
them, one recording through a reconnect, retention, the disk floor, a killed run), and
the API's answers to good and bad requests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest

from owncast.core import events
from owncast.core.throttle import TrustedProxies
from owncast.recordings import files
from owncast.recordings.library import Library
from owncast.recordings.recorder import GIB, Recorder
from owncast.recordings.vod import (
    Entry,
    Meta,
    clip_entries,
    clip_span,
    expired,
    highest_variant,
    master_for,
    parse_media,
    render_media,
)
from tests.fakes import inline
from tests.helpers import Client, LiveServer, make_context, run

MASTER = (
    "#EXTM3U\n#EXT-X-VERSION:3\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=1400000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"\n'
    "0/stream.m3u8\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=640x360,CODECS="avc1.64001f,mp4a.40.2"\n'
    "1/stream.m3u8\n"
)


class PureTests(unittest.TestCase):
    def test_parse_render_roundtrip(self) -> None:
        """A live playlist's segments, durations and discontinuities come through a VOD."""
        live = (
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
            "#EXTINF:2.000000,\nstream-7.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1.5,\nstream-9.ts\n"
            "#EXTINF:2,\n../../etc/passwd\n"
        )
        entries, target = parse_media(live)
        self.assertEqual(target, 2)
        self.assertEqual(
            entries, [Entry("stream-7.ts", 2.0), Entry("stream-9.ts", 1.5, discontinuity=True)]
        )
        vod = render_media(entries, ended=True)
        self.assertIn("#EXT-X-PLAYLIST-TYPE:VOD", vod)
        self.assertTrue(vod.endswith("#EXT-X-ENDLIST\n"))
        self.assertEqual(parse_media(vod)[0], entries)
        self.assertIn("#EXT-X-PLAYLIST-TYPE:EVENT", render_media(entries, ended=False))
        self.assertNotIn("ENDLIST", render_media(entries, ended=False))

    def test_master_keeps_the_chosen_variants(self) -> None:
        self.assertEqual(master_for(MASTER, {"0", "1"}), MASTER)
        only = master_for(MASTER, {"1"})
        assert only is not None
        self.assertNotIn("0/stream.m3u8", only)
        self.assertIn("RESOLUTION=640x360", only)
        self.assertIsNone(master_for(MASTER, {"5"}))

    def test_highest_variant(self) -> None:
        self.assertEqual(highest_variant([{"videoBitrate": 800}, {"videoBitrate": 3000}]), 1)
        passthrough = [{"videoBitrate": 800, "videoPassthrough": True}, {"videoBitrate": 3000}]
        self.assertEqual(highest_variant(passthrough), 0)

    def test_retention_by_age_and_size(self) -> None:
        """Oldest first; a recording still going on is never removed."""
        day = 86400.0
        metas = [
            Meta("1", "a", 0, endTime=100, size=5),
            Meta("2", "b", 2 * day, endTime=2 * day + 100, size=5),
            Meta("3", "c", 3 * day, endTime=3 * day + 100, size=5),
            Meta("4", "live", 4 * day, endTime=None, size=50),
        ]
        now = 4 * day
        self.assertEqual(expired(metas, now, 0, 0), [])
        self.assertEqual(expired(metas, now, 3, 0), ["1"])
        self.assertEqual(expired(metas, now, 0, 10), ["1"])
        self.assertEqual(expired(metas, now, 0, 4), ["1", "2", "3"])
        self.assertEqual(expired(metas, now, 1.5, 5), ["1", "2"])

    def test_clip_span_refuses_bad_input(self) -> None:
        self.assertEqual(clip_span(1, 5.5, 60), (1.0, 5.5))
        self.assertEqual(clip_span(50, 70, 60), (50.0, 60.0))
        for start, end in (
            (5, 1),
            (5, 5),
            (-1, 3),
            (0, 1000),
            ("1", 3),
            (True, 3),
            (float("nan"), 2),
            (61, 62),
        ):
            with self.assertRaises(ValueError, msg=(start, end)):
                clip_span(start, end, 60)

    def test_clip_entries(self) -> None:
        entries = [Entry(f"stream-{i}.ts", 2.0) for i in range(10)]
        kept, offset = clip_entries(entries, 5.0, 9.0)
        self.assertEqual([e.name for e in kept], ["stream-2.ts", "stream-3.ts", "stream-4.ts"])
        self.assertEqual(offset, 1.0)


class FakeHls:
    """What ffmpeg leaves in the HLS folder: a master playlist, per variant a window of
    ``window`` segments (older ones deleted) and its playlist."""

    def __init__(self, folder: Path, variants: int = 2, window: int = 3):
        self.folder = folder
        self.variants = variants
        self.window = window
        self.numbers: list[int] = []
        self.joins: set[int] = set()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stream.m3u8").write_text(MASTER)
        (folder / "thumbnail.jpg").write_bytes(b"\xff\xd8jpeg")
        for v in range(variants):
            (folder / str(v)).mkdir(exist_ok=True)

    def segment(self, number: int, size: int = 1000) -> None:
        self.numbers.append(number)
        gone = self.numbers[: -self.window]
        self.numbers = self.numbers[-self.window :]
        for v in range(self.variants):
            d = self.folder / str(v)
            (d / f"stream-{number}.ts").write_bytes(bytes([v]) * size)
            for old in gone:
                (d / f"stream-{old}.ts").unlink()
            lines = [
                "#EXTM3U",
                "#EXT-X-TARGETDURATION:2",
                f"#EXT-X-MEDIA-SEQUENCE:{self.numbers[0]}",
            ]
            for n in self.numbers:
                lines += ["#EXTINF:2.000000,", f"stream-{n}.ts"]
            (d / "stream.m3u8").write_text("\n".join(lines) + "\n")
            (d / "discontinuities").write_text("".join(f"{j}\n" for j in sorted(self.joins)))


class RecorderTests(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(self.mktemp())
        # Segment numbers here are small, as a broadcast's would be at this Unix time.
        self.clock = Clock()
        self.hls = FakeHls(self.tmp / "hls")
        self.root = self.tmp / "recordings"
        self.config = {"enabled": True, "variants": "all", "maxDays": 0, "maxGiB": 0,
                       "minFreeGiB": 1}  # fmt: skip
        self.free = 100 * GIB
        self.recorder = self.make_recorder()

    def make_recorder(self) -> Recorder:
        recorder = Recorder(
            self.root,
            self.hls.folder,
            lambda: self.config,
            lambda: [{"videoBitrate": 3000}, {"videoBitrate": 800}],
            lambda: "Hello",
            lambda: 7,
            inline,
            self.clock,
            free_bytes=lambda path: self.free,
        )
        recorder.startService()
        self.addCleanup(lambda: recorder.running and recorder.stopService())
        return recorder

    def tick(self, seconds: float = 1.0) -> None:
        self.clock.advance(seconds)

    def playlist(self, recording_id: str, variant: str = "0") -> str:
        return (self.root / recording_id / variant / "stream.m3u8").read_text()

    def test_broadcast_becomes_a_vod(self) -> None:
        """Segments are kept although the live window deletes them; the result is a VOD
        of every segment, with its meta and thumbnail, sharing the live files' bytes."""
        self.recorder.on_stream(events.STREAM_STARTED, None)
        rid = str(int(self.clock.seconds()))
        for n in range(100, 110):
            self.hls.segment(n)
            self.tick()
        self.assertIn("#EXT-X-PLAYLIST-TYPE:EVENT", self.playlist(rid))
        live = self.hls.folder / "0" / "stream-109.ts"
        kept = self.root / rid / "0" / "stream-109.ts"
        self.assertEqual(os.stat(live).st_ino, os.stat(kept).st_ino)  # a link, not a copy
        self.recorder.on_stream(events.STREAM_STOPPED, None)
        for v in ("0", "1"):
            entries, _ = parse_media(self.playlist(rid, v))
            self.assertEqual([e.number for e in entries], list(range(100, 110)))
            self.assertTrue(self.playlist(rid, v).endswith("#EXT-X-ENDLIST\n"))
        meta = files.read_meta(str(self.root / rid))
        assert meta is not None
        self.assertEqual((meta.title, meta.duration, meta.peakViewers), ("Hello", 20.0, 7))
        self.assertIsNotNone(meta.endTime)
        self.assertEqual(meta.best, "0")
        self.assertEqual((self.root / rid / "stream.m3u8").read_text(), MASTER)
        self.assertTrue((self.root / rid / "thumbnail.jpg").exists())
        self.assertIsNone(self.recorder.session)

    def test_the_previous_broadcasts_segments_are_not_taken(self) -> None:
        """Until the transcoder clears the live folder it still lists the last broadcast,
        numbered from that one's start: the new recording starts at its own numbers."""
        for n in (1, 2, 3):
            self.hls.segment(n)
        self.tick(500)
        self.recorder.on_stream(events.STREAM_STARTED, None)
        rid = str(int(self.clock.seconds()))
        self.tick()
        for n in (500, 501):
            self.hls.segment(n)
        self.tick()
        self.recorder.on_stream(events.STREAM_STOPPED, None)
        entries, _ = parse_media(self.playlist(rid))
        self.assertEqual([e.number for e in entries], [500, 501])

    def test_highest_only(self) -> None:
        self.config["variants"] = "highest"
        self.recorder.on_stream(events.STREAM_STARTED, None)
        rid = str(int(self.clock.seconds()))
        self.hls.segment(1)
        self.tick()
        self.recorder.on_stream(events.STREAM_STOPPED, None)
        self.assertEqual(sorted(os.listdir(self.root / rid / "0")), ["stream-1.ts", "stream.m3u8"])
        self.assertFalse((self.root / rid / "1").exists())
        master = (self.root / rid / "stream.m3u8").read_text()
        self.assertIn("0/stream.m3u8", master)
        self.assertNotIn("1/stream.m3u8", master)

    def test_reconnect_is_one_recording_with_a_discontinuity(self) -> None:
        """The transcoder's join file marks where a restarted ffmpeg appended."""
        self.recorder.on_stream(events.STREAM_STARTED, None)
        rid = str(int(self.clock.seconds()))
        for n in (1, 2, 3):
            self.hls.segment(n)
        self.tick()
        self.hls.joins.add(4)  # the publisher left and came back (no STREAM_STOPPED)
        for n in (4, 5):
            self.hls.segment(n)
        self.tick()
        self.recorder.on_stream(events.STREAM_STOPPED, None)
        entries, _ = parse_media(self.playlist(rid))
        self.assertEqual([e.number for e in entries], [1, 2, 3, 4, 5])
        self.assertEqual([e.discontinuity for e in entries], [False] * 3 + [True, False])
        self.assertEqual(os.listdir(self.root), [rid])

    def test_off_records_nothing(self) -> None:
        self.config["enabled"] = False
        self.recorder.on_stream(events.STREAM_STARTED, None)
        self.hls.segment(1)
        self.tick()
        self.recorder.on_stream(events.STREAM_STOPPED, None)
        self.assertFalse(self.root.exists() and os.listdir(self.root))

    def test_turning_recording_off_ends_the_open_recording(self) -> None:
        self.recorder.on_stream(events.STREAM_STARTED, None)
        rid = str(int(self.clock.seconds()))
        self.hls.segment(1)
        self.tick()
        self.config["enabled"] = False
        self.hls.segment(2)
        self.tick()
        self.assertIsNone(self.recorder.session)
        self.assertTrue(self.playlist(rid).endswith("#EXT-X-ENDLIST\n"))

    def test_disk_floor_stops_recording_not_the_stream(self) -> None:
        self.recorder.on_stream(events.STREAM_STARTED, None)
        rid = str(int(self.clock.seconds()))
        self.hls.segment(1)
        self.tick()
        self.free = GIB // 2  # below the 1 GiB floor
        self.hls.segment(2)
        self.tick()
        self.assertIsNone(self.recorder.session)
        self.assertTrue(self.recorder.status()["diskFull"])
        meta = files.read_meta(str(self.root / rid))
        assert meta is not None
        self.assertEqual(meta.stopped, "diskFull")
        entries, _ = parse_media(self.playlist(rid))
        self.assertEqual([e.number for e in entries], [1])  # nothing after the floor
        self.assertTrue(self.playlist(rid).endswith("#EXT-X-ENDLIST\n"))
        # A broadcast starting below the floor is not recorded.
        self.recorder.on_stream(events.STREAM_STOPPED, None)
        self.tick(5)
        self.recorder.on_stream(events.STREAM_STARTED, None)
        self.assertIsNone(self.recorder.session)
        self.free = 10 * GIB
        self.tick()
        self.assertFalse(self.recorder.status()["diskFull"])

    def record(self, seconds: float) -> str:
        """One broadcast of one segment (numbered from its start, as the transcoder's)."""
        self.recorder.on_stream(events.STREAM_STARTED, None)
        rid = str(int(self.clock.seconds()))
        self.hls.segment(int(rid))
        self.tick(seconds)
        self.recorder.on_stream(events.STREAM_STOPPED, None)
        return rid

    def test_retention_on_a_fake_clock(self) -> None:
        """Recordings older than maxDays go when the clock passes; oldest first by size."""
        day = 86400.0
        first = self.record(10)
        self.tick(day)
        second = self.record(10)
        self.tick(day)
        third = self.record(10)
        self.assertEqual(sorted(os.listdir(self.root)), sorted([first, second, third]))
        self.config["maxDays"] = 1.5
        self.tick(600)  # the periodic retention pass
        self.assertEqual(sorted(os.listdir(self.root)), sorted([second, third]))
        self.tick(day)
        self.assertEqual(sorted(os.listdir(self.root)), [third])
        self.config["maxDays"] = 0
        fourth = self.record(10)
        size = files.read_meta(str(self.root / fourth)).size  # type: ignore[union-attr]
        self.config["maxGiB"] = (size + 1) / GIB
        self.tick(600)
        self.assertEqual(os.listdir(self.root), [fourth])

    def test_started_only_once_left_open_recordings_are_ended(self) -> None:
        """The web server starts after the recorder: until the recordings a killed run
        left open are ended, the recorder has not started (else the API lists them live)."""
        pending: list[tuple[Deferred, Any, tuple]] = []

        def blocking(fn: Any, *args: Any) -> Deferred:
            d: Deferred = Deferred()
            pending.append((d, fn, args))
            return d

        recorder = Recorder(
            self.root, self.hls.folder, lambda: self.config, list, str, int, blocking, self.clock
        )
        started = recorder.startService()
        self.addCleanup(recorder.stopService)
        self.assertNoResult(started)
        d, fn, args = pending.pop(0)
        d.callback(fn(*args))
        self.successResultOf(started)

    def test_a_killed_run_is_ended_at_start(self) -> None:
        """A recording left open (the daemon was killed) is ended from what is on disk."""
        self.recorder.on_stream(events.STREAM_STARTED, None)
        rid = str(int(self.clock.seconds()))
        for n in (1, 2):
            self.hls.segment(n)
        self.tick()
        # The daemon dies: no STREAM_STOPPED, no stopService; ffmpeg finished one more.
        self.recorder.session = None
        self.recorder.stopService()
        self.hls.segment(3)
        self.make_recorder()
        meta = files.read_meta(str(self.root / rid))
        assert meta is not None
        self.assertFalse(meta.live)
        self.assertEqual(meta.duration, 6.0)
        entries, _ = parse_media(self.playlist(rid))
        self.assertEqual([e.number for e in entries], [1, 2, 3])
        self.assertTrue(self.playlist(rid).endswith("#EXT-X-ENDLIST\n"))


class ApiTests(unittest.TestCase):
    """The API on a context with one finished recording."""

    def setUp(self) -> None:
        self.tmp = Path(self.mktemp())
        self.ctx = make_context(self.tmp)
        root = self.tmp / "recordings"
        self.rid = "1700000000"
        meta = Meta(self.rid, "First", 1_700_000_000.0, variants=["0"])
        session = files.open_session(str(root), meta)
        seg = root / self.rid / "0" / "stream-1.ts"
        seg.write_bytes(b"x" * 10)
        session.tracks["0"].entries.append(Entry("stream-1.ts", 2.0))
        files.close_session(None, session, 1_700_000_010.0)
        self.ctx.recordings = Library(root, inline, self.ctx.reactor, lambda: None)
        self.client = Client(self.ctx)

    def test_list_and_get(self) -> None:
        code, body, _ = self.client.get("/api/recordings")
        self.assertEqual(code, 200)
        self.assertEqual([r["id"] for r in body], [self.rid])
        code, body, _ = self.client.get(f"/api/recordings/{self.rid}")
        self.assertEqual(code, 200)
        self.assertEqual(body["title"], "First")
        self.assertEqual(body["duration"], 2.0)
        self.assertEqual(body["playlist"], f"/recordings/{self.rid}/stream.m3u8")
        self.assertEqual(body["clips"], [])

    async def test_media_and_pages_are_served(self) -> None:
        """Static files cross a real loopback socket (``LiveServer``)."""
        server = LiveServer(self.ctx)
        self.addCleanup(server.stop)
        code, body, response = await server.request("GET", f"/recordings/{self.rid}/0/stream.m3u8")
        self.assertEqual(code, 200)
        self.assertIn(b"stream-1.ts", body)
        kind = response.headers.getRawHeaders("content-type")[0]
        self.assertEqual(kind, "application/vnd.apple.mpegurl")
        code, body, _ = await server.request("GET", f"/recordings/{self.rid}/0/stream-1.ts")
        self.assertEqual((code, body), (200, b"x" * 10))
        # A low-latency broadcast's recording: fMP4 segments and their init sections.
        folder = self.tmp / "recordings" / self.rid / "0"
        (folder / "seg1700000001.m4s").write_bytes(b"moof")
        (folder / "init0.mp4").write_bytes(b"moov")
        for name, data in (("seg1700000001.m4s", b"moof"), ("init0.mp4", b"moov")):
            path = f"/recordings/{self.rid}/0/{name}"
            code, body, response = await server.request("GET", path)
            self.assertEqual((code, body), (200, data), name)
            self.assertEqual(response.headers.getRawHeaders("content-type"), ["video/mp4"])
        for page in (f"/recordings/{self.rid}", "/recordings/", "/recordings/clips/1-1"):
            code, body, _ = await server.request("GET", page)
            self.assertEqual(code, 200, page)
            self.assertIn(b"Past broadcasts", body)
        code, body, _ = await server.request("GET", "/recordings/recordings.js")
        self.assertEqual(code, 200)
        for path in (
            "/recordings/1234/0/stream.m3u8",
            f"/recordings/{self.rid}/../owncast.db",
            f"/recordings/{self.rid}/recording.json",
            "/recordings/index.htm",
        ):
            code, _, _ = await server.request("GET", path)
            self.assertEqual(code, 404, path)

    def test_unknown_and_path_like_ids(self) -> None:
        for path in ("/api/recordings/1234", "/api/recordings/..%2F..%2Fowncast.db",
                     "/api/recordings/abc", "/api/recordings/clips/1-1"):  # fmt: skip
            code, body, _ = self.client.get(path)
            self.assertEqual(code, 404, path)
            self.assertIs(body["success"], False)

    def test_rename_and_delete_need_the_owner(self) -> None:
        path = "/api/admin/recordings/title"
        code, _, _ = self.client.post(path, {"id": self.rid, "title": "New"})
        self.assertEqual(code, 401)
        for bad in ({"id": self.rid, "title": ""}, {"id": self.rid, "title": 5}, {"id": self.rid},
                    [1], {"id": 5, "title": "x"}, {"id": "42", "title": "x"}):  # fmt: skip
            code, body = self.client.admin_post(path, bad)
            self.assertIn(code, (400, 404), bad)
            self.assertIs(body["success"], False)
        code, body = self.client.admin_post(path, {"id": self.rid, "title": " New name "})
        self.assertEqual((code, body["title"]), (200, "New name"))
        overview = self.client.admin_get("/api/admin/recordings")
        self.assertEqual([r["title"] for r in overview["recordings"]], ["New name"])
        self.assertEqual(overview["usedBytes"], overview["recordings"][0]["size"])
        self.assertIs(overview["diskFull"], False)
        code, _, _ = self.client.post("/api/admin/recordings/delete", {"id": self.rid})
        self.assertEqual(code, 401)
        for bad_id, expected in (("999", 404), ("../" + self.rid, 400)):  # unknown; malformed
            code, _ = self.client.admin_post("/api/admin/recordings/delete", {"id": bad_id})
            self.assertEqual(code, expected)
        self.assertTrue((self.tmp / "recordings" / self.rid).exists())
        code, _ = self.client.admin_post("/api/admin/recordings/delete", {"id": self.rid})
        self.assertEqual(code, 200)
        self.assertEqual(self.client.get("/api/recordings")[1], [])
        self.assertFalse((self.tmp / "recordings" / self.rid).exists())

    def test_bad_clips_change_nothing(self) -> None:
        path = "/api/admin/recordings/clip"
        rid = self.rid
        for bad in ({"id": rid, "start": 1, "end": 0}, {"id": rid, "start": 0, "end": 500},
                    {"id": rid, "start": "a", "end": 1}, {"id": rid, "start": 0},
                    {"id": rid, "start": 5, "end": 6}, {"id": "1/..", "start": 0, "end": 1},
                    {"id": "77", "start": 0, "end": 1}):  # fmt: skip
            code, body = self.client.admin_post(path, bad)
            self.assertIn(code, (400, 404), bad)
            self.assertIs(body["success"], False)
        code, _, _ = self.client.post(path, {"id": rid, "start": 0, "end": 1})
        self.assertEqual(code, 401)
        self.assertEqual(self.client.get(f"/api/recordings/{self.rid}")[1]["clips"], [])
        self.assertFalse((self.tmp / "recordings" / self.rid / "clips").exists())

    def test_bots_make_clips_with_an_admin_token(self) -> None:
        """The integrations route needs HAS_ADMIN_ACCESS; it is validated like the rest."""
        path = "/api/integrations/recordings/clip"
        code, _, _ = self.client.post(path, {"start": 0, "end": 1})
        self.assertEqual(code, 401)
        weak = run(self.ctx.tokens.create("bot", ["CAN_SEND_MESSAGES"], self.ctx.now()))
        strong = run(self.ctx.tokens.create("admin bot", ["HAS_ADMIN_ACCESS"], self.ctx.now()))
        code, _, _ = self.client.post(
            path, {"start": 0, "end": 1}, headers={"Authorization": [f"Bearer {weak['token']}"]}
        )
        self.assertEqual(code, 403)
        bearer = {"Authorization": [f"Bearer {strong['token']}"]}
        code, body, _ = self.client.post(path, {"start": 1, "end": 0}, headers=bearer)
        self.assertEqual((code, body["message"]), (400, "end must be after start"))

    def test_chat_replay_offsets(self) -> None:
        """Messages sent during the broadcast, with seconds from its start."""
        store = self.ctx.store
        for when, body in ((1_699_999_990.0, "before"), (1_700_000_004.5, "during"),
                           (1_700_000_020.0, "after")):  # fmt: skip
            record = {"id": body, "type": "CHAT", "author": "ann", "body": body,
                      "visible": True, "timestamp": when}  # fmt: skip
            store.add_message(record)
        code, body, _ = self.client.get(f"/api/recordings/{self.rid}/chat")
        self.assertEqual(code, 200)
        self.assertEqual([(m["body"], m["offset"]) for m in body], [("during", 4.5)])

    def test_settings_are_validated(self) -> None:
        code, body = self.client.admin_post(
            "/api/admin/config/recordings",
            {"value": {"enabled": True, "variants": "highest", "maxDays": 7, "maxGiB": 50}},
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(self.ctx.settings["recordings"]["maxDays"], 7)
        for bad in ({"enabled": "yes"}, {"variants": "some"}, {"maxGiB": -1}, {"nope": 1}, 3):
            code, body = self.client.admin_post("/api/admin/config/recordings", {"value": bad})
            self.assertEqual(code, 400, bad)
        self.assertEqual(json.loads(json.dumps(self.ctx.settings["recordings"]))["maxGiB"], 50)


class _Cutter(Library):
    """The library with ffmpeg's cut stood in for: it notes each clip asked for
    (``tests/test_browser_recordings.py`` makes real ones)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.made: list[tuple[str, float, float, str]] = []

    async def make_clip(self, meta: Meta, start: float, end: float, title: str) -> dict:
        self.made.append((meta.id, start, end, title))
        number = len(self.made)
        return {"id": f"{meta.id}-{number}", "recordingId": meta.id, "title": title,
                "start": start, "end": end, "duration": end - start, "createdAt": 0.0,
                "size": 1}  # fmt: skip


class ViewerClipTests(unittest.TestCase):
    """``POST /api/recordings/clip``: viewers' clips, behind the ``viewerClips`` setting,
    this server's own pages and limits per address and overall, on a fake clock."""

    path = "/api/recordings/clip"

    def setUp(self) -> None:
        ApiTests.setUp(self)  # type: ignore[arg-type]
        self.clock = self.ctx.reactor
        self.library = _Cutter(self.tmp / "recordings", inline, self.clock, lambda: None)
        self.ctx.recordings = self.library
        # Requests name their client, as behind a reverse proxy (--trustedproxy).
        self.ctx.throttle.proxies = TrustedProxies(["127.0.0.1"])

    def clip(self, body: object, address: str = "203.0.113.7", **headers: str) -> tuple:
        sent = {"X-Forwarded-For": [address], **{k: [v] for k, v in headers.items()}}
        return self.client.post(self.path, body, headers=sent)

    def test_a_viewer_makes_a_clip_then_waits(self) -> None:
        """No credentials; the owner's answer; a second clip within 30 s is a 429 saying
        how long to wait, and another address is not held up."""
        code, body, _ = self.clip({"id": self.rid, "start": 0, "end": 1.5, "title": "Wow"})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["url"], f"/recordings/clips/{self.rid}-1")
        self.assertEqual(body["download"], f"/recordings/clips/{self.rid}-1.mp4")
        self.assertEqual(self.library.made, [(self.rid, 0.0, 1.5, "Wow")])
        self.clock.advance(10)
        code, body, response = self.clip({"start": 0, "end": 1})  # no id: the latest
        self.assertEqual(code, 429, body)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["21"])
        self.assertIs(body["success"], False)
        code, _, _ = self.clip({"start": 0, "end": 1}, address="198.51.100.1")
        self.assertEqual(code, 200)
        self.clock.advance(20)
        code, body, _ = self.clip({"start": 0, "end": 1})
        self.assertEqual((code, body["title"]), (200, "First"))
        self.assertEqual(len(self.library.made), 3)

    def test_ten_an_hour_per_address(self) -> None:
        """An IPv6 /64 is one address; the eleventh waits for the first to be an hour old."""
        for n in range(10):
            code, body, _ = self.clip({"start": 0, "end": 1}, address=f"2001:db8::{n + 1}")
            self.assertEqual(code, 200, (n, body))
            self.clock.advance(30)
        code, _, response = self.clip({"start": 0, "end": 1}, address="2001:db8::ff")
        self.assertEqual(code, 429)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["3301"])
        self.clock.advance(3300)
        code, _, _ = self.clip({"start": 0, "end": 1}, address="2001:db8::ff")
        self.assertEqual(code, 200)

    def test_sixty_an_hour_from_everyone(self) -> None:
        for n in range(60):
            code, _, _ = self.clip({"start": 0, "end": 1}, address=f"192.0.2.{n}")
            self.assertEqual(code, 200, n)
        code, body, response = self.clip({"start": 0, "end": 1}, address="192.0.2.200")
        self.assertEqual(code, 429, body)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["3601"])
        # The owner and bots are not counted, nor limited.
        for _ in range(3):
            code, _ = self.client.admin_post("/api/admin/recordings/clip", {"start": 0, "end": 1})
            self.assertEqual(code, 200)
        self.assertEqual(len(self.library.made), 63)

    def test_off_is_403_and_the_page_is_told(self) -> None:
        code, body, _ = self.client.get(f"/api/recordings/{self.rid}")
        self.assertIs(body["viewerClips"], True)
        value = {"enabled": True, "viewerClips": False}
        code, body = self.client.admin_post("/api/admin/config/recordings", {"value": value})
        self.assertEqual(code, 200, body)
        code, body, _ = self.clip({"id": self.rid, "start": 0, "end": 1})
        self.assertEqual(code, 403)
        self.assertIs(body["success"], False)
        self.assertEqual(body["message"], "clips by viewers are turned off on this server")
        self.assertIs(self.client.get(f"/api/recordings/{self.rid}")[1]["viewerClips"], False)
        code, _ = self.client.admin_post("/api/admin/recordings/clip", {"start": 0, "end": 1})
        self.assertEqual(code, 200)  # the owner still may
        self.assertEqual(len(self.library.made), 1)

    def test_another_sites_page_is_refused(self) -> None:
        """Origin or Referer naming another site: 403; a form's content type: 415."""
        body = {"id": self.rid, "start": 0, "end": 1}
        code, _, _ = self.clip(body, Origin="https://evil.example")
        self.assertEqual(code, 403)
        code, _, _ = self.clip(body, Referer="https://evil.example/page")
        self.assertEqual(code, 403)
        sent = {"X-Forwarded-For": ["203.0.113.7"], "Content-Type": ["text/plain"]}
        code, _, _ = self.client.request("POST", self.path, raw=json.dumps(body).encode(),
                                         headers=sent)  # fmt: skip
        self.assertEqual(code, 415)
        self.assertEqual(self.library.made, [])
        code, _, _ = self.clip(body, Origin="http://owncast.test")  # this server's own page
        self.assertEqual(code, 200)

    def test_bad_requests_change_and_count_nothing(self) -> None:
        rid = self.rid
        for bad in ({"id": rid, "start": 1, "end": 0}, {"id": rid, "start": 0, "end": 500},
                    {"id": rid, "start": "a", "end": 1}, {"id": rid, "start": 0},
                    {"id": rid, "start": 5, "end": 6}, {"id": "1/..", "start": 0, "end": 1},
                    {"id": rid, "start": 0, "end": 1, "title": ""}, [1],
                    {"id": "77", "start": 0, "end": 1}):  # fmt: skip
            code, body, _ = self.clip(bad)
            self.assertIn(code, (400, 404), bad)
            self.assertIs(body["success"], False)
        self.assertEqual(self.clip({"id": "1/..", "start": 0, "end": 1})[0], 400)
        self.assertEqual(self.clip({"id": "77", "start": 0, "end": 1})[0], 404)
        self.assertEqual(self.library.made, [])
        code, _, _ = self.clip({"id": rid, "start": 0, "end": 1})
        self.assertEqual(code, 200)  # none of them counted

    def test_the_setting_is_validated(self) -> None:
        self.assertIs(self.ctx.settings["recordings"]["viewerClips"], True)
        path = "/api/admin/config/recordings"
        code, _ = self.client.admin_post(path, {"value": {"viewerClips": "no"}})
        self.assertEqual(code, 400)
        self.assertIs(self.ctx.settings["recordings"]["viewerClips"], True)
