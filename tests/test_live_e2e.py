"""Live end to end: the real ``twistd owncast`` daemon, a real ffmpeg publishing over RTMP.

Every test starts its own daemon (``tests.daemon``) on free loopback ports and a fresh data
dir, configures it through the admin API (latency level 0: 1 s segments; two encoded
variants unless said otherwise), then publishes with the imageio-ffmpeg binary, as OBS
would, and watches what comes out over HTTP: status, playlists, segments, thumbnail,
webhooks, and the daemon's own ffmpeg children (with psutil).

A daemon cannot outlive its test (trial's janitor kills every child process left in the
reactor after a test), so the scenarios that can share one broadcast are grouped in one
test instead. Waiting is always polling with ``deferLater`` against a deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import psutil
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python import log
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.daemon import Daemon, sleep, start_daemon, wait_until

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

#: Two encoded variants, in this order; audio copied in the first, re-encoded in the second.
VARIANTS: list[dict[str, Any]] = [
    {
        "videoPassthrough": False,
        "audioPassthrough": True,
        "videoBitrate": 800,
        "audioBitrate": 128,
        "scaledWidth": 640,
        "scaledHeight": 360,
        "framerate": 30,
        "cpuUsageLevel": 0,
    },
    {
        "videoPassthrough": False,
        "audioPassthrough": False,
        "videoBitrate": 400,
        "audioBitrate": 64,
        "scaledWidth": 320,
        "scaledHeight": 180,
        "framerate": 30,
        "cpuUsageLevel": 0,
    },
]
SIZES = [(v["scaledWidth"], v["scaledHeight"]) for v in VARIANTS]

#: Seconds from the first publish to the first segment listed in every variant playlist.
FIRST_SEGMENT_WITHIN = 8.0
#: Seconds for the status to follow the publisher (online; offline after an admin's
#: disconnect).
STATUS_WITHIN = 4.0
#: Seconds a broadcast waits for its publisher to come back before it ends.
RECONNECT_GRACE = 30.0
#: Seconds for the status to go offline after the publisher left by itself.
OFFLINE_WITHIN = RECONNECT_GRACE + STATUS_WITHIN

_SEGMENT = re.compile(r"^stream-([0-9]+)\.ts$")
SHOWINFO_SIZE = re.compile(r"\bn:\s*[0-9]+ .*?\bs:([0-9]+)x([0-9]+)")
_FRAMECRC = re.compile(
    r"^(\d+),\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*(\d+),\s*(0x[0-9a-f]+)(?:,\s*F=(0x[0-9a-f]+))?",
    re.M,
)


# -- processes ---------------------------------------------------------------------------
class Ffmpeg(ProcessProtocol):
    """One run of the ffmpeg binary: output collected, exit status kept."""

    def __init__(self, args: list[str]):
        self.args = args
        self.out = bytearray()
        self.err = bytearray()
        self.code: int | None = None
        self.signal: int | None = None
        self.running = True
        self.started = reactor.seconds()
        self.ended_at: float | None = None

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Any) -> None:
        self.running = False
        self.ended_at = reactor.seconds()
        self.code = getattr(reason.value, "exitCode", None)
        self.signal = getattr(reason.value, "signal", None)

    @property
    def stderr(self) -> str:
        return self.err.decode("utf-8", "replace")

    async def wait(self, timeout: float, what: str = "ffmpeg to exit") -> Ffmpeg:
        try:
            await wait_until(lambda: not self.running, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}; its stderr so far:\n{self.stderr[-2000:]}") from None
        return self

    async def kill(self) -> None:
        if self.running:
            try:
                self.transport.signalProcess("KILL")
            except Exception:  # noqa: BLE001 - it may have just exited
                pass
            await wait_until(lambda: not self.running, 10, "a killed ffmpeg to go")


def spawn(testcase: unittest.TestCase, *args: str) -> Ffmpeg:
    """Start ffmpeg with ``args``; the test kills it at cleanup if it is still running."""
    proto = Ffmpeg(list(args))
    reactor.spawnProcess(proto, FFMPEG, [FFMPEG, *args], env=dict(os.environ))
    testcase.addCleanup(proto.kill)
    return proto


async def run(testcase: unittest.TestCase, *args: str, timeout: float = 30) -> Ffmpeg:
    """Run ffmpeg to its end."""
    return await spawn(testcase, *args).wait(timeout, f"ffmpeg {' '.join(args)[:200]}")


def publish_args(url: str, seconds: float) -> list[str]:
    """What a broadcaster sends: 720p30 test pattern and a tone, H.264/AAC, in real time."""
    return [
        "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440",
        "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
        "-g", "60", "-c:a", "aac", "-f", "flv", url,
    ]  # fmt: skip


def ffmpeg_children(daemon: Daemon) -> list[psutil.Process]:
    """The ffmpeg processes below the daemon (its transcoder, and probes if any)."""
    if daemon.pid is None:
        return []
    found = []
    for child in psutil.Process(daemon.pid).children(recursive=True):
        try:
            if "ffmpeg" in os.path.basename(child.exe() or child.name()):
                found.append(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            found.append(child)
    return found


def transcoder_pids(daemon: Daemon) -> list[int]:
    """Pids of the daemon's ffmpeg children that write HLS."""
    pids = []
    for child in ffmpeg_children(daemon):
        try:
            if "hls" in child.cmdline():
                pids.append(child.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return pids


# -- playlists ---------------------------------------------------------------------------
@dataclass
class Playlist:
    text: str
    sequence: int | None = None
    #: segment numbers, as listed
    segments: list[int] = field(default_factory=list)
    #: segment numbers that an ``EXT-X-DISCONTINUITY`` precedes
    discontinuities: set[int] = field(default_factory=set)
    ended: bool = False
    target_duration: int | None = None
    #: the ``EXT-X-DISCONTINUITY-SEQUENCE`` tag's value, None without one
    discontinuity_sequence: int | None = None

    def discontinuity_numbers(self) -> dict[int, int]:
        """Segment number -> its Discontinuity Sequence Number (RFC 8216, 6.2.1/6.2.2)."""
        current = self.discontinuity_sequence or 0
        numbers = {}
        for number in self.segments:
            if number in self.discontinuities:
                current += 1
            numbers[number] = current
        return numbers


def parse_playlist(text: str) -> Playlist:
    playlist = Playlist(text)
    pending_discontinuity = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            playlist.sequence = int(line.partition(":")[2])
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            playlist.discontinuity_sequence = int(line.partition(":")[2])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            playlist.target_duration = int(line.partition(":")[2])
        elif line == "#EXT-X-DISCONTINUITY":
            pending_discontinuity = True
        elif line == "#EXT-X-ENDLIST":
            playlist.ended = True
        elif line and not line.startswith("#"):
            match = _SEGMENT.fullmatch(line)
            assert match is not None, f"unexpected playlist entry {line!r} in:\n{text}"
            number = int(match.group(1))
            playlist.segments.append(number)
            if pending_discontinuity:
                playlist.discontinuities.add(number)
            pending_discontinuity = False
    return playlist


def parse_master(text: str) -> list[tuple[str, dict[str, str]]]:
    """``[(uri, attributes)]`` of the ``EXT-X-STREAM-INF`` entries, in order."""
    entries = []
    attributes: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = dict(
                (k, v.strip('"'))
                for k, v in re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.partition(":")[2])
            )
        elif line and not line.startswith("#") and attributes is not None:
            entries.append((line, attributes))
            attributes = None
    return entries


