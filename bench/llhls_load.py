"""LL-HLS held requests at scale: simulated low-latency viewers on one core, time from a
part's creation to its delivery, beside nginx serving the same files without blocking.

Ours: ``python -m bench.llhls_server serve`` (the real ``OwncastSite``, its channel and
fast path, ``/hls/`` as the daemon builds it, over one ``Rendition``) pinned to one core,
fed a recording of the real ffmpeg's LL output (640x360 24 fps x264 at 800 kbit/s + AAC,
a keyframe a second, a fragment every 0.2 s: parts of about 20 KB) in real time.

The viewers (``python -m bench.llhls_load --load``, one process on the other core, raw
non-blocking sockets on ``epoll``: asyncio costs too much per answer at this rate) act
as a low-latency player that uses the preload hint: each keeps two keep-alive
connections, one always holding a blocking playlist request for the next part
(``_HLS_msn``/``_HLS_part``, ``_HLS_skip=YES`` delta updates), re-asked as soon as it is
answered, and one fetching every part in turn (``part<k>.m4s``, held by the server until
it lands). So every part costs the server two held answers per viewer.

The peer: nginx (one foreground process, ``sendfile``, access log off) on the same core,
serving the same parts, segments, init and playlist written as files by
``llhls_server files`` as they are created. nginx cannot hold a request, so its viewers
poll the playlist every part target (phases spread evenly) and fetch every part it lists
that they have not had, as a player does without blocking reload.

Each step (``STEPS`` viewers) starts both servers afresh, one after the other: viewers
join over about a second, settle ``SETTLE`` s, then ``MEASURE`` s are measured. For every
part created in the window (by the replay's schedule: the instant ffmpeg would have
written it, taken before the server saw it, so a busy server's lateness counts) and every
viewer: the time from its creation to its last bytes reaching the viewer's socket (the
kernel's receive timestamp: on a network, the moment the viewer's machine has them),
and, beside it, to the generator's process reading them (later by however long 5 000
viewers sharing one process on one core take to get to it); a part a viewer never got
(within ``GRACE`` s) is lost. Figures at each step: p50/p99/max delivery, the read p99,
loss, the server's and the generator's CPU (over the window, ``% of a core``) and
errors.
Goal: ``llhls_5000_part_p99_ms <= 100`` with ``llhls_5000_loss <= 0``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    TMP_DIR,
    BenchUnavailableError,
    Figure,
    cpu_seconds,
    cpu_sets,
    ensure_apt,
    ffmpeg_exe,
    free_port,
    log,
    made_once,
    register,
    run,
    running,
    spawn,
    stop,
    wait_port,
)
from bench.hls import ROOT, raise_file_limit

#: Viewer counts, one step each (``LLHLS_STEPS=5000`` for one).
STEPS = tuple(int(n) for n in os.environ.get("LLHLS_STEPS", "1000,2000,5000").split(","))
#: Where loopback's receive work runs: ``off`` leaves it on the sending core, ``on``
#: steers it to the generator's core with RPS (as a real network takes it off the
#: server's core; needs root; on this VM each packet then costs an IPI, as dear as the
#: work it moves: see bench/README.md), ``both`` measures each step both ways.
RPS = os.environ.get("LLHLS_RPS", "off")
#: Niceness of the servers and the generator (``LLHLS_NICE=-10``: ahead of other work on
#: a shared machine, for both servers alike; needs root).
NICE = int(os.environ.get("LLHLS_NICE", "0"))
RPS_FILE = Path("/sys/class/net/lo/queues/rx-0/rps_cpus")
GOAL_MS = 100.0
SETTLE = 3.0
MEASURE = 10.0
#: Seconds after the window a part created in it may still arrive and count.
GRACE = 2.0
#: Seconds of recording: start-up, joining, settling, the window and the grace.
RECORDING_SECONDS = 40
RECORDING = TMP_DIR / "llhls-360p-800k.mp4"
SOURCE = Path(__file__).resolve().parent / "llhls_viewers.c"
#: How often polling viewers (the peer's) ask for the playlist: the part target.
PERIOD = 0.2
#: Connections opened per batch, and the pause between batches.
BATCH = 250
BATCH_PAUSE = 0.02

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {connections}; use epoll; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location ~ \\.m3u8$ {{
            add_header Cache-Control "no-cache";
            add_header Access-Control-Allow-Origin *;
        }}
        location ~ \\.(m4s|mp4)$ {{
            add_header Cache-Control "public, max-age=31536000, immutable";
            add_header Access-Control-Allow-Origin *;
        }}
    }}
}}
"""


