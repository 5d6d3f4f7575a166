"""Glass to glass: seconds from a frame entering the publisher to a real player presenting it.

The publisher (the imageio-ffmpeg binary) paces a 640x360 30 fps test picture in real time,
then stamps each frame with the wall clock: ``setpts`` sets the frame's timestamp to the
real-time clock (``RTCTIME``, in ms since a start instant ``K`` this process chose), and 32
``drawbox`` filters draw it as 20x20 black/white blocks in the top-left corner (24 bits of
milliseconds and an 8-bit check, the sum of those three bytes), which survive x264 at any
bitrate used here. It encodes with libx264 (veryfast, zerolatency, GOP 1 s) plus silent AAC
and publishes over RTMP. So the stamp is the moment the frame left the "camera", read back
from the picture itself, not inferred from playlists.

Players, both on the same stream at the same time:

* hls.js in the real headless Chromium, set up for ours by the viewer page's own
  ``web/js/hlsconfig.js`` (loaded by the glass page: its settings, its hold-back per
  playlist and its playlist loader), with hls.js defaults for nginx-rtmp.
  ``requestVideoFrameCallback`` fires for each presented frame; the frame is drawn to a
  canvas and its blocks decoded; latency = the frame's expected display time (wall clock)
  minus its stamp. ``waiting`` → ``playing`` spans in the measured window are stalls;
  ``hls.latency`` is how far the player sits behind the newest media the playlist lists;
  playlist requests are counted from the page's resource timing.
* a plain ffmpeg player: ``ffmpeg -re -i <variant playlist>`` (paced at the media's rate,
  as a player presents), the stamp region cropped and written as raw grey frames to a pipe;
  latency = the wall clock when a frame comes out minus its stamp.

Targets: the real daemon at each latency level (0..4) and in its low-latency mode (LL-HLS,
``owncast.llhls``), with its default video settings (one transcoded variant), and the peer
nginx-rtmp with ``hls_fragment 1s;
hls_playlist_length 3s`` (as in ``bench/playable.py``) served by the same nginx over HTTP.
Each runs ``WARMUP`` s, then ``MEASURE`` s are measured (p50/p95 of every presented frame;
the low-latency mode ``LL_MEASURE`` s).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    BenchUnavailableError,
    Figure,
    ffmpeg_exe,
    free_port,
    log,
    register,
    running,
    spawn,
    stop,
    wait_port,
)
from bench.ingest import nginx_paths
from bench.playable import KEY, NGINX_HLS_CONF, daemon, http

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
HLS_JS = ROOT / "web" / "vendor" / "hls.min.js"
#: ``GLASS_TARGETS=ll,0`` / ``GLASS_MEASURE=20`` narrow a run while working on one target
#: (``nginx``, a latency level, ``ll`` for the low-latency mode).
TARGETS = os.environ.get("GLASS_TARGETS", "nginx,0,1,2,3,4,ll").split(",")
WARMUP = 12.0
MEASURE = float(os.environ.get("GLASS_MEASURE", "60"))
#: The low-latency mode plays longer: issue 15 asks for no stall over two minutes
#: (``GLASS_LL_MEASURE`` overrides it).
LL_MEASURE = float(os.environ.get("GLASS_LL_MEASURE", str(max(MEASURE, 120.0))))
#: The players join once the playlist lists this many segments, as a viewer arriving
#: mid-broadcast does (a player started at the first segment stays as close to live as
#: that start, which says more about when it joined than about the server).
JOIN_SEGMENTS = 4
#: Seconds for the playlist to list them (level 4: 5 s segments).
READY_TIMEOUT = 60.0
#: The stamp: 16 blocks a row, 2 rows, BLOCK px each, in a WIDTH x HEIGHT picture.
BLOCK = 20
WIDTH, HEIGHT = 640, 360
BITS = 32
STAMP_W, STAMP_H = 16 * BLOCK, 2 * BLOCK
#: The viewer page's hls.js set-up is ``web/js/hlsconfig.js`` (``owncastHls.create``): the
#: glass page loads that file. ``GLASS_LL_CONFIG`` (JSON) lays hls.js settings over it for the
#: low-latency mode while trying some; the peer plays with hls.js defaults.
HLS_CONFIG_JS = ROOT / "web" / "js" / "hlsconfig.js"
LL_EXTRA: dict[str, Any] = json.loads(os.environ.get("GLASS_LL_CONFIG", "{}"))
#: Goals from issue 15: level 0 p50 <= 3 s; the low-latency mode p50 <= 2 s, p95 <= 3 s.
GOAL_LEVEL0_P50 = 3.0
GOAL_LL_P50 = 2.0
GOAL_LL_P95 = 3.0
#: ... and no stall over two minutes of low-latency playback.
GOAL_LL_STEADY_S = 120.0


# -- the stamp ----------------------------------------------------------------------------


def _bit_expr(i: int) -> str:
    """ffmpeg expression: bit ``i`` of the 32-bit stamp word of the frame at time ``t``."""
    ms = "floor(t*1000+0.5)"
    if i < 24:
        return f"mod(floor({ms}/{2**i}),2)"
    check = f"mod(mod({ms},256)+mod(floor({ms}/256),256)+mod(floor({ms}/65536),256),256)"
    return f"mod(floor({check}/{2 ** (i - 24)}),2)"


def stamp_filter(start_us: int) -> str:
    """The publisher's video filter: real-time pacing, wall-clock pts, the blocks."""
    parts = [
        f"testsrc2=size={WIDTH}x{HEIGHT}:rate=30",
        "realtime",
        "settb=1/1000",
        f"setpts='(RTCTIME-{start_us})/1000'",
        f"drawbox=x=0:y=0:w={STAMP_W}:h={STAMP_H}:color=black:t=fill",
    ]
    for i in range(BITS):
        x, y = (i % 16) * BLOCK, (i // 16) * BLOCK
        parts.append(
            f"drawbox=x={x}:y={y}:w={BLOCK}:h={BLOCK}:color=white:t=fill:enable='{_bit_expr(i)}'"
        )
    parts.append("format=yuv420p")
    return ",".join(parts)


def decode(grey: bytes, width: int = STAMP_W) -> int | None:
    """The stamp (ms since K) from the grey pixels of the stamp region, or None when the
    check byte disagrees (a damaged or blended frame)."""
    word = 0
    for i in range(BITS):
        cx, cy = (i % 16) * BLOCK + BLOCK // 2, (i // 16) * BLOCK + BLOCK // 2
        total = sum(grey[(cy + dy) * width + cx + dx] for dy in (-3, 0, 3) for dx in (-3, 0, 3))
        if total > 128 * 9:
            word |= 1 << i
    ms = word & 0xFFFFFF
    check = (ms & 0xFF) + ((ms >> 8) & 0xFF) + ((ms >> 16) & 0xFF)
    return ms if (word >> 24) == (check & 0xFF) else None


@contextlib.contextmanager
def publishing(rtmp_url: str) -> Iterator[tuple[float, Any]]:
    """The stamping publisher; yields (K as epoch seconds, its process)."""
    start_us = int(time.time() * 1000) * 1000
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=48000:cl=stereo",
        "-f",
        "lavfi",
        "-i",
        stamp_filter(start_us),
        "-map",
        "1:v",
        "-map",
        "0:a",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-g",
        "30",
        "-b:v",
        "1500k",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-f",
        "flv",
        rtmp_url,
    ]
    with running(cmd) as proc:
        yield start_us / 1e6, proc


