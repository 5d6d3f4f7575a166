"""What every benchmark shares: the registry, figures, ports, processes, CPU and memory readings.

Benchmarks run on loopback only, bound their own time, and leave no process behind: every
child is started in its own session (so its whole process group can be signalled) and is
stopped in a ``finally`` block, with an ``atexit`` sweep (and SIGTERM turned into a normal
exit) as the backstop.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
#: Cached inputs (encoded media and the like) and scratch files; gitignored.
TMP_DIR = RESULTS_DIR / "tmp"


class BenchUnavailableError(RuntimeError):
    """A benchmark cannot run here (a peer cannot be installed, a tool is missing)."""


# -- figures and the registry -----------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}


@dataclass
class Figure:
    """One reported number, optionally beside the same number for a peer.

    ``goal`` is ``(subject, op, threshold)`` where subject is ``"value"`` or ``"ratio"``
    (ours / the peer's); it is written to JSON as the text ``"ratio <= 1.5"``. A figure
    without a goal is informational: ``goal`` and ``met`` are null.
    """

    name: str
    value: float | None
    unit: str
    peer: str | None = None
    peer_value: float | None = None
    goal: tuple[str, str, float] | None = None
    note: str = ""
    ratio: float | None = field(init=False, default=None)
    met: bool | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.value is not None and self.peer_value:
            self.ratio = self.value / self.peer_value
        if self.goal is not None:
            subject, op, threshold = self.goal
            if subject not in ("value", "ratio") or op not in _OPS:
                raise ValueError(f"bad goal {self.goal!r}")
            measured = self.ratio if subject == "ratio" else self.value
            self.met = measured is not None and _OPS[op](measured, threshold)

    def goal_text(self) -> str | None:
        if self.goal is None:
            return None
        subject, op, threshold = self.goal
        return f"{subject} {op} {threshold:g}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _round(self.value),
            "unit": self.unit,
            "peer": self.peer,
            "peer_value": _round(self.peer_value),
            "ratio": _round(self.ratio),
            "goal": self.goal_text(),
            "met": self.met,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


@dataclass
class Benchmark:
    name: str
    description: str
    run: Callable[[], list[Figure]]


REGISTRY: dict[str, Benchmark] = {}


def register(name: str, description: str) -> Callable:
    """Decorator: ``@register("ingest", "...")`` on a function returning ``list[Figure]``."""

    def wrap(fn: Callable[[], list[Figure]]) -> Callable[[], list[Figure]]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        REGISTRY[name] = Benchmark(name, description, fn)
        return fn

    return wrap


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def log(message: str) -> None:
    """Progress goes to stderr so the table on stdout stays clean."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- ports -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:port (or ``proc`` dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


# -- processes ---------------------------------------------------------------------------

_LIVE: set[subprocess.Popen] = set()


def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """``cmd`` under ``taskset -c cpus`` (taskset execs, so the pid stays the command's)."""
    if cpus is None or shutil.which("taskset") is None:
        return list(cmd)
    return ["taskset", "-c", cpus, *cmd]


def cpu_sets() -> tuple[str | None, str | None]:
    """(server cpus, load generator cpus): one core each when there are two or more."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return str(cores[0]), ",".join(str(c) for c in cores[1:])


def spawn(cmd: Sequence[str], *, cpus: str | None = None, **kwargs: Any) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group), tracked for cleanup."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    proc = subprocess.Popen(pinned(cmd, cpus), start_new_session=True, **kwargs)
    _LIVE.add(proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
    """Signal the process group, wait, then SIGKILL whatever is left of it."""
    try:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        # The leader is gone; take down any member of its group it left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        _LIVE.discard(proc)
    return proc.returncode


@contextlib.contextmanager
def running(cmd: Sequence[str], **kwargs: Any) -> Iterator[subprocess.Popen]:
    """``with running([...]) as proc:`` starts a tracked process and always stops it."""
    proc = spawn(cmd, **kwargs)
    try:
        yield proc
    finally:
        stop(proc)


@dataclass
class Completed:
    returncode: int
    seconds: float
    stderr: str


def run(cmd: Sequence[str], *, timeout: float, cpus: str | None = None, **kwargs: Any) -> Completed:
    """Run ``cmd`` to completion (killed after ``timeout`` s); stderr kept in a temp file."""
    with tempfile.TemporaryFile("w+b") as err:
        start = time.monotonic()
        proc = spawn(cmd, cpus=cpus, stderr=err, **kwargs)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            raise TimeoutError(f"{Path(cmd[0]).name} ran over {timeout:.0f} s") from e
        finally:
            seconds = time.monotonic() - start
            stop(proc)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return Completed(proc.returncode, seconds, text)


def made_once(path: Path, what: str, argv: Callable[[Path], list[str]], timeout: float,
              smallest: int = 1_000_000) -> Path:  # fmt: skip
    """``path`` (at least ``smallest`` bytes), made the first time by running
    ``argv(partial)``, which writes ``partial``, renamed into place once whole (an
    interrupted run leaves nothing half-made); later runs reuse it. ``what`` says what is
    made, for the log."""
    if path.exists() and path.stat().st_size >= smallest:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    log(f"{what} once into {path}")
    done = run(argv(partial), timeout=timeout)
    if done.returncode != 0 or not partial.exists() or partial.stat().st_size < smallest:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"{what} failed: {done.stderr.strip()[-500:]}")
    partial.replace(path)
    return path


def stop_all() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            stop(proc, timeout=2.0)


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    """Stop every tracked process at exit, and on SIGTERM/SIGHUP as on Ctrl-C."""
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminated)


# -- CPU and memory ----------------------------------------------------------------------


def _sched_seconds(pid: int) -> float | None:
    """Run time of every live thread of ``pid`` from /proc/PID/task/*/schedstat (ns)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def cpu_seconds(pid: int, children: bool = True, precise: bool = True) -> float:
    """User + system CPU seconds of ``pid`` (and of its children when ``children``).

    psutil's user+system come in clock ticks (10 ms); with ``precise`` the process's own
    share is read from the scheduler's nanosecond counters instead when the kernel has
    them (threads that already exited are then not counted; the servers measured here do
    not start and end threads while measured). Children: live descendants are read the same
    way, plus the user+system of children already waited for.
    """
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    own = _sched_seconds(pid) if precise else None
    total = own if own is not None else times.user + times.system
    if children:
        total += times.children_user + times.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                sched = _sched_seconds(child.pid) if precise else None
                if sched is None:
                    ct = child.cpu_times()
                    sched = ct.user + ct.system
                total += sched
    return total


def settle_cpu(pid: int, quiet: float = 0.3, timeout: float = 15.0) -> float:
    """Wait until ``pid`` stops burning CPU (less than 2 % of ``quiet`` s); return its total."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = cpu_seconds(pid)
        if now - last < 0.02 * quiet:
            return now
        last = now
    return last


def peak_rss_bytes(pid: int) -> int | None:
    """The high-water mark of resident memory (VmHWM) of ``pid``, in bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# -- tools -------------------------------------------------------------------------------


def ffmpeg_exe() -> str:
    """The ffmpeg binary that the imageio-ffmpeg wheel ships (the one owncast-py runs)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _present(binary: str) -> str | None:
    if os.sep in binary:
        return binary if os.path.exists(binary) else None
    found = shutil.which(binary)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin"):  # not on every user's PATH
        path = os.path.join(directory, binary)
        if os.access(path, os.X_OK):
            return path
    return None


def ensure_apt(packages: Sequence[str], binary: str, timeout: float = 600.0) -> str:
    """Return the path of ``binary`` (a command name or a file path), installing the Debian
    ``packages`` with apt-get first if it is missing. Raises ``BenchUnavailableError`` when that
    cannot be done (not root, no apt-get, install failed)."""
    found = _present(binary)
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise BenchUnavailableError(
            f"{binary} is missing and cannot be installed here (needs root and apt-get): "
            f"apt-get install {' '.join(packages)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    log(f"installing {' '.join(packages)} with apt-get (for {binary})")
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        # Usually a stale or missing package list: refresh it once and try again.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=timeout)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    found = _present(binary)
    if result.returncode != 0 or not found:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise BenchUnavailableError(
            f"apt-get install {' '.join(packages)} failed: {' / '.join(tail)}"
        )
    return found


def machine_summary() -> dict[str, Any]:
    """What the numbers were taken on (written beside them in the README, printed by main)."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }
