"""Prometheus metrics at ``/metrics``: read from the daemon's own state when scraped.

Nothing here runs per request or per media packet. A scrape (every 15 s or so) reads
what the daemon keeps anyway: viewers, chat sockets, the ingest's stream details,
ffmpeg's process, the webhook dispatcher's, throttle's and segment publisher's
counters, the site's count of answers by status, and the age of each variant playlist.
The only counting added to a hot path is ``ChatCounts``: one dict increment per chat
message, beside a fan-out that writes it to every socket.

prometheus-client's Twisted resource renders in the reactor's thread pool (it is a
``WSGIResource``), where the daemon's objects must not be read: the reactor changes
them meanwhile. So ``ScrapeResource`` first takes a ``Reading`` of them on the reactor
thread (copies of a few numbers and small dicts), and the collector, in the pool,
builds the metrics from that reading; the pool also does the file work (a ``stat`` per
variant playlist) and the process collectors' reads of ``/proc``.

Counters another object does not have (yet) are left out of the scrape rather than
reported as zero. The registry is the daemon's own (never prometheus-client's global
one), with the process, platform and garbage-collector collectors beside ours.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.twisted import MetricsResource
from twisted.web.resource import Resource

_VARIANT = re.compile(r"[0-9]{1,2}")


class ChatCounts:
    """A chat hub listener: messages delivered to this node's sockets, by type."""

    def __init__(self) -> None:
        self.by_type: dict[str, int] = {}

    def __call__(self, message: dict) -> None:
        kind = message.get("type", "")
        self.by_type[kind] = self.by_type.get(kind, 0) + 1


@dataclass
class Sources:
    """What a scrape reads. Each is the daemon's own object; ``None`` leaves its metrics out."""

    clock: Any
    stream: Any  # StreamState: online, broadcaster's streamDetails
    viewers: Any  # Viewers: count(), session_max, overall_max
    hls_dir: str
    chat_sockets: Callable[[], int] | None = None
    chat_counts: ChatCounts | None = None
    transcoder: Any = None  # pid; restarts
    webhooks: Any = None  # WebhookDispatcher: delivered, failed; queued
    throttle: Any = None  # AuthThrottle: failures
    publisher: Any = None  # SegmentPublisher: failures
    site: Callable[[], Any] | None = None  # the OwncastSite: statuses; hls_fast.answered


def _int(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, int) else None


@dataclass
class Reading:
    """The numbers of one scrape, read on the reactor thread (``read``)."""

    now: float
    online: bool
    viewers: tuple[int, int, int]  # now, session peak, overall peak
    bitrates: dict[str, float] = field(default_factory=dict)  # track -> bits/s
    chat_sockets: int | None = None
    chat_messages: dict[str, int] | None = None
    ffmpeg_running: bool | None = None
    ffmpeg_restarts: int | None = None
    upload_failures: int | None = None
    webhooks: tuple[int, int] | None = None  # delivered, failed
    webhook_queue: int | None = None
    auth_failures: int | None = None
    http: dict[int, int] | None = None

    @classmethod
    def read(cls, s: Sources) -> Reading:
        online = bool(s.stream.online)
        v = s.viewers
        reading = cls(s.clock.seconds(), online, (v.count(), v.session_max, v.overall_max))
        broadcaster = s.stream.broadcaster if online else None
        if broadcaster:
            details = broadcaster.get("streamDetails") or {}
            for track in ("video", "audio"):
                reading.bitrates[track] = float(details.get(f"{track}Bitrate") or 0) * 1000
        if s.chat_sockets is not None:
            reading.chat_sockets = s.chat_sockets()
        if s.chat_counts is not None:
            reading.chat_messages = dict(s.chat_counts.by_type)
        if s.transcoder is not None:
            reading.ffmpeg_running = s.transcoder.pid is not None
            reading.ffmpeg_restarts = _int(s.transcoder, "restarts")
        reading.upload_failures = _int(s.publisher, "failures")
        if s.webhooks is not None:
            reading.webhooks = (s.webhooks.delivered, s.webhooks.failed)
            reading.webhook_queue = _int(s.webhooks, "queued")
        reading.auth_failures = _int(s.throttle, "failures")
        site = s.site() if s.site is not None else None
        statuses = getattr(site, "statuses", None)
        if statuses is not None:
            reading.http = dict(statuses)
            fast = _int(getattr(site, "hls_fast", None), "answered")
            if fast is not None:  # the HLS fast path answers only plain 200s
                reading.http[200] = reading.http.get(200, 0) + fast
        return reading


def playlist_ages(hls_dir: str, now: float) -> dict[str, float]:
    """Blocking: seconds since ffmpeg last rewrote each variant's playlist, i.e. since it
    last finished a segment there (it rewrites the playlist as each segment is done)."""
    ages: dict[str, float] = {}
    try:
        variants = [e.name for e in os.scandir(hls_dir) if _VARIANT.fullmatch(e.name)]
    except OSError:
        return ages
    for variant in variants:
        try:
            mtime = os.stat(os.path.join(hls_dir, variant, "stream.m3u8")).st_mtime
        except OSError:
            continue
        ages[variant] = max(0.0, now - mtime)
    return ages


