"""Viewer scale: how many simulated viewers one daemon serves while live, p99 segment TTFB
within 200 ms.

The daemon (``twistd owncast``, fresh data dir, pinned to one core; its ffmpeg inherits
that core) is live: ffmpeg publishes the ingest benchmark's cached file (1080p30 H.264 +
AAC, about 8.5 Mbit/s) in real time, looped, with ``-c copy``. The stream runs at latency
level 2 (the default: 3 s segments, 10 listed) with one variant set cheap to encode on
that shared core, 640x360 at 24 fps, 1200 kbit/s, x264 ``ultrafast`` (the default
variant keeps the source size at ``veryfast``, about half a core for 1080p), so segments
are the default bitrate's size (about 0.5 MB).

The viewers are simulated by ``python -m bench.viewers --load`` (asyncio, one process,
pinned to the other core): each viewer keeps one HTTP/1.1 connection (as a browser's
player does), and once per segment length fetches ``/hls/0/stream.m3u8`` and then, when
the playlist lists a newer segment, that segment. Viewers start spread evenly over one
segment length (as real viewers join at different moments), run one more segment length
to settle, then ``MEASURE_SEGMENTS`` segment lengths are measured: time to first byte of
every segment (from writing the request to the first byte of the answer), the same for
playlists, whole-segment times, errors (non-200 answers, failed connections, timeouts)
and the generator's own CPU. The daemon's CPU (its Python process, and its ffmpeg apart)
is read over the same window.

The count doubles from 50 (``STEPS``) until a step misses (p99 segment TTFB over 200 ms,
or any error) or the last step ran; after a miss, the count halfway between it and the
last count that met the goal is tried once. Figures: ``viewers_max`` (the largest count
that met the goal; a lower bound when the last step met it) and, at that count, the p99
segment TTFB, the p99 time to a whole segment, the p99 playlist TTFB, and the CPU of the
server, its ffmpeg and the generator. The daemon hands a segment's headers to the socket
as soon as it has the request (``hls._send_large``), so segment TTFB measures how soon a
request is taken up, and the whole-segment time how long the bytes then take.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    Figure,
    cpu_seconds,
    cpu_sets,
    ffmpeg_exe,
    log,
    register,
    running,
    spawn,
    stop,
)
from bench.hls import KEY, ROOT, get, owncast, raise_file_limit
from bench.ingest import prepare_input
from bench.playable import http

STEPS = (50, 100, 200, 400, 800, 1600, 3200, 6400)
GOAL_MS = 200.0
LEVEL = 2
#: Segment lengths measured per step (after one to spread the viewers, one to settle).
MEASURE_SEGMENTS = 4
REQUEST_TIMEOUT = 10.0
VARIANT = {
    "videoPassthrough": False,
    "audioPassthrough": True,
    "videoBitrate": 1200,
    "framerate": 24,
    "scaledWidth": 640,
    "scaledHeight": 360,
    "cpuUsageLevel": 0,
}
PLAYLIST = "/hls/0/stream.m3u8"


# -- the load generator (runs in its own process) ----------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, answers with a
    Content-Length (the daemon's always have one)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.future: asyncio.Future | None = None
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.future is not None and not self.future.done():
            self.future.set_exception(ConnectionError(f"connection lost: {exc}"))

    def get(self, path: str, agent: str, keep_body: bool) -> asyncio.Future:
        """(status, seconds to the first byte, seconds to the last, body or b"", body
        length)."""
        self.future = self.loop.create_future()
        self._keep = keep_body
        self._head = bytearray()
        self._body = bytearray()
        self._status = 0
        self._remaining = -1
        self._length = 0
        self._first: float | None = None
        self._sent = self.loop.time()
        self.transport.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {agent}\r\n\r\n".encode()
        )
        return self.future

    def data_received(self, data: bytes) -> None:
        future = self.future
        if future is None or future.done():
            return
        now = self.loop.time()
        if self._first is None:
            self._first = now
        if self._remaining < 0:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._head[:end]).split(b"\r\n")
            data = bytes(self._head[end + 4 :])
            try:
                self._status = int(head[0].split(b" ", 2)[1])
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head[1:]
                    if line.lower().startswith(b"content-length:")
                )
            except (IndexError, ValueError, StopIteration):
                future.set_exception(ValueError(f"bad answer: {bytes(self._head[:200])!r}"))
                self.transport.close()
                return
            self._remaining = self._length = length
        if self._keep:
            self._body += data
        self._remaining -= len(data)
        if self._remaining <= 0:
            future.set_result((
                self._status, self._first - self._sent, now - self._sent, bytes(self._body),
                self._length,
            ))  # fmt: skip


@dataclass
class Samples:
    segment_ttfb: list[float] = field(default_factory=list)
    segment_total: list[float] = field(default_factory=list)
    playlist_ttfb: list[float] = field(default_factory=list)
    segment_bytes: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors += 1
        self.error_kinds[what] = self.error_kinds.get(what, 0) + 1


def newest_segment(playlist: bytes) -> str | None:
    lines = [line.strip() for line in playlist.decode("utf-8", "replace").splitlines()]
    names = [line for line in lines if line and not line.startswith("#")]
    return names[-1] if names else None


def target_duration(playlist: bytes) -> float | None:
    for line in playlist.decode("utf-8", "replace").splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            return float(line.partition(":")[2])
    return None


async def viewer(
    n: int, count: int, port: int, period: float, state: dict, samples: Samples
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(period * n / count)  # viewers join spread over one period
    agent = f"bench-viewer/{n}"
    connection: HttpConnection | None = None
    last: str | None = None
    tick = loop.time()
    while not state["stop"]:
        measuring = state["measuring"]
        try:
            if connection is None or connection.lost:
                _, connection = await asyncio.wait_for(
                    loop.create_connection(lambda: HttpConnection(loop), "127.0.0.1", port),
                    REQUEST_TIMEOUT,
                )
            status, ttfb, _, body, _ = await asyncio.wait_for(
                connection.get(PLAYLIST, agent, True), REQUEST_TIMEOUT
            )
            if measuring:
                samples.playlist_ttfb.append(ttfb)
            if status != 200:
                if measuring:
                    samples.error(f"playlist {status}")
            else:
                newest = newest_segment(body)
                if newest is not None and newest != last:
                    measuring = state["measuring"]
                    status, ttfb, total, _, size = await asyncio.wait_for(
                        connection.get(f"/hls/0/{newest}", agent, False), REQUEST_TIMEOUT
                    )
                    last = newest
                    if measuring:
                        if status == 200:
                            samples.segment_ttfb.append(ttfb)
                            samples.segment_total.append(total)
                            samples.segment_bytes += size
                        else:
                            samples.error(f"segment {status}")
        except (OSError, ConnectionError, ValueError, asyncio.TimeoutError) as e:
            if measuring:
                samples.error(type(e).__name__)
            if connection is not None and connection.transport is not None:
                connection.transport.close()
            connection = None
        tick += period
        await asyncio.sleep(max(0.0, tick - loop.time()))
    if connection is not None and connection.transport is not None:
        connection.transport.close()


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)]


async def generate(port: int, count: int, measure_periods: int) -> dict:
    """Run ``count`` viewers; print ``measuring`` when the window opens, return the
    window's numbers."""
    status, body = await fetch_once(port, PLAYLIST)
    period = target_duration(body) if status == 200 else None
    if not period:
        raise RuntimeError(f"no live playlist to watch: {status} {body[:200]!r}")
    state = {"stop": False, "measuring": False}
    samples = Samples()
    tasks = [
        asyncio.ensure_future(viewer(n, count, port, period, state, samples)) for n in range(count)
    ]
    await asyncio.sleep(2 * period)  # everyone joined, then one more period to settle
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    state["measuring"] = True
    print("measuring", flush=True)
    await asyncio.sleep(measure_periods * period)
    state["measuring"] = False
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    state["stop"] = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime

    def ms(values: list[float], pct: float) -> float | None:
        value = percentile(values, pct)
        return None if value is None else value * 1000

    return {
        "viewers": count,
        "period": period,
        "seconds": seconds,
        "segments": len(samples.segment_ttfb),
        "segment_mbytes_per_s": samples.segment_bytes / seconds / 1e6,
        "mean_segment_bytes": samples.segment_bytes / max(1, len(samples.segment_ttfb)),
        "playlists": len(samples.playlist_ttfb),
        "segment_ttfb_p50_ms": ms(samples.segment_ttfb, 50),
        "segment_ttfb_p99_ms": ms(samples.segment_ttfb, 99),
        "segment_ttfb_max_ms": ms(samples.segment_ttfb, 100),
        "segment_total_p99_ms": ms(samples.segment_total, 99),
        "playlist_ttfb_p50_ms": ms(samples.playlist_ttfb, 50),
        "playlist_ttfb_p99_ms": ms(samples.playlist_ttfb, 99),
        "errors": samples.errors,
        "error_kinds": samples.error_kinds,
        "generator_busy": cpu / seconds,
    }


