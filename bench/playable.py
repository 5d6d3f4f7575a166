"""Publish to playable: seconds from a publisher's first byte until a player can start.

The input is the ingest benchmark's cached file (``ingest.prepare_input``: 20 s of 1080p30
H.264 + AAC in FLV, GOP 60, about 8.5 Mbit/s). ffmpeg publishes it in real time (``-re``)
with ``-c copy`` through a small TCP proxy in this process, which notes when the first
byte from the publisher arrives (the RTMP handshake's C0): that instant is zero. Then

* ours: the real daemon (``twistd owncast``) in a subprocess, on a fresh temporary data
  dir, free ports and ``--streamkey``, its default video settings, the latency level set
  through the admin API before publishing. A fresh daemon for every run, since a
  broadcast within 30 s of the last one continues its playlists. Every 50 ms, over HTTP:
  ``/hls/0/stream.m3u8`` until it lists a ``.ts`` segment (``first_segment``) and
  ``/hls/stream.m3u8`` until it lists a variant (``master``);
* the peer: nginx with Debian's ``libnginx-mod-rtmp``, ``hls on; hls_fragment 1s;
  hls_playlist_length 3s;``, polled every 50 ms on disk until ``DIR/KEY.m3u8`` lists a
  segment. It copies the input's GOPs, so its fragments are cut at keyframes (2 s here).

Each level runs ``RUNS`` times (levels interleaved, nginx after each round) and the
median is reported. Goal: our level-0 first segment within 3 s.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    BenchUnavailableError,
    Figure,
    ffmpeg_exe,
    free_port,
    log,
    median,
    register,
    running,
    spawn,
    stop,
    wait_port,
)
from bench.ingest import nginx_paths, prepare_input

ROOT = Path(__file__).resolve().parent.parent
TWISTD = os.path.join(sys.prefix, "bin", "twistd")
KEY = "bench-playable-key"
LEVELS = (0, 1, 2, 3, 4)
RUNS = 3
POLL = 0.05
#: Seconds a run may wait for playable output (the input lasts 20 s).
RUN_TIMEOUT = 20.0
#: Seconds for the daemon to answer /api/status.
START_TIMEOUT = 30.0
#: Seconds for the whole benchmark; rounds that would start later are skipped.
BUDGET = 200.0
GOAL = 3.0

NGINX_HLS_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
load_module {module};
events {{ worker_connections {connections}; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            record off;
            hls on;
            hls_path {hls};
            hls_fragment 1s;
            hls_playlist_length 3s;
        }}
    }}
}}
"""


# -- the publisher, and when its first byte arrived --------------------------------------


class FirstByteProxy:
    """Forwards one TCP connection to ``127.0.0.1:upstream`` both ways, noting (monotonic
    clock) when the first byte from the client arrived."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.first_byte: float | None = None
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def _serve(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        self._sockets.append(client)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._sockets.append(upstream)
        back = threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True)
        self._threads.append(back)
        back.start()
        self._pipe(client, upstream, True)

    def _pipe(self, src: socket.socket, dst: socket.socket, note: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if note and self.first_byte is None:
                    self.first_byte = time.monotonic()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(5)


@contextlib.contextmanager
def publishing(server_port: int, source: Path) -> Iterator[tuple[FirstByteProxy, Any]]:
    """ffmpeg publishes ``source`` in real time through a ``FirstByteProxy``; yields
    (the proxy, the publisher's process)."""
    proxy = FirstByteProxy(server_port)
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
        f"rtmp://127.0.0.1:{proxy.port}/live/{KEY}",
    ]
    try:
        with running(cmd) as publisher:
            yield proxy, publisher
    finally:
        proxy.close()


def wait_for(check: Callable[[], bool], deadline: float, what: str, proc: Any = None) -> float:
    """Poll ``check`` every ``POLL`` s; return the monotonic time it first held."""
    while True:
        if check():
            return time.monotonic()
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(f"no {what} after {RUN_TIMEOUT:.0f} s")
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the publisher exited ({proc.returncode}) before {what}")
        time.sleep(min(POLL, max(deadline - now, 0)))


def lists_segment(text: str) -> bool:
    return any(line.strip().endswith(".ts") for line in text.splitlines())


def lists_variant(text: str) -> bool:
    return text.startswith("#EXTM3U") and any(
        line.strip() and not line.startswith("#") for line in text.splitlines()
    )


# -- ours ---------------------------------------------------------------------------------