# -- the load generator (bench/llhls_viewers.c) ---------------------------------------------


def build_viewers() -> Path:
    """The C load generator, compiled (again when its source is newer)."""
    binary = TMP_DIR / "llhls_viewers"
    if not binary.exists() or binary.stat().st_mtime < SOURCE.stat().st_mtime:
        compiler = ensure_apt(["gcc", "libc6-dev"], "cc")
        TMP_DIR.mkdir(parents=True, exist_ok=True)
        done = run([compiler, "-O2", "-Wall", "-o", str(binary), str(SOURCE)], timeout=120)
        if done.returncode != 0:
            raise BenchUnavailableError(f"cannot build the load generator: {done.stderr[-500:]}")
    return binary


def read_stamps(path: str) -> tuple[dict[int, float], dict[int, float]]:
    """(scheduled, fed) time of each part."""
    scheduled, fed = {}, {}
    with open(path) as f:
        for line in f:
            index, due, at = line.split()
            scheduled[int(index)] = float(due)
            fed[int(index)] = float(at)
    return scheduled, fed


def summarize(result: dict, count: int, stamps: str, arrivals: str) -> dict:
    """Delivery times and loss of the parts created in the window."""
    scheduled, fed = read_stamps(stamps)
    start, end = result["window"]
    parts = {i for i, t in scheduled.items() if start <= t < end}
    late = sorted(fed[i] - scheduled[i] for i in parts)
    seen: set[tuple[int, int]] = set()
    delays, reads = [], []
    with open(arrivals) as f:
        for line in f:
            viewer, index, arrived, read = line.split()
            key = (int(viewer), int(index))
            if key[1] in parts and key not in seen:
                seen.add(key)
                delays.append(float(arrived) - scheduled[key[1]])
                reads.append(float(read) - scheduled[key[1]])
    delays.sort()
    reads.sort()

    def pct(p: float, values: list[float]) -> float | None:
        if not values:
            return None
        return values[min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1)] * 1000

    return {
        "viewers": count,
        "parts": len(parts),
        "delivered": len(delays),
        "loss": len(parts) * count - len(delays),
        "p50_ms": pct(50, delays),
        "p99_ms": pct(99, delays),
        "max_ms": pct(100, delays),
        "read_p50_ms": pct(50, reads),
        "read_p99_ms": pct(99, reads),
        "feed_late_max_ms": late[-1] * 1000 if late else None,
        "generator_busy": result["generator_busy"],
        "errors": result["errors"],
    }


# -- the benchmark ----------------------------------------------------------------------------


def prepare_recording() -> Path:
    """The real ffmpeg's LL output, as the daemon asks for it, recorded once."""
    from owncast.llhls.output import FRAGMENT_US, SEGMENT_SECONDS
    from owncast.transcode.argv import LL_MOVFLAGS

    def argv(partial: Path) -> list[str]:
        return [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=24:duration={RECORDING_SECONDS}",
            "-f", "lavfi",
            "-i", f"sine=frequency=440:sample_rate=48000:duration={RECORDING_SECONDS}",
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
            "-b:v", "800k", "-maxrate", "800k", "-bufsize", "1600k",
            "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})", "-sc_threshold", "0",
            "-c:a", "aac", "-b:a", "64k",
            "-f", "mp4", "-movflags", LL_MOVFLAGS, "-frag_duration", str(FRAGMENT_US),
            str(partial),
        ]  # fmt: skip

    what = f"recording {RECORDING_SECONDS} s of LL-HLS fMP4"
    return made_once(RECORDING, what, argv, timeout=300)


def niced(cmd: list[str]) -> list[str]:
    """``cmd`` at ``NICE`` (``nice`` execs, so the pid stays the command's)."""
    return ["nice", "-n", str(NICE), *cmd] if NICE else cmd


@contextlib.contextmanager
def ours(cpus: str | None, recording: Path, stamps: str) -> Iterator[tuple[Any, int]]:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.llhls_server", "serve", str(port), str(recording)]
    with running(niced([*cmd, "--stamps", stamps]), cpus=cpus, cwd=str(ROOT)) as server:
        wait_port(port, timeout=20, proc=server)
        yield server, port