async def get_playlist(daemon: Daemon, index: int) -> Playlist | None:
    response = await daemon.get(f"/hls/{index}/stream.m3u8")
    if response.code == 404:
        return None
    assert response.code == 200, response
    return parse_playlist(response.content.decode("utf-8"))


class PlaylistWatch:
    """Polls the variant playlists in the background and checks every observation: the
    media sequence never goes backwards, the listed numbers are consecutive and the first
    of them is the media sequence. ``discontinuity_problems`` collects, separately, every
    segment whose Discontinuity Sequence Number changed from one reload to the next (a
    server that removes a segment with ``EXT-X-DISCONTINUITY`` must increment
    ``EXT-X-DISCONTINUITY-SEQUENCE``, RFC 8216 6.2.2, or players mis-align renditions)."""

    def __init__(self, daemon: Daemon, indexes: list[int], interval: float = 0.2):
        self.daemon = daemon
        self.indexes = indexes
        self.interval = interval
        self.seen: dict[int, list[Playlist]] = {i: [] for i in indexes}
        self.problems: list[str] = []
        self.discontinuity_problems: list[str] = []
        #: variant -> segment number -> its Discontinuity Sequence Number when first seen
        self.discontinuity_numbers: dict[int, dict[int, int]] = {i: {} for i in indexes}
        #: variant -> numbers of segments seen with an EXT-X-DISCONTINUITY, then gone
        self.slid_out: dict[int, set[int]] = {i: set() for i in indexes}
        self._stopping = False
        self._loop: Deferred | None = None

    def start(self, testcase: unittest.TestCase) -> PlaylistWatch:
        self._loop = Deferred.fromCoroutine(self._run())
        testcase.addCleanup(self.stop)
        return self

    async def stop(self) -> None:
        self._stopping = True
        if self._loop is not None:
            loop, self._loop = self._loop, None
            await loop

    def latest(self, index: int) -> Playlist | None:
        seen = self.seen[index]
        return seen[-1] if seen else None

    async def _run(self) -> None:
        while not self._stopping:
            for index in self.indexes:
                try:
                    playlist = await get_playlist(self.daemon, index)
                except Exception as e:  # noqa: BLE001 - the daemon may be stopping
                    if not self._stopping:
                        self.problems.append(f"variant {index}: {e!r}")
                    continue
                if playlist is not None:
                    self._check(index, playlist)
            await sleep(self.interval)

    def _check(self, index: int, playlist: Playlist) -> None:
        numbers = playlist.segments
        if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            self.problems.append(f"variant {index}: numbers not consecutive: {numbers}")
        if numbers and playlist.sequence != numbers[0]:
            self.problems.append(
                f"variant {index}: media sequence {playlist.sequence} but first {numbers[0]}"
            )
        previous = self.latest(index)
        if previous is not None:
            if (playlist.sequence or 0) < (previous.sequence or 0):
                self.problems.append(
                    f"variant {index}: media sequence went back from {previous.sequence}"
                    f" to {playlist.sequence}:\n{previous.text}\n---\n{playlist.text}"
                )
            if numbers and previous.segments and numbers[-1] < previous.segments[-1]:
                self.problems.append(
                    f"variant {index}: last segment went back from {previous.segments[-1]}"
                    f" to {numbers[-1]}"
                )
            if numbers:
                self.slid_out[index] |= {n for n in previous.discontinuities if n < numbers[0]}
        known = self.discontinuity_numbers[index]
        for number, dsn in playlist.discontinuity_numbers().items():
            first = known.setdefault(number, dsn)
            if first != dsn:
                self.discontinuity_problems.append(
                    f"variant {index}: segment {number} had discontinuity sequence number"
                    f" {first}, now {dsn} (EXT-X-DISCONTINUITY-SEQUENCE:"
                    f" {playlist.discontinuity_sequence}):\n{playlist.text}"
                )
                known[number] = dsn
        self.seen[index].append(playlist)