def http(
    method: str,
    url: str,
    body: Any = None,
    auth: tuple[str, str] | None = None,
    timeout: float = 2.0,
) -> tuple[int, bytes]:
    """One request; (status, body), or (0, b"") when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


@contextlib.contextmanager
def daemon(level: int) -> Iterator[tuple[int, str]]:
    """The real daemon on a fresh data dir, set to ``level``; yields (rtmp port, base url)."""
    web, rtmp = free_port(), free_port()
    base = f"http://127.0.0.1:{web}"
    with tempfile.TemporaryDirectory(prefix="bench-playable-") as tmp:
        cmd = [
            TWISTD,
            "--nodaemon",
            "--pidfile=",
            "owncast",
            "--datadir",
            f"{tmp}/data",
            "--webserverport",
            str(web),
            "--rtmpport",
            str(rtmp),
            "--streamkey",
            KEY,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(Path(tmp) / "output", "w+b") as out:
            proc = spawn(cmd, stdout=out, stderr=out, cwd=str(ROOT), env=env)
            try:
                deadline = time.monotonic() + START_TIMEOUT
                while http("GET", base + "/api/status")[0] != 200:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        out.seek(0)
                        tail = out.read().decode("utf-8", "replace")[-800:]
                        raise RuntimeError(f"the daemon did not start: {tail}")
                    time.sleep(POLL)
                status, body = http(
                    "POST",
                    base + "/api/admin/config/video/streamlatencylevel",
                    {"value": level},
                    auth=("admin", KEY),
                )
                if status != 200 or not json.loads(body).get("success"):
                    raise RuntimeError(f"setting latency level {level}: {status} {body[:200]!r}")
                yield rtmp, base
            finally:
                stop(proc, timeout=10)


def ours(level: int, source: Path) -> tuple[float, float]:
    """One publish to a fresh daemon: (seconds to the first segment, to the master)."""
    with daemon(level) as (rtmp, base), publishing(rtmp, source) as (proxy, publisher):
        deadline = time.monotonic() + RUN_TIMEOUT
        variant_at = master_at = None

        def variant() -> bool:
            status, body = http("GET", base + "/hls/0/stream.m3u8")
            return status == 200 and lists_segment(body.decode("utf-8", "replace"))

        def master() -> bool:
            status, body = http("GET", base + "/hls/stream.m3u8")
            return status == 200 and lists_variant(body.decode("utf-8", "replace"))

        def both() -> bool:
            nonlocal variant_at, master_at
            if variant_at is None and variant():
                variant_at = time.monotonic()
            if master_at is None and master():
                master_at = time.monotonic()
            return variant_at is not None and master_at is not None

        wait_for(both, deadline, "playable output", publisher)
        if proxy.first_byte is None:
            raise RuntimeError("playable output before the publisher's first byte?")
        return variant_at - proxy.first_byte, master_at - proxy.first_byte


# -- nginx-rtmp ----------------------------------------------------------------------------


def nginx(source: Path) -> float:
    """One publish to a fresh nginx-rtmp with HLS on: seconds to its first segment."""
    binary, module = nginx_paths()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-playable-nginx-") as prefix:
        hls = Path(prefix) / "hls"
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(
            NGINX_HLS_CONF.format(prefix=prefix, module=module, port=port, hls=hls, connections=64)
        )
        error_log = Path(prefix) / "error.log"
        cmd = [binary, "-p", prefix, "-c", str(conf), "-e", str(error_log)]
        with running(cmd) as server:
            try:
                wait_port(port, timeout=10, proc=server)
            except (RuntimeError, TimeoutError) as e:
                text = error_log.read_text() if error_log.exists() else ""
                raise RuntimeError(f"nginx did not start: {e}; {text[-500:]}") from e
            playlist = hls / f"{KEY}.m3u8"

            def listed() -> bool:
                try:
                    return lists_segment(playlist.read_text(errors="replace"))
                except OSError:
                    return False

            with publishing(port, source) as (proxy, publisher):
                deadline = time.monotonic() + RUN_TIMEOUT
                at = wait_for(listed, deadline, "nginx-rtmp HLS segment", publisher)
                if proxy.first_byte is None:
                    raise RuntimeError("a segment before the publisher's first byte?")
                return at - proxy.first_byte


# -- the benchmark -------------------------------------------------------------------------


@register(
    "playable",
    "publish to playable: first segment and master playlist per latency level vs nginx-rtmp HLS",
)
def playable() -> list[Figure]:
    source = prepare_input()
    peer = True
    try:
        nginx_paths()
    except BenchUnavailableError as e:
        log(f"playable: no peer: {e}")
        peer = False
    started = time.monotonic()
    first: dict[int, list[float]] = {level: [] for level in LEVELS}
    master: dict[int, list[float]] = {level: [] for level in LEVELS}
    theirs: list[float] = []
    for i in range(RUNS):
        if time.monotonic() - started > BUDGET:
            log(f"playable: over {BUDGET:.0f} s, stopping after {i} round(s)")
            break
        for level in LEVELS:
            try:
                segment, playlist = ours(level, source)
            except (RuntimeError, TimeoutError) as e:
                log(f"playable {i + 1}/{RUNS} level {level}: failed: {e}")
                continue
            first[level].append(segment)
            master[level].append(playlist)
            log(
                f"playable {i + 1}/{RUNS} level {level}: first segment {segment:.2f} s, "
                f"master {playlist:.2f} s"
            )
        if peer:
            try:
                theirs.append(nginx(source))
                log(f"playable {i + 1}/{RUNS} nginx-rtmp: first segment {theirs[-1]:.2f} s")
            except (RuntimeError, TimeoutError) as e:
                log(f"playable {i + 1}/{RUNS} nginx-rtmp: failed: {e}")

    def med(values: list[float]) -> float | None:
        return median(values) if values else None

    figures = []
    for level in LEVELS:
        if level == 0:
            figures.append(
                Figure(
                    "playable_level0_first_segment",
                    med(first[0]),
                    "s",
                    "nginx-rtmp hls" if peer else None,
                    med(theirs),
                    goal=("value", "<=", GOAL),
                )
            )
        else:
            figures.append(Figure(f"playable_level{level}_first_segment", med(first[level]), "s"))
        figures.append(Figure(f"playable_level{level}_master", med(master[level]), "s"))
    return figures