@contextlib.contextmanager
def nginx(cpus: str | None, recording: Path, stamps: str, nofile: int) -> Iterator[tuple[Any, int]]:
    binary = ensure_apt(["nginx"], "nginx")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-llhls-nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            prefix=prefix, port=port, root=prefix, nofile=nofile,
            connections=max(1024, min(nofile - 64, 16384)),
        ))  # fmt: skip
        feeder = [sys.executable, "-m", "bench.llhls_server", "files", prefix, str(recording)]
        with (
            running(niced([*feeder, "--stamps", stamps]), cpus=cpus, cwd=str(ROOT)),
            running(
                niced([binary, "-p", prefix, "-c", str(conf), "-e", f"{prefix}/error.log"]),
                cpus=cpus,
            ) as server,
        ):
            wait_port(port, timeout=10, proc=server)
            deadline = time.monotonic() + 20
            while not (Path(prefix) / "hls" / "0" / "stream.m3u8").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the feeder wrote no playlist")
                time.sleep(0.05)
            yield server, port


def step(
    viewers: Path, server: Any, port: int, count: int, mode: str, stamps: str, cpus: str | None
) -> dict:
    """One run of the generator; its summary, with the server's CPU over the window."""
    time.sleep(1.0)  # a few parts in the playlist
    with (
        tempfile.TemporaryFile("w+b") as err,
        tempfile.NamedTemporaryFile(prefix="llhls-arrivals-") as arrivals,
    ):
        cmd = [
            str(viewers), str(port), str(count), mode, str(SETTLE), str(MEASURE), str(GRACE),
            str(PERIOD), arrivals.name,
        ]  # fmt: skip
        proc = spawn(niced(cmd), cpus=cpus, stdout=subprocess.PIPE, stderr=err)
        try:
            line = proc.stdout.readline().decode().strip()
            if line != "measuring":
                err.seek(0)
                raise RuntimeError(f"the generator said {line!r}: {err.read().decode()[-800:]}")
            before, started = cpu_seconds(server.pid, children=False), time.monotonic()
            waited = run_queue_seconds(server.pid)
            softirq = softirq_seconds()
            time.sleep(MEASURE)
            seconds = time.monotonic() - started
            busy = (cpu_seconds(server.pid, children=False) - before) / seconds
            waited = (run_queue_seconds(server.pid) - waited) / seconds
            softirq = [(b - a) / seconds for a, b in zip(softirq, softirq_seconds(), strict=True)]
            line = proc.stdout.readline().decode().strip()
            if not line.startswith("{"):
                err.seek(0)
                raise RuntimeError(f"the generator failed: {err.read().decode()[-800:]}")
            proc.wait(30)
            result = summarize(json.loads(line), count, stamps, arrivals.name)
        finally:
            stop(proc)
            proc.stdout.close()
    result["server_busy"] = busy
    result["server_waited"] = waited
    result["softirq"] = softirq
    return result


def run_queue_seconds(pid: int) -> float:
    """Seconds ``pid``'s threads were ready to run but waited for their CPU (schedstat):
    how much the other load on the machine took from the server."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open(f"/proc/{pid}/task/{tid}/schedstat") as f,
        ):
            total += int(f.read().split()[1])
    return total / 1e9


def cpu_mask(cpus: str) -> str:
    """``"1,3"`` -> ``"a"``: the hex CPU mask of a list of cores."""
    return format(sum(1 << int(c) for c in cpus.split(",")), "x")


@contextlib.contextmanager
def steered(cpus: str | None, on: bool) -> Iterator[bool]:
    """Loopback's receive processing sent to ``cpus`` (Receive Packet Steering) while in
    the block, and put back as it was after it; yields whether it is steered.

    On loopback the sending core does the receiving socket's TCP work too (the packet
    goes through ``netif_rx`` and the softirq on the core that sent it), so a server's
    core pays for its clients' receive work, which on a real network their own
    machines do. RPS on ``lo`` queues each packet to the generator's core instead."""
    if not on or cpus is None:
        yield False
        return
    try:
        old = RPS_FILE.read_text().strip()
        RPS_FILE.write_text(cpu_mask(cpus))
    except OSError as e:
        raise BenchUnavailableError(
            f"cannot steer loopback (LLHLS_RPS=off runs without): {e}"
        ) from e
    try:
        yield True
    finally:
        RPS_FILE.write_text(old)


