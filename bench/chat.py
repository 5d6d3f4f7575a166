"""Chat fan-out: N websocket listeners, one sender at 20 messages/s, beside a minimal
``websockets`` broadcast server.

* ours: the real daemon (``twistd owncast``, temporary data dir, free ports,
  ``--streamkey``), so the whole stack is measured. Messages go in through the
  integrations API (``POST /api/integrations/chat/system`` with a
  ``CAN_SEND_SYSTEM_MESSAGES`` token made through the admin API): each one is rendered,
  sanitized, stored and broadcast to every chat socket, and the API has no per-connection
  flood limit (a single chat socket at 20 messages/s would be muted).
* the peer: ``bench/chat_reference.py``, every text frame arriving on ``/send`` handed to
  ``websockets.broadcast`` for every socket on ``/entry``; the sender's frames are JSON
  objects of the same shape and size as ours.

The load generator (``bench/chat_load.py``, one process) opens the listeners from many
loopback source addresses (``chat_load.PER_IP`` = the server's ``MAX_PER_IP`` each), sends
for ``SECONDS`` at ``RATE``/s and times each receipt with the kernel's receive timestamp
against the send time written in the message. The server is pinned to one core and the
generator to the other. Per run: a fresh server, listeners connected, CPU settled, then
the load; server and generator CPU are read from the scheduler over exactly the load.

Figures: latency p50/p99/max, loss and deliveries/s at 1 000 and 5 000 listeners, server
and generator CPU and server RSS per connection at 5 000, and RSS per idle connection
with 10 000 connected. Goals (issue 6): at 5 000 x 20 msg/s no loss and p99 <= 40 ms,
and p99 at most half the peer's; at most 12 KiB per idle connection.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import resource
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.chat_load import DRAIN_MAX, SAMPLE, SENDERS
from bench.common import (
    TMP_DIR,
    Figure,
    cpu_seconds,
    cpu_sets,
    free_port,
    log,
    median,
    register,
    running,
    settle_cpu,
    spawn,
    stop,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent
TWISTD = os.path.join(sys.prefix, "bin", "twistd")
SIZES = (1000, 5000)
#: Load runs per server and size (alternating); figures are medians, loss the worst run.
RUNS = 3
IDLE = 10_000
RATE = 20.0
SECONDS = 10.0
P99_GOAL_MS = 40.0
P99_RATIO_GOAL = 0.5
IDLE_GOAL_KIB = 12.0
#: The generator must be able to take the 5 000 x 20 msg/s load on its one core.
GENERATOR_GOAL = 100_000.0
PEER = "websockets"


# -- figures -----------------------------------------------------------------------------


@dataclass
class BothGoals(Figure):
    """A figure with two goals at once: ``value <= limit`` and the ``goal`` on the ratio."""

    limit: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.goal is not None:
            self.met = bool(self.met) and self.value is not None and self.value <= self.limit

    def goal_text(self) -> str | None:
        base = super().goal_text()
        return None if base is None else f"value <= {self.limit:g} and {base}"


# -- servers -----------------------------------------------------------------------------


def _raise_nofile() -> None:
    """In the child before exec: file limit up to the hard limit (10 000+ sockets)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Server:
    kind: str  # "ours" or PEER
    proc: subprocess.Popen
    port: int
    send_args: list[str]  # how the generator's sender reaches it

    @property
    def pid(self) -> int:
        return self.proc.pid


def _request(
    url: str, body: Any = None, auth: tuple[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, Any]:
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if auth is not None:
        headers["Authorization"] = "Basic " + b64encode(":".join(auth).encode()).decode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:500]


