"""The ffmpeg command line for one broadcast: FLV on stdin -> HLS variants + a thumbnail.

Pure: settings in, argv out (run without a shell). One ffmpeg process reads the FLV that
the RTMP ingest forwards and writes, under ``output_dir``::

    stream.m3u8                 master playlist, one entry per variant, in configured order
    <index>/stream.m3u8         the variant's live playlist
    <index>/stream-<n>.ts       its MPEG-TS segments (``n`` grows monotonically)
    thumbnail.jpg               a frame of the source: the first one, then every 10 s

Segments cut cleanly because every encoded variant has a fixed GOP of
``framerate * segment seconds`` frames, scene-cut keyframes off, and a keyframe forced at
each segment boundary. ``append_list`` makes a restarted ffmpeg continue the existing
playlists: it reads them back, numbers new segments after the last one and puts an
``EXT-X-DISCONTINUITY`` before them. (``discont_start`` is deliberately not used: with
``append_list`` it only adds a second, misplaced discontinuity tag at the top.) ffmpeg
never ends the playlists (``omit_endlist``): that is the transcoder's call.

An audio-only broadcast gets audio-only variants (one AAC rendition per configured
variant, no thumbnail); a video-only one gets variants without audio.

No low-latency input flags are set: the FLV carries correct timestamps and its sequence
headers up front, so ffmpeg probes it quickly and ``-fflags nobuffer``/``genpts`` gain
nothing. The exception is an input with one track (video or audio only), whose probe is
bounded (``ANALYZE_SINGLE_TRACK``): ffmpeg's FLV reader only ends the probe early once it
has seen both tracks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from owncast.core.settings import DEFAULT_VARIANT, LATENCY_LEVELS, X264_PRESETS

MASTER_PLAYLIST = "stream.m3u8"
VARIANT_PLAYLIST = "stream.m3u8"
SEGMENT_TEMPLATE = "stream-%d.ts"
THUMBNAIL = "thumbnail.jpg"
#: Seconds between two thumbnail refreshes.
THUMBNAIL_INTERVAL = 10
THUMBNAIL_FILTER = f"select='isnan(prev_selected_t)+gte(t-prev_selected_t,{THUMBNAIL_INTERVAL})'"
HLS_FLAGS = (
    "program_date_time",
    "independent_segments",
    "delete_segments",  # segments that leave the playlist are removed
    "temp_file",  # segments appear under their name only once complete
    # No EXT-X-ENDLIST when ffmpeg ends: the publisher may come back within the reconnect
    # grace, and players must not take the list for a finished recording meanwhile. The
    # transcoder ends the playlists itself once the grace is over (``output.finish_output``).
    "omit_endlist",
)
VAAPI_DEVICE = "/dev/dri/renderD128"
#: Microseconds of a one-track input ffmpeg probes before it starts (the default is 5 s;
#: less than a segment, so the first segment is not later for it).
ANALYZE_SINGLE_TRACK = 500_000

_NVENC_PRESETS = ("p1", "p2", "p3", "p4", "p5")
_QSV_PRESETS = ("veryfast", "faster", "fast", "medium", "slow")


def _x264(i: int, cpu: int) -> list[str]:
    return [
        f"-preset:v:{i}", X264_PRESETS[cpu],
        f"-tune:v:{i}", "zerolatency",
        f"-sc_threshold:v:{i}", "0",
    ]  # fmt: skip


def _nvenc(i: int, cpu: int) -> list[str]:
    return [
        f"-preset:v:{i}", _NVENC_PRESETS[cpu],
        f"-tune:v:{i}", "ll",
        f"-zerolatency:v:{i}", "1",
        f"-no-scenecut:v:{i}", "1",
        f"-forced-idr:v:{i}", "1",
    ]  # fmt: skip


def _qsv(i: int, cpu: int) -> list[str]:
    return [
        f"-preset:v:{i}", _QSV_PRESETS[cpu],
        f"-look_ahead:v:{i}", "0",
        f"-forced_idr:v:{i}", "1",
    ]  # fmt: skip


def _videotoolbox(i: int, cpu: int) -> list[str]:
    return [f"-realtime:v:{i}", "1", f"-allow_sw:v:{i}", "1"]


def _none(i: int, cpu: int) -> list[str]:
    return []


#: codec -> (filters after scaling, global args before the input, per-variant encoder options)
ENCODERS: dict[str, tuple[str, tuple[str, ...], Callable[[int, int], list[str]]]] = {
    "libx264": ("format=yuv420p", (), _x264),
    "h264_nvenc": ("format=yuv420p", (), _nvenc),
    "h264_vaapi": ("format=nv12,hwupload", ("-vaapi_device", VAAPI_DEVICE), _none),
    "h264_qsv": ("format=nv12", (), _qsv),
    "h264_omx": ("format=yuv420p", (), _none),
    "h264_v4l2m2m": ("format=yuv420p", (), _none),
    "h264_videotoolbox": ("format=yuv420p", (), _videotoolbox),
}


def command(ffmpeg: str, loglevel: str, *, reads_stdin: bool) -> list[str]:
    """The start of an ffmpeg command line that writes files: no banner, no progress
    lines, ``loglevel`` and worse on stderr, outputs overwritten; ``-nostdin`` unless
    its input is stdin, so it never waits on a terminal."""
    stdin = [] if reads_stdin else ["-nostdin"]
    return [ffmpeg, "-hide_banner", *stdin, "-nostats", "-loglevel", loglevel, "-y"]


def build_argv(
    ffmpeg: str,
    variants: list[dict],
    codec: str,
    latency_level: int,
    output_dir: str,
    start_number: int = 0,
    *,
    audio: bool = True,
    video: bool = True,
    thumbnail: bool = True,
    append: bool = False,
) -> list[str]:
    """The argv (``argv[0]`` is ``ffmpeg``) that transcodes FLV on stdin into HLS.

    ``variants`` are ``StreamQuality`` dicts (missing fields take the defaults);
    ``append`` continues playlists already there (a restart or reconnect), after a
    discontinuity; a fresh broadcast must not append, or ffmpeg tags its first segment;
    ``audio=False`` / ``video=False`` when the broadcast has no audio / video track (an
    audio-only broadcast gets audio-only variants and no thumbnail); ``start_number``
    numbers the first segment when no playlist is there to append to. Raises
    ``ValueError`` for an unknown codec or latency level, no variants or no track.
    """
    _check(codec, variants, audio, video)
    if latency_level not in LATENCY_LEVELS:
        raise ValueError(f"unknown latency level {latency_level!r}")
    output_dir = os.fspath(output_dir)
    if "%" in output_dir:
        raise ValueError("the output directory must not contain '%'")
    seconds, list_size = LATENCY_LEVELS[latency_level]
    filters, global_args, encoder_options = ENCODERS[codec]
    merged = [{**DEFAULT_VARIANT, **v} for v in variants]
    argv = _input(ffmpeg, merged, global_args, audio, video)

    for _ in merged:
        argv += (["-map", "0:v:0"] if video else []) + (["-map", "0:a:0"] if audio else [])
    for i, v in enumerate(merged):
        if video:
            argv += _video_options(i, v, codec, filters, encoder_options, seconds)
        if audio:
            argv += _audio_options(i, v)

    kinds = [kind for kind, on in (("v", video), ("a", audio)) if on]
    stream_map = " ".join(",".join(f"{k}:{i}" for k in kinds) for i in range(len(merged)))
    argv += [
        "-f", "hls",
        "-hls_time", str(seconds),
        "-hls_list_size", str(list_size),
        "-hls_flags", "+".join(HLS_FLAGS + (("append_list",) if append else ())),
        "-hls_segment_type", "mpegts",
        "-start_number", str(start_number),
        "-hls_segment_filename", os.path.join(output_dir, "%v", SEGMENT_TEMPLATE),
        "-master_pl_name", MASTER_PLAYLIST,
        "-var_stream_map", stream_map,
        os.path.join(output_dir, "%v", VARIANT_PLAYLIST),
    ]  # fmt: skip
    if thumbnail and video:
        argv += _thumbnail(output_dir)
    return argv


def _check(codec: str, variants: list[dict], audio: bool, video: bool) -> None:
    if codec not in ENCODERS:
        raise ValueError(f"unknown video codec {codec!r}")
    if not variants:
        raise ValueError("at least one variant is needed")
    if not (audio or video):
        raise ValueError("a broadcast needs an audio or a video track")


def _input(
    ffmpeg: str, merged: list[dict], global_args: Sequence[str], audio: bool, video: bool
) -> list[str]:
    """ffmpeg reading the broadcast's FLV on stdin (with the encoder's global options when
    a variant is encoded)."""
    argv = command(ffmpeg, "level+warning", reads_stdin=True)
    if video and any(not v["videoPassthrough"] for v in merged):
        argv += global_args
    if not (audio and video):
        # With one track, ffmpeg's FLV reader never says it has found all streams, so
        # the probe would first read its default of 5 s of media.
        argv += ["-analyzeduration", str(ANALYZE_SINGLE_TRACK)]
    return argv + ["-f", "flv", "-i", "pipe:0"]


def _thumbnail(output_dir: str) -> list[str]:
    return [
        "-map", "0:v:0", "-an", "-sn",
        # The first frame at once, then one every THUMBNAIL_INTERVAL seconds (``fps``
        # would wait half an interval, and give nothing for a short broadcast).
        "-filter:v", THUMBNAIL_FILTER,
        "-fps_mode", "vfr",
        # One encoder thread: frame threads would hold the rare frames back until EOF.
        "-threads:v", "1",
        "-q:v", "5",
        "-f", "image2", "-update", "1", "-atomic_writing", "1",
        os.path.join(output_dir, THUMBNAIL),
    ]  # fmt: skip


def _video_options(
    i: int, v: dict, codec: str, filters: str, encoder_options: Any, seconds: int
) -> list[str]:
    if v["videoPassthrough"]:
        return [f"-c:v:{i}", "copy"]
    chain = []
    width, height = v["scaledWidth"], v["scaledHeight"]
    if width or height:
        chain.append(f"scale={width or -2}:{height or -2}")
    chain.append(filters)
    bitrate = v["videoBitrate"]
    gop = v["framerate"] * seconds
    cpu = min(max(v["cpuUsageLevel"], 0), max(X264_PRESETS))
    return [
        f"-c:v:{i}", codec,
        f"-filter:v:{i}", ",".join(chain),
        f"-r:v:{i}", str(v["framerate"]),
        f"-b:v:{i}", f"{bitrate}k",
        f"-maxrate:v:{i}", f"{int(bitrate * 1.06)}k",
        f"-bufsize:v:{i}", f"{int(bitrate * 1.2)}k",
        f"-g:v:{i}", str(gop),
        f"-keyint_min:v:{i}", str(gop),
        f"-force_key_frames:v:{i}", f"expr:gte(t,n_forced*{seconds})",
        *encoder_options(i, cpu),
    ]  # fmt: skip


def _audio_options(i: int, v: dict) -> list[str]:
    if v["audioPassthrough"]:
        return [f"-c:a:{i}", "copy"]
    options = [f"-c:a:{i}", "aac"]
    if v["audioBitrate"] > 0:
        options += [f"-b:a:{i}", f"{v['audioBitrate']}k"]
    return options


#: fMP4 to a pipe, a fragment at each keyframe and every ``-frag_duration`` (LL-HLS parts).
LL_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


def build_ll_argv(
    ffmpeg: str,
    variants: list[dict],
    codec: str,
    output_dir: str,
    *,
    segment_seconds: int,
    fragment_us: int,
    audio: bool = True,
    video: bool = True,
    thumbnail: bool = True,
) -> list[str]:
    """The low-latency argv: FLV on stdin -> one fragmented MP4 per variant on fd ``3 + n``
    (``owncast.llhls`` cuts parts and segments from it), plus the same thumbnail. A
    keyframe every ``segment_seconds`` in each encoded variant, at the same instants, so
    segments line up across variants."""
    _check(codec, variants, audio, video)
    filters, global_args, encoder_options = ENCODERS[codec]
    merged = [{**DEFAULT_VARIANT, **v} for v in variants]
    argv = _input(ffmpeg, merged, global_args, audio, video)
    for n, v in enumerate(merged):
        argv += (["-map", "0:v:0"] if video else []) + (["-map", "0:a:0"] if audio else [])
        if video:
            argv += _video_options(0, v, codec, filters, encoder_options, segment_seconds)
        if audio:
            argv += _audio_options(0, v)
        argv += [
            "-f", "mp4", "-movflags", LL_MOVFLAGS, "-frag_duration", str(fragment_us),
            f"pipe:{3 + n}",
        ]  # fmt: skip
    if thumbnail and video:
        argv += _thumbnail(output_dir)
    return argv
