"""Recordings: what keeping a broadcast costs while live, and how fast MP4s come out of one.

Three parts, each on the real daemon (``twistd owncast`` from ``bench.playable.daemon``: a
fresh data dir, free ports, the default latency level, 3: 4 s segments):

* **CPU of recording.** One passthrough variant (``videoPassthrough``, audio copied), so
  the daemon's ffmpeg only copies, and ffmpeg publishes the ingest benchmark's input
  (20 s of 1080p30 H.264 + AAC, about 8.5 Mbit/s, looped) in real time with ``-c copy``.
  Once the first segment is listed (and, recording on, the recording is open) the daemon's
  own CPU time (every thread of the process, its thread pool included; not its ffmpeg,
  which does the same work either way) is read over ``WINDOW`` s. Runs alternate recording
  off / on, ``RUNS`` of each; the figure is the median with recording on minus the median
  with it off, in % of a core. Goal: at most 2 % (nothing is re-encoded: the recorder
  hard-links the live segments once a second and rewrites two small files). The peer:
  nginx-rtmp (one process, as in the ingest benchmark) with ``record all`` (the FLV
  written to disk as it comes) minus ``record off``, the same publisher and window.
* **A 60 s clip.** ``POST /api/admin/recordings/clip`` (what the admin page sends) for
  60 s from the middle of the hour-long recording below, timed until the answer (the MP4
  is on disk then). Beside it, plain ``ffmpeg -ss -t -c copy`` of the same span from a
  playlist of the same segments (as the daemon cuts it) to a file.
* **The MP4 of a 1-hour recording.** ``GET /recordings/<id>/download.mp4``: time to the
  first body byte, total time, MB/s (the body is read and dropped), then a second GET
  (served from the cached file). Beside it, plain ``ffmpeg -i <playlist> -c copy`` to an
  MP4 file, timed before and after ours in the same run (the faster of the two: other
  load, and the page cache writing back the last 3.8 GB, only slow it down).

The hour-long recording is made in the recorder's own layout (``recording.json``, a
master playlist, ``0/stream.m3u8``, ``0/stream-<n>.ts``) from 120 s of the same input cut
into 4 s segments once (``-c copy``, cached), hard-linked over and over into 900
segments (3.8 GB as MP4, 125 MB on disk), a discontinuity where the 120 s repeat (as a
publisher's reconnect leaves one). The MP4s are deleted after each part; the run needs
``DISK_NEEDED`` bytes free.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import psutil

from bench.common import (
    TMP_DIR,
    BenchUnavailableError,
    Figure,
    cpu_seconds,
    ffmpeg_exe,
    free_port,
    log,
    median,
    register,
    run,
    running,
    wait_port,
)
from bench.ingest import NGINX_CONF, nginx_paths, prepare_input
from bench.playable import KEY, daemon, http
from bench.restart import daemon_pid

AUTH = ("admin", KEY)
#: Latency level of the daemon (the default: 4 s segments).
LEVEL = 3
#: Off/on pairs of the CPU part.
RUNS = 3
#: Seconds of daemon CPU measured per run, and before that once the stream is up.
WINDOW = 30.0
LEAD = 3.0
#: Seconds for the first segment (and the recording) to appear.
START_TIMEOUT = 30.0
GOAL_PERCENT = 2.0
#: The synthetic recording: seconds, and its repeated base.
HOUR = 3600.0
BASE_SECONDS = 120
SEGMENT_SECONDS = 4
CLIP = (1800.0, 1860.0)
CLIP_RUNS = 3
BASE_DIR = TMP_DIR / f"recordings-base-{BASE_SECONDS}s"
DISK_NEEDED = 5 * 10**9
DOWNLOAD_TIMEOUT = 600.0
PASSTHROUGH = [{"videoPassthrough": True, "audioPassthrough": True, "name": "source"}]


def admin_post(base: str, path: str, value: object) -> None:
    status, body = http("POST", base + path, {"value": value}, auth=AUTH, timeout=10)
    if status != 200:
        raise RuntimeError(f"POST {path}: {status} {body[:200]!r}")


def datadir_of(base: str) -> Path:
    cmd = psutil.Process(daemon_pid(base)).cmdline()
    return Path(cmd[cmd.index("--datadir") + 1])


# -- CPU of recording ---------------------------------------------------------------------


def publisher_cmd(rtmp: int, source: Path, seconds: float) -> list[str]:
    return [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error",
        "-stream_loop", "-1", "-re", "-i", str(source), "-t", f"{seconds:.0f}",
        "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/{KEY}",
    ]  # fmt: skip


def until(check, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.1)


def recordings_listed(base: str) -> list:
    import json

    status, body = http("GET", base + "/api/recordings")
    return json.loads(body) if status == 200 else []


def cpu_run(recording: bool, source: Path) -> float:
    """One publish to a fresh daemon: its own CPU in % of a core over ``WINDOW`` s."""
    with daemon(LEVEL) as (rtmp, base):
        admin_post(base, "/api/admin/config/video/streamoutputvariants", PASSTHROUGH)
        admin_post(base, "/api/admin/config/recordings", {"enabled": recording})
        pid = daemon_pid(base)
        cmd = publisher_cmd(rtmp, source, WINDOW + START_TIMEOUT + LEAD + 10)
        with running(cmd) as publisher:

            def ready() -> bool:
                if publisher.poll() is not None:
                    raise RuntimeError(f"the publisher exited ({publisher.returncode})")
                status, body = http("GET", base + "/hls/0/stream.m3u8")
                if status != 200 or b".ts" not in body:
                    return False
                return not recording or any(r["live"] for r in recordings_listed(base))

            until(ready, "segment" + (" and recording" if recording else ""))
            time.sleep(LEAD)
            before = cpu_seconds(pid, children=False)
            time.sleep(WINDOW)
            used = cpu_seconds(pid, children=False) - before
            listed = recordings_listed(base)
            if publisher.poll() is not None:
                raise RuntimeError("the publisher ended before the window did")
        if recording and not (listed and listed[0]["duration"] >= WINDOW - 2 * SEGMENT_SECONDS):
            raise RuntimeError(f"the recording did not keep the window: {listed}")
        if not recording and listed:
            raise RuntimeError(f"recorded with recording off: {listed}")
    return 100.0 * used / WINDOW


def nginx_run(recording: bool, source: Path) -> float:
    """One publish to a fresh nginx-rtmp, ``record all`` or ``record off``: its CPU in %
    of a core over ``WINDOW`` s."""
    nginx, module = nginx_paths()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-recordings-nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        record = f"record all; record_path {prefix}/rec; record_unique on;"
        text = NGINX_CONF.format(prefix=prefix, module=module, port=port)
        conf.write_text(text.replace("record off;", record if recording else "record off;"))
        (Path(prefix) / "rec").mkdir()
        cmd = [nginx, "-p", prefix, "-c", str(conf), "-e", str(Path(prefix) / "error.log")]
        with running(cmd) as server:
            wait_port(port, timeout=10, proc=server)
            cmd = publisher_cmd(port, source, WINDOW + LEAD + 10)
            with running(cmd) as publisher:
                time.sleep(LEAD)
                if publisher.poll() is not None:
                    raise RuntimeError(f"the publisher exited ({publisher.returncode})")
                before = cpu_seconds(server.pid)
                time.sleep(WINDOW)
                used = cpu_seconds(server.pid) - before
                kept = sum(f.stat().st_size for f in (Path(prefix) / "rec").iterdir())
        if recording and kept < WINDOW * 8e6 / 8 * 0.8:
            raise RuntimeError(f"nginx-rtmp recorded only {kept} bytes")
    return 100.0 * used / WINDOW


def cpu_figures(source: Path) -> list[Figure]:
    off: list[float] = []
    on: list[float] = []
    peer: dict[bool, list[float]] = {False: [], True: []}
    try:
        nginx_paths()
        runs = [("daemon", cpu_run), ("nginx-rtmp", nginx_run)]
    except BenchUnavailableError as e:
        log(f"recordings: no peer: {e}")
        runs = [("daemon", cpu_run)]
    for i in range(RUNS):
        for name, measure in runs:
            for recording in (False, True):
                into = (on if recording else off) if name == "daemon" else peer[recording]
                what = (
                    f"recordings cpu {i + 1}/{RUNS} {name} recording {'on' if recording else 'off'}"
                )
                try:
                    into.append(measure(recording, source))
                except (RuntimeError, TimeoutError) as e:
                    log(f"{what}: {e}")
                    continue
                log(f"{what}: {into[-1]:.2f} % of a core")
    if not off or not on:
        return [Figure("recordings_cpu_percent", None, "% of a core")]
    extra = median(on) - median(off)
    theirs = None
    if peer[False] and peer[True]:
        theirs = median(peer[True]) - median(peer[False])
    return [
        Figure(
            "recordings_cpu_percent",
            extra,
            "% of a core beyond the live stream (8.5 Mbit/s)",
            "nginx-rtmp record all" if theirs is not None else None,
            theirs,
            goal=("value", "<=", GOAL_PERCENT),
        ),
        Figure(
            "recordings_cpu_daemon_on",
            median(on),
            "% of a core, daemon with recording on",
            "recording off",
            median(off),
        ),
    ]


# -- an hour-long recording ----------------------------------------------------------------


def base_segments(source: Path) -> list[tuple[str, float]]:
    """``BASE_SECONDS`` of the input cut into segments once (cached): (name, duration)."""
    playlist = BASE_DIR / "stream.m3u8"
    if not playlist.exists():
        BASE_DIR.mkdir(parents=True, exist_ok=True)
        loops = BASE_SECONDS // 20 - 1
        done = run(
            [
                ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                "-stream_loop", str(loops), "-i", str(source), "-c", "copy",
                "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_list_size", "0",
                "-hls_segment_filename", str(BASE_DIR / "stream-%d.ts"), str(playlist) + ".tmp",
            ],
            timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"cutting the base segments failed: {done.stderr[-300:]}")
        os.replace(str(playlist) + ".tmp", playlist)
    from owncast.recordings.vod import parse_media

    entries, _ = parse_media(playlist.read_text())
    return [(e.name, e.duration) for e in entries]


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        os.symlink(src, dst)


def make_hour(root: Path, source: Path) -> tuple[str, Path]:
    """An ended hour-long recording in ``root`` (the daemon's recordings folder):
    (its id, its variant playlist)."""
    from owncast.recordings.files import PLAYLIST, write_meta
    from owncast.recordings.vod import Entry, Meta, render_media

    base = base_segments(source)
    start = int(time.time()) - 2 * int(HOUR)
    folder = root / str(start)
    variant = folder / "0"
    variant.mkdir(parents=True)
    entries: list[Entry] = []
    total = 0.0
    number = start
    while total < HOUR:
        for i, (name, duration) in enumerate(base):
            if total >= HOUR:
                break
            target = f"stream-{number}.ts"
            _link(BASE_DIR / name, variant / target)
            entries.append(Entry(target, duration, discontinuity=bool(entries) and i == 0))
            total += duration
            number += 1
    (variant / PLAYLIST).write_text(render_media(entries, True, SEGMENT_SECONDS))
    (folder / PLAYLIST).write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=8600000,RESOLUTION=1920x1080,CODECS="avc1.640028,mp4a.40.2"\n'
        "0/stream.m3u8\n"
    )
    size = sum((BASE_DIR / n).stat().st_size for n, _ in base) * len(entries) // len(base)
    meta = Meta(
        id=str(start),
        title="bench hour",
        startTime=float(start),
        endTime=start + total,
        duration=total,
        variants=["0"],
        best="0",
        size=size,
    )
    write_meta(str(folder), meta)
    return meta.id, variant / PLAYLIST


def timed_get(base: str, path: str) -> tuple[int, float, float, int]:
    """GET ``path``, reading and dropping the body: (status, s to the first body byte,
    s to the last, bytes)."""
    host, _, port = base.removeprefix("http://").partition(":")
    conn = HTTPConnection(host, int(port), timeout=DOWNLOAD_TIMEOUT)
    try:
        started = time.monotonic()
        conn.request("GET", path)
        response = conn.getresponse()
        first = None
        size = 0
        while chunk := response.read1(1 << 20):
            if first is None:
                first = time.monotonic()
            size += len(chunk)
        done = time.monotonic()
        return response.status, (first or done) - started, done - started, size
    finally:
        conn.close()


def span_playlist(playlist: Path, out: Path, start: float, end: float) -> tuple[Path, float]:
    """A playlist of the segments of ``start``..``end`` beside ``playlist`` (as the
    daemon cuts a clip from), and the seek into it."""
    from owncast.recordings.vod import clip_entries, parse_media, render_media

    entries, target = parse_media(playlist.read_text())
    kept, seek = clip_entries(entries, start, end)
    path = playlist.parent / out.name
    path.write_text(render_media(kept, True, target))
    return path, seek


def ffmpeg_copy(playlist: Path, out: Path, seek: float = 0, length: float = 0) -> float:
    """Plain ``ffmpeg -c copy`` of ``playlist`` (from ``seek`` for ``length`` s) to ``out``:
    seconds taken."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    if seek:
        cmd += ["-ss", f"{seek:.3f}"]
    cmd += ["-i", str(playlist)]
    if length:
        cmd += ["-t", f"{length:.3f}"]
    cmd += ["-map", "0", "-c", "copy", "-f", "mp4", str(out)]
    done = run(cmd, timeout=DOWNLOAD_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg -c copy failed: {done.stderr[-300:]}")
    return done.seconds


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-recordings-", dir=TMP_DIR) as tmp:
        yield Path(tmp)


def mp4_figures(source: Path) -> list[Figure]:
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(TMP_DIR).free
    if free < DISK_NEEDED:
        raise BenchUnavailableError(
            f"{free / 1e9:.1f} GB free, the MP4 part needs {DISK_NEEDED / 1e9:.0f}"
        )
    figures: list[Figure] = []
    with daemon(LEVEL) as (_, base), scratch() as tmp:
        rid, playlist = make_hour(datadir_of(base) / "recordings", source)
        clip_path = "/api/admin/recordings/clip"
        ours, theirs = [], []
        for i in range(CLIP_RUNS):
            started = time.monotonic()
            status, body = http(
                "POST", base + clip_path, {"id": rid, "start": CLIP[0], "end": CLIP[1]},
                auth=AUTH, timeout=120,
            )  # fmt: skip
            took = time.monotonic() - started
            if status != 200:
                raise RuntimeError(f"clip: {status} {body[:300]!r}")
            ours.append(took)
            span, seek = span_playlist(playlist, tmp / "span.m3u8", *CLIP)
            theirs.append(ffmpeg_copy(span, tmp / "clip.mp4", seek, CLIP[1] - CLIP[0]))
            log(f"recordings clip {i + 1}/{CLIP_RUNS}: {ours[-1]:.2f} s, ffmpeg {theirs[-1]:.2f} s")
        figures.append(
            Figure("recordings_clip_60s", median(ours), "s (API until the MP4 is made)",
                   "ffmpeg -c copy", median(theirs))
        )  # fmt: skip

        out = tmp / "reference.mp4"
        references = [ffmpeg_copy(playlist, out)]
        size = out.stat().st_size
        out.unlink()
        reference = references[0]
        log(
            f"recordings download: ffmpeg -c copy of the hour {reference:.1f} s,"
            f" {size / 1e6:.0f} MB"
        )
        status, ttfb, total, got = timed_get(base, f"/recordings/{rid}/download.mp4")
        if status != 200 or got < size * 0.9:
            raise RuntimeError(f"download: {status}, {got} bytes (ffmpeg made {size})")
        log(f"recordings download: first byte {ttfb:.2f} s, all {total:.1f} s, {got / 1e6:.0f} MB")
        status, _, again, got2 = timed_get(base, f"/recordings/{rid}/download.mp4")
        if status != 200 or got2 != got:
            raise RuntimeError(f"cached download: {status}, {got2} bytes (first {got})")
        log(f"recordings download: cached {again:.1f} s")
        (playlist.parent.parent / "download.mp4").unlink()  # at most one 3.8 GB MP4 on disk
        references.append(ffmpeg_copy(playlist, out))
        out.unlink()
        reference = min(references)
        log(f"recordings download: ffmpeg -c copy again {references[-1]:.1f} s")
        shutil.rmtree(datadir_of(base) / "recordings" / rid, ignore_errors=True)
        figures += [
            Figure("recordings_download_1h_first_byte", ttfb, "s", goal=("value", "<=", 2.0)),
            Figure("recordings_download_1h_total", total, "s (3.8 GB MP4)", "ffmpeg -c copy",
                   reference),
            Figure("recordings_download_1h_mbps", got / total / 1e6, "MB/s", "ffmpeg -c copy",
                   size / reference / 1e6),
            Figure("recordings_download_1h_cached", again, "s (second GET, cached file)"),
        ]  # fmt: skip
    return figures


@register(
    "recordings",
    "recording while live: daemon CPU on vs off; a 60 s clip and a 1-hour MP4 download",
)
def recordings() -> list[Figure]:
    source = prepare_input()
    figures = mp4_figures(source)
    return cpu_figures(source) + figures
