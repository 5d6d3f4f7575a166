"""LL-HLS: the fMP4 box reader, the part/segment cutter and its playlists, and the HTTP
resource with blocking reload, fed by the real ffmpeg and read by real clients (treq,
ffmpeg, hls.js in the headless Chromium)."""

from __future__ import annotations

import random
import re
from typing import Any

import imageio_ffmpeg
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data, File

from owncast.http.llhls import LlHlsResource
from owncast.llhls.boxes import BoxReader, MalformedMP4Error, parse_moof, parse_moov
from owncast.llhls.rendition import Rendition
from tests.daemon import REPO_ROOT, start_daemon, wait_until
from tests.test_browser import ADMIN, KEY, VARIANTS, BrowserThread, publish, tmpdir

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
PART_TARGET = 0.25


def fmp4_output(size: str, pipe: str) -> list[str]:
    """One fMP4 output: H.264 with a keyframe every second, AAC, a fragment every 0.2 s."""
    return [
        "-map", "0:v", "-map", "1:a", "-s", size,
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-force_key_frames", "expr:gte(t,n_forced*1)", "-c:a", "aac",
        "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof",
        "-frag_duration", "200000", pipe,
    ]  # fmt: skip


def source(seconds: float, realtime: bool) -> list[str]:
    pace = ["-re"] if realtime else []
    return [
        FFMPEG, "-hide_banner", "-loglevel", "error", *pace,
        "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=24:duration={seconds}",
        *pace, "-f", "lavfi", "-i", f"sine=sample_rate=48000:duration={seconds}",
    ]  # fmt: skip


_samples: dict[int, bytes] = {}


async def sample(seconds: int = 3) -> bytes:
    """``seconds`` of fMP4 from the real ffmpeg, made once."""
    if seconds not in _samples:
        argv = source(seconds, False) + fmp4_output("320x180", "pipe:1")
        out, err, code = await getProcessOutputAndValue(argv[0], argv[1:], reactor=reactor)
        assert code == 0, err
        _samples[seconds] = out
    return _samples[seconds]


