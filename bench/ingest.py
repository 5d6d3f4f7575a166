"""RTMP ingest: what receiving an 8 Mbit/s stream costs our process, beside nginx-rtmp.

One input, encoded once and cached: 20 s of 1080p30 H.264 + AAC in FLV at about 8 Mbit/s.
ffmpeg publishes it with ``-c copy`` (no encoding while measuring) to

* ours: ``bench/ingest_server.py``, only ``RtmpFactory`` on the real reactor, media to a
  sink that drops it, so what is measured is the RTMP parsing, not transcoding;
* the peer: nginx with Debian's ``libnginx-mod-rtmp``, ``live on; record off;``, one
  process (``master_process off``), nobody playing.

The server is pinned to one core, ffmpeg to the other. Figures (median of ``RUNS``):

* ``ingest_cpu_per_mbps``: server CPU seconds per megabit received, while publishing in
  real time (``-re``). CPU s/Mbit is the same number as "cores busy per Mbit/s of stream"
  (CPU s per s, divided by Mbit/s): 0.01 means one 8 Mbit/s stream keeps 8 % of a core
  busy. Goal: at most 1.5 times nginx-rtmp's.
* ``ingest_peak_rss``: the server's peak resident memory (VmHWM) over a real-time run.
* ``ingest_max_throughput``: Mbit/s taken in (best of ``FLOOD_RUNS``) when the stream is
  pushed as fast as the server reads it. ffmpeg itself tops out near 600 Mbit/s with
  ``-c copy`` to RTMP, below both servers, so the bytes ffmpeg sends for the file looped
  ``FLOOD_LOOPS`` times are recorded once (through a recording proxy in front of our
  server) and replayed from memory over a plain socket after a fresh handshake. Time runs
  from the first byte after the handshake until the server, having read everything,
  closes the connection.
* ``ingest_core_capacity``: megabits per CPU second of the server over those flood runs
  (median): what one fully busy core takes in, even when the client did not keep it busy.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    median,
    peak_rss_bytes,
    register,
    run,
    running,
    settle_cpu,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3
#: Flood runs are short (well under a second each), so take more of them.
FLOOD_RUNS = 5
SECONDS = 20
FLOOD_LOOPS = 10  # 10 x 20 s of 8 Mbit/s: ~210 MB per flood run
KEY = "bench-key"
INPUT = TMP_DIR / f"ingest-1080p30-8M-{SECONDS}s.flv"
#: What ffmpeg sent after the handshake, publishing INPUT looped FLOOD_LOOPS times.
FLOOD = TMP_DIR / f"ingest-1080p30-8M-{SECONDS}s-x{FLOOD_LOOPS}.rtmp"
HANDSHAKE = 1536

NGINX_MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules")
NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
load_module {module};
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            record off;
        }}
    }}
}}
"""


def prepare_input() -> Path:
    """Encode the test stream once; later runs reuse it."""

    def argv(partial: Path) -> list[str]:
        return [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-b:v", "8M", "-maxrate", "8M", "-bufsize", "16M", "-g", "60",
            "-c:a", "aac", "-b:a", "128k", "-ac", "2",
            "-t", str(SECONDS), "-f", "flv", str(partial),
        ]  # fmt: skip

    what = f"encoding the {SECONDS} s 1080p30 8 Mbit/s test stream"
    return made_once(INPUT, what, argv, timeout=600)


@dataclass
class Publish:
    cpu: float  # server CPU seconds over the publish
    mbits: float  # megabits published
    seconds: float  # wall time of the publish
    peak_rss: int | None  # server VmHWM after the publish, bytes
    idle_rss: int | None  # server VmHWM before the publish (started, imports done), bytes

    @property
    def cpu_per_mbit(self) -> float:
        return self.cpu / self.mbits

    @property
    def mbps(self) -> float:
        return self.mbits / self.seconds

    @property
    def busy(self) -> float:
        """Share of one core the server used over the publish."""
        return self.cpu / self.seconds


# -- the two ways of publishing ----------------------------------------------------------


def publish_realtime(port: int, source: Path, ffmpeg_cpus: str | None) -> tuple[float, float]:
    """ffmpeg publishes ``source`` at its own pace (``-re``); (megabits, seconds)."""
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-re",
        "-i",
        str(source),
        "-c",
        "copy",
        "-f",
        "flv",
        f"rtmp://127.0.0.1:{port}/live/{KEY}",
    ]
    done = run(cmd, timeout=SECONDS * 3 + 30, cpus=ffmpeg_cpus)
    if done.returncode != 0:
        raise RuntimeError(f"publishing failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return source.stat().st_size * 8 / 1e6, done.seconds


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            raise ConnectionError("server closed the connection during the handshake")
        data += more
    return bytes(data)


def replay(port: int, stream: bytes, cpus: str | None, timeout: float = 60.0) -> float:
    """Handshake with the server (simple handshake), then send ``stream`` (a recorded
    client-to-server chunk stream) as fast as the server takes it; return the seconds from
    the first byte after the handshake until the server closed the connection."""
    saved = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            c1 = struct.pack(">II", 0, 0) + os.urandom(HANDSHAKE - 8)
            sock.sendall(b"\x03" + c1)
            s0s1s2 = _recv_exactly(sock, 1 + 2 * HANDSHAKE)
            sock.sendall(s0s1s2[1 : 1 + HANDSHAKE])  # C2 echoes S1
            start = time.monotonic()
            view = memoryview(stream)
            block = 1 << 20
            for offset in range(0, len(view), block):
                sock.sendall(view[offset : offset + block])
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):  # replies, then EOF once the server has read it all
                pass
            return time.monotonic() - start
    finally:
        os.sched_setaffinity(0, saved)


