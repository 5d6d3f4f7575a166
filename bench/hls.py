"""HLS delivery: requests/s and p99 latency for a playlist and a 1 MB segment, beside nginx.

The same files are served by

* ours: the real daemon (``twistd owncast`` on a temporary data dir, free ports, nobody
  publishing), the files put in ``<datadir>/hls/0/`` so that ``/hls/0/stream.m3u8`` and
  ``/hls/0/stream-N.ts`` are what a live stream's would be;
* the peer: nginx, one foreground process (``master_process off``), ``root`` the same data
  dir, ``sendfile on``, the same content types, cache and CORS headers, access log off (as
  ours: the daemon keeps no per-request log).

The files: a level-2 style variant playlist (10 segments of 3 s, program date times; about
0.9 KB) and one segment, ``stream-N.ts``, a real MPEG-TS (ffmpeg, 720p x264 + AAC) cut
to 1 MB at a packet boundary. Both servers are pinned to one core, ``wrk`` (one thread,
``--latency``) to the other. For each of 100 and 1 000 concurrent keep-alive connections
and each file, ``wrk`` runs ``SECONDS`` s against ours and then nginx; ``RUNS`` rounds,
medians reported. The file limit is raised first (the daemon and nginx inherit it).

Figures, for each file and connection count: ``hls_<file>_rps_c<N>`` (requests/s; goal:
ours at least half nginx's), ``hls_<file>_p99_ms_c<N>`` (``wrk``'s p99 latency, from
writing the request to reading the whole response: for the playlist that is the time to
first byte, near enough, for the 1 MB segment the time to last byte; no goal, reported
beside nginx's) and ``hls_<file>_per_core_c<N>`` (requests per CPU second of the server,
which does not depend on ``wrk`` keeping the server busy: one ``wrk`` thread receiving
1 MB answers tops out near nginx's rate, so nginx's segment requests/s are partly
``wrk``'s limit).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    median,
    register,
    run,
    running,
    spawn,
    stop,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent
TWISTD = os.path.join(sys.prefix, "bin", "twistd")
KEY = "bench-hls-key"
SECONDS = 4
RUNS = 3
CONNECTIONS = (100, 1000)
WRK_THREADS = 1
#: 1 MB of MPEG-TS: a whole number of 188-byte packets.
SEGMENT_SIZE = 1_000_000 // 188 * 188
SEGMENT_SOURCE = TMP_DIR / "hls-720p-4M-4s.ts"
FIRST = 1764000000  # segment numbers start at a Unix time, as the daemon's do
START_TIMEOUT = 30.0
GOAL = 0.5

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location ~ \\.m3u8$ {{
            add_header Cache-Control "no-cache, no-store";
            add_header Access-Control-Allow-Origin *;
        }}
        location ~ \\.ts$ {{
            add_header Cache-Control "public, max-age=31536000, immutable";
            add_header Access-Control-Allow-Origin *;
        }}
    }}
}}
"""


# -- files ---------------------------------------------------------------------------------


def prepare_segment() -> bytes:
    """A real MPEG-TS segment of SEGMENT_SIZE bytes (encoded once, cached)."""

    def argv(partial: Path) -> list[str]:
        return [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=24",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "72",
            "-c:a", "aac", "-b:a", "128k", "-t", "4", "-f", "mpegts", str(partial),
        ]  # fmt: skip

    what = "encoding a 720p MPEG-TS segment"
    made_once(SEGMENT_SOURCE, what, argv, timeout=300, smallest=SEGMENT_SIZE)
    with open(SEGMENT_SOURCE, "rb") as f:
        return f.read(SEGMENT_SIZE)


def variant_playlist(first: int = FIRST, count: int = 10, seconds: int = 3) -> bytes:
    """What ffmpeg writes for a level-2 variant (3 s segments, 10 listed)."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        f"#EXT-X-TARGETDURATION:{seconds}",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for i in range(count):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(first + i * seconds))
        lines += [
            f"#EXT-X-PROGRAM-DATE-TIME:{stamp}.000+0000",
            f"#EXTINF:{seconds}.000000,",
            f"stream-{first + i}.ts",
        ]
    return ("\n".join(lines) + "\n").encode()


MASTER = (
    b"#EXTM3U\n#EXT-X-VERSION:6\n"
    b'#EXT-X-STREAM-INF:BANDWIDTH=1460800,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"\n'
    b"0/stream.m3u8\n\n"
)
PLAYLIST_PATH = "/hls/0/stream.m3u8"
SEGMENT_PATH = f"/hls/0/stream-{FIRST + 9}.ts"


def lay_out(datadir: Path, segment: bytes) -> None:
    """The master and variant playlists and every segment they list (the same bytes,
    hard-linked) under ``datadir/hls``: the server lists only segments that are there,
    as ffmpeg's are (a full disk can cut one short)."""
    variant = datadir / "hls" / "0"
    variant.mkdir(parents=True, exist_ok=True)
    (datadir / "hls" / "stream.m3u8").write_bytes(MASTER)
    newest = variant / f"stream-{FIRST + 9}.ts"
    newest.write_bytes(segment)
    for n in range(FIRST, FIRST + 9):
        older = variant / f"stream-{n}.ts"
        if not older.exists():
            os.link(newest, older)
    (variant / "stream.m3u8").write_bytes(variant_playlist())