async def fetch_once(port: int, path: str) -> tuple[int, bytes]:
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(lambda: HttpConnection(loop), "127.0.0.1", port)
    try:
        status, _, _, body, _ = await asyncio.wait_for(
            connection.get(path, "bench-viewers", True), REQUEST_TIMEOUT
        )
    finally:
        connection.transport.close()
    return status, body


def load_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.viewers")
    parser.add_argument("--load", action="store_true", help="run the load generator")
    parser.add_argument("port", type=int)
    parser.add_argument("viewers", type=int)
    parser.add_argument("--periods", type=int, default=MEASURE_SEGMENTS)
    args = parser.parse_args(argv)
    result = asyncio.run(generate(args.port, args.viewers, args.periods))
    print(json.dumps(result), flush=True)
    return 0


# -- the benchmark ---------------------------------------------------------------------------


def _admin(base: str, setting: str, value: Any) -> None:
    status, body = http(
        "POST", f"{base}/api/admin/config/{setting}", {"value": value}, auth=("admin", KEY)
    )
    if status != 200 or not json.loads(body).get("success"):
        raise RuntimeError(f"setting {setting}: {status} {body[:200]!r}")


def _ffmpeg_cpu(pid: int) -> float:
    """CPU seconds of the daemon's children (its ffmpeg), live and reaped."""
    return cpu_seconds(pid, children=True) - cpu_seconds(pid, children=False)


def _wait_live(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = get(base + PLAYLIST)
        if status == 200 and body.count(b".ts") >= 2:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the stream did not go live within {timeout:.0f} s")


def step(daemon: Any, count: int, load_cpus: str | None) -> dict:
    """One step of the ramp: ``count`` viewers, the generator in its own process."""
    cmd = [sys.executable, "-m", "bench.viewers", "--load", str(daemon.web), str(count)]
    with tempfile.TemporaryFile("w+b") as err:
        proc = spawn(cmd, cpus=load_cpus, stdout=subprocess.PIPE, stderr=err, cwd=str(ROOT))

        def failed(what: str) -> RuntimeError:
            stop(proc)
            err.seek(0)
            return RuntimeError(f"the load generator {what}: {err.read().decode()[-800:]}")

        try:
            line = proc.stdout.readline().decode().strip()
            if line != "measuring":
                raise failed(f"said {line!r}")
            server_before = cpu_seconds(daemon.proc.pid, children=False)
            ffmpeg_before = _ffmpeg_cpu(daemon.proc.pid)
            started = time.monotonic()
            line = proc.stdout.readline().decode().strip()
            seconds = time.monotonic() - started
            server = cpu_seconds(daemon.proc.pid, children=False) - server_before
            ffmpeg = _ffmpeg_cpu(daemon.proc.pid) - ffmpeg_before
            if not line.startswith("{"):
                raise failed("failed")
            result = json.loads(line)
            proc.wait(30)
        finally:
            stop(proc)
            proc.stdout.close()
    result["server_busy"] = server / seconds
    result["ffmpeg_busy"] = ffmpeg / seconds
    return result


def passed(result: dict) -> bool:
    p99 = result["segment_ttfb_p99_ms"]
    return result["errors"] == 0 and p99 is not None and p99 <= GOAL_MS


@register(
    "viewers",
    "viewer scale: simulated HLS viewers one daemon serves while live "
    "with p99 segment TTFB <= 200 ms",
)
def viewers() -> list[Figure]:
    nofile = raise_file_limit()
    if nofile < max(STEPS) + 200:
        log(f"viewers: the file limit is only {nofile}; large steps will see errors")
    source = prepare_input()
    server_cpus, load_cpus = cpu_sets()
    results: list[dict] = []
    with owncast(server_cpus, prefix="bench-viewers-") as daemon:
        _admin(daemon.base, "video/streamlatencylevel", LEVEL)
        _admin(daemon.base, "video/streamoutputvariants", [VARIANT])
        publish = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(source),
            "-c",
            "copy",
            "-f",
            "flv",
            f"rtmp://127.0.0.1:{daemon.rtmp}/live/{KEY}",
        ]
        with running(publish, cpus=load_cpus) as publisher:
            _wait_live(daemon.base)
            counts = list(STEPS)
            while counts:
                count = counts.pop(0)
                if publisher.poll() is not None:
                    raise RuntimeError(f"the publisher exited ({publisher.returncode})")
                r = step(daemon, count, load_cpus)
                results.append(r)
                log(
                    f"viewers {count:5}: segment TTFB p50 {_f(r['segment_ttfb_p50_ms'])} "
                    f"p99 {_f(r['segment_ttfb_p99_ms'])} max {_f(r['segment_ttfb_max_ms'])} ms "
                    f"(whole segment p99 {_f(r['segment_total_p99_ms'])} ms, "
                    f"{r['segments']} segments of {r['mean_segment_bytes'] / 1e3:.0f} KB, "
                    f"{r['segment_mbytes_per_s']:.0f} MB/s), playlist TTFB p99 "
                    f"{_f(r['playlist_ttfb_p99_ms'])} ms, {r['errors']} errors "
                    f"{r['error_kinds'] or ''}; server {r['server_busy']:.0%} + ffmpeg "
                    f"{r['ffmpeg_busy']:.0%} of its core, generator {r['generator_busy']:.0%}"
                )
                if not passed(r):
                    good = [g["viewers"] for g in results if passed(g)]
                    # Once: halfway between the last count that met the goal and this one.
                    if good and count in STEPS and count - good[-1] >= 100:
                        counts = [(good[-1] + count) // 2 // 50 * 50]
                    else:
                        break
    good = sorted((r for r in results if passed(r)), key=lambda r: r["viewers"])
    best = good[-1] if good else None
    lower_bound = best is not None and best is results[-1] and best["viewers"] == STEPS[-1]
    unit = "viewers (at least: the last step met the goal)" if lower_bound else "viewers"
    return [
        Figure("viewers_max", best["viewers"] if best else 0, unit),
        Figure(
            "viewers_segment_ttfb_p99_ms",
            best["segment_ttfb_p99_ms"] if best else None,
            "ms",
            goal=("value", "<=", GOAL_MS) if best else None,
        ),
        Figure(
            "viewers_segment_total_p99_ms", best["segment_total_p99_ms"] if best else None, "ms"
        ),
        Figure(
            "viewers_playlist_ttfb_p99_ms", best["playlist_ttfb_p99_ms"] if best else None, "ms"
        ),
        Figure("viewers_server_cpu", best["server_busy"] * 100 if best else None, "% of a core"),
        Figure("viewers_ffmpeg_cpu", best["ffmpeg_busy"] * 100 if best else None, "% of a core"),
        Figure(
            "viewers_generator_cpu", best["generator_busy"] * 100 if best else None, "% of a core"
        ),
    ]


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    sys.exit(load_main())