@contextlib.contextmanager
def ours(cpus: str | None) -> Iterator[Server]:
    """The real daemon in a temporary data dir; a CAN_SEND_SYSTEM_MESSAGES token made."""
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    datadir = Path(tempfile.mkdtemp(prefix="bench-chat-", dir=TMP_DIR))
    port, rtmp_port = free_port(), free_port()
    key = secrets.token_urlsafe(18)
    cmd = [
        TWISTD,
        "--nodaemon",
        "--pidfile=",
        "owncast",
        "--datadir",
        str(datadir / "data"),
        "--webserverport",
        str(port),
        "--rtmpport",
        str(rtmp_port),
        "--streamkey",
        key,
    ]
    log_path = datadir / "daemon.log"
    try:
        with (
            open(log_path, "wb") as out,
            running(
                cmd,
                cpus=cpus,
                cwd=str(ROOT),
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_raise_nofile,
            ) as proc,
        ):
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"the daemon exited ({proc.returncode}): {log_path.read_text()[-1500:]}"
                    )
                with contextlib.suppress(OSError):
                    if _request(base + "/api/status", timeout=2)[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the daemon did not answer /api/status in 60 s: "
                        f"{log_path.read_text()[-1500:]}"
                    )
                time.sleep(0.1)
            status, made = _request(
                base + "/api/admin/accesstokens/create",
                {"name": "chat bench", "scopes": ["CAN_SEND_SYSTEM_MESSAGES"]},
                auth=("admin", key),
            )
            if status != 200 or not isinstance(made, dict) or "token" not in made:
                raise RuntimeError(f"creating an access token failed: {status} {made!r}")
            settle_cpu(proc.pid)
            yield Server("ours", proc, port, [f"--http-token={made['token']}"])
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


@contextlib.contextmanager
def reference(cpus: str | None) -> Iterator[Server]:
    """``bench/chat_reference.py``: websockets.broadcast to every /entry socket."""
    port = free_port()
    with (
        tempfile.TemporaryFile("w+b") as err,
        running(
            [sys.executable, "-m", "bench.chat_reference", str(port)],
            cpus=cpus,
            cwd=str(ROOT),
            stderr=err,
        ) as proc,
    ):
        try:
            wait_port(port, timeout=20, proc=proc)
        except (RuntimeError, TimeoutError) as e:
            err.seek(0)
            raise RuntimeError(f"{e}: {err.read().decode('utf-8', 'replace')[-1000:]}") from e
        settle_cpu(proc.pid)
        yield Server(PEER, proc, port, ["--ws-send", "/send"])


def peer_available() -> bool:
    return importlib.util.find_spec("websockets") is not None


# -- the generator -----------------------------------------------------------------------


class Lines:
    """JSON lines from a child's stdout, each awaited with a deadline."""

    def __init__(self, proc: subprocess.Popen, stderr: Any):
        self.proc = proc
        self.stderr = stderr
        self.buffer = b""

    def _tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-1500:]

    def expect(self, event: str, timeout: float) -> dict:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                message = json.loads(line)
                if message.get("event") == event:
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"the load generator sent no {event!r} in {timeout:.0f} s: {self._tail()}"
                )
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                more = os.read(fd, 65536)
                if not more:
                    raise RuntimeError(
                        f"the load generator ended ({self.proc.wait(5)}) "
                        f"before {event!r}: {self._tail()}"
                    )
                self.buffer += more

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def _rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def _connect_timeout(clients: int) -> float:
    return 60 + clients / 50  # handshakes cost a server about 1 ms; margin for a busy one


@contextlib.contextmanager
def generator(
    server: Server, clients: int, cpus: str | None, extra: list[str]
) -> Iterator[tuple[subprocess.Popen, Lines, dict]]:
    """The load generator with ``clients`` listeners connected; yields (proc, lines,
    the "connected" report)."""
    cmd = [
        sys.executable,
        "-m",
        "bench.chat_load",
        str(server.port),
        str(clients),
        "--connect-timeout",
        str(_connect_timeout(clients)),
        *extra,
    ]
    with tempfile.TemporaryFile("w+b") as err:
        proc = spawn(
            cmd, cpus=cpus, cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
        )
        try:
            lines = Lines(proc, err)
            connected = lines.expect("connected", _connect_timeout(clients) + 30)
            if connected["open"] != clients:
                raise RuntimeError(
                    f"{server.kind}: only {connected['open']} of {clients} "
                    f"listeners connected: {connected['failures']}"
                )
            yield proc, lines, connected
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the generator exits when stdin closes
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            stop(proc)


