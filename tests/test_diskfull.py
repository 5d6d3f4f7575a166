"""A full disk: segments ffmpeg could not write whole are never listed, later segments keep
their numbers, and the episode is logged once, shown in the admin status, and ends when
space is back."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from owncast.http import diskfull
from owncast.http.diskfull import ENOUGH, RESERVE, CompleteSegments, DiskWatch, complete
from owncast.http.site import WEB_ROOT, build_site
from tests.helpers import ADMIN, make_context

PACKET = b"\x47" + bytes(187)
WHOLE = PACKET * 20


def playlist(sequence: int, names: list[str], extra: dict[str, bytes] | None = None) -> bytes:
    lines = [b"#EXTM3U", b"#EXT-X-VERSION:3", b"#EXT-X-TARGETDURATION:2"]
    lines.append(b"#EXT-X-MEDIA-SEQUENCE:%d" % sequence)
    for name in names:
        lines += [*(extra or {}).get(name, b"").splitlines(), b"#EXTINF:2.000000,"]
        lines.append(name.encode())
    return b"\n".join(lines) + b"\n"


def listed(body: bytes) -> tuple[int, list[str]]:
    """(media sequence, names) of a playlist."""
    lines = body.decode().splitlines()
    sequence = next(int(x.split(":")[1]) for x in lines if x.startswith("#EXT-X-MEDIA-SEQUENCE"))
    return sequence, [x for x in lines if x and not x.startswith("#")]


class CompleteTests(unittest.TestCase):
    def test_only_whole_ts_files_count(self):
        directory = Path(self.mktemp())
        directory.mkdir()
        cases = {
            "whole.ts": (WHOLE, True),
            "cut.ts": (WHOLE[:-100], False),  # cut in a packet, as a full disk leaves it
            "empty.ts": (b"", False),
            "garbage.ts": (bytes(188 * 3), False),
            "bad-end.ts": (WHOLE[:-188] + bytes(188), False),
        }
        for name, (data, _) in cases.items():
            (directory / name).write_bytes(data)
        for name, (_, expected) in cases.items():
            self.assertEqual(complete(str(directory / name)), expected, name)
        self.assertFalse(complete(str(directory / "missing.ts")))


class CompleteSegmentsTests(unittest.TestCase):
    def setUp(self):
        self.variant = Path(self.mktemp()) / "0"
        self.variant.mkdir(parents=True)
        self.path = str(self.variant / "stream.m3u8")
        self.segments = CompleteSegments()

    def write(self, sequence: int, names: list[str], **extra: bytes) -> tuple[int, list[str]]:
        for name in names:
            if not (self.variant / name).exists():
                (self.variant / name).write_bytes(WHOLE)
        (self.variant / "stream.m3u8").write_bytes(playlist(sequence, names, extra))
        body = self.segments(self.path).body
        assert body is not None
        return listed(body)

    def number_of(self, name: str, served: tuple[int, list[str]]) -> int:
        sequence, names = served
        return sequence + names.index(name)

    def test_a_torn_segment_is_never_listed_and_numbers_stay(self):
        names = [f"stream-{n}.ts" for n in range(100, 106)]
        first = self.write(100, names[:2])
        (self.variant / names[2]).write_bytes(WHOLE[:-50])  # cut short by a full disk
        second = self.write(100, names[:3])
        self.assertEqual(second, (100, names[:2]))
        third = self.write(100, names[:4])
        fourth = self.write(101, names[1:5])
        fifth = self.write(103, names[3:6])
        self.assertEqual(third[1], [names[0], names[1], names[3]])
        self.assertEqual(fourth[1], [names[1], names[3], names[4]])
        self.assertEqual(fifth[1], names[3:6])
        # Every segment has one number in every version of the playlist that lists it.
        for name in names:
            numbers = {
                self.number_of(name, v)
                for v in (first, second, third, fourth, fifth)
                if name in v[1]
            }
            self.assertLessEqual(len(numbers), 1, name)
        self.assertEqual(self.number_of(names[3], fifth), 102)
        self.assertEqual(list(self.segments.torn), [str(self.variant / names[2])])

    def test_a_discontinuity_of_a_torn_segment_moves_to_the_next(self):
        names = ["stream-1.ts", "stream-2.ts", "stream-3.ts"]
        (self.variant / names[1]).write_bytes(b"\x47")
        self.write(1, names, **{names[1]: b"#EXT-X-DISCONTINUITY"})
        body = (self.variant / "stream.m3u8").read_bytes()
        served = self.segments(self.path).body
        self.assertIn(b"#EXT-X-DISCONTINUITY\n#EXTINF:2.000000,\nstream-3.ts", served)
        self.assertNotIn(b"stream-2.ts", served)
        self.assertIn(b"stream-2.ts", body)

    def test_a_playlist_with_only_whole_segments_is_served_as_written(self):
        names = ["stream-7.ts", "stream-8.ts"]
        self.write(7, names)
        self.assertEqual(self.segments(self.path).body, (self.variant / "stream.m3u8").read_bytes())


class _Log:
    def __init__(self, testcase: unittest.TestCase):
        self.lines: list[str] = []
        observer = lambda event: self.lines.append(formatEvent(event) or "")  # noqa: E731
        globalLogPublisher.addObserver(observer)
        testcase.addCleanup(globalLogPublisher.removeObserver, observer)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


class DiskWatchTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.free = [10 * RESERVE]
        self.patch(diskfull, "free_bytes", lambda directory: self.free[0])
        self.segments = CompleteSegments()
        self.watch = DiskWatch("/data/hls", _inline, self.clock, self.segments)
        self.watch.startService()
        self.addCleanup(self.watch.stopService)
        self.log = _Log(self)

    def tick(self, free: int) -> None:
        self.free[0] = free
        self.clock.advance(diskfull.CHECK_INTERVAL)

    def test_an_episode_is_logged_once_and_ends_when_space_is_back(self):
        self.assertFalse(self.watch.full)
        for _ in range(5):
            self.tick(RESERVE // 4)
        self.assertTrue(self.watch.full)
        self.tick(ENOUGH - 1)  # not yet: it would fill again at once
        self.assertTrue(self.watch.full)
        self.tick(ENOUGH * 4)
        self.assertFalse(self.watch.full)
        self.tick(0)
        self.assertEqual(self.log.count("Disk full"), 2)
        self.assertEqual(self.log.count("Disk space is back"), 1)

    def test_a_torn_segment_begins_an_episode(self):
        self.segments.torn.append("/data/hls/0/stream-9.ts")
        self.tick(ENOUGH * 4)
        self.assertTrue(self.watch.full)
        self.assertEqual(self.log.count("Disk full"), 1)
        self.tick(ENOUGH * 4)
        self.assertFalse(self.watch.full)


def _inline(fn, *args):
    from twisted.internet.defer import maybeDeferred

    return maybeDeferred(fn, *args)


class SiteTests(unittest.TestCase):
    """Through the web tree: the playlist served leaves the torn segment out, and the
    admin status says the disk is full."""

    def test_the_served_playlist_and_the_admin_status(self):
        clock = task.Clock()
        clock.advance(1_700_000_000)
        ctx = make_context(Path(self.mktemp()), clock=clock)
        variant = ctx.datadir / "hls" / "0"
        variant.mkdir(parents=True)
        names = ["stream-1700000000.ts", "stream-1700000001.ts"]
        (variant / names[0]).write_bytes(WHOLE)
        (variant / names[1]).write_bytes(WHOLE[:1000])
        (variant / "stream.m3u8").write_bytes(playlist(1700000000, names))
        site = build_site(ctx, WEB_ROOT)
        self.patch(diskfull, "free_bytes", lambda directory: 10 * RESERVE)
        log = _Log(self)

        def get(path: bytes, *headers: bytes) -> bytes:
            address = IPv4Address("TCP", "10.1.0.1", 4000)
            channel = site.buildProtocol(address)
            transport = StringTransport(peerAddress=address)
            channel.makeConnection(transport)
            lines = [b"GET %s HTTP/1.1" % path, b"Host: owncast.test", *headers]
            channel.dataReceived(b"\r\n".join(lines) + b"\r\n\r\n")
            return transport.value()

        answer = get(b"/hls/0/stream.m3u8")
        self.assertIn(names[0].encode(), answer)
        self.assertNotIn(names[1].encode(), answer)
        site.startFactory()
        self.addCleanup(site.stopFactory)
        status = get(b"/api/admin/status", b"Authorization: Basic " + _basic(ADMIN))
        self.assertIn(b'"diskFull": true', status)
        self.assertEqual(log.count("Disk full"), 1)


def _basic(credentials: tuple[str, str]) -> bytes:
    import base64

    return base64.b64encode(":".join(credentials).encode())
