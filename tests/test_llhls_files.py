"""The low-latency output's complete segments on disk (``owncast.llhls.disk``), fed by the
real ffmpeg's fMP4: what the recorder keeps (one recording through a reconnect, which
ffmpeg reads from start to end), what segment storage uploads, and the LL-HLS playlist
naming a stored segment by its copy's URL while its parts stay here."""

from __future__ import annotations

import os
import re
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from owncast.core import events
from owncast.llhls import disk
from owncast.llhls.output import WINDOW, LlOutput
from owncast.llhls.rendition import Rendition
from owncast.recordings.recorder import Recorder
from owncast.recordings.vod import Entry, parse_media, render_media
from owncast.segments.publisher import SegmentPublisher, list_segments
from owncast.transcode.output import ended_playlist, finish_output
from tests.fakes import inline
from tests.test_llhls import FFMPEG, sample

_TIME = re.compile(r"time=([0-9]+):([0-9]+):([0-9.]+)")
START = 1_700_000_000


async def read_to_end(playlist: str) -> tuple[int, float, str]:
    """ffmpeg decoding ``playlist`` (a file): its exit code, the media time it reached."""
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-allowed_extensions", "ALL",
            "-i", playlist, "-f", "null", "-"]  # fmt: skip
    _, err, code = await getProcessOutputAndValue(argv[0], argv[1:], reactor=reactor)
    text = err.decode("utf-8", "replace")
    found = _TIME.findall(text)
    h, m, s = found[-1] if found else ("0", "0", "0")
    return code, int(h) * 3600 + int(m) * 60 + float(s), text


def variant_entries(folder: Path) -> list[Entry]:
    return parse_media((folder / "stream.m3u8").read_text())[0]


class DiskTests(unittest.TestCase):
    def setUp(self) -> None:
        self.hls = Path(self.mktemp())
        self.output = LlOutput(self.hls, inline)

    async def test_complete_segments_and_their_init_land_on_disk(self) -> None:
        """Each complete segment is a file named by its media sequence number (from the
        start number), listed in a plain playlist with its EXT-X-MAP; files that left the
        window go, and the master lists every variant."""
        self.output.begin([{}, {}], fresh=True, start_number=START)
        data = await sample(20)
        for n in (0, 1):
            self.output.feed(n, data)
        rendition = self.output.renditions[0]
        folder = self.hls / "0"
        entries = variant_entries(folder)
        self.assertEqual([e.number for e in entries], [s.msn for s in rendition.segments])
        self.assertEqual(len(entries), WINDOW)
        self.assertGreater(entries[0].number, START)  # older ones left the window
        self.assertFalse((folder / f"seg{START}.m4s").exists())
        self.assertEqual({e.init for e in entries}, {"init0.mp4"})
        self.assertEqual((folder / "init0.mp4").read_bytes(), rendition.inits[0])
        names = sorted(p.name for p in folder.iterdir())
        self.assertEqual(names, sorted(["init0.mp4", "stream.m3u8", *(e.name for e in entries)]))
        last = rendition.segments[-1]
        self.assertEqual((folder / f"seg{last.msn}.m4s").read_bytes(), last.data)
        master = (self.hls / "stream.m3u8").read_text()
        self.assertIn("0/stream.m3u8", master)
        self.assertIn("1/stream.m3u8", master)
        self.assertEqual(list_segments(str(self.hls))[-1], f"hls/1/seg{last.msn}.m4s")

    async def test_a_restart_goes_on_after_a_discontinuity_and_ends_readable(self) -> None:
        """A new ffmpeg (a reconnect) continues the numbers after a discontinuity with its
        own init section; once ended, the playlist says so and ffmpeg reads it whole."""
        self.output.begin([{}], fresh=True, start_number=START)
        self.output.feed(0, await sample(3))
        self.output.begin([{}], fresh=False, start_number=0)
        self.output.feed(0, await sample(4))
        await self.output.end()
        folder = self.hls / "0"
        text = (folder / "stream.m3u8").read_text()
        self.assertTrue(text.endswith("#EXT-X-ENDLIST\n"))
        entries = variant_entries(folder)
        numbers = [e.number for e in entries]
        self.assertEqual(numbers, list(range(START, START + len(entries))))
        joins = [e for e in entries if e.discontinuity]
        self.assertEqual(len(joins), 1)
        self.assertEqual(joins[0].init, "init1.mp4")
        self.assertEqual({e.init for e in entries}, {"init0.mp4", "init1.mp4"})
        self.assertEqual(ended_playlist(text, {e.name for e in entries}), text)
        code, reached, err = await read_to_end(str(folder / "stream.m3u8"))
        self.assertEqual(code, 0, err[-2000:])
        self.assertLessEqual(abs(reached - sum(e.duration for e in entries)), 0.5)

    async def test_a_new_broadcast_never_reuses_a_number(self) -> None:
        """Two broadcasts started within the same second: the second numbers on."""
        self.output.begin([{}], fresh=True, start_number=START)
        self.output.feed(0, await sample(3))
        await self.output.end()
        last = self.output.renditions[0].segments[-1].msn
        self.output.begin([{}], fresh=True, start_number=START)
        self.assertEqual(self.output.renditions[0].open.msn, last + 1)

    def test_nothing_is_written_without_a_directory(self) -> None:
        output = LlOutput()
        output.begin([{}], fresh=True, start_number=START)
        self.assertTrue(output.end().called)

    def test_finishing_the_output_keeps_the_init_of_a_missing_head(self) -> None:
        """``finish_output`` drops segments that are gone; the first one kept gets the
        EXT-X-MAP of those dropped before it."""
        text = disk.playlist_text(
            [_Seg(5, 0), _Seg(6, 0), _Seg(7, 1, True)], target=1, discontinuities=0, ended=False
        )
        folder = self.hls / "0"
        folder.mkdir(parents=True)
        (folder / "stream.m3u8").write_text(text)
        for name in ("seg6.m4s", "seg7.m4s", "init0.mp4", "init1.mp4"):
            (folder / name).write_bytes(b"x")
        finish_output(str(self.hls))
        entries, _ = parse_media((folder / "stream.m3u8").read_text())
        self.assertEqual(
            entries,
            [Entry("seg6.m4s", 1.0, False, "init0.mp4"), Entry("seg7.m4s", 1.0, True, "init1.mp4")],
        )