def _pipe(src: socket.socket, dst: socket.socket, record: Any) -> None:
    try:
        while data := src.recv(1 << 16):
            if record is not None:
                record.write(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def record_flood(source: Path) -> Path:
    """Record once what ffmpeg sends publishing ``source`` looped FLOOD_LOOPS times (after
    C0, C1 and C2), via a recording proxy in front of our server."""
    if FLOOD.exists() and FLOOD.stat().st_size > source.stat().st_size * FLOOD_LOOPS * 0.9:
        return FLOOD
    log(f"recording the flood stream once into {FLOOD}")
    partial = FLOOD.with_suffix(".part")
    with ours() as (_server, port), socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(30)
        proxy_port = listener.getsockname()[1]
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "error",
            "-stream_loop",
            str(FLOOD_LOOPS - 1),
            "-i",
            str(source),
            "-c",
            "copy",
            "-f",
            "flv",
            f"rtmp://127.0.0.1:{proxy_port}/live/{KEY}",
        ]
        result: dict[str, Any] = {}
        publisher = threading.Thread(target=lambda: result.update(done=run(cmd, timeout=120)))
        publisher.start()
        try:
            client, _ = listener.accept()
            with (
                client,
                socket.create_connection(("127.0.0.1", port)) as upstream,
                open(partial, "wb") as record,
            ):
                back = threading.Thread(target=_pipe, args=(upstream, client, None))
                back.start()
                _pipe(client, upstream, record)
                back.join(30)
        finally:
            publisher.join(150)
    done = result.get("done")
    if done is None or done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"recording the flood stream failed: {done and done.stderr[-500:]}")
    with open(partial, "rb") as f:
        data = f.read()
    partial.unlink()
    FLOOD.write_bytes(data[1 + 2 * HANDSHAKE :])  # drop C0, C1, C2
    return FLOOD


# -- the two servers ---------------------------------------------------------------------


@contextlib.contextmanager
def ours(loops: int = 0) -> Iterator[tuple[Any, int]]:
    """Our ingest alone in a subprocess, pinned; yields (process, port). With ``loops``,
    checks afterwards that its sink got that many times the input file."""
    server_cpus, _ = cpu_sets()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        stats_path = Path(tmp) / "stats.json"
        cmd = [
            sys.executable,
            "-m",
            "bench.ingest_server",
            str(port),
            KEY,
            "--stats",
            str(stats_path),
        ]
        with open(Path(tmp) / "stderr", "w+b") as err:
            with running(cmd, cpus=server_cpus, stderr=err, cwd=str(ROOT)) as server:
                wait_port(port, timeout=20, proc=server)
                time.sleep(0.3)  # imports done, reactor idle
                yield server, port
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    # FLV framing adds 15 bytes a tag, RTMP chunking about as much: allow 3 % less.
    expected = INPUT.stat().st_size * loops
    if loops and (stats.get("broadcasts") != 1 or stats.get("flv_bytes", 0) < 0.97 * expected):
        raise RuntimeError(
            f"our server did not take the stream: stats {stats}, "
            f"expected ~{expected} bytes; stderr: {stderr.strip()[-500:]}"
        )


def nginx_paths() -> tuple[str, str]:
    """(nginx binary, rtmp module .so), installing Debian's packages when missing."""
    nginx = ensure_apt(["nginx", "libnginx-mod-rtmp"], "nginx")
    for directory in NGINX_MODULE_DIRS:
        module = os.path.join(directory, "ngx_rtmp_module.so")
        if os.path.exists(module):
            return nginx, module
    module = os.path.join(NGINX_MODULE_DIRS[0], "ngx_rtmp_module.so")
    return nginx, ensure_apt(["libnginx-mod-rtmp"], module)