def _counter(name: str, doc: str, value: int | None) -> Iterator[Metric]:
    if value is not None:
        yield CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(name, doc, value=value)


class DaemonCollector(Collector):
    """The daemon's metrics from the latest ``take`` (taken on the reactor thread);
    ``collect`` may run in any thread."""

    def __init__(self, sources: Sources):
        self._sources = sources
        self._hls_dir = sources.hls_dir
        self._reading: Reading | None = None

    def take(self) -> None:
        """Read the daemon's objects now: on the reactor thread, before each scrape."""
        self._reading = Reading.read(self._sources)

    def collect(self) -> Iterator[Metric]:
        r = self._reading
        if r is None:
            return
        yield from _gauge("owncast_stream_online", "1 while a broadcast is live.", r.online)
        now, session_max, overall_max = r.viewers
        yield from _gauge(
            "owncast_viewers", "Viewers seen in the last minute (players and chat).", now
        )
        yield from _gauge(
            "owncast_viewers_session_max", "Most viewers at once in this broadcast.", session_max
        )
        yield from _gauge("owncast_viewers_overall_max", "Most viewers at once ever.", overall_max)
        yield from self._chat(r)
        bitrate = GaugeMetricFamily(
            "owncast_ingest_bitrate_bits_per_second",
            "The live broadcast's bitrate by track, as the publisher declares it, or as "
            "measured on arrival when it declares none.",
            labels=["track"],
        )
        for track, bits in sorted(r.bitrates.items()):
            bitrate.add_metric([track], bits)
        yield bitrate
        yield from _gauge("owncast_ffmpeg_running", "1 while ffmpeg runs.", r.ffmpeg_running)
        yield from _counter(
            "owncast_ffmpeg_restarts",
            "Times ffmpeg died during a broadcast and was restarted.",
            r.ffmpeg_restarts,
        )
        if r.online:
            yield self._write_lag(r.now)
        yield from _counter(
            "owncast_segment_upload_failures",
            "Failed uploads of segments to S3-compatible storage (each is retried).",
            r.upload_failures,
        )
        yield from self._webhooks(r)
        yield from _counter(
            "owncast_auth_failures",
            "Wrong admin passwords, stream keys and access tokens.",
            r.auth_failures,
        )
        if r.http is not None:
            requests = CounterMetricFamily(
                "owncast_http_requests", "HTTP requests answered, by status code.", labels=["code"]
            )
            for code, count in sorted(r.http.items()):
                requests.add_metric([str(code)], count)
            yield requests

    def _chat(self, r: Reading) -> Iterator[Metric]:
        yield from _gauge(
            "owncast_chat_connections", "Open chat websockets on this node.", r.chat_sockets
        )
        if r.chat_messages is not None:
            messages = CounterMetricFamily(
                "owncast_chat_messages",
                "Chat messages delivered to this node's sockets, by type.",
                labels=["type"],
            )
            for kind, count in sorted(r.chat_messages.items()):
                messages.add_metric([kind], count)
            yield messages

    def _write_lag(self, now: float) -> Metric:
        lag = GaugeMetricFamily(
            "owncast_segment_write_lag_seconds",
            "Seconds since ffmpeg last finished a segment of the variant (while live); "
            "a value well above the segment length means ffmpeg is stuck or starved.",
            labels=["variant"],
        )
        for variant, age in sorted(playlist_ages(self._hls_dir, now).items()):
            lag.add_metric([variant], age)
        return lag

    def _webhooks(self, r: Reading) -> Iterator[Metric]:
        if r.webhooks is not None:
            deliveries = CounterMetricFamily(
                "owncast_webhook_deliveries",
                "Webhook deliveries by outcome (failed: after every retry).",
                labels=["result"],
            )
            deliveries.add_metric(["delivered"], r.webhooks[0])
            deliveries.add_metric(["failed"], r.webhooks[1])
            yield deliveries
        yield from _gauge(
            "owncast_webhook_queue_length",
            "Webhook deliveries waiting to be sent.",
            r.webhook_queue,
        )


class ScrapeResource(Resource):
    """``/metrics``: takes the collector's reading here, on the reactor thread, then lets
    prometheus-client's Twisted resource render the registry in the thread pool."""

    isLeaf = True

    def __init__(self, collector: DaemonCollector, registry: CollectorRegistry):
        super().__init__()
        self._collector = collector
        self._exposition = MetricsResource(registry)

    def render(self, request: Any) -> Any:
        self._collector.take()
        return self._exposition.render(request)


class DaemonMetrics:
    """The daemon's registry: its own metrics and the process's (CPU, memory, descriptors)."""

    def __init__(self, sources: Sources):
        self.collector = DaemonCollector(sources)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def resource(self) -> ScrapeResource:
        return ScrapeResource(self.collector, self.registry)