class RenditionHookTests(unittest.TestCase):
    async def test_numbers_hooks_and_uris(self) -> None:
        """A rendition numbers segments from ``first_msn`` and inits from ``first_init``,
        tells ``on_segment`` of each complete one, and lists it under ``segment_uri``."""
        rendition = Rendition(1.0, 0.25, 6, first_msn=START, first_init=3)
        done: list[int] = []
        rendition.on_segment = lambda s: done.append(s.msn)
        rendition.segment_uri = lambda msn: f"https://cdn.example/seg{msn}.m4s"
        rendition.feed(await sample(3))
        self.assertEqual(list(rendition.inits), [3])
        self.assertEqual(done, [s.msn for s in rendition.segments])
        self.assertEqual(done[0], START)
        text = rendition.playlist()
        self.assertIn(f"\nhttps://cdn.example/seg{START}.m4s\n", text)
        self.assertIn('#EXT-X-MAP:URI="init3.mp4"', text)
        self.assertIn(f"#EXT-X-MEDIA-SEQUENCE:{START}", text)


class _Seg:
    def __init__(self, msn: int, init: int, discontinuity: bool = False) -> None:
        self.msn, self.init, self.discontinuity, self.duration = msn, init, discontinuity, 1.0


class VodTests(unittest.TestCase):
    def test_fmp4_entries_keep_their_init_through_a_vod(self) -> None:
        live = (
            '#EXTM3U\n#EXT-X-MAP:URI="init0.mp4"\n#EXTINF:1.0,\nseg7.m4s\n'
            '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init1.mp4"\n#EXTINF:0.5,\nseg8.m4s\n'
            '#EXT-X-MAP:URI="../x.mp4"\n#EXTINF:1.0,\nseg9.m4s\n'
        )
        entries, _ = parse_media(live)
        self.assertEqual(
            entries,
            [Entry("seg7.m4s", 1.0, False, "init0.mp4"), Entry("seg8.m4s", 0.5, True, "init1.mp4")],
        )
        self.assertEqual([e.number for e in entries], [7, 8])
        vod = render_media(entries, ended=True)
        self.assertIn("#EXT-X-VERSION:7", vod)
        self.assertEqual(vod.count("#EXT-X-MAP"), 2)
        self.assertEqual(parse_media(vod)[0], entries)