class BoxesTests(unittest.TestCase):
    async def test_fragments_of_real_ffmpeg(self) -> None:
        """The moov gives a video and an audio track; every moof has both, the video's
        first sample is a sync sample once a second, and durations add up."""
        boxes = BoxReader().feed(await sample())
        kinds = [k for k, _ in boxes]
        self.assertEqual(kinds[:2], [b"ftyp", b"moov"])
        tracks = parse_moov(boxes[1][1])
        self.assertEqual(sorted(t.handler for t in tracks.values()), [b"soun", b"vide"])
        video = next(t.track_id for t in tracks.values() if t.video)
        runs = [parse_moof(box, tracks) for kind, box in boxes if kind == b"moof"]
        self.assertGreater(len(runs), 10)
        syncs = [r[video].first_sync for r in runs]
        self.assertTrue(syncs[0])
        self.assertEqual(sum(syncs), 3)
        self.assertLess(abs(sum(r[video].duration for r in runs) - 3.0), 0.05)

    async def test_fuzzed_input_raises_only_malformed(self) -> None:
        """Mutated, truncated and random bytes raise MalformedMP4Error or pass, nothing else."""
        data = await sample()
        rng = random.Random(15)
        for _ in range(300):
            mutated = bytearray(data[: rng.randrange(100, 20_000)])
            for _ in range(rng.randrange(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            rendition = Rendition(1.0, PART_TARGET, 6)
            try:
                for at in range(0, len(mutated), 777):
                    rendition.feed(bytes(mutated[at : at + 777]))
            except MalformedMP4Error:
                pass


class RenditionTests(unittest.TestCase):
    async def test_parts_segments_and_playlist(self) -> None:
        """Segments open on independent parts and hold their parts' bytes; the playlist
        carries the LL-HLS tags."""
        rendition = Rendition(1.0, PART_TARGET, 6)
        data = await sample()
        for at in range(0, len(data), 1000):
            rendition.feed(data[at : at + 1000])
        self.assertIsNotNone(rendition.init)
        self.assertGreaterEqual(len(rendition.segments), 2)
        for segment in rendition.segments:
            self.assertTrue(segment.parts[0].independent)
            self.assertEqual(segment.data, b"".join(p.data for p in segment.parts))
        text = rendition.playlist()
        check_media_playlist(self, text)
        self.assertIn(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part{rendition.next_part}.m4s"', text)
        rendition.end()
        self.assertTrue(rendition.playlist().rstrip().endswith("#EXT-X-ENDLIST"))

    async def test_wait_fires_when_the_part_lands(self) -> None:
        """A blocking wait for the next part fires exactly when that part is added."""
        boxes = BoxReader().feed(await sample())
        rendition = Rendition(1.0, PART_TARGET, 6)
        rendition.feed(boxes[0][1] + boxes[1][1] + boxes[2][1] + boxes[3][1])
        fired: list[object] = []
        rendition.wait(0, 1).addCallback(fired.append)
        whole: list[object] = []
        rendition.wait(0, None).addCallback(whole.append)
        self.assertEqual(fired, [])
        rendition.feed(boxes[4][1])
        self.assertEqual(fired, [])  # a moof alone is not a part
        rendition.feed(boxes[5][1])
        self.assertEqual(fired, [None])
        self.assertEqual(whole, [])
        for _, box in boxes[6:]:
            rendition.feed(box)
        self.assertEqual(whole, [None])

    async def test_delta_update_skips_old_segments(self) -> None:
        """``skip`` replaces the segments older than CAN-SKIP-UNTIL with one EXT-X-SKIP."""
        rendition = Rendition(1.0, PART_TARGET, 30)
        rendition.feed(await sample(10))
        full, delta = rendition.playlist(), rendition.playlist(skip=True)
        skipped = int(re.search(r"#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)", delta).group(1))
        self.assertGreaterEqual(skipped, 1)
        self.assertEqual(delta.count("#EXTINF"), full.count("#EXTINF") - skipped)
        self.assertEqual(
            re.search(r"MEDIA-SEQUENCE:(\d+)", delta).group(1),
            re.search(r"MEDIA-SEQUENCE:(\d+)", full).group(1),
        )
        self.assertNotIn("seg0.m4s", delta)


def check_media_playlist(testcase: unittest.TestCase, text: str) -> None:
    """The LL-HLS tags of a media playlist, as RFC 8216bis writes them."""
    lines = text.splitlines()
    testcase.assertEqual(lines[0], "#EXTM3U")
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))
    control = re.search(r"#EXT-X-SERVER-CONTROL:(.*)", text).group(1)
    testcase.assertIn("CAN-BLOCK-RELOAD=YES", control)
    hold = float(re.search(r"PART-HOLD-BACK=([\d.]+)", control).group(1))
    part_target = float(re.search(r"#EXT-X-PART-INF:PART-TARGET=([\d.]+)", text).group(1))
    testcase.assertGreaterEqual(hold, 3 * part_target - 1e-6)
    testcase.assertRegex(text, r'#EXT-X-MAP:URI="init\d+\.mp4"')
    parts = re.findall(r"#EXT-X-PART:DURATION=([\d.]+),URI=\"part(\d+)\.m4s\"", text)
    testcase.assertTrue(parts)
    numbers = [int(n) for _, n in parts]
    testcase.assertEqual(numbers, list(range(numbers[0], numbers[0] + len(numbers))))
    for duration, _ in parts:
        testcase.assertLessEqual(float(duration), part_target + 0.05)
    for extinf in re.findall(r"#EXTINF:([\d.]+),", text):
        testcase.assertLessEqual(round(float(extinf)), target)


class _Fmp4Source(ProcessProtocol):
    """The real ffmpeg writing two fMP4 renditions to fds 1 and 3, in real time."""

    def __init__(self, renditions: list[Rendition]) -> None:
        self.renditions = renditions
        self.ended: Deferred[None] = Deferred()
        self.err = bytearray()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.err += data
        else:
            self.renditions[0 if fd == 1 else 1].feed(data)

    def processEnded(self, reason: Any) -> None:
        for r in self.renditions:
            r.end()
        self.ended.callback(None)


PAGE = b"""<!doctype html><video id="v" muted autoplay></video>
<script src="hls.min.js"></script><script>
window.parts = 0; window.fatal = [];
const hls = new Hls({ lowLatencyMode: LL });
hls.on(Hls.Events.FRAG_LOADED, (_, d) => { if (d.part) window.parts++; });
hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.fatal.push(d.details); });
hls.loadSource("SRC"); hls.attachMedia(document.getElementById("v"));
document.getElementById("v").play().catch(() => {});
</script>"""


class HttpTests(unittest.TestCase):
    timeout = 90

    async def setUp(self) -> None:
        self.renditions = [Rendition(1.0, PART_TARGET, 12) for _ in range(2)]
        self.live = True
        resource = LlHlsResource(
            reactor,
            lambda: self.renditions if self.live else [],
            lambda: [
                {"bandwidth": 400_000, "resolution": "320x180"},
                {"bandwidth": 150_000, "resolution": "160x90"},
            ],
        )
        root = Resource()
        root.putChild(b"ll", resource)
        page = Resource()
        page.putChild(b"hls.min.js", File(str(REPO_ROOT / "web" / "vendor" / "hls.min.js")))
        for name, ll, src in ((b"ll.html", b"true", b"/ll/stream.m3u8"),):
            page.putChild(name, Data(PAGE.replace(b"LL", ll).replace(b"SRC", src), "text/html"))
        root.putChild(b"page", page)
        self.port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"
        argv = source(40, True) + fmp4_output("320x180", "pipe:1") + fmp4_output("160x90", "pipe:3")
        self.source = _Fmp4Source(self.renditions)
        process = reactor.spawnProcess(
            self.source, argv[0], argv, env=None, childFDs={0: "w", 1: "r", 2: "r", 3: "r"}
        )

        async def stop() -> None:
            if process.pid is not None:
                process.signalProcess("KILL")
            await self.source.ended

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        await wait_until(lambda: len(self.renditions[1].segments) >= 1, 20, "a segment")

    async def get(self, path: str) -> tuple[int, bytes, Any]:
        response = await treq.get(self.base + path, persistent=False)
        return response.code, await response.content(), response.headers

    async def test_playlists_and_media(self) -> None:
        """The master lists both renditions; each media playlist validates and reports the
        other rendition; init, parts and segments are served, immutable."""
        code, body, _ = await self.get("/ll/stream.m3u8")
        self.assertEqual(code, 200)
        self.assertIn(b"0/stream.m3u8", body)
        self.assertIn(b"1/stream.m3u8", body)
        for n in (0, 1):
            code, body, headers = await self.get(f"/ll/{n}/stream.m3u8")
            self.assertEqual(code, 200)
            self.assertEqual(headers.getRawHeaders("cache-control"), ["no-cache"])
            text = body.decode()
            check_media_playlist(self, text)
            self.assertRegex(
                text, rf'#EXT-X-RENDITION-REPORT:URI="../{1 - n}/stream.m3u8",LAST-MSN=\d+'
            )
            part = re.findall(r'URI="(part\d+\.m4s)"', text)[0]
            segment = re.findall(r"^(seg\d+\.m4s)$", text, re.M)[0]
            for name in ("init0.mp4", part, segment):
                code, data, headers = await self.get(f"/ll/{n}/{name}")
                self.assertEqual(code, 200, name)
                self.assertTrue(data)
                self.assertIn("immutable", headers.getRawHeaders("cache-control")[0])
        for bad in ("/ll/2/stream.m3u8", "/ll/0/seg99999.m4s", "/ll/0/../x", "/ll/0/a.ts"):
            self.assertEqual((await self.get(bad))[0], 404, bad)
        for bad in ("?_HLS_msn=x", "?_HLS_part=1", "?_HLS_msn=99999"):
            code, _, _ = await self.get("/ll/0/stream.m3u8" + bad)
            self.assertEqual(code, 400, bad)

    async def test_blocking_reload_and_preload_hint(self) -> None:
        """A request for the next part is answered only once that part exists, with a
        playlist that lists it; the preload-hinted part is held until it lands."""
        rendition = self.renditions[0]
        msn, part = rendition.open.msn, len(rendition.open.parts)
        hinted = rendition.next_part
        blocked = treq.get(
            f"{self.base}/ll/0/stream.m3u8?_HLS_msn={msn}&_HLS_part={part}", persistent=False
        )
        held = treq.get(f"{self.base}/ll/0/part{hinted}.m4s", persistent=False)
        response = await blocked
        text = (await response.content()).decode()
        self.assertTrue(rendition.has(msn, part))
        self.assertIn(f'URI="part{hinted}.m4s"', text)
        self.assertIn("max-age", response.headers.getRawHeaders("cache-control")[0])
        response = await held
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), rendition.part(hinted).data)
        # A whole segment: answered once segment msn + 1 is complete.
        response = await treq.get(
            f"{self.base}/ll/0/stream.m3u8?_HLS_msn={msn + 1}", persistent=False
        )
        text = (await response.content()).decode()
        self.assertIn(f"seg{msn + 1}.m4s", text)
        # A delta update skips nothing this early but is still a valid playlist.
        code, body, _ = await self.get("/ll/0/stream.m3u8?_HLS_skip=YES")
        check_media_playlist(self, body.decode())

    async def test_many_held_requests_all_answered(self) -> None:
        """Two hundred clients held on the same next part all get it when it lands."""
        rendition = self.renditions[1]
        msn, part = rendition.open.msn, len(rendition.open.parts)
        url = f"{self.base}/ll/1/stream.m3u8?_HLS_msn={msn}&_HLS_part={part}"
        responses = [treq.get(url, persistent=False) for _ in range(200)]
        for pending in responses:
            response = await pending
            self.assertEqual(response.code, 200)
            await response.content()

    async def test_ffmpeg_reads_it(self) -> None:
        """ffmpeg's HLS reader (no LL support: it reads whole segments) decodes the stream."""
        await wait_until(lambda: len(self.renditions[0].segments) >= 4, 20, "four segments")
        out, err, code = await getProcessOutputAndValue(
            FFMPEG,
            [
                "-hide_banner",
                "-loglevel",
                "error",
                "-i",
                f"{self.base}/ll/stream.m3u8",
                "-map",
                "0:v:0",
                "-frames:v",
                "30",
                "-f",
                "null",
                "-",
            ],  # fmt: skip
            reactor=reactor,
        )
        self.assertEqual(code, 0, err)

    async def test_hlsjs_low_latency_mode_plays_parts(self) -> None:
        """hls.js with lowLatencyMode in the real Chromium plays the stream from parts."""
        browser = await BrowserThread().start()
        self.addCleanup(lambda: Deferred.fromCoroutine(browser.stop()))

        async def play() -> dict[str, Any]:
            context = await browser.context()
            page = await browser.page(context, self.base + "/page/ll.html")
            await page.wait_for_function(
                "document.getElementById('v').currentTime > 3 && window.parts > 5",
                timeout=30_000,
            )
            return await page.evaluate("({parts: window.parts, fatal: window.fatal})")

        result = await browser.run(play())
        self.assertEqual(result["fatal"], [])
        self.assertGreater(result["parts"], 5)