def load_run(kind: str, clients: int, sample: int = SAMPLE, senders: int = SENDERS) -> dict:
    """One run: a fresh server, ``clients`` listeners, SECONDS of RATE messages/s."""
    server_cpus, load_cpus = cpu_sets()
    start = ours if kind == "ours" else reference
    with start(server_cpus) as server:
        rss_before = _rss(server.pid)
        extra = [
            *server.send_args,
            "--rate",
            str(RATE),
            "--seconds",
            str(SECONDS),
            "--sample",
            str(sample),
            "--senders",
            str(senders),
        ]
        with generator(server, clients, load_cpus, extra) as (gen, lines, connected):
            settle_cpu(server.pid, timeout=30)
            rss_after = _rss(server.pid)
            server_cpu, gen_cpu = cpu_seconds(server.pid), cpu_seconds(gen.pid)
            t0 = time.monotonic()
            lines.send("go")
            lines.expect("done", SECONDS + DRAIN_MAX + 60)
            wall = time.monotonic() - t0
            server_cpu = cpu_seconds(server.pid) - server_cpu
            gen_cpu = cpu_seconds(gen.pid) - gen_cpu
            result = lines.expect("result", 60)
    result.update(
        kind=kind,
        connect_seconds=connected["seconds"],
        wall_s=wall,
        server_cpu_s=server_cpu,
        server_cpu_percent=100 * server_cpu / wall,
        generator_cpu_percent=100 * gen_cpu / wall,
        generator_capacity=result["received"] / gen_cpu if gen_cpu > 0 else None,
        server_us_per_delivery=1e6 * server_cpu / max(1, result["received"]),
        rss_per_conn_kib=(rss_after - rss_before) / clients / 1024,
        rss_before_mib=rss_before / 2**20,
        rss_after_mib=rss_after / 2**20,
    )
    return result


def idle_run(kind: str, clients: int) -> dict:
    """RSS per connection with ``clients`` idle listeners connected to a fresh server."""
    server_cpus, load_cpus = cpu_sets()
    start = ours if kind == "ours" else reference
    with start(server_cpus) as server:
        rss_before = _rss(server.pid)
        with generator(server, clients, load_cpus, ["--idle"]) as (_gen, _lines, connected):
            settle_cpu(server.pid, timeout=30)
            time.sleep(1.0)
            rss_after = _rss(server.pid)
    return {
        "kind": kind,
        "clients": clients,
        "connect_seconds": connected["seconds"],
        "rss_before_mib": rss_before / 2**20,
        "rss_after_mib": rss_after / 2**20,
        "rss_per_conn_kib": (rss_after - rss_before) / clients / 1024,
    }


def _describe(r: dict) -> str:
    return (
        f"{r['kind']:10} {r['clients']:5} listeners: p50 {r['p50_ms']:.1f} p90 {r['p90_ms']:.1f} "
        f"p99 {r['p99_ms']:.1f} max {r['max_ms']:.1f} ms; {r['received']}/{r['expected']} "
        f"received (loss {r['loss']:.2%}, {r['closed']} closed), "
        f"{r['deliveries_per_s']:.0f} deliveries/s over {r['window_s']:.1f} s; "
        f"{r['timed']} timed; server {r['server_cpu_percent']:.0f} % CPU "
        f"({r['server_us_per_delivery']:.1f} us a delivery), generator "
        f"{r['generator_cpu_percent']:.0f} % ({r['generator_capacity']:.0f} deliveries per CPU s, "
        f"{r['reads']} reads, {r['messages_per_read']:.2f} messages a read, "
        f"{r['events_per_wakeup']:.0f} sockets a wake-up); "
        f"RSS {r['rss_before_mib']:.1f} -> {r['rss_after_mib']:.1f} MiB "
        f"({r['rss_per_conn_kib']:.1f} KiB a listener); frames {r['mean_frame_bytes']:.0f} B; "
        f"connected in {r['connect_seconds']:.1f} s"
        + (f"; sender HTTP {r['http_status']}" if "http_status" in r else "")
    )