# -- other parsing ----------------------------------------------------------------------
def jpeg_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a JPEG's start-of-frame marker."""
    assert data[:2] == b"\xff\xd8", data[:16]
    pos = 2
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF, f"bad marker at {pos}"
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        pos += 2 + length
    raise AssertionError("no start of frame in the JPEG")


@dataclass
class Packet:
    dts: int
    pts: int
    duration: int
    size: int
    keyframe: bool


def parse_framecrc(text: str) -> tuple[tuple[int, int], list[Packet]]:
    """The time base of stream 0 and its packets, from ffmpeg's ``framecrc`` output."""
    tb = re.search(r"^#tb 0: ([0-9]+)/([0-9]+)$", text, re.M)
    assert tb is not None, text[:500]
    packets = []
    for match in _FRAMECRC.finditer(text):
        stream, dts, pts, duration, size, _crc, flags = match.groups()
        if stream != "0":
            continue
        keyframe = flags is None  # framecrc prints F=0x0 for packets without the key flag
        packets.append(Packet(int(dts), int(pts), int(duration), int(size), keyframe))
    return (int(tb.group(1)), int(tb.group(2))), packets


# -- webhooks ----------------------------------------------------------------------------
class HookReceiver(Resource):
    """A loopback webhook endpoint that keeps every JSON body POSTed to it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict] = []
        self.content_types: list[bytes | None] = []

    def render_POST(self, request: Any) -> bytes:
        self.content_types.append(request.getHeader(b"content-type"))
        self.received.append(json.loads(request.content.read()))
        request.setHeader(b"content-type", b"application/json")
        return b"{}"

    def of_type(self, kind: str) -> list[dict]:
        return [event for event in self.received if event.get("type") == kind]


# -- the tests ---------------------------------------------------------------------------
def tmpdir(testcase: unittest.TestCase) -> Path:
    """A fresh absolute path (the daemon runs from the repository root, not _trial_temp)."""
    return Path(testcase.mktemp()).resolve()


class LiveCase(unittest.TestCase):
    timeout = 150

    async def start_live_daemon(
        self, variants: list[dict] | None = None
    ) -> tuple[Daemon, tuple[str, str]]:
        """A daemon on a fresh data dir, set to latency level 0 and ``variants``."""
        # The webhook receivers are on loopback, which the daemon refuses unless told.
        daemon = await start_daemon(self, tmpdir(self), args=["--allowprivate"])
        keys = daemon.generated_keys()
        self.assertEqual(len(keys), 1, daemon.output)
        auth = ("admin", keys[0])
        for name, value in (
            ("video/streamlatencylevel", 0),
            ("video/streamoutputvariants", variants or VARIANTS),
        ):
            response = await daemon.post(f"/api/admin/config/{name}", {"value": value}, auth=auth)
            self.assertEqual(response.code, 200, response)
            self.assertIs(response.json["success"], True, response)
        config = await self.get_json(daemon, "/api/admin/serverconfig", auth=auth)
        self.assertEqual(config["videoSettings"]["latencyLevel"], 0)
        return daemon, auth

    def publish(self, daemon: Daemon, key: str, seconds: float) -> Ffmpeg:
        return spawn(self, *publish_args(self.rtmp_url(daemon, key), seconds))

    def rtmp_url(self, daemon: Daemon, key: str) -> str:
        return f"rtmp://127.0.0.1:{daemon.rtmp_port}/live/{key}"

    async def get_json(self, daemon: Daemon, path: str, **kwargs: Any) -> Any:
        response = await daemon.get(path, **kwargs)
        self.assertEqual(response.code, 200, (path, response))
        return response.json

    async def online(self, daemon: Daemon) -> bool:
        return (await self.get_json(daemon, "/api/status"))["online"]

    async def wait_online(self, daemon: Daemon, online: bool, timeout: float = STATUS_WITHIN):
        async def check() -> bool:
            return await self.online(daemon) is online

        await wait_until(check, timeout, f"/api/status online={online}")

    async def wait_segments(
        self, daemon: Daemon, count: int, timeout: float, after: int = -1
    ) -> list[Playlist]:
        """Wait until every variant lists ``count`` segments numbered above ``after``."""

        async def check() -> list[Playlist] | None:
            playlists = [await get_playlist(daemon, i) for i in range(len(SIZES))]
            if all(
                p is not None and len([n for n in p.segments if n > after]) >= count
                for p in playlists
            ):
                return playlists
            return None

        return await wait_until(
            check, timeout, f"{count} segment(s) after {after} in every variant", 0.1
        )

    async def wait_no_ffmpeg(self, daemon: Daemon, timeout: float = 8.0) -> None:
        await wait_until(
            lambda: not ffmpeg_children(daemon), timeout, "the daemon's ffmpeg children to end"
        )

    async def subscribe_webhooks(
        self, daemon: Daemon, auth: tuple[str, str], names: list[str]
    ) -> HookReceiver:
        receiver = HookReceiver()
        port = reactor.listenTCP(0, Site(receiver), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/hook"
        response = await daemon.post(
            "/api/admin/webhooks/create", {"url": url, "events": names}, auth=auth
        )
        self.assertEqual(response.code, 200, response)
        self.assertEqual((response.json["url"], response.json["events"]), (url, names))
        return receiver

    def assertNoProblems(self, watch: PlaylistWatch) -> None:
        self.assertEqual(watch.problems, [], "\n".join(watch.problems))


# -- 1 and 2 -----------------------------------------------------------------------------
class LiveBroadcastTests(LiveCase):
    async def test_publish_transcode_serve_then_end(self):
        daemon, auth = await self.start_live_daemon()
        hooks = await self.subscribe_webhooks(daemon, auth, ["STREAM_STARTED", "STREAM_STOPPED"])
        status = await self.get_json(daemon, "/api/status")
        self.assertIs(status["online"], False)
        self.assertIsNone(status["lastDisconnectTime"])
        self.assertEqual((await daemon.get("/hls/stream.m3u8")).code, 404)
        self.assertEqual(ffmpeg_children(daemon), [])

        publisher = self.publish(daemon, auth[1], 10)
        start = publisher.started
        await self.wait_online(daemon, True)
        online_after = reactor.seconds() - start

        # What the admin sees of the broadcaster: address and the stream's metadata.
        async def details() -> dict | None:
            status = await self.get_json(daemon, "/api/admin/status", auth=auth)
            broadcaster = status["broadcaster"]
            if broadcaster and broadcaster["streamDetails"]["width"]:
                return broadcaster
            return None

        broadcaster = await wait_until(details, STATUS_WITHIN, "the broadcaster's details")
        self.assertRegex(broadcaster["remoteAddr"], r"^127\.0\.0\.1:[0-9]+$")  # as 0.0.7: host:port
        stream = broadcaster["streamDetails"]
        self.assertEqual((stream["width"], stream["height"]), (1280, 720), stream)
        self.assertEqual(stream["framerate"], 30, stream)
        self.assertEqual((stream["videoCodec"], stream["audioCodec"]), ("H.264", "AAC"), stream)
        self.assertTrue(stream["encoder"].startswith("Lavf"), stream)
        self.assertRegex(broadcaster["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")

        # The first segment of every variant, and how long it took.
        playlists = await self.wait_segments(daemon, 1, FIRST_SEGMENT_WITHIN)
        first_segment_after = reactor.seconds() - start
        for index, playlist in enumerate(playlists):
            segment = await daemon.get(f"/hls/{index}/stream-{playlist.segments[0]}.ts")
            self.assertEqual(segment.code, 200, segment)
            self.assertEqual(segment.content[:1], b"\x47")  # an MPEG-TS sync byte
            self.assertEqual(playlist.target_duration, 1, playlist.text)
        log.msg(
            f"live e2e: online {online_after:.2f} s, first segment in every variant"
            f" {first_segment_after:.2f} s after the publisher started"
        )

        # The master playlist lists the variants in the configured order, at their sizes.
        master = await daemon.get("/hls/stream.m3u8")
        self.assertEqual(master.code, 200, master)
        entries = parse_master(master.content.decode("utf-8"))
        self.assertEqual([uri for uri, _ in entries], ["0/stream.m3u8", "1/stream.m3u8"])
        self.assertEqual(
            [attrs.get("RESOLUTION") for _, attrs in entries], [f"{w}x{h}" for w, h in SIZES]
        )
        bandwidths = [int(attrs["BANDWIDTH"]) for _, attrs in entries]
        self.assertGreater(bandwidths[0], bandwidths[1], entries)

        # Headers: playlists are never cached, segments are immutable.
        for path in ("/hls/stream.m3u8", "/hls/0/stream.m3u8", "/hls/1/stream.m3u8"):
            response = await daemon.get(path)
            self.assertEqual(response.header("content-type"), "application/vnd.apple.mpegurl")
            self.assertIn("no-cache", response.header("cache-control"))
            self.assertEqual(response.header("access-control-allow-origin"), "*")
        playlist = await get_playlist(daemon, 1)
        segment = await daemon.get(f"/hls/1/stream-{playlist.segments[-1]}.ts")
        self.assertEqual(segment.code, 200)
        self.assertEqual(segment.header("content-type"), "video/mp2t")
        self.assertIn("immutable", segment.header("cache-control"))
        self.assertIn("max-age=31536000", segment.header("cache-control"))

        # A real player decodes each variant, live over HTTP, at its configured size.
        decoders = []
        for index in range(len(SIZES)):
            args = [
                "-hide_banner", "-nostdin", "-loglevel", "level+info",
                "-i", f"{daemon.base}/hls/{index}/stream.m3u8",
                "-t", "2", "-vf", "showinfo", "-f", "null", "-",
            ]  # fmt: skip
            decoders.append(spawn(self, *args))
        for index, decoder in enumerate(decoders):
            await decoder.wait(30, f"the decoder of variant {index}")
            text = decoder.stderr
            self.assertEqual(decoder.code, 0, text[-3000:])
            problems = [ln for ln in text.splitlines() if "[error]" in ln or "[fatal]" in ln]
            self.assertEqual(problems, [], text[-3000:])
            sizes = {(int(w), int(h)) for w, h in SHOWINFO_SIZE.findall(text)}
            self.assertEqual(sizes, {SIZES[index]}, text[-3000:])
            frames = len(SHOWINFO_SIZE.findall(text))
            self.assertGreaterEqual(frames, 55, f"2 s at 30 fps:\n{text[-3000:]}")
            self.assertRegex(text, r"Audio: aac")

        # The thumbnail: a JPEG of the source frame.
        async def thumbnail() -> Any:
            response = await daemon.get("/hls/thumbnail.jpg")
            return response if response.code == 200 else None

        image = await wait_until(thumbnail, 5, "/hls/thumbnail.jpg")
        self.assertEqual(image.header("content-type"), "image/jpeg")
        self.assertEqual(jpeg_size(image.content), (1280, 720))

        await wait_until(lambda: hooks.of_type("STREAM_STARTED"), 5, "STREAM_STARTED webhook")
        self.assertTrue(publisher.running, "the broadcast ended before the checks were done")
        self.assertEqual(len(transcoder_pids(daemon)), 1)

        # -- 2: the publisher ends -------------------------------------------------------
        await publisher.wait(15, "the publisher to finish")
        self.assertEqual(publisher.code, 0, publisher.stderr)
        await self.wait_no_ffmpeg(daemon)
        # The reconnect grace: still online, and the playlists not ended, for a while.
        self.assertIs(await self.online(daemon), True)
        for index in range(len(SIZES)):
            playlist = await get_playlist(daemon, index)
            self.assertFalse(playlist.ended, playlist.text)
        await self.wait_online(daemon, False, OFFLINE_WITHIN)
        offline_after = reactor.seconds() - publisher.ended_at
        self.assertGreaterEqual(offline_after, RECONNECT_GRACE - 1)
        status = await self.get_json(daemon, "/api/status")
        self.assertIsNotNone(status["lastDisconnectTime"])
        self.assertGreaterEqual(status["lastDisconnectTime"], status["lastConnectTime"])
        admin = await self.get_json(daemon, "/api/admin/status", auth=auth)
        self.assertIs(admin["online"], False)
        self.assertIsNone(admin["broadcaster"])
        log.msg(f"live e2e: offline {offline_after:.2f} s after the publisher ended")

        # ffmpeg flushed the last segment on EOF; once the grace was over every playlist
        # was ended.
        for index in range(len(SIZES)):
            playlist = await get_playlist(daemon, index)
            self.assertTrue(playlist.ended, playlist.text)

        await wait_until(lambda: hooks.of_type("STREAM_STOPPED"), 5, "STREAM_STOPPED webhook")
        started, stopped = hooks.of_type("STREAM_STARTED"), hooks.of_type("STREAM_STOPPED")
        self.assertEqual((len(started), len(stopped)), (1, 1), hooks.received)
        self.assertEqual(set(hooks.content_types), {b"application/json"})
        config = await self.get_json(daemon, "/api/config")
        for event in (started[0], stopped[0]):
            data = event["eventData"]
            self.assertEqual(set(data), {"name", "summary", "streamTitle"}, event)  # as 0.0.7
            self.assertEqual(data["name"], config["name"])
            self.assertEqual(data["summary"], config["summary"])
            self.assertEqual(data["streamTitle"], status["streamTitle"])


# -- 3 and 6 -----------------------------------------------------------------------------
class IngestControlTests(LiveCase):
    async def test_wrong_key_and_second_publisher_refused_then_admin_disconnect(self):
        daemon, auth = await self.start_live_daemon()

        wrong = self.publish(daemon, auth[1] + "-wrong", 10)
        await wrong.wait(8, "the publisher with a wrong key to be refused")
        self.assertNotEqual(wrong.code, 0, wrong.stderr)
        self.assertLess(wrong.ended_at - wrong.started, 5, "refused at once, not timed out")
        self.assertIs(await self.online(daemon), False)
        self.assertIsNone(
            (await self.get_json(daemon, "/api/admin/status", auth=auth))["broadcaster"]
        )
        self.assertEqual(ffmpeg_children(daemon), [])

        first = self.publish(daemon, auth[1], 30)
        await self.wait_online(daemon, True)
        before = (await self.get_json(daemon, "/api/admin/status", auth=auth))["broadcaster"]
        playlists = await self.wait_segments(daemon, 1, FIRST_SEGMENT_WITHIN)
        transcoder = transcoder_pids(daemon)
        self.assertEqual(len(transcoder), 1)

        second = self.publish(daemon, auth[1], 10)
        await second.wait(8, "the second publisher to be refused")
        self.assertNotEqual(second.code, 0, second.stderr)
        self.assertLess(second.ended_at - second.started, 5, "refused at once, not timed out")

        # The first goes on: same broadcast, same ffmpeg, segments keep coming.
        self.assertTrue(first.running, first.stderr)
        self.assertIs(await self.online(daemon), True)
        after = (await self.get_json(daemon, "/api/admin/status", auth=auth))["broadcaster"]
        self.assertEqual(after["time"], before["time"])
        last = max(p.segments[-1] for p in playlists)
        await self.wait_segments(daemon, 2, 6, after=last)
        self.assertEqual(transcoder_pids(daemon), transcoder)
        self.assertTrue(first.running, first.stderr)

        # -- 6: the admin drops the publisher ---------------------------------------------
        response = await daemon.post("/api/admin/disconnect", auth=auth)
        self.assertEqual(response.code, 200, response)
        self.assertIs(response.json["success"], True, response)
        dropped_at = reactor.seconds()
        await self.wait_online(daemon, False)
        await first.wait(5, "the disconnected publisher to exit")
        self.assertLess(first.ended_at - dropped_at, 5)
        self.assertNotEqual(first.code, 0, "it ended long before its 30 s")
        status = await self.get_json(daemon, "/api/status")
        self.assertIsNotNone(status["lastDisconnectTime"])
        await self.wait_no_ffmpeg(daemon)

        again = await daemon.post("/api/admin/disconnect", auth=auth)
        self.assertIs(again.json["success"], False, again)


# -- 4: the reconnect is tested with players in tests/test_live_publishers.py ------------


# -- 5 -----------------------------------------------------------------------------------
#: Long enough for the discontinuities of the start and of the crash to leave the live
#: window (25 one-second segments at level 0).
LONG_BROADCAST = 33


class TranscoderCrashTests(LiveCase):
    async def test_killed_transcoder_recovers_for_the_rest_of_the_broadcast(self):
        daemon, auth = await self.start_live_daemon()
        watch = PlaylistWatch(daemon, [0, 1]).start(self)
        publisher = self.publish(daemon, auth[1], LONG_BROADCAST)
        await self.wait_online(daemon, True)
        await self.wait_segments(daemon, 2, FIRST_SEGMENT_WITHIN)
        pids = transcoder_pids(daemon)
        self.assertEqual(len(pids), 1, ffmpeg_children(daemon))
        crashed = pids[0]

        os.kill(crashed, signal.SIGKILL)
        killed_at = reactor.seconds()
        # What the killed ffmpeg left: the restart (0.5 s later at the earliest) adds to it.
        at_kill = [await get_playlist(daemon, i) for i in range(len(SIZES))]
        last = max(p.segments[-1] for p in at_kill)

        def restarted() -> list[int]:
            now = transcoder_pids(daemon)
            return now if now and crashed not in now else []

        new_pids = await wait_until(restarted, 5, "a new transcoder ffmpeg")
        self.assertEqual(len(new_pids), 1)
        after = await self.wait_segments(daemon, 2, 8, after=last)
        recovered_after = reactor.seconds() - killed_at
        log.msg(f"live e2e: segments again {recovered_after:.2f} s after SIGKILL of ffmpeg")
        self.assertLess(recovered_after, 6)
        self.assertTrue(publisher.running, "the publisher must not notice")
        self.assertIs(await self.online(daemon), True)
        self.assertFalse(psutil.pid_exists(crashed), "the killed ffmpeg was reaped")
        for old, new in zip(at_kill, after, strict=True):
            # The new ffmpeg continues the playlist: one numbering, a discontinuity at the
            # first segment it wrote.
            self.assertEqual(new.segments[: len(old.segments)], old.segments, new.text)
            self.assertIn(old.segments[-1] + 1, new.discontinuities, new.text)

        await publisher.wait(LONG_BROADCAST + 10, "the publisher to finish")
        self.assertEqual(publisher.code, 0, publisher.stderr)
        await self.wait_online(daemon, False, OFFLINE_WITHIN)
        await self.wait_no_ffmpeg(daemon)
        self.assertEqual(transcoder_pids(daemon), [])
        await watch.stop()
        self.assertNoProblems(watch)
        for index in range(len(SIZES)):
            final = await get_playlist(daemon, index)
            self.assertTrue(final.ended, final.text)
            self.assertEqual(len(final.segments), 25, final.text)  # level 0 lists 25
            joined = at_kill[index].segments[-1] + 1
            self.assertGreater(final.segments[0], joined, "the restart's join slid out")

        # Once segments carrying EXT-X-DISCONTINUITY have left the window, every segment
        # must keep its Discontinuity Sequence Number (RFC 8216 6.2.2), or players that
        # align renditions and reloads by it (Safari, hls.js) see phantom discontinuities.
        slid_out = {i: sorted(n) for i, n in watch.slid_out.items()}
        self.assertTrue(all(slid_out.values()), slid_out)
        problems = watch.discontinuity_problems
        self.assertEqual(
            len(problems),
            0,
            "segments changed their discontinuity sequence number from one playlist reload"
            f" to the next; the first:\n{problems[0] if problems else ''}",
        )


# -- 7 -----------------------------------------------------------------------------------
PASSTHROUGH = [{"videoPassthrough": True, "audioPassthrough": True}]


class PassthroughTests(LiveCase):
    async def test_passthrough_keeps_every_packet_and_its_timing(self):
        source = tmpdir(self)
        source.mkdir(parents=True)
        flv = source / "input.flv"
        made = await run(
            self,
            "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440",
            "-t", "6", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast",
            "-g", "30", "-c:a", "aac", "-f", "flv", str(flv),
        )  # fmt: skip
        self.assertEqual(made.code, 0, made.stderr)

        daemon, auth = await self.start_live_daemon(PASSTHROUGH)
        publisher = spawn(
            self,
            "-hide_banner", "-loglevel", "error", "-re", "-i", str(flv),
            "-c", "copy", "-f", "flv", self.rtmp_url(daemon, auth[1]),
        )  # fmt: skip
        await self.wait_online(daemon, True)
        await publisher.wait(20, "the publisher to finish")
        self.assertEqual(publisher.code, 0, publisher.stderr)
        await self.wait_online(daemon, False, OFFLINE_WITHIN)
        await self.wait_no_ffmpeg(daemon)

        playlist = await get_playlist(daemon, 0)
        self.assertTrue(playlist.ended, playlist.text)
        joined = bytearray()
        for number in playlist.segments:
            segment = await daemon.get(f"/hls/0/stream-{number}.ts")
            self.assertEqual(segment.code, 200)
            joined += segment.content
        output = source / "output.ts"
        output.write_bytes(bytes(joined))

        async def packets(path: Path, kind: str) -> list[tuple[Fraction, Fraction, int, bool]]:
            """(pts, dts) in seconds relative to the first packet, duration, key flag."""
            result = await run(
                self, "-hide_banner", "-loglevel", "error", "-i", str(path),
                "-map", f"0:{kind}", "-c", "copy", "-f", "framecrc", "-",
            )  # fmt: skip
            self.assertEqual(result.code, 0, result.stderr)
            (num, den), found = parse_framecrc(result.out.decode("ascii"))
            unit = Fraction(num, den)
            first = found[0]
            return [
                ((p.pts - first.pts) * unit, (p.dts - first.dts) * unit, p.size, p.keyframe)
                for p in found
            ]

        # Input FLV ticks are ms, MPEG-TS ticks 1/90000 s, and the HLS muxer (via mpegts)
        # moves the whole timeline by a constant offset: so times are compared relative to
        # the first packet, as exact fractions of a second. Packet sizes differ (the copy
        # rewrites H.264 from length-prefixed to Annex B, AAC gets ADTS headers), so they
        # are not compared; the decoded frames are, below.
        sent, got = await packets(flv, "v"), await packets(output, "v")
        self.assertGreaterEqual(len(sent), 175)
        self.assertEqual(len(got), len(sent), "every video packet, no more, no fewer")
        self.assertEqual([p[:2] for p in got], [p[:2] for p in sent], "video pts, dts")
        self.assertEqual([p[3] for p in got], [p[3] for p in sent], "video keyframes")
        self.assertGreaterEqual(sum(p[3] for p in sent), 6)  # -g 30: a keyframe a second
        self.assertTrue(any(pts != dts for pts, dts, _, _ in sent), "B-frames: pts != dts")

        sent, got = await packets(flv, "a"), await packets(output, "a")
        self.assertGreaterEqual(len(sent), 250)
        self.assertEqual(len(got), len(sent), "every audio packet, no more, no fewer")
        # MPEG-TS carries one PTS per PES packet, which holds several AAC frames: the
        # demuxer interpolates the others from the sample count (1024/44100 s), where the
        # FLV input had each frame's time rounded to the millisecond. So audio times agree
        # to within that rounding, not exactly; the decoded samples must be identical.
        errors = [abs(a[0] - b[0]) for a, b in zip(got, sent, strict=True)]
        self.assertLessEqual(max(errors), Fraction(1, 1000), "audio pts within 1 ms")

        # The media itself is untouched: decoded frames and samples are bit for bit the same.
        async def frame_hashes(path: Path, kind: str) -> list[str]:
            result = await run(
                self, "-hide_banner", "-loglevel", "error", "-i", str(path),
                "-map", f"0:{kind}", "-f", "framemd5", "-",
            )  # fmt: skip
            self.assertEqual(result.code, 0, result.stderr)
            lines = result.out.decode("ascii").splitlines()
            return [ln.rsplit(",", 1)[1].strip() for ln in lines if not ln.startswith("#")]

        for kind in ("v", "a"):
            self.assertEqual(await frame_hashes(output, kind), await frame_hashes(flv, kind))