class DaemonTests(unittest.TestCase):
    """The real daemon in low-latency mode, a real publisher, real clients."""

    timeout = 150

    async def test_low_latency_mode_end_to_end(self) -> None:
        """With ``video/lowlatency`` on, every variant (passthrough included) and the master
        are LL-HLS at /hls/, a blocking reload is answered with the awaited part, and the
        viewer page's hls.js plays it from parts."""
        daemon = await start_daemon(self, tmpdir(self), args=["--streamkey", KEY])
        for path, value in (("video/streamoutputvariants", VARIANTS), ("video/lowlatency", True)):
            response = await daemon.post(f"/api/admin/config/{path}", {"value": value}, auth=ADMIN)
            self.assertEqual(response.code, 200, (path, response))
        response = await daemon.post(
            "/api/admin/config/video/lowlatency", {"value": "yes"}, auth=ADMIN
        )
        self.assertEqual(response.code, 400)
        publisher = publish(self, daemon, seconds=90)
        self.addCleanup(lambda: Deferred.fromCoroutine(publisher.stop()))

        async def playlists() -> list[str] | None:
            texts = []
            for n in (0, 1):
                response = await daemon.get(f"/hls/{n}/stream.m3u8")
                if response.code != 200 or response.content.count(b"#EXTINF") < 2:
                    return None
                texts.append(response.content.decode())
            return texts

        texts = await wait_until(playlists, 60, "two LL-HLS variants with segments")
        master = (await daemon.get("/hls/stream.m3u8")).content.decode()
        self.assertIn("0/stream.m3u8", master)
        self.assertIn("1/stream.m3u8", master)
        for n, text in enumerate(texts):
            check_media_playlist(self, text)
            self.assertIn(f'#EXT-X-RENDITION-REPORT:URI="../{1 - n}/stream.m3u8"', text)
        text = texts[0]
        last = re.findall(r'URI="part(\d+)\.m4s"', text)[-1]
        msn = int(re.search(r"MEDIA-SEQUENCE:(\d+)", text).group(1)) + text.count("#EXTINF")
        parts_of_open = text.split("seg")[-1].count("#EXT-X-PART:")
        response = await daemon.get(f"/hls/0/stream.m3u8?_HLS_msn={msn}&_HLS_part={parts_of_open}")
        self.assertEqual(response.code, 200)
        self.assertIn(f'URI="part{int(last) + 1}.m4s"', response.content.decode())
        thumbnail = await wait_until(lambda: daemon.get("/hls/thumbnail.jpg"), 30, "the thumbnail")
        self.assertEqual(thumbnail.code, 200)

        browser = BrowserThread()
        self.addCleanup(lambda: Deferred.fromCoroutine(browser.stop()))
        await browser.start()

        async def watch() -> dict[str, Any]:
            context = await browser.context()
            page = await browser.page(context, daemon.base + "/")
            await page.wait_for_function(
                """() => {
                  const hls = window.owncastPlayer && window.owncastPlayer.hls;
                  const level = hls && hls.levels[hls.currentLevel];
                  return level && level.details && level.details.partList &&
                    level.details.partList.length > 0 &&
                    document.getElementById("video").currentTime > 3;
                }""",
                timeout=60_000,
            )
            return await page.evaluate(
                """() => ({levels: window.owncastPlayer.hls.levels.length,
                           low: window.owncastPlayer.hls.lowLatencyMode})"""
            )

        result = await browser.run(watch())
        self.assertEqual(result, {"levels": 2, "low": True})
        self.assertEqual(browser.errors, [])