class _Storage:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put(self, key: str, data: bytes, content_type: str, cache: str) -> Deferred:
        self.objects[key] = (data, content_type)
        return succeed(None)

    def delete(self, key: str) -> Deferred:
        self.objects.pop(key, None)
        return succeed(None)

    def url(self, key: str) -> str:
        return "https://s3.example/bucket/" + key


class StorageTests(unittest.TestCase):
    async def test_stored_segments_are_named_by_url_and_parts_stay_here(self) -> None:
        """Segment storage uploads the fMP4 segments (as video/mp4); the LL-HLS playlist
        then names each stored complete segment by its copy's URL, while its parts, the
        open segment and the init section are still fetched from here."""
        hls = Path(self.mktemp())
        output = LlOutput(hls, inline)
        changed: list[int] = []
        publisher = SegmentPublisher(
            hls, lambda: {"enabled": True}, lambda c: storage, inline, Clock(), lambda n: None
        )
        storage = _Storage()
        output.locate = publisher.url_of
        output.begin([{}], fresh=True, start_number=START)
        output.renditions[0].on_change = lambda: changed.append(1)
        data = await sample(5)
        output.feed(0, data[: len(data) // 2])
        await publisher.scan()
        output.feed(0, data[len(data) // 2 :])
        rendition = output.renditions[0]
        stored = [k for k in storage.objects if k.endswith(".m4s")]
        self.assertGreaterEqual(len(stored), 1)
        self.assertEqual([k for k in storage.objects if "init" in k or "part" in k], [])
        self.assertEqual(storage.objects[stored[0]][1], "video/mp4")
        before, version = len(changed), rendition.version
        output.changed(0)
        self.assertEqual(len(changed), before + 1)
        self.assertGreater(rendition.version, version)
        text = rendition.playlist()
        for key in stored:
            self.assertIn("\nhttps://s3.example/bucket/" + key + "\n", text)
        later = rendition.segments[-1].msn
        self.assertIn(f"\nseg{later}.m4s\n", text)
        self.assertNotIn("s3.example/bucket/hls/0/part", text)
        self.assertRegex(text, r'#EXT-X-MAP:URI="init0\.mp4"')
        self.assertRegex(text, r'#EXT-X-PART:[^\n]*URI="part\d+\.m4s"')


class RecorderTests(unittest.TestCase):
    timeout = 60

    async def test_a_low_latency_broadcast_with_a_reconnect_is_one_readable_recording(
        self,
    ) -> None:
        """The recorder keeps the low-latency segments and init sections as the window
        moves on; a reconnect stays one recording; ffmpeg reads the VOD to its end."""
        tmp = Path(self.mktemp())
        hls, root = tmp / "hls", tmp / "recordings"
        clock = Clock()
        clock.advance(START)
        config = {"enabled": True, "variants": "all", "maxDays": 0, "maxGiB": 0, "minFreeGiB": 0}
        recorder = Recorder(
            root, hls, lambda: config, lambda: [{}], lambda: "LL", lambda: 1, inline, clock
        )
        recorder.startService()
        output = LlOutput(hls, inline)
        recorder.on_stream(events.STREAM_STARTED, None)
        output.begin([{}], fresh=True, start_number=START)
        data = await sample(20)
        for at in range(0, len(data), len(data) // 8):
            output.feed(0, data[at : at + len(data) // 8])
            clock.advance(1)
        output.begin([{}], fresh=False, start_number=0)  # the publisher came back
        output.feed(0, await sample(3))
        await output.end()
        recorder.on_stream(events.STREAM_STOPPED, None)
        recorder.stopService()
        (rid,) = os.listdir(root)
        folder = root / rid / "0"
        entries = variant_entries(folder)
        self.assertGreater(len(entries), WINDOW)  # more than the live window ever held
        numbers = [e.number for e in entries]
        self.assertEqual(numbers, list(range(START, START + len(entries))))
        self.assertEqual([e.init for e in entries if e.discontinuity], ["init1.mp4"])
        self.assertTrue((folder / "init0.mp4").exists())
        self.assertTrue((folder / "init1.mp4").exists())
        code, reached, err = await read_to_end(str(folder / "stream.m3u8"))
        self.assertEqual(code, 0, err[-2000:])
        self.assertLessEqual(abs(reached - sum(e.duration for e in entries)), 0.5)
        self.assertLessEqual(abs(reached - 23), 1.0)