# -- the players ---------------------------------------------------------------------------

PAGE = """<!doctype html>
<meta charset="utf-8">
<video id="v" muted autoplay playsinline width="640" height="360"></video>
<script src="/__glass/hls.min.js"></script>
<script src="/__glass/hlsconfig.js"></script>
<script>
"use strict";
const SOURCE = %(source)s, VIEWER = %(viewer)s, EXTRA = %(extra)s, K = %(k)s, BITS = 32;
const BLOCK = %(block)d;
const W = %(sw)d, H = %(sh)d, FW = %(fw)d, FH = %(fh)d;
const v = document.getElementById("v");
const canvas = document.createElement("canvas");
canvas.width = W; canvas.height = H;
const ctx = canvas.getContext("2d", { willReadFrequently: true });
window.glass = {
  samples: [], stalls: [], bad: 0, errors: [], events: [], playlists: [], playing: false,
};
// When the player asked for a playlist (the viewer page's waiting loader asks more often).
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.name.includes(".m3u8")) glass.playlists.push(performance.timeOrigin + e.startTime);
  }
}).observe({ type: "resource", buffered: true });
let waitingSince = null;
v.addEventListener("waiting", () => { if (waitingSince === null) waitingSince = Date.now(); });
v.addEventListener("playing", () => {
  glass.playing = true;
  if (waitingSince !== null) glass.stalls.push([waitingSince, Date.now() - waitingSince]);
  waitingSince = null;
});
function decode(px) {
  let word = 0;
  for (let i = 0; i < BITS; i++) {
    const cx = (i %% 16) * BLOCK + BLOCK / 2, cy = Math.floor(i / 16) * BLOCK + BLOCK / 2;
    let total = 0;
    for (const dy of [-3, 0, 3]) for (const dx of [-3, 0, 3]) {
      const o = ((cy + dy) * W + cx + dx) * 4;
      total += (px[o] + px[o + 1] + px[o + 2]) / 3;
    }
    if (total > 128 * 9) word += 2 ** i;
  }
  const ms = word %% 16777216, high = Math.floor(word / 16777216);
  const check = ((ms & 255) + ((ms >> 8) & 255) + ((ms >> 16) & 255)) & 255;
  return high === check ? ms : null;
}
function onFrame(now, meta) {
  const sx = v.videoWidth / FW, sy = v.videoHeight / FH;
  ctx.drawImage(v, 0, 0, W * sx, H * sy, 0, 0, W, H);
  const ms = decode(ctx.getImageData(0, 0, W, H).data);
  const shown = performance.timeOrigin + meta.expectedDisplayTime;
  if (ms === null) glass.bad++;
  else glass.samples.push([shown, shown - (K + ms), hls ? hls.latency : null]);
  glass.target = hls.targetLatency;
  v.requestVideoFrameCallback(onFrame);
}
const hls = VIEWER ? owncastHls.create(Hls, EXTRA) : new Hls(EXTRA);
hls.on(Hls.Events.ERROR, (_, d) => {
  if (d.fatal) glass.errors.push(d.type + " " + d.details);
  else glass.events.push([Date.now(), d.details]);  // what went on around a stall
});
hls.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch(() => {}));
hls.loadSource(SOURCE);
hls.attachMedia(v);
v.requestVideoFrameCallback(onFrame);
</script>
"""


