"""The ffmpeg argv built from the video settings, and the media tags that feed restarts."""

from __future__ import annotations

from twisted.trial import unittest

from owncast.core.settings import DEFAULT_VARIANT, LATENCY_LEVELS, X264_PRESETS
from owncast.media import AUDIO, SCRIPT, VIDEO, MediaTag, media_tag, metadata_tag
from owncast.media.replay import Replay
from owncast.transcode.argv import HLS_FLAGS, build_argv

FF = "/opt/ffmpeg/bin/ffmpeg"
OUT = "/srv/owncast/data/hls"


def variant(**fields) -> dict:
    return {**DEFAULT_VARIANT, **fields}


def value(argv: list[str], option: str) -> str:
    """The value that follows ``option`` (which must appear exactly once)."""
    assert argv.count(option) == 1, (option, argv.count(option))
    return argv[argv.index(option) + 1]


def hls_part(argv: list[str]) -> list[str]:
    """The HLS output's options (before the thumbnail output)."""
    end = argv.index("-f", argv.index("hls") - 1)
    return argv[: argv.index(f"{OUT}/%v/stream.m3u8", end) + 1]


class ArgvTests(unittest.TestCase):
    def test_input_is_flv_on_stdin(self):
        """ffmpeg runs without a shell, reads FLV from stdin and overwrites old output."""
        argv = build_argv(FF, [variant()], "libx264", 2, OUT)
        self.assertEqual(argv[0], FF)
        index = argv.index("-i")
        self.assertEqual(argv[index - 2 : index + 2], ["-f", "flv", "-i", "pipe:0"])
        self.assertIn("-y", argv[:index])
        self.assertEqual(value(argv, "-loglevel"), "level+warning")

    def test_default_variant_encodes_with_x264(self):
        """The default variant: x264 at its preset, zerolatency, bitrate caps, passthrough
        audio; a fixed GOP of framerate x segment seconds with scene cuts off."""
        argv = build_argv(FF, [variant()], "libx264", 2, OUT)
        self.assertEqual(value(argv, "-c:v:0"), "libx264")
        self.assertEqual(value(argv, "-preset:v:0"), X264_PRESETS[2])
        self.assertEqual(value(argv, "-tune:v:0"), "zerolatency")
        self.assertEqual(value(argv, "-r:v:0"), "24")
        self.assertEqual(value(argv, "-b:v:0"), "1200k")
        self.assertEqual(value(argv, "-maxrate:v:0"), "1272k")
        self.assertEqual(value(argv, "-bufsize:v:0"), "1440k")
        seconds = LATENCY_LEVELS[2][0]
        self.assertEqual(value(argv, "-g:v:0"), str(24 * seconds))
        self.assertEqual(value(argv, "-keyint_min:v:0"), str(24 * seconds))
        self.assertEqual(value(argv, "-sc_threshold:v:0"), "0")
        self.assertEqual(value(argv, "-force_key_frames:v:0"), f"expr:gte(t,n_forced*{seconds})")
        self.assertEqual(value(argv, "-filter:v:0"), "format=yuv420p")
        self.assertEqual(value(argv, "-c:a:0"), "copy")
        self.assertNotIn("-b:a:0", argv)

    def test_hls_output_layout(self):
        """Master at output_dir/stream.m3u8, variants and segments in output_dir/<index>/."""
        argv = build_argv(FF, [variant()], "libx264", 2, OUT, start_number=1234)
        self.assertEqual(value(argv, "-master_pl_name"), "stream.m3u8")
        self.assertEqual(value(argv, "-hls_segment_filename"), f"{OUT}/%v/stream-%d.ts")
        self.assertEqual(value(argv, "-var_stream_map"), "v:0,a:0")
        self.assertEqual(value(argv, "-start_number"), "1234")
        self.assertEqual(value(argv, "-hls_segment_type"), "mpegts")
        self.assertEqual(hls_part(argv)[-1], f"{OUT}/%v/stream.m3u8")
        flags = value(argv, "-hls_flags").split("+")
        for flag in (
            "program_date_time",
            "independent_segments",
            "delete_segments",
            "temp_file",
        ):
            self.assertIn(flag, flags)
        self.assertEqual(tuple(flags), HLS_FLAGS)
        # A fresh broadcast does not append (ffmpeg would tag its first segment as a
        # discontinuity); a restart or reconnect does.
        self.assertNotIn("append_list", flags)
        appended = build_argv("ffmpeg", [{}], "libx264", 2, "/out", append=True)
        self.assertIn("append_list", value(appended, "-hls_flags").split("+"))

    def test_each_latency_level(self):
        """Segment length and playlist size come from LATENCY_LEVELS, and so does the GOP."""
        for level, (seconds, size) in LATENCY_LEVELS.items():
            argv = build_argv(FF, [variant(framerate=30)], "libx264", level, OUT)
            self.assertEqual(value(argv, "-hls_time"), str(seconds), level)
            self.assertEqual(value(argv, "-hls_list_size"), str(size), level)
            self.assertEqual(value(argv, "-g:v:0"), str(30 * seconds), level)
            self.assertEqual(
                value(argv, "-force_key_frames:v:0"), f"expr:gte(t,n_forced*{seconds})"
            )

    def test_passthrough(self):
        """Passthrough copies the streams: no filters, rate, bitrate, GOP or preset."""
        argv = build_argv(FF, [variant(videoPassthrough=True, scaledWidth=640)], "libx264", 1, OUT)
        self.assertEqual(value(argv, "-c:v:0"), "copy")
        self.assertEqual(value(argv, "-c:a:0"), "copy")
        for option in (
            "-filter:v:0",
            "-r:v:0",
            "-b:v:0",
            "-g:v:0",
            "-preset:v:0",
            "-force_key_frames:v:0",
        ):
            self.assertNotIn(option, argv)

    def test_audio_reencoded_at_its_bitrate(self):
        argv = build_argv(FF, [variant(audioPassthrough=False, audioBitrate=96)], "libx264", 1, OUT)
        self.assertEqual(value(argv, "-c:a:0"), "aac")
        self.assertEqual(value(argv, "-b:a:0"), "96k")

    def test_scaling_keeps_aspect(self):
        """Only the set sides are fixed; -2 keeps the aspect with an even size."""
        cases = {
            (0, 0): "format=yuv420p",
            (640, 0): "scale=640:-2,format=yuv420p",
            (0, 360): "scale=-2:360,format=yuv420p",
            (640, 360): "scale=640:360,format=yuv420p",
        }
        for (width, height), chain in cases.items():
            argv = build_argv(
                FF, [variant(scaledWidth=width, scaledHeight=height)], "libx264", 1, OUT
            )
            self.assertEqual(value(argv, "-filter:v:0"), chain)

    def test_two_variants_in_order(self):
        """Every variant maps the video and audio again, in configured order."""
        argv = build_argv(
            FF,
            [
                variant(videoBitrate=3000, framerate=30, cpuUsageLevel=4),
                variant(
                    videoBitrate=600,
                    scaledHeight=360,
                    cpuUsageLevel=0,
                    audioPassthrough=False,
                    audioBitrate=64,
                ),
            ],
            "libx264",
            0,
            OUT,
        )
        maps = [argv[i + 1] for i, arg in enumerate(argv[: argv.index("hls")]) if arg == "-map"]
        self.assertEqual(maps, ["0:v:0", "0:a:0", "0:v:0", "0:a:0"])
        self.assertEqual(value(argv, "-var_stream_map"), "v:0,a:0 v:1,a:1")
        self.assertEqual(value(argv, "-b:v:0"), "3000k")
        self.assertEqual(value(argv, "-b:v:1"), "600k")
        self.assertEqual(value(argv, "-g:v:0"), "30")
        self.assertEqual(value(argv, "-g:v:1"), "24")
        self.assertEqual(value(argv, "-preset:v:0"), X264_PRESETS[4])
        self.assertEqual(value(argv, "-preset:v:1"), X264_PRESETS[0])
        self.assertEqual(value(argv, "-filter:v:1"), "scale=-2:360,format=yuv420p")
        self.assertEqual(value(argv, "-c:a:0"), "copy")
        self.assertEqual(value(argv, "-c:a:1"), "aac")
        self.assertEqual(value(argv, "-b:a:1"), "64k")

    def test_without_audio(self):
        """A broadcast without audio maps no audio stream at all."""
        argv = build_argv(FF, [variant(), variant()], "libx264", 1, OUT, audio=False)
        self.assertNotIn("0:a:0", argv)
        self.assertNotIn("-c:a:0", argv)
        self.assertEqual(value(argv, "-var_stream_map"), "v:0 v:1")

    def test_audio_only(self):
        """A broadcast without video gets one AAC rendition per variant and no thumbnail;
        nothing is encoded as video, so no hardware set-up is asked for either."""
        argv = build_argv(FF, [variant(), variant(audioPassthrough=False, audioBitrate=64)],
                          "h264_vaapi", 1, OUT, video=False)  # fmt: skip
        self.assertNotIn("0:v:0", argv)
        self.assertEqual(argv.count("0:a:0"), 2)
        self.assertNotIn("-vaapi_device", argv)
        self.assertFalse([a for a in argv if a.startswith(("-c:v", "-filter:v", "-g:v"))])
        self.assertEqual(value(argv, "-c:a:0"), "copy")
        self.assertEqual(value(argv, "-c:a:1"), "aac")
        self.assertEqual(value(argv, "-var_stream_map"), "a:0 a:1")
        self.assertNotIn(f"{OUT}/thumbnail.jpg", argv)
        with self.assertRaises(ValueError):
            build_argv(FF, [variant()], "libx264", 1, OUT, audio=False, video=False)

    def test_one_track_is_probed_briefly(self):
        """ffmpeg's FLV reader ends its probe early only once it has both tracks: with one,
        it would read 5 s of media before the first segment."""
        for audio, video in ((False, True), (True, False)):
            argv = build_argv(FF, [variant()], "libx264", 0, OUT, audio=audio, video=video)
            self.assertEqual(argv[argv.index("-analyzeduration") : argv.index("-i")],
                             ["-analyzeduration", "500000", "-f", "flv"])  # fmt: skip
        self.assertNotIn("-analyzeduration", build_argv(FF, [variant()], "libx264", 0, OUT))

    def test_playlists_are_never_ended_by_ffmpeg(self):
        """ffmpeg leaves EXT-X-ENDLIST out: the transcoder ends the playlists itself once
        the reconnect grace is over."""
        self.assertIn("omit_endlist", value(build_argv(FF, [variant()], "libx264", 1, OUT),
                                            "-hls_flags").split("+"))  # fmt: skip

    def test_thumbnail_output(self):
        """A second output writes thumbnail.jpg at once, then every 10 s, in place, atomically."""
        argv = build_argv(FF, [variant()], "libx264", 1, OUT)
        thumb = argv[len(hls_part(argv)) :]
        self.assertEqual(thumb[-1], f"{OUT}/thumbnail.jpg")
        self.assertEqual(value(thumb, "-map"), "0:v:0")
        self.assertEqual(
            value(thumb, "-filter:v"),
            "select='isnan(prev_selected_t)+gte(t-prev_selected_t,10)'",
        )
        self.assertEqual(value(thumb, "-fps_mode"), "vfr")
        self.assertEqual(value(thumb, "-threads:v"), "1")
        self.assertEqual(value(thumb, "-update"), "1")
        self.assertEqual(value(thumb, "-atomic_writing"), "1")
        self.assertIn("-an", thumb)
        argv = build_argv(FF, [variant()], "libx264", 1, OUT, thumbnail=False)
        self.assertNotIn(f"{OUT}/thumbnail.jpg", argv)

    def test_nvenc(self):
        argv = build_argv(FF, [variant(cpuUsageLevel=2)], "h264_nvenc", 1, OUT)
        self.assertEqual(value(argv, "-c:v:0"), "h264_nvenc")
        self.assertEqual(value(argv, "-preset:v:0"), "p3")
        self.assertEqual(value(argv, "-tune:v:0"), "ll")
        self.assertEqual(value(argv, "-forced-idr:v:0"), "1")
        self.assertEqual(value(argv, "-no-scenecut:v:0"), "1")
        self.assertNotIn("-sc_threshold:v:0", argv)
        self.assertEqual(value(argv, "-g:v:0"), "48")

    def test_vaapi_uploads_frames(self):
        """VAAPI opens the render device before the input and uploads the scaled frames."""
        argv = build_argv(FF, [variant(scaledWidth=1280)], "h264_vaapi", 1, OUT)
        self.assertLess(argv.index("-vaapi_device"), argv.index("-i"))
        self.assertEqual(value(argv, "-vaapi_device"), "/dev/dri/renderD128")
        self.assertEqual(value(argv, "-filter:v:0"), "scale=1280:-2,format=nv12,hwupload")
        self.assertNotIn("-preset:v:0", argv)
        passthrough = build_argv(FF, [variant(videoPassthrough=True)], "h264_vaapi", 1, OUT)
        self.assertNotIn("-vaapi_device", passthrough)

    def test_qsv(self):
        argv = build_argv(FF, [variant(cpuUsageLevel=0)], "h264_qsv", 1, OUT)
        self.assertEqual(value(argv, "-preset:v:0"), "veryfast")
        self.assertEqual(value(argv, "-filter:v:0"), "format=nv12")
        self.assertEqual(value(argv, "-forced_idr:v:0"), "1")

    def test_other_known_codecs_build(self):
        for codec in ("h264_omx", "h264_v4l2m2m", "h264_videotoolbox"):
            argv = build_argv(FF, [variant()], codec, 1, OUT)
            self.assertEqual(value(argv, "-c:v:0"), codec)
            self.assertEqual(value(argv, "-filter:v:0"), "format=yuv420p")

    def test_refuses_what_it_cannot_build(self):
        with self.assertRaises(ValueError):
            build_argv(FF, [variant()], "libvpx", 1, OUT)
        with self.assertRaises(ValueError):
            build_argv(FF, [variant()], "libx264", 9, OUT)
        with self.assertRaises(ValueError):
            build_argv(FF, [], "libx264", 1, OUT)
        with self.assertRaises(ValueError):
            build_argv(FF, [variant()], "libx264", 1, "/srv/100%/hls")

    def test_missing_fields_take_defaults(self):
        argv = build_argv(FF, [{"videoBitrate": 800}], "libx264", 1, OUT)
        self.assertEqual(value(argv, "-b:v:0"), "800k")
        self.assertEqual(value(argv, "-r:v:0"), str(DEFAULT_VARIANT["framerate"]))