@register(
    "chat",
    "Chat fan-out to 1 000 / 5 000 websockets at 20 msg/s, and idle RSS, vs websockets.broadcast",
)
def chat() -> list[Figure]:
    kinds = ["ours"]
    if peer_available():
        kinds.insert(0, PEER)
    else:
        log("chat: no peer: the websockets package is missing (pip install -e '.[bench]')")
    loads: dict[tuple[str, int], list[dict]] = {}
    for clients in SIZES:
        for run_number in range(1, RUNS + 1):
            for kind in kinds:  # alternating, so that drift in the machine hits both alike
                log(
                    f"chat {run_number}/{RUNS}: {kind}, {clients} listeners, {RATE:g} msg/s "
                    f"for {SECONDS:g} s"
                )
                r = load_run(kind, clients)
                loads.setdefault((kind, clients), []).append(r)
                log(f"chat {run_number}/{RUNS}: " + _describe(r))
    idle: dict[str, dict] = {}
    for kind in kinds:
        log(f"chat: {kind}, {IDLE} idle listeners")
        r = idle[kind] = idle_run(kind, IDLE)
        log(
            f"chat: {kind:10} {IDLE} idle: RSS {r['rss_before_mib']:.1f} -> "
            f"{r['rss_after_mib']:.1f} MiB = {r['rss_per_conn_kib']:.2f} KiB a connection "
            f"(connected in {r['connect_seconds']:.1f} s)"
        )

    peer = PEER if PEER in kinds else None

    def get(kind: str, clients: int, key: str) -> float | None:
        """The median over the runs; for loss the worst run."""
        values = [r[key] for r in loads.get((kind, clients), []) if r.get(key) is not None]
        if not values:
            return None
        return max(values) if key == "loss" else median(values)

    figures: list[Figure] = []
    for clients in reversed(SIZES):
        name = f"chat_{clients}"
        if clients == max(SIZES):
            figures.append(
                BothGoals(
                    f"{name}_p99_ms",
                    get("ours", clients, "p99_ms"),
                    "ms",
                    peer,
                    get(PEER, clients, "p99_ms"),
                    goal=("ratio", "<=", P99_RATIO_GOAL),
                    limit=P99_GOAL_MS,
                )
            )
        else:
            figures.append(
                Figure(
                    f"{name}_p99_ms",
                    get("ours", clients, "p99_ms"),
                    "ms",
                    peer,
                    get(PEER, clients, "p99_ms"),
                )
            )
        figures += [
            Figure(
                f"{name}_p50_ms",
                get("ours", clients, "p50_ms"),
                "ms",
                peer,
                get(PEER, clients, "p50_ms"),
            ),
            Figure(
                f"{name}_max_ms",
                get("ours", clients, "max_ms"),
                "ms",
                peer,
                get(PEER, clients, "max_ms"),
            ),
            Figure(
                f"{name}_loss",
                get("ours", clients, "loss"),
                "fraction lost",
                peer,
                get(PEER, clients, "loss"),
                goal=("value", "<=", 0.0) if clients == max(SIZES) else None,
            ),
            Figure(
                f"{name}_deliveries_per_s",
                get("ours", clients, "deliveries_per_s"),
                "deliveries/s",
                peer,
                get(PEER, clients, "deliveries_per_s"),
            ),
        ]
    top = max(SIZES)
    figures += [
        Figure(
            "chat_server_cpu_percent",
            get("ours", top, "server_cpu_percent"),
            f"% of a core, {top} listeners",
            peer,
            get(PEER, top, "server_cpu_percent"),
        ),
        Figure(
            "chat_server_us_per_delivery",
            get("ours", top, "server_us_per_delivery"),
            f"CPU us, {top} listeners",
            peer,
            get(PEER, top, "server_us_per_delivery"),
        ),
        Figure(
            "chat_generator_cpu_percent",
            get("ours", top, "generator_cpu_percent"),
            f"% of a core, {top} listeners",
            peer,
            get(PEER, top, "generator_cpu_percent"),
        ),
        Figure(
            "chat_generator_capacity",
            get("ours", top, "generator_capacity"),
            "deliveries per CPU s",
            peer,
            get(PEER, top, "generator_capacity"),
            goal=("value", ">=", GENERATOR_GOAL),
        ),
        Figure(
            f"chat_{top}_rss_per_conn_kib",
            get("ours", top, "rss_per_conn_kib"),
            "KiB",
            peer,
            get(PEER, top, "rss_per_conn_kib"),
        ),
        Figure(
            "chat_idle_rss_per_conn_kib",
            idle["ours"]["rss_per_conn_kib"],
            f"KiB, {IDLE} idle",
            peer,
            idle[PEER]["rss_per_conn_kib"] if PEER in idle else None,
            goal=("value", "<=", IDLE_GOAL_KIB),
        ),
    ]
    return figures