class BrowserPlayer:
    """hls.js in headless Chromium reading the stamps; the page is served at the stream's
    origin (a Playwright route) so the canvas stays readable."""

    def __init__(self, origin: str, source: str, viewer: bool, extra: dict[str, Any], k: float):
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        page_html = PAGE % {
            "source": json.dumps(source),
            "viewer": json.dumps(viewer),
            "extra": json.dumps(extra),
            "k": repr(k * 1000),
            "block": BLOCK,
            "sw": STAMP_W,
            "sh": STAMP_H,
            "fw": WIDTH,
            "fh": HEIGHT,
        }
        self.page = self.browser.new_page()
        self.page.route(
            origin + "/__glass/page.html",
            lambda route: route.fulfill(body=page_html, content_type="text/html"),
        )
        self.page.route(
            origin + "/__glass/hls.min.js",
            lambda route: route.fulfill(path=str(HLS_JS), content_type="text/javascript"),
        )
        self.page.route(
            origin + "/__glass/hlsconfig.js",
            lambda route: route.fulfill(path=str(HLS_CONFIG_JS), content_type="text/javascript"),
        )
        self.page.goto(origin + "/__glass/page.html")

    def result(self) -> dict[str, Any]:
        # A stall still going on counts too (``open``: when it began).
        return self.page.evaluate("({...window.glass, open: waitingSince})")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.browser.close()
        with contextlib.suppress(Exception):
            self._pw.stop()


class FfmpegPlayer:
    """``ffmpeg -re`` reading the playlist; a thread reads its raw grey stamp frames."""

    def __init__(self, url: str, k: float):
        self.k = k
        self.samples: list[tuple[float, float]] = []
        self.bad = 0
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "error",
            "-re",
            "-i",
            url,
            "-map",
            "0:v:0",
            "-vf",
            f"crop=iw*{STAMP_W}/{WIDTH}:ih*{STAMP_H}/{HEIGHT}:0:0,scale={STAMP_W}:{STAMP_H},"
            "format=gray",
            "-f",
            "rawvideo",
            "-",
        ]
        self.proc = spawn(cmd, stdout=-1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        size = STAMP_W * STAMP_H
        out = self.proc.stdout
        assert out is not None
        while True:
            frame = out.read(size)
            if len(frame) < size:
                return
            now = time.time()
            ms = decode(frame)
            if ms is None:
                self.bad += 1
            else:
                self.samples.append((now, now - (self.k + ms / 1000)))

    def close(self) -> None:
        stop(self.proc)
        self._thread.join(5)


# -- one target ------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    rtmp_url: str,
    origin: str,
    master: str,
    variant: str,
    viewer: bool,
    extra: dict[str, Any],
    name: str,
    seconds: float,
    join: int = JOIN_SEGMENTS,
) -> dict[str, Any]:
    """Publish, play with both players, return the figures of the measured window."""
    with publishing(rtmp_url) as (k, publisher):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            status, body = http("GET", variant)
            if status == 200 and body.count(b"#EXTINF") >= join:
                break
            if publisher.poll() is not None:
                raise RuntimeError(f"the publisher exited with {publisher.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: not {join} segments in {READY_TIMEOUT:.0f} s")
            time.sleep(0.1)
        browser = BrowserPlayer(origin, master, viewer, extra, k)
        player = FfmpegPlayer(variant, k)
        try:
            time.sleep(WARMUP)
            begin = time.time()
            time.sleep(seconds)
            end = time.time()
            result = browser.result()
        finally:
            browser.close()
            player.close()
    window = [s for s in result["samples"] if begin * 1000 <= s[0] <= end * 1000]
    latencies = [s[1] / 1000 for s in window]
    behind = [s[2] for s in window if s[2] is not None]
    if result["open"] is not None:
        result["stalls"].append([result["open"], end * 1000 - result["open"]])
    stalls = [s for s in result["stalls"] if begin * 1000 <= s[0] <= end * 1000]
    plain = [lat for at, lat in player.samples if begin <= at <= end]
    asked = [at for at in result["playlists"] if begin * 1000 <= at <= end * 1000]
    # The longest stretch of the window between stalls (all of it when there was none).
    edges = [begin * 1000, *(t for at, dur in stalls for t in (at, at + dur)), end * 1000]
    steady = max(edges[i + 1] - edges[i] for i in range(0, len(edges), 2)) / 1000
    figures = {
        "p50": statistics.median(latencies) if latencies else None,
        "p95": _pct(latencies, 0.95),
        "frames": len(latencies),
        "stalls": len(stalls),
        "stall_s": sum(s[1] for s in stalls) / 1000,
        "longest_stall_s": max((s[1] for s in stalls), default=0) / 1000,
        "seconds": seconds,
        "playlist_rps": len(asked) / (end - begin),
        "steady_s": steady,
        "target": result.get("target"),
        "behind": statistics.median(behind) if behind else None,
        "ffmpeg_p50": statistics.median(plain) if plain else None,
        "ffmpeg_p95": _pct(plain, 0.95),
        "bad": result["bad"] + player.bad,
        "errors": result["errors"],
    }
    log(f"glass {name}: {json.dumps(figures, default=str)}")
    for at, duration in stalls:
        near = [d for t, d in result["events"] if at - 5000 <= t <= at + duration]
        log(f"glass {name}: stalled {duration / 1000:.2f} s at {at / 1000 - begin:.1f} s: {near}")
    if not latencies:
        raise RuntimeError(f"{name}: the browser presented no stamped frame: {result['errors']}")
    return figures


def ours(level: int | None) -> dict[str, Any]:
    """The daemon at latency ``level``, or in low-latency mode (LL-HLS) for None."""
    with daemon(level or 0) as (rtmp, base):
        if level is None:
            status, body = http(
                "POST",
                base + "/api/admin/config/video/lowlatency",
                {"value": True},
                auth=("admin", KEY),
            )
            if status != 200:
                raise RuntimeError(f"turning the low-latency mode on: {status} {body[:200]!r}")
        return measure(
            f"rtmp://127.0.0.1:{rtmp}/live/{KEY}",
            base,
            base + "/hls/stream.m3u8",
            base + "/hls/0/stream.m3u8",
            True,
            {} if level is not None else LL_EXTRA,
            f"level {level}" if level is not None else "low latency",
            MEASURE if level is not None else LL_MEASURE,
        )


#: nginx-rtmp's HLS as the playable benchmark has it, and an HTTP server for its files.
NGINX_HTTP = """\
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen 127.0.0.1:{http};
        location /hls/ {{
            alias {prefix}/hls/;
            add_header Cache-Control no-cache;
        }}
    }}
}}
"""