# -- media tags --------------------------------------------------------------------------
def flv_header(audio: bool = True, video: bool = True) -> bytes:
    flags = (4 if audio else 0) | (1 if video else 0)
    return b"FLV\x01" + bytes([flags]) + (9).to_bytes(4, "big") + b"\x00\x00\x00\x00"


def flv_tag(kind: int, payload: bytes, timestamp: int = 0) -> bytes:
    head = (
        bytes([kind])
        + len(payload).to_bytes(3, "big")
        + (timestamp & 0xFFFFFF).to_bytes(3, "big")
        + bytes([timestamp >> 24 & 0xFF])
        + b"\x00\x00\x00"
    )
    return head + payload + (11 + len(payload)).to_bytes(4, "big")


def as_flv(*tags: MediaTag) -> bytes:
    """Tags as FLV (written here by hand, to check the transcoder's writer)."""
    return b"".join(flv_tag(t.kind, t.payload, t.timestamp) for t in tags)


METADATA = metadata_tag(0, b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09", {})
AVC_CONFIG = media_tag(VIDEO, 0, b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f")
AAC_CONFIG = media_tag(AUDIO, 0, b"\xaf\x00\x12\x10")
#: What the ingest hands over first, in order.
STREAM_START = (METADATA, AVC_CONFIG, AAC_CONFIG)


def keyframe(timestamp: int) -> MediaTag:
    return media_tag(VIDEO, timestamp, b"\x17\x01\x00\x00\x00" + b"K" * 40)


def interframe(timestamp: int) -> MediaTag:
    return media_tag(VIDEO, timestamp, b"\x27\x01\x00\x00\x00" + b"p" * 20)


def aac_frame(timestamp: int) -> MediaTag:
    return media_tag(AUDIO, timestamp, b"\xaf\x01" + b"a" * 10)


class MediaTagTests(unittest.TestCase):
    """Messages are classified once, where they arrive: keyframes and sequence headers."""

    def flags(self, kind: int, payload: bytes) -> tuple[bool, bool]:
        tag = media_tag(kind, 1234, payload)
        self.assertEqual((tag.kind, tag.timestamp, tag.payload), (kind, 1234, payload))
        self.assertIs(tag.payload, payload)  # never copied
        return tag.keyframe, tag.config

    def test_avc(self):
        """H.264 (and legacy-id HEVC/AV1): AVCPacketType 0 is config, 1 a coded frame."""
        self.assertEqual(self.flags(VIDEO, AVC_CONFIG.payload), (False, True))
        self.assertEqual(self.flags(VIDEO, keyframe(0).payload), (True, False))
        self.assertEqual(self.flags(VIDEO, interframe(0).payload), (False, False))
        self.assertEqual(self.flags(VIDEO, b"\x1c\x01hevc"), (True, False))
        self.assertEqual(self.flags(VIDEO, b"\x17\x02"), (False, False))  # end of sequence
        self.assertEqual(self.flags(VIDEO, b"\x17"), (False, False))

    def test_other_legacy_video(self):
        """Codecs without a packet type: every key frame is a keyframe."""
        self.assertEqual(self.flags(VIDEO, b"\x12data"), (True, False))  # Sorenson
        self.assertEqual(self.flags(VIDEO, b"\x24data"), (False, False))

    def test_enhanced_rtmp_video(self):
        """Enhanced RTMP (HEVC/AV1 FourCC): SequenceStart, CodedFrames(X) on key frames."""
        self.assertEqual(self.flags(VIDEO, b"\x90hvc1" + b"c" * 8), (False, True))
        self.assertEqual(self.flags(VIDEO, b"\x95av01" + b"c" * 8), (False, True))
        self.assertEqual(self.flags(VIDEO, b"\x91hvc1\x00\x00\x00kkk"), (True, False))
        self.assertEqual(self.flags(VIDEO, b"\x93hvc1kkk"), (True, False))
        self.assertEqual(self.flags(VIDEO, b"\xa3hvc1ppp"), (False, False))
        self.assertEqual(self.flags(VIDEO, b"\x92hvc1"), (False, False))  # SequenceEnd

    def test_audio(self):
        """AAC packet type 0 and Enhanced RTMP audio SequenceStart are config."""
        self.assertEqual(self.flags(AUDIO, AAC_CONFIG.payload), (False, True))
        self.assertEqual(self.flags(AUDIO, aac_frame(0).payload), (False, False))
        self.assertEqual(self.flags(AUDIO, b"\xaf"), (False, False))
        self.assertEqual(self.flags(AUDIO, b"\x90Opus"), (False, True))
        self.assertEqual(self.flags(AUDIO, b"\x91Opus..."), (False, False))
        self.assertEqual(self.flags(AUDIO, b"\x2fmp3"), (False, False))

    def test_empty_payload(self):
        self.assertEqual(self.flags(VIDEO, b""), (False, False))
        self.assertEqual(self.flags(AUDIO, b""), (False, False))

    def test_metadata(self):
        """onMetaData keeps its decoded object, read-only, beside its AMF payload."""
        tag = metadata_tag(5, b"amf", {"width": 640.0})
        self.assertEqual((tag.kind, tag.timestamp, tag.payload), (SCRIPT, 5, b"amf"))
        self.assertEqual(dict(tag.metadata), {"width": 640.0})
        with self.assertRaises(TypeError):
            tag.metadata["width"] = 1.0
        self.assertIsNone(keyframe(0).metadata)


class ReplayTests(unittest.TestCase):
    """What a restarted ffmpeg reads first, kept from the tags' flags alone."""

    def feed(self, replay: Replay, *tags: MediaTag) -> None:
        for tag in tags:
            replay.remember(tag, tag.keyframe)

    def test_config_then_the_gop(self):
        """The latest metadata and sequence headers, then the tags since the last keyframe."""
        replay = Replay(max_gop=1 << 20)
        self.assertEqual(replay.tags(), [])
        # Media before the first keyframe is kept (until one comes).
        self.feed(replay, aac_frame(0), *STREAM_START)
        self.assertEqual(replay.tags(), [*STREAM_START, aac_frame(0)])
        self.feed(replay, keyframe(0), aac_frame(0))
        self.assertEqual(replay.tags(), [*STREAM_START, keyframe(0), aac_frame(0)])
        newer = media_tag(VIDEO, 5000, b"\x17\x00\x00\x00\x00\x01\x4d\x00\x1f")
        gop = (keyframe(2000), aac_frame(2000), interframe(2040))
        self.feed(replay, interframe(40), newer, *gop)
        self.assertEqual(replay.tags(), [METADATA, newer, AAC_CONFIG, *gop])

    def test_gop_is_bounded(self):
        """Past ``max_gop`` payload bytes, nothing is kept until the next keyframe."""
        replay = Replay(max_gop=80)
        self.feed(replay, AVC_CONFIG, keyframe(0), interframe(40), interframe(80))
        self.assertEqual(replay.tags(), [AVC_CONFIG])
        self.feed(replay, interframe(120))
        self.assertEqual(replay.tags(), [AVC_CONFIG])
        self.feed(replay, keyframe(160), interframe(200))
        self.assertEqual(replay.tags(), [AVC_CONFIG, keyframe(160), interframe(200)])

    def test_sync_is_the_callers_choice(self):
        """An audio-only stream starts anywhere: the caller says which tags are sync points."""
        replay = Replay(max_gop=1 << 20)
        replay.remember(aac_frame(0), False)
        replay.remember(aac_frame(23), True)
        replay.remember(aac_frame(46), False)
        self.assertEqual(replay.tags(), [aac_frame(23), aac_frame(46)])
