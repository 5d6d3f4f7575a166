"""ffmpeg restart gap: seconds from the transcoder's ffmpeg dying to the next segment.

The real daemon (``twistd owncast``, from ``bench.playable``: a fresh data dir, free
ports, its default video settings, the latency level set through the admin API) takes
the ingest benchmark's input (20 s of 1080p30 H.264 + AAC, GOP 60) published in real time
with ``-c copy``. Once ``/hls/0/stream.m3u8`` lists three segments, the ffmpeg that
writes HLS is sent SIGKILL (as an out-of-memory kill or a crash would end it), and every
20 ms:

* ``spawn``: until a new ffmpeg writing HLS is a child of the daemon (the restart: the
  daemon's back-off delay, 0.5 s for a first crash, plus the exec);
* ``gap``: until ``/hls/0/stream.m3u8`` lists a segment numbered above the last one
  listed at the kill (a player that was at the live edge gets new media then).

One kill per daemon (a second crash within 30 s would wait out a longer back-off, which
is a different thing to measure); ``RUNS`` daemons per level, the median reported. Goal:
the gap is at most one segment plus the restart (``spawn``) of that run.
"""

from __future__ import annotations

import time

import psutil

from bench.common import Figure, log, median, register
from bench.ingest import prepare_input
from bench.playable import daemon, http, publishing

#: Latency levels measured: the lowest, and the default (3).
LEVELS = {0: 1.0, 3: 4.0}
RUNS = 3
POLL = 0.02
#: Seconds for a step (segments listed, a new ffmpeg, a new segment) before the run fails.
STEP_TIMEOUT = 15.0


def segments(base: str) -> list[int]:
    status, body = http("GET", base + "/hls/0/stream.m3u8")
    if status != 200:
        return []
    lines = body.decode("utf-8", "replace").splitlines()
    return [int(ln[7:-3]) for ln in lines if ln.startswith("stream-") and ln.endswith(".ts")]


def daemon_pid(base: str) -> int:
    """The pid of the daemon serving ``base`` (``bench.playable.daemon`` started it)."""
    port = base.rpartition(":")[2]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "owncast" in cmd and "--webserverport" in cmd:
            if cmd[cmd.index("--webserverport") + 1] == port:
                return proc.pid
    raise RuntimeError(f"no daemon on port {port}")


def transcoders(daemon_pid: int) -> list[int]:
    """Pids of the daemon's ffmpeg children that write HLS."""
    found = []
    for child in psutil.Process(daemon_pid).children(recursive=True):
        try:
            if "hls" in child.cmdline():
                found.append(child.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found


def until(check, what: str) -> tuple[float, object]:
    """Poll ``check`` until it returns something truthy: (monotonic time, that)."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        result = check()
        if result:
            return time.monotonic(), result
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {STEP_TIMEOUT:.0f} s")
        time.sleep(POLL)


def one_kill(level: int) -> tuple[float, float]:
    """(spawn, gap) in seconds for one SIGKILL of the transcoder."""
    source = prepare_input()
    with daemon(level) as (rtmp, base), publishing(rtmp, source) as (_, publisher):
        pid = daemon_pid(base)
        until(lambda: len(segments(base)) >= 3 or publisher.poll() is not None, "3 segments")
        _, pids = until(lambda: transcoders(pid), "transcoder ffmpeg")
        victim = psutil.Process(pids[0])
        last = max(segments(base))
        killed = time.monotonic()
        victim.kill()
        spawned, _ = until(
            lambda: [p for p in transcoders(pid) if p != victim.pid], "restarted ffmpeg"
        )
        segment, _ = until(lambda: max(segments(base), default=0) > last, "segment after the kill")
        return spawned - killed, segment - killed


@register("restart", "ffmpeg restart gap: SIGKILL of the transcoder to the next segment listed")
def restart() -> list[Figure]:
    figures = []
    for level, seconds in LEVELS.items():
        spawns, gaps, over = [], [], []
        for i in range(RUNS):
            try:
                spawn, gap = one_kill(level)
            except (RuntimeError, TimeoutError) as e:
                log(f"restart {i + 1}/{RUNS} level {level}: failed: {e}")
                continue
            spawns.append(spawn)
            gaps.append(gap)
            over.append(gap - spawn - seconds)
            log(
                f"restart {i + 1}/{RUNS} level {level}: ffmpeg again after {spawn:.2f} s,"
                f" next segment after {gap:.2f} s"
            )
        figures += [
            Figure(f"restart_level{level}_gap", median(gaps) if gaps else None, "s"),
            Figure(f"restart_level{level}_spawn", median(spawns) if spawns else None, "s"),
            Figure(
                f"restart_level{level}_over",
                max(over) if over else None,
                f"s beyond restart + one segment ({seconds:g} s), worst run",
                goal=("value", "<=", 0.0),
            ),
        ]
    return figures