def nginx() -> dict[str, Any]:
    binary, module = nginx_paths()
    rtmp, web = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-glass-nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        hls = f"{prefix}/hls"
        rtmp_conf = NGINX_HLS_CONF.format(
            prefix=prefix, module=module, port=rtmp, hls=hls, connections=256
        )
        conf.write_text(rtmp_conf + NGINX_HTTP.format(prefix=prefix, http=web))
        error_log = Path(prefix) / "error.log"
        with running([binary, "-p", prefix, "-c", str(conf), "-e", str(error_log)]) as server:
            try:
                wait_port(rtmp, timeout=10, proc=server)
                wait_port(web, timeout=10, proc=server)
            except (RuntimeError, TimeoutError) as e:
                text = error_log.read_text() if error_log.exists() else ""
                raise RuntimeError(f"nginx did not start: {e}; {text[-500:]}") from e
            origin = f"http://127.0.0.1:{web}"
            playlist = f"{origin}/hls/{KEY}.m3u8"
            return measure(
                f"rtmp://127.0.0.1:{rtmp}/live/{KEY}",
                origin,
                playlist,
                playlist,
                False,
                {},
                "nginx-rtmp",
                MEASURE,
                join=3,  # its whole playlist (3 s of 1 s fragments)
            )


# -- the benchmark ---------------------------------------------------------------------------


def figures_for(prefix: str, got: dict[str, Any], peer: dict[str, Any] | None) -> list[Figure]:
    def p(key: str) -> tuple[str | None, float | None]:
        return ("nginx-rtmp hls", peer[key]) if peer else (None, None)

    p50_goal = p95_goal = stall_goal = played_goal = None
    if prefix == "glass_level0":
        # Held two segments deep (web/js/hlsconfig.js): that must not cost a stall.
        p50_goal, stall_goal = ("value", "<=", GOAL_LEVEL0_P50), ("value", "<=", 0.0)
    if prefix == "glass_lowlatency":
        p50_goal, p95_goal = ("value", "<=", GOAL_LL_P50), ("value", "<=", GOAL_LL_P95)
        stall_goal = ("value", "<=", 0.0)
        played_goal = ("value", ">=", GOAL_LL_STEADY_S)
    seconds = got["seconds"]
    return [
        Figure(f"{prefix}_hlsjs_p50", got["p50"], "s", *p("p50"), goal=p50_goal),
        Figure(f"{prefix}_hlsjs_p95", got["p95"], "s", *p("p95"), goal=p95_goal),
        Figure(
            f"{prefix}_hlsjs_stalls",
            got["stalls"],
            f"stalls in {seconds:.0f} s",
            *p("stalls"),
            goal=stall_goal,
        ),
        Figure(f"{prefix}_hlsjs_stall_s", got["stall_s"], "s stalled", *p("stall_s")),
        Figure(
            f"{prefix}_hlsjs_steady_s",
            got["steady_s"],
            "s longest play without a stall",
            *p("steady_s"),
            goal=played_goal,
        ),
        Figure(
            f"{prefix}_hlsjs_target",
            got["target"],
            "s hls.js target (hls.targetLatency)",
            *p("target"),
        ),
        Figure(
            f"{prefix}_hlsjs_behind", got["behind"], "s behind newest (hls.latency)", *p("behind")
        ),
        Figure(
            f"{prefix}_hlsjs_playlist_rps",
            got["playlist_rps"],
            "playlist requests/s",
            *p("playlist_rps"),
        ),
        Figure(f"{prefix}_ffmpeg_p50", got["ffmpeg_p50"], "s", *p("ffmpeg_p50")),
        Figure(f"{prefix}_ffmpeg_p95", got["ffmpeg_p95"], "s", *p("ffmpeg_p95")),
    ]


@register(
    "glass",
    "glass to glass: stamped frames from the publisher to hls.js in Chromium and to ffmpeg, "
    "per latency level, vs nginx-rtmp HLS",
)
def glass() -> list[Figure]:
    if not HLS_JS.exists():
        raise BenchUnavailableError(f"{HLS_JS} is missing (make install runs npm ci)")
    if not Path(CHROMIUM).exists():
        raise BenchUnavailableError(f"{CHROMIUM} is missing (apt-get install chromium)")
    peer = None
    if "nginx" in TARGETS:
        try:
            peer = nginx()
        except BenchUnavailableError as e:
            log(f"glass: no peer: {e}")
    figures: list[Figure] = []
    for target in TARGETS:
        if target == "ll":
            figures += figures_for("glass_lowlatency", ours(None), peer)
        elif target != "nginx":
            figures += figures_for(f"glass_level{int(target)}", ours(int(target)), peer)
    return figures