def softirq_seconds() -> list[float]:
    """Seconds each CPU has spent in softirqs (``/proc/stat``)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = []
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0].startswith("cpu") and fields[0] != "cpu":
                out.append(int(fields[7]) / tick)
    return out


def _load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


@register(
    "llhls",
    "LL-HLS held requests: p99 part creation-to-delivery and loss for 1000-5000 "
    "blocking viewers on one core, vs nginx polled",
)
def llhls() -> list[Figure]:
    nofile = raise_file_limit()
    if nofile < 2 * max(STEPS) + 200:
        raise BenchUnavailableError(f"the file limit is only {nofile}")
    recording = prepare_recording()
    viewers = build_viewers()
    server_cpus, load_cpus = cpu_sets()
    if RPS not in ("on", "off", "both"):
        raise BenchUnavailableError(f"LLHLS_RPS is on, off or both, not {RPS!r}")
    modes = {"on": (True,), "off": (False,), "both": (False, True)}[RPS]
    results: dict[tuple[str, int, bool], dict] = {}
    for count in STEPS:
        for rps in modes:
            for name in ("ours", "nginx"):
                results[(name, count, rps)] = _one(
                    name, count, rps, recording, viewers, nofile, server_cpus, load_cpus
                )
    figures = []
    for count in STEPS:
        for rps in modes:
            o, p = results[("ours", count, rps)], results[("nginx", count, rps)]
            figures += _figures(count, o, p, "rps_" if rps and RPS == "both" else "")
    return figures


def _one(
    name: str,
    count: int,
    rps: bool,
    recording: Path,
    viewers: Path,
    nofile: int,
    server_cpus: str | None,
    load_cpus: str | None,
) -> dict:
    """One server (``ours`` or ``nginx``) at ``count`` viewers; its summary, logged."""
    with (
        tempfile.NamedTemporaryFile(prefix="llhls-stamps-") as stamps,
        steered(load_cpus, rps) as rps,
    ):
        if name == "ours":
            servers = ours(server_cpus, recording, stamps.name)
        else:
            servers = nginx(server_cpus, recording, stamps.name, nofile)
        mode = "ll" if name == "ours" else "poll"
        with servers as (server, port):
            r = step(viewers, server, port, count, mode, stamps.name, load_cpus)
    r["load"] = _load_average()
    r["rps"] = rps
    softirq = " ".join(f"{x:.0%}" for x in r["softirq"])
    log(
        f"llhls {name:5} {count:5} viewers, RPS {'on ' if rps else 'off'}: part delivery "
        f"p50 {_f(r['p50_ms'])} p99 {_f(r['p99_ms'])} max {_f(r['max_ms'])} ms, "
        f"(read by the generator: p50 {_f(r['read_p50_ms'])} p99 {_f(r['read_p99_ms'])}), "
        f"{r['parts']} parts, loss {r['loss']}, errors {r['errors'] or 0}; server "
        f"{r['server_busy']:.0%} of a core (and {r['server_waited']:.0%} of the time waiting "
        f"for it), generator {r['generator_busy']:.0%}, softirq per CPU {softirq}, feed late "
        f"by {_f(r['feed_late_max_ms'])} ms at most; load average {r['load']}"
    )
    return r


def _figures(count: int, o: dict, p: dict, tag: str) -> list[Figure]:
    """The figures of one step: ours (``o``) beside nginx (``p``)."""
    errors = sum(o["errors"].values())
    note = f"load average {o['load']}; RPS {'on' if o['rps'] else 'off'}; nice {NICE}" + (
        f"; {errors} errors" if errors else ""
    )
    goal = count == max(STEPS) and not tag
    name = f"llhls_{count}_{tag}"
    peer = "nginx (polled)"
    return [
        Figure(
            f"{name}part_p99_ms", o["p99_ms"], "ms", peer, p["p99_ms"],
            goal=("value", "<=", GOAL_MS) if goal else None, note=note,
        ),
        Figure(f"{name}part_p50_ms", o["p50_ms"], "ms", peer, p["p50_ms"]),
        Figure(f"{name}part_max_ms", o["max_ms"], "ms", peer, p["max_ms"]),
        Figure(f"{name}part_read_p99_ms", o["read_p99_ms"], "ms", peer, p["read_p99_ms"]),
        Figure(
            f"{name}loss", o["loss"], "parts", peer, p["loss"],
            goal=("value", "<=", 0) if goal else None,
        ),
        Figure(f"{name}server_cpu", o["server_busy"] * 100, "% of a core", peer,
               p["server_busy"] * 100),
        Figure(f"{name}server_waited", o["server_waited"] * 100, "% of the time", peer,
               p["server_waited"] * 100),
        Figure(f"{name}generator_cpu", o["generator_busy"] * 100, "% of a core", peer,
               p["generator_busy"] * 100),
    ]  # fmt: skip


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
