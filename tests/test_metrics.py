"""``/metrics``: Prometheus metrics read from the daemon's own state when scraped.

The collector on stand-ins first (what each metric reads, what is left out when an
object lacks a counter), then the resource behind admin auth in memory, then a scrape
of the real daemon while a real ffmpeg publishes, with a chat socket and a player.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.server import Site

from owncast.http.site import build_root
from owncast.stats.metrics import ChatCounts, DaemonMetrics, Sources
from tests.daemon import Daemon, http, wait_until
from tests.helpers import ADMIN, make_context
from tests.test_chat_e2e import connected
from tests.test_live_e2e import LiveCase, get_playlist

NOW = 1_700_000_000.0


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def names(samples: dict) -> set[str]:
    return {name for name, _ in samples}


class FakeViewers:
    def __init__(self, count: int = 0):
        self._count = count
        self.session_max = 5
        self.overall_max = 9

    def count(self) -> int:
        return self._count


class FakeStream:
    def __init__(self, online: bool = False, details: dict | None = None):
        self.online = online
        self.broadcaster = {"streamDetails": details or {}} if online else None


class Bare:
    """An object with just the attributes it is given."""

    def __init__(self, **attributes: Any):
        self.__dict__.update(attributes)


class CollectorTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.hls = Path(self.mktemp())
        self.hls.mkdir()

    def collect(self, **sources: Any) -> dict:
        base: dict[str, Any] = {
            "clock": self.clock,
            "stream": FakeStream(),
            "viewers": FakeViewers(),
            "hls_dir": str(self.hls),
        }
        metrics = DaemonMetrics(Sources(**{**base, **sources}))
        metrics.collector.take()
        return scrape(generate_latest(metrics.registry).decode())

    def test_offline_with_nothing_else(self):
        samples = self.collect()
        self.assertEqual(value(samples, "owncast_stream_online"), 0)
        self.assertEqual(value(samples, "owncast_viewers"), 0)
        self.assertEqual(value(samples, "owncast_viewers_session_max"), 5)
        self.assertEqual(value(samples, "owncast_viewers_overall_max"), 9)
        self.assertFalse({n for n in names(samples) if "lag" in n or "bitrate" in n})
        # The process's own metrics come along.
        self.assertIn("process_cpu_seconds_total", names(samples))
        self.assertIn("process_resident_memory_bytes", names(samples))

    def test_live_ingest_bitrate_and_segment_write_lag_per_variant(self):
        for variant, age in (("0", 0.5), ("1", 3.0)):
            (self.hls / variant).mkdir()
            playlist = self.hls / variant / "stream.m3u8"
            playlist.write_text("#EXTM3U\n")
            os.utime(playlist, (NOW - age, NOW - age))
        (self.hls / "stream.m3u8").write_text("#EXTM3U\n")  # the master is not a variant
        stream = FakeStream(True, {"videoBitrate": 2500, "audioBitrate": 128})
        samples = self.collect(stream=stream, viewers=FakeViewers(3))
        self.assertEqual(value(samples, "owncast_stream_online"), 1)
        self.assertEqual(value(samples, "owncast_viewers"), 3)
        bitrate = "owncast_ingest_bitrate_bits_per_second"
        self.assertEqual(value(samples, bitrate, track="video"), 2_500_000)
        self.assertEqual(value(samples, bitrate, track="audio"), 128_000)
        lag = "owncast_segment_write_lag_seconds"
        self.assertAlmostEqual(value(samples, lag, variant="0"), 0.5, places=3)
        self.assertAlmostEqual(value(samples, lag, variant="1"), 3.0, places=3)
        self.assertEqual(len([n for n, _ in samples if n == lag]), 2)

    def test_chat_sockets_and_messages_by_type(self):
        counts = ChatCounts()
        for kind in ("CHAT", "CHAT", "SYSTEM", "USER_JOINED"):
            counts({"type": kind, "body": "x"})
        samples = self.collect(chat_sockets=lambda: 4, chat_counts=counts)
        self.assertEqual(value(samples, "owncast_chat_connections"), 4)
        self.assertEqual(value(samples, "owncast_chat_messages_total", type="CHAT"), 2)
        self.assertEqual(value(samples, "owncast_chat_messages_total", type="SYSTEM"), 1)
        self.assertEqual(value(samples, "owncast_chat_messages_total", type="USER_JOINED"), 1)

    def test_counters_are_read_from_the_objects_that_keep_them(self):
        samples = self.collect(
            transcoder=Bare(pid=1234, restarts=2),
            webhooks=Bare(delivered=7, failed=1, queued=3),
            throttle=Bare(failures=11),
            publisher=Bare(failures=4),
            site=lambda: Bare(statuses={200: 10, 404: 2, 401: 1}, hls_fast=Bare(answered=90)),
        )
        self.assertEqual(value(samples, "owncast_ffmpeg_running"), 1)
        self.assertEqual(value(samples, "owncast_ffmpeg_restarts_total"), 2)
        deliveries = "owncast_webhook_deliveries_total"
        self.assertEqual(value(samples, deliveries, result="delivered"), 7)
        self.assertEqual(value(samples, deliveries, result="failed"), 1)
        self.assertEqual(value(samples, "owncast_webhook_queue_length"), 3)
        self.assertEqual(value(samples, "owncast_auth_failures_total"), 11)
        self.assertEqual(value(samples, "owncast_segment_upload_failures_total"), 4)
        requests = "owncast_http_requests_total"
        self.assertEqual(value(samples, requests, code="200"), 100)  # fast path included
        self.assertEqual(value(samples, requests, code="404"), 2)
        self.assertEqual(value(samples, requests, code="401"), 1)

    def test_a_counter_an_object_does_not_keep_is_left_out_not_zero(self):
        samples = self.collect(
            transcoder=Bare(pid=None),
            webhooks=Bare(delivered=0, failed=0),
            throttle=Bare(),
            site=lambda: Bare(statuses={200: 1}, hls_fast=None),
        )
        self.assertEqual(value(samples, "owncast_ffmpeg_running"), 0)
        for missing in (
            "owncast_ffmpeg_restarts_total",
            "owncast_webhook_queue_length",
            "owncast_auth_failures_total",
        ):
            self.assertNotIn(missing, names(samples))
        self.assertEqual(value(samples, "owncast_http_requests_total", code="200"), 1)


class ResourceTests(unittest.TestCase):
    def test_nothing_is_read_before_a_scrape_takes_its_reading(self):
        viewers = FakeViewers()
        viewers.count = lambda: self.fail("read outside a scrape")  # type: ignore[method-assign]
        metrics = DaemonMetrics(
            Sources(clock=Clock(), stream=FakeStream(), viewers=viewers, hls_dir="/none")
        )
        samples = scrape(generate_latest(metrics.registry).decode())
        self.assertNotIn("owncast_viewers", names(samples))
        self.assertIn("process_cpu_seconds_total", names(samples))

    async def test_metrics_need_the_admin_password(self):
        ctx = make_context(Path(self.mktemp()).resolve())
        metrics = DaemonMetrics(
            Sources(clock=ctx.reactor, stream=ctx.stream, viewers=ctx.viewers, hls_dir="/none")
        )
        site = Site(build_root(ctx, metrics=metrics.resource()))
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}/metrics"
        refused = await http("GET", base)
        self.assertEqual(refused.code, 401)
        self.assertNotIn(b"owncast_", refused.content)
        response = await http("GET", base, auth=ADMIN)
        self.assertEqual(response.code, 200)
        self.assertTrue(response.header("content-type").startswith("text/plain"), response)
        samples = scrape(response.content.decode())
        self.assertEqual(value(samples, "owncast_stream_online"), 0)
        self.assertEqual(value(samples, "owncast_viewers_overall_max"), 0)


class LiveScrapeTests(LiveCase):
    async def scrape(self, daemon: Daemon, auth: tuple[str, str]) -> dict:
        response = await daemon.get("/metrics", auth=auth)
        self.assertEqual(response.code, 200, response)
        return scrape(response.content.decode())

    async def test_a_scrape_while_live(self):
        daemon, auth = await self.start_live_daemon()
        self.assertEqual((await daemon.get("/metrics")).code, 401)
        before = await self.scrape(daemon, auth)
        self.assertEqual(value(before, "owncast_stream_online"), 0)
        self.assertEqual(value(before, "owncast_ffmpeg_running"), 0)

        self.publish(daemon, auth[1], 40)
        await self.wait_online(daemon, True)
        await self.wait_segments(daemon, 2, 15)
        self.assertIsNotNone(await get_playlist(daemon, 0))  # a player
        chat = await connected(self, daemon.web_port)
        chat.send_json({"type": "CHAT", "author": "alice", "body": "hello"})
        await wait_until(lambda: chat.of_type("CHAT"), 10, "the chat message back")
        self.assertEqual((await daemon.get("/no/such/page")).code, 404)
        self.assertEqual((await daemon.get("/api/admin/status", auth=("admin", "x"))).code, 401)

        async def measured() -> dict | None:
            samples = await self.scrape(daemon, auth)
            video = value(samples, "owncast_ingest_bitrate_bits_per_second", track="video")
            return samples if video else None

        samples = await wait_until(measured, 20, "the ingest bitrate")
        self.assertEqual(value(samples, "owncast_stream_online"), 1)
        self.assertEqual(value(samples, "owncast_ffmpeg_running"), 1)
        self.assertGreaterEqual(value(samples, "owncast_viewers"), 1)
        self.assertEqual(value(samples, "owncast_chat_connections"), 1)
        self.assertGreaterEqual(value(samples, "owncast_chat_messages_total", type="CHAT"), 1)
        self.assertGreater(
            value(samples, "owncast_ingest_bitrate_bits_per_second", track="video"), 0
        )
        lag = "owncast_segment_write_lag_seconds"
        self.assertEqual(
            {dict(labels)["variant"] for name, labels in samples if name == lag}, {"0", "1"}
        )
        requests = "owncast_http_requests_total"
        self.assertGreaterEqual(value(samples, requests, code="404"), 1)
        self.assertGreaterEqual(value(samples, requests, code="401"), 2)
        self.assertGreaterEqual(value(samples, requests, code="200"), 3)
        self.assertEqual(value(samples, "owncast_auth_failures_total"), 1)  # the bad password
        deliveries = "owncast_webhook_deliveries_total"
        self.assertEqual(value(samples, deliveries, result="failed"), 0)
        self.assertEqual(value(samples, "owncast_webhook_queue_length"), 0)
        self.assertEqual(value(samples, "owncast_ffmpeg_restarts_total"), 0)
        self.assertGreater(value(samples, "process_resident_memory_bytes"), 0)