@contextlib.contextmanager
def nginx_rtmp(loops: int = 0) -> Iterator[tuple[Any, int]]:
    """nginx-rtmp as one foreground process, pinned; yields (process, port). With ``loops``,
    checks afterwards that it logged the publish."""
    nginx, module = nginx_paths()
    server_cpus, _ = cpu_sets()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-rtmp-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, module=module, port=port))
        error_log = Path(prefix) / "error.log"
        cmd = [nginx, "-p", prefix, "-c", str(conf), "-e", str(error_log)]
        with running(cmd, cpus=server_cpus) as server:
            try:
                wait_port(port, timeout=10, proc=server)
            except (RuntimeError, TimeoutError) as e:
                text = error_log.read_text() if error_log.exists() else ""
                raise RuntimeError(f"nginx did not start: {e}; {text[-500:]}") from e
            time.sleep(0.3)
            yield server, port
        text = error_log.read_text() if error_log.exists() else ""
    if loops and f"publish: name='{KEY}'" not in text:
        raise RuntimeError(f"nginx-rtmp did not log the publish: {text[-500:]}")


SERVERS = {"ours": ours, "nginx": nginx_rtmp}


def measure(server: str, source: Path, flood: bytes | None) -> Publish:
    """One publish to a fresh server: real time with ffmpeg, or the recorded flood."""
    _, load_cpus = cpu_sets()
    with SERVERS[server](FLOOD_LOOPS if flood is not None else 1) as (proc, port):
        idle_rss = peak_rss_bytes(proc.pid)
        before = cpu_seconds(proc.pid)
        if flood is None:
            mbits, seconds = publish_realtime(port, source, load_cpus)
        else:
            seconds = replay(port, flood, load_cpus)
            mbits = len(flood) * 8 / 1e6
        # Let the server finish what is still in its socket buffer before reading its CPU.
        after = settle_cpu(proc.pid)
        return Publish(after - before, mbits, seconds, peak_rss_bytes(proc.pid), idle_rss)


@register("ingest", "RTMP ingest CPU per Mbit/s, peak RSS and max throughput vs nginx-rtmp")
def ingest() -> list[Figure]:
    source = prepare_input()
    servers = ["ours", "nginx"]
    try:
        nginx_paths()
    except BenchUnavailableError as e:
        log(f"ingest: no peer: {e}")
        servers.remove("nginx")
    flood = record_flood(source).read_bytes()

    real: dict[str, list[Publish]] = {name: [] for name in SERVERS}
    fast: dict[str, list[Publish]] = {name: [] for name in SERVERS}
    for i in range(RUNS):  # interleaved so that drift in the machine hits both alike
        for name in servers:
            r = measure(name, source, None)
            real[name].append(r)
            log(
                f"ingest {i + 1}/{RUNS} {name:5} real time: {r.cpu:.3f} CPU s for "
                f"{r.mbits:.1f} Mbit in {r.seconds:.1f} s ({r.mbps:.2f} Mbit/s) = "
                f"{r.cpu_per_mbit:.6f} CPU s/Mbit, peak RSS {(r.peak_rss or 0) / 2**20:.1f} MiB "
                f"(idle {(r.idle_rss or 0) / 2**20:.1f} MiB)"
            )
    for i in range(FLOOD_RUNS):
        for name in servers:
            r = measure(name, source, flood)
            fast[name].append(r)
            log(
                f"ingest {i + 1}/{FLOOD_RUNS} {name:5} flood: {r.mbits:.0f} Mbit in "
                f"{r.seconds:.3f} s = {r.mbps:.0f} Mbit/s; server busy {r.busy:.0%} of a "
                f"core, {r.cpu_per_mbit:.6f} CPU s/Mbit"
            )

    def med(results: list[Publish], attr: str) -> float | None:
        values = [getattr(r, attr) for r in results if getattr(r, attr) is not None]
        return median(values) if values else None

    peer = "nginx-rtmp" if "nginx" in servers else None
    rss_ours, rss_nginx = med(real["ours"], "peak_rss"), med(real["nginx"], "peak_rss")
    return [
        Figure(
            "ingest_cpu_per_mbps",
            med(real["ours"], "cpu_per_mbit"),
            "CPU s per Mbit/s",
            peer,
            med(real["nginx"], "cpu_per_mbit"),
            goal=("ratio", "<=", 1.5) if peer else None,
        ),
        Figure(
            "ingest_peak_rss",
            rss_ours / 2**20 if rss_ours else None,
            "MiB",
            peer,
            rss_nginx / 2**20 if rss_nginx else None,
        ),
        Figure("ingest_max_throughput", best(fast["ours"]), "Mbit/s", peer, best(fast["nginx"])),
        Figure(
            "ingest_core_capacity",
            capacity(fast["ours"]),
            "Mbit/s per core",
            peer,
            capacity(fast["nginx"]),
        ),
    ]


def best(results: list[Publish]) -> float | None:
    """The fastest flood run: other load on the machine only ever slows a run down."""
    return max(r.mbps for r in results) if results else None


def capacity(results: list[Publish]) -> float | None:
    """Megabits taken in per CPU second of the server over the flood runs (median): what
    one fully busy core would take in, whether or not the client kept it fully busy."""
    return median([r.mbits / r.cpu for r in results]) if results else None