# -- the servers ---------------------------------------------------------------------------


def raise_file_limit(wanted: int = 65536) -> int:
    """Raise this process's soft RLIMIT_NOFILE (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


@dataclass
class Daemon:
    proc: subprocess.Popen
    web: int
    rtmp: int
    datadir: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web}"


@contextlib.contextmanager
def owncast(cpus: str | None, prefix: str = "bench-hls-") -> Iterator[Daemon]:
    """The real daemon on a fresh data dir (stream key ``KEY``), pinned to ``cpus``
    (its ffmpeg children inherit that); yields it once it answers ``/api/status``."""
    web, rtmp = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        datadir = Path(tmp) / "data"
        cmd = [
            TWISTD,
            "--nodaemon",
            "--pidfile=",
            "owncast",
            "--datadir",
            str(datadir),
            "--webserverport",
            str(web),
            "--rtmpport",
            str(rtmp),
            "--streamkey",
            KEY,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(Path(tmp) / "output", "w+b") as out:
            proc = spawn(cmd, cpus=cpus, stdout=out, stderr=out, cwd=str(ROOT), env=env)
            try:
                deadline = time.monotonic() + START_TIMEOUT
                while get(f"http://127.0.0.1:{web}/api/status")[0] != 200:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        out.seek(0)
                        tail = out.read().decode("utf-8", "replace")[-800:]
                        raise RuntimeError(f"the daemon did not start: {tail}")
                    time.sleep(0.05)
                yield Daemon(proc, web, rtmp, datadir)
            finally:
                stop(proc, timeout=10)


def nginx_binary() -> str:
    return ensure_apt(["nginx"], "nginx")


@contextlib.contextmanager
def nginx(root: Path, cpus: str | None, nofile: int) -> Iterator[tuple[object, int]]:
    """nginx serving ``root`` as one foreground process pinned to ``cpus``."""
    binary = nginx_binary()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-hls-nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            prefix=prefix, port=port, root=root, nofile=nofile,
            connections=max(1024, min(nofile - 64, 8192)),
        ))  # fmt: skip
        error_log = Path(prefix) / "error.log"
        cmd = [binary, "-p", prefix, "-c", str(conf), "-e", str(error_log)]
        with running(cmd, cpus=cpus) as server:
            try:
                wait_port(port, timeout=10, proc=server)
            except (RuntimeError, TimeoutError) as e:
                text = error_log.read_text() if error_log.exists() else ""
                raise RuntimeError(f"nginx did not start: {e}; {text[-500:]}") from e
            yield server, port


# -- wrk -------------------------------------------------------------------------------------


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx answers
    mbytes_per_s: float
    server_busy: float  # share of one core
    wrk_busy: float  # share of one core

    @property
    def per_core(self) -> float:
        """Requests per CPU second of the server: what one fully busy core would serve,
        whether or not wrk kept it fully busy."""
        return self.rps / self.server_busy if self.server_busy else 0.0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE = {"B": 1e-6, "KB": 1024 / 1e6, "MB": 2**20 / 1e6, "GB": 2**30 / 1e6, "TB": 2**40 / 1e6}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(text: str) -> dict[str, float]:
    """The numbers ``wrk --latency`` prints."""
    found: dict[str, float] = {}
    for pct in ("50", "99"):
        match = re.search(rf"^\s*{pct}%\s+(\S+)\s*$", text, re.M)
        if match is None:
            raise ValueError(f"no {pct}% latency in wrk's output:\n{text}")
        found[f"p{pct}"] = _ms(match.group(1))
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    count = re.search(r"^\s*([0-9]+) requests in", text, re.M)
    transfer = re.search(r"^Transfer/sec:\s+([0-9.]+)([KMGT]?B)", text, re.M)
    if rps is None or count is None:
        raise ValueError(f"no request rate in wrk's output:\n{text}")
    found["rps"] = float(rps.group(1))
    found["requests"] = float(count.group(1))
    found["mbytes"] = float(transfer.group(1)) * _SIZE[transfer.group(2)] if transfer else 0.0
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    found["errors"] = errors
    return found


def wrk_binary() -> str:
    return ensure_apt(["wrk"], "wrk")


def load(url: str, connections: int, seconds: float, server_pid: int, cpus: str | None) -> Load:
    """``wrk`` against ``url``; its numbers, and how busy the server and wrk were."""
    cmd = [
        wrk_binary(),
        "-t",
        str(WRK_THREADS),
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        url,
    ]
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_server = cpu_seconds(server_pid, children=False)
    with tempfile.TemporaryFile("w+b") as out:
        done = run(cmd, timeout=seconds + 60, cpus=cpus, stdout=out)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    server = cpu_seconds(server_pid, children=False) - before_server
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (
        after_children.ru_utime
        - before_children.ru_utime
        + after_children.ru_stime
        - before_children.ru_stime
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    numbers = parse_wrk(text)
    return Load(
        rps=numbers["rps"], p50_ms=numbers["p50"], p99_ms=numbers["p99"],
        requests=int(numbers["requests"]), errors=int(numbers["errors"]),
        mbytes_per_s=numbers["mbytes"], server_busy=server / done.seconds,
        wrk_busy=wrk_cpu / done.seconds,
    )  # fmt: skip


# -- the benchmark -----------------------------------------------------------------------------

TARGETS = {"playlist": PLAYLIST_PATH, "segment": SEGMENT_PATH}


def _check(base: str, segment: bytes, who: str) -> None:
    status, body = get(base + PLAYLIST_PATH)
    if status != 200 or body != variant_playlist():
        raise RuntimeError(f"{who} served the playlist wrong: {status} {body[:100]!r}")
    status, body = get(base + SEGMENT_PATH)
    if status != 200 or body != segment:
        raise RuntimeError(f"{who} served the segment wrong: {status}, {len(body)} bytes")


@register(
    "hls",
    "HLS delivery: requests/s and p99 latency for a playlist and a 1 MB segment "
    "at 100 and 1000 connections vs nginx",
)
def hls() -> list[Figure]:
    wrk_binary()
    nofile = raise_file_limit()
    if nofile < max(CONNECTIONS) + 200:
        log(
            f"hls: the file limit is only {nofile}; runs with {max(CONNECTIONS)} connections "
            "will see errors"
        )
    segment = prepare_segment()
    server_cpus, load_cpus = cpu_sets()
    try:
        nginx_binary()
        peer = True
    except BenchUnavailableError as e:
        log(f"hls: no peer: {e}")
        peer = False
    results: dict[tuple[str, str, int], list[Load]] = {}
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(owncast(server_cpus))
        lay_out(ours.datadir, segment)
        servers = {"ours": (ours.proc, ours.base)}
        if peer:
            nginx_proc, port = stack.enter_context(nginx(ours.datadir, server_cpus, nofile))
            servers["nginx"] = (nginx_proc, f"http://127.0.0.1:{port}")
        for name, (proc, base) in servers.items():
            _check(base, segment, name)
            for path in TARGETS.values():  # warm up: first reads, connections, caches
                load(base + path, 10, 1, proc.pid, load_cpus)
        for i in range(RUNS):  # interleaved so that drift in the machine hits both alike
            for connections in CONNECTIONS:
                for target, path in TARGETS.items():
                    for name, (proc, base) in servers.items():
                        r = load(base + path, connections, SECONDS, proc.pid, load_cpus)
                        results.setdefault((name, target, connections), []).append(r)
                        log(
                            f"hls {i + 1}/{RUNS} {name:5} {target:8} c{connections:<4}: "
                            f"{r.rps:8.0f} req/s, p50 {r.p50_ms:7.2f} ms, p99 {r.p99_ms:7.2f} "
                            f"ms, {r.mbytes_per_s:7.1f} MB/s, {r.errors} errors; server busy "
                            f"{r.server_busy:.0%}, wrk {r.wrk_busy:.0%}"
                        )
        _check(servers["ours"][1], segment, "ours (after)")

    def med(name: str, target: str, connections: int, attr: str) -> float | None:
        runs = results.get((name, target, connections))
        return median([getattr(r, attr) for r in runs]) if runs else None

    figures = []
    peer_name = "nginx" if peer else None
    for target in TARGETS:
        for connections in CONNECTIONS:
            errors = sum(r.errors for r in results[("ours", target, connections)])
            note = f"{errors} errors over {RUNS} runs" if errors else ""
            figures.append(Figure(
                f"hls_{target}_rps_c{connections}", med("ours", target, connections, "rps"),
                "req/s", peer_name, med("nginx", target, connections, "rps"),
                goal=("ratio", ">=", GOAL) if peer else None, note=note,
            ))  # fmt: skip
            figures.append(Figure(
                f"hls_{target}_p99_ms_c{connections}",
                med("ours", target, connections, "p99_ms"), "ms", peer_name,
                med("nginx", target, connections, "p99_ms"),
            ))  # fmt: skip
            figures.append(Figure(
                f"hls_{target}_per_core_c{connections}",
                med("ours", target, connections, "per_core"), "req per CPU s", peer_name,
                med("nginx", target, connections, "per_core"),
            ))  # fmt: skip
    return figures
