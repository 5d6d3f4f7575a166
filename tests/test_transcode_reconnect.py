"""The reconnect grace, the tracks a publisher really sends, and how a broadcast's
playlists end: the Transcoder on a fake process reactor and clock, the stream state and
the broadcast hub in memory, and the playlist upkeep on a real directory."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from twisted.internet.defer import Deferred, succeed
from twisted.trial import unittest

from owncast.core.broadcast import Broadcasts
from owncast.core.stream import ENDED, LIVE, RECONNECTING, StreamState
from owncast.media import AUDIO, SCRIPT, VIDEO, media_tag, metadata_tag, silence
from owncast.media.flv import parse_tags
from owncast.media.tracks import WAIT_MS, Found, Tracks, declared
from owncast.transcode.output import ended_playlist, finish_output
from owncast.transcode.process import Transcoder
from tests.fakes import START, FakeProcess, inline
from tests.fakes import TranscoderCase as FakeTranscoderCase
from tests.test_transcode import (
    AAC_CONFIG,
    AVC_CONFIG,
    STREAM_START,
    aac_frame,
    as_flv,
    flv_header,
    interframe,
    keyframe,
)

FFMPEG = "/opt/ffmpeg/bin/ffmpeg"

#: What ffmpeg and OBS send as onMetaData, for each kind of source.
AV_META = {"width": 1280.0, "height": 720.0, "videocodecid": 7.0, "audiocodecid": 10.0}
VIDEO_META = {"width": 1280.0, "height": 720.0, "videocodecid": 7.0, "encoder": "Lavf"}
AUDIO_META = {"audiocodecid": 10.0, "audiosamplerate": 44100.0, "stereo": True}


def meta(values: dict):
    return metadata_tag(0, b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09", values)


def playlist(sequence: int, numbers: list[int], *, join: int | None = None) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:1"]
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{sequence}")
    for n in numbers:
        if n == join:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += ["#EXTINF:1.000000,", "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000+0000"]
        lines.append(f"stream-{n}.ts")
    return "\n".join(lines) + "\n"


class TranscoderCase(FakeTranscoderCase):
    latency_level = 0

    def go_live(self, *tags) -> FakeProcess:
        count = len(self.processes)
        self.transcoder.begin()
        self.send(*(tags or (*STREAM_START, keyframe(0), aac_frame(0))))
        self.assertEqual(len(self.processes), count + 1)
        return self.processes[-1]

    def write_variant(self, text: str, *numbers: int) -> Path:
        """What a stopped ffmpeg leaves (``omit_endlist``: a playlist without an end)."""
        folder = self.output / "0"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stream.m3u8").write_text(text)
        for n in numbers:
            (folder / f"stream-{n}.ts").write_bytes(b"ts")
        (self.output / "stream.m3u8").write_text(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n0/stream.m3u8\n"
        )
        return folder / "stream.m3u8"


class ReconnectGraceTests(TranscoderCase):
    def test_publisher_back_within_the_grace_continues_unended(self):
        """While the publisher is away the playlists get no end marker and end() does not
        fire; a begin() within the grace takes the broadcast over: end() fires, and the
        next ffmpeg appends to the same playlists."""
        first = self.go_live()
        variant = self.write_variant(playlist(START, [START, START + 1]), START, START + 1)
        left = self.transcoder.end()
        first.exit(0)
        self.reactor.advance(29)
        self.assertFalse(left.called)
        self.assertTrue(self.transcoder.holding)
        self.assertNotIn("ENDLIST", variant.read_text())

        second = self.go_live()
        self.assertTrue(left.called)
        self.assertFalse(self.transcoder.holding)
        self.assertIn("append_list", second.args[second.args.index("-hls_flags") + 1])
        self.assertEqual(second.args[second.args.index("-start_number") + 1], str(START))
        self.reactor.advance(60)  # the first broadcast's grace is not counted any more
        self.assertNotIn("ENDLIST", variant.read_text())
        self.assertIn(f"stream-{START}.ts", variant.read_text())

    def test_back_without_audio_gets_silence_until_a_new_broadcast(self):
        """A broadcast that began with audio, continued by a publisher without it: ffmpeg
        is told of audio and fed silent AAC beside the video (players keep the tracks
        they began with); a new broadcast without audio after the grace gets none."""
        first = self.go_live()
        self.assertIn("0:a:0", first.args)
        self.transcoder.end()
        first.exit(0)
        self.reactor.advance(5)
        second = self.go_live(meta(VIDEO_META), AVC_CONFIG, keyframe(0), interframe(100))
        self.assertIn("0:a:0", second.args)
        self.assertEqual(second.stdin[:13], flv_header())
        audio = [(ts, body) for kind, ts, body in parse_tags(second.stdin) if kind == AUDIO]
        self.assertEqual(audio[0], (0, b"\xaf\x00" + silence.AUDIO_CONFIG))
        self.assertEqual({body for _, body in audio[1:]}, {b"\xaf\x01" + silence.SILENT_FRAME})
        self.assertEqual(audio[-1][0], int(4 * silence.FRAME_MS))  # up to 100 ms
        self.transcoder.end()
        second.exit(0)
        self.reactor.advance(31)  # the grace is over: the broadcast has ended
        third = self.go_live(meta(VIDEO_META), AVC_CONFIG, keyframe(0), interframe(100))
        self.assertNotIn("0:a:0", third.args)
        self.assertEqual(third.stdin[:13], flv_header(audio=False))
        self.assertNotIn(AUDIO, [kind for kind, _, _ in parse_tags(third.stdin)])

    def test_grace_over_ends_the_playlists_then_fires(self):
        """30 s after the publisher left, the playlists end (EXT-X-ENDLIST, only segments
        that exist) and end() fires; the next broadcast starts afresh."""
        process = self.go_live()
        variant = self.write_variant(
            playlist(START, [START, START + 1, START + 2]), START + 1, START + 2
        )
        left = self.transcoder.end()
        process.exit(0)
        self.reactor.advance(29.9)
        self.assertFalse(left.called)
        self.reactor.advance(0.1)
        self.assertTrue(left.called)
        text = variant.read_text()
        self.assertTrue(text.endswith("#EXT-X-ENDLIST\n"), text)
        self.assertNotIn(f"stream-{START}.ts", text)  # it was gone
        self.assertIn(f"#EXT-X-MEDIA-SEQUENCE:{START + 1}\n", text)

        self.go_live()
        self.assertFalse(variant.exists())
        self.assertEqual(os.listdir(self.output), [])

    def test_end_marker_waits_for_ffmpeg(self):
        """An ffmpeg that is slow to go still owns the playlists: they end after it."""
        process = self.go_live()
        variant = self.write_variant(playlist(START, [START]), START)
        left = self.transcoder.end()
        for step in (2, 5, 23):  # TERM at 2 s, KILL at 7 s, and it is still there at 30
            self.reactor.advance(step)
        self.assertEqual(process.signals, ["TERM", "KILL"])
        self.assertFalse(left.called)
        self.assertNotIn("ENDLIST", variant.read_text())
        process.exit(signal=9)
        self.assertTrue(left.called)
        self.assertIn("ENDLIST", variant.read_text())

    def test_stop_service_ends_a_held_broadcast_at_once(self):
        process = self.go_live()
        variant = self.write_variant(playlist(START, [START]), START)
        left = self.transcoder.end()
        process.exit(0)
        stopped = self.transcoder.stopService()
        self.assertTrue(stopped.called)
        self.assertTrue(left.called)
        self.assertIn("ENDLIST", variant.read_text())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_start_ends_what_a_killed_daemon_left(self):
        """A daemon killed mid-broadcast left playlists without an end, naming segments
        that may be gone: the next start ends them, so nothing offline points nowhere."""
        self.transcoder.stopService()
        variant = self.write_variant(playlist(START, [START, START + 1]), START + 1)
        (self.output / "0" / f"stream-{START + 2}.ts.tmp").write_bytes(b"partial")
        again = Transcoder(self.reactor, lambda: self.config, self.output, blocking=inline)
        again.startService()
        self.addCleanup(again.stopService)
        text = variant.read_text()
        self.assertTrue(text.endswith(f"stream-{START + 1}.ts\n#EXT-X-ENDLIST\n"), text)
        self.assertEqual(
            sorted(os.listdir(self.output / "0")), [f"stream-{START + 1}.ts", "stream.m3u8"]
        )

    def test_nothing_left_means_no_playlists(self):
        """Playlists whose segments are all gone are removed, the master with them."""
        self.transcoder.stopService()
        self.write_variant(playlist(START, [START]))
        again = Transcoder(self.reactor, lambda: self.config, self.output, blocking=inline)
        again.startService()
        self.addCleanup(again.stopService)
        self.assertEqual(os.listdir(self.output / "0"), [])
        self.assertFalse((self.output / "stream.m3u8").exists())


class TrackTests(TranscoderCase):
    def header_flags(self, process: FakeProcess) -> int:
        return process.stdin[4]

    def test_video_only_starts_at_its_first_tag(self):
        """onMetaData without audio: ffmpeg starts with the first video tag, its header
        announces video only and it maps no audio (it would wait ~16 s for audio, then
        fail)."""
        self.transcoder.begin()
        self.send(meta(VIDEO_META))
        self.assertEqual(self.processes, [])
        self.send(AVC_CONFIG)
        [process] = self.processes
        self.assertEqual(process.stdin[:13], flv_header(audio=False))
        self.assertNotIn("0:a:0", process.args)
        self.assertEqual(process.args[process.args.index("-var_stream_map") + 1], "v:0")

    def test_audio_only(self):
        """onMetaData without video: an audio-only rendition, audio frames are the places
        a restarted ffmpeg can start from, and no preview is made."""
        self.transcoder.begin()
        self.send(meta(AUDIO_META), AAC_CONFIG)
        [process] = self.processes
        self.assertEqual(process.stdin[:13], flv_header(video=False))
        self.assertNotIn("0:v:0", process.args)
        self.assertEqual(process.args[process.args.index("-var_stream_map") + 1], "a:0")
        self.assertFalse(self.transcoder.preview.live)
        self.send(aac_frame(0), aac_frame(23), aac_frame(46))
        process.exit(1)
        self.reactor.advance(0.5)
        restarted = self.processes[-1]
        self.assertEqual(
            restarted.stdin,
            flv_header(video=False) + as_flv(meta(AUDIO_META), AAC_CONFIG, aac_frame(46)),
        )

    def test_both_from_metadata(self):
        self.transcoder.begin()
        self.send(meta(AV_META), AVC_CONFIG)
        self.assertEqual(self.processes, [])
        self.send(AAC_CONFIG)
        [process] = self.processes
        self.assertEqual(process.stdin[:13], flv_header())
        self.assertTrue(self.transcoder.preview.live)

    def test_without_metadata_a_missing_track_is_given_up_after_a_second(self):
        self.transcoder.begin()
        self.send(AVC_CONFIG, keyframe(0), interframe(500))
        self.assertEqual(self.processes, [])
        self.send(interframe(WAIT_MS))
        [process] = self.processes
        self.assertEqual(process.stdin[:13], flv_header(audio=False))
        self.assertEqual(
            process.stdin, flv_header(audio=False) + as_flv(AVC_CONFIG, keyframe(0),
                                                            interframe(500), interframe(WAIT_MS))
        )  # fmt: skip

    def test_a_track_that_turns_up_later_restarts_ffmpeg_with_it(self):
        process = self.go_live(meta(VIDEO_META), AVC_CONFIG, keyframe(0))
        self.assertNotIn("0:a:0", process.args)
        self.send(AAC_CONFIG, aac_frame(10))
        self.assertTrue(process.stdin_closed)
        process.exit(0)
        restarted = self.processes[-1]
        self.assertIsNot(restarted, process)
        self.assertIn("0:a:0", restarted.args)
        self.assertEqual(restarted.stdin[:13], flv_header())


class TracksTests(unittest.TestCase):
    """Which tracks, from the tags alone."""

    def test_declared(self):
        self.assertEqual(declared(AV_META), Found(audio=True, video=True))
        self.assertEqual(declared(VIDEO_META), Found(audio=False, video=True))
        self.assertEqual(declared(AUDIO_META), Found(audio=True, video=False))
        self.assertIsNone(declared({}))
        self.assertIsNone(declared({"encoder": "obs", "videocodecid": ""}))

    def test_metadata_lists_what_to_wait_for(self):
        tracks = Tracks()
        self.assertIsNone(tracks.see(meta(AV_META)))
        self.assertIsNone(tracks.see(AVC_CONFIG))
        self.assertEqual(tracks.see(AAC_CONFIG), Found(audio=True, video=True))

    def test_a_track_seen_is_there_whatever_the_metadata_said(self):
        tracks = Tracks()
        tracks.see(meta(VIDEO_META))
        self.assertIsNone(tracks.see(AAC_CONFIG))
        self.assertEqual(tracks.see(AVC_CONFIG), Found(audio=True, video=True))

    def test_without_metadata_both_are_expected_for_a_while(self):
        tracks = Tracks()
        self.assertIsNone(tracks.see(media_tag(AUDIO, 100, b"\xaf\x01a")))
        self.assertIsNone(tracks.see(media_tag(AUDIO, 100 + WAIT_MS - 1, b"\xaf\x01a")))
        self.assertEqual(
            tracks.see(media_tag(AUDIO, 100 + WAIT_MS, b"\xaf\x01a")),
            Found(audio=True, video=False),
        )

    def test_video_config_alone_does_not_start_the_clock(self):
        tracks = Tracks()
        self.assertIsNone(tracks.see(media_tag(VIDEO, 5000, AVC_CONFIG.payload)))
        self.assertIsNone(tracks.see(keyframe(0)))


class EndedPlaylistTests(unittest.TestCase):
    def test_everything_there(self):
        text = playlist(7, [7, 8, 9], join=8)
        self.assertEqual(ended_playlist(text, {"stream-7.ts", "stream-8.ts", "stream-9.ts"}),
                         text + "#EXT-X-ENDLIST\n")  # fmt: skip

    def test_missing_at_the_head_moves_the_sequence(self):
        result = ended_playlist(playlist(7, [7, 8, 9]), {"stream-9.ts"})
        self.assertEqual(result, playlist(9, [9]) + "#EXT-X-ENDLIST\n")

    def test_missing_in_the_middle_hands_on_its_discontinuity(self):
        result = ended_playlist(playlist(7, [7, 8, 9], join=8), {"stream-7.ts", "stream-9.ts"})
        self.assertEqual(result, playlist(7, [7, 9], join=9) + "#EXT-X-ENDLIST\n")

    def test_already_ended_is_unchanged_and_none_left_is_none(self):
        text = playlist(7, [7]) + "#EXT-X-ENDLIST\n"
        self.assertEqual(ended_playlist(text, {"stream-7.ts"}), text)
        self.assertIsNone(ended_playlist(text, set()))

    def test_finish_output_on_nothing(self):
        finish_output(self.mktemp())  # no directory: nothing to do, no error


class StreamStateTests(unittest.TestCase):
    """The stream state machine through a reconnect, and the events it sends."""

    def setUp(self):
        self.now = 100.0
        self.stream = StreamState(lambda: self.now)
        self.events: list[str] = []
        self.stream.listeners.append(lambda event, _: self.events.append(event))

    def test_reconnect_keeps_it_online_without_events(self):
        stream = self.stream
        stream.start("10.0.0.1", {"width": 1}, lambda: None)
        stream.publisher_left()
        self.assertEqual(
            (stream.state, stream.online, stream.reconnecting), (RECONNECTING, True, True)
        )
        self.now = 105.0
        stream.start("10.0.0.2", {"width": 2}, lambda: None)
        self.assertEqual(stream.state, LIVE)
        self.assertEqual(stream.last_connect_time, 100.0)  # the same broadcast
        self.assertEqual(stream.broadcaster["remoteAddr"], "10.0.0.2")
        self.assertIsNone(stream.last_disconnect_time)
        self.assertEqual(self.events, ["STREAM_STARTED"])

    def test_stop_after_the_grace(self):
        stream = self.stream
        stream.start("10.0.0.1", {}, lambda: None)
        stream.publisher_left()
        self.now = 130.0
        stream.stop()
        self.assertEqual((stream.state, stream.online), (ENDED, False))
        self.assertEqual(stream.last_disconnect_time, 130.0)
        self.assertEqual(self.events, ["STREAM_STARTED", "STREAM_STOPPED"])

    def test_disconnect_while_reconnecting_ends_it(self):
        self.stream.start("10.0.0.1", {}, lambda: None)
        self.stream.publisher_left()
        self.assertTrue(self.stream.disconnect())
        self.assertFalse(self.stream.online)
        self.assertFalse(self.stream.disconnect())


class HoldingSink:
    """A sink that lets go of a broadcast only when the test says (as the transcoder does
    when its reconnect grace is over)."""

    def __init__(self):
        self.pending: list[Deferred] = []
        self.begun = 0

    def begin(self):
        self.begun += 1
        for d in self.pending:
            d.callback(None)  # taken over
        self.pending = []
        return succeed(None)

    def media(self, tag):
        pass

    def end(self):
        self.pending.append(Deferred())
        return self.pending[-1]


class BroadcastsTests(unittest.TestCase):
    def setUp(self):
        self.stream = StreamState(lambda: 100.0)
        self.events: list[str] = []
        self.stream.listeners.append(lambda event, _: self.events.append(event))
        self.sink = HoldingSink()
        self.hub = Broadcasts(self.stream, lambda: "key", self.sink)

    def test_online_until_the_sink_lets_go(self):
        broadcast = self.hub.begin("10.0.0.1", {}, lambda: None)
        broadcast.end()
        self.assertEqual(self.stream.state, RECONNECTING)
        self.assertIsNone(self.hub.current)
        self.sink.pending[0].callback(None)
        self.assertEqual(self.stream.state, ENDED)
        self.assertEqual(self.events, ["STREAM_STARTED", "STREAM_STOPPED"])

    def test_a_publisher_back_in_time_resumes_the_broadcast(self):
        self.hub.begin("10.0.0.1", {}, lambda: None).end()
        self.hub.begin("10.0.0.1", {}, lambda: None)
        self.assertEqual(self.stream.state, LIVE)
        self.assertEqual(self.events, ["STREAM_STARTED"])
        self.assertEqual(self.sink.begun, 2)

    def test_admin_disconnect_is_offline_at_once(self):
        dropped = []
        self.hub.begin("10.0.0.1", {}, lambda: dropped.append(True))
        self.assertTrue(self.stream.disconnect())
        self.assertEqual(dropped, [True])
        self.assertFalse(self.stream.online)
        self.sink.pending[0].callback(None)
        self.assertEqual(self.events, ["STREAM_STARTED", "STREAM_STOPPED"])


class SilenceTests(unittest.TestCase):
    """``Silence``: audio tags to go before each video tag, stamped from the video."""

    def audio(self, data: bytes) -> list[int]:
        return [ts for kind, ts, _ in parse_tags(flv_header() + data) if kind == AUDIO]

    def test_frames_cover_the_video_without_a_gap_or_a_repeat(self):
        s = silence.Silence()
        stamps = self.audio(s.before(1000))
        self.assertEqual(stamps, [1000, 1000])  # the sequence header, then the first frame
        video = range(1033, 3000, 33)
        for ts in video:
            stamps += self.audio(s.before(ts))
        frames = stamps[1:]
        self.assertEqual(frames, sorted(frames))
        self.assertEqual(len(frames), len(set(frames)))
        self.assertLessEqual(max(b - a for a, b in itertools.pairwise(frames)), 22)
        self.assertGreater(frames[-1], video[-1] - silence.FRAME_MS)  # audio up to the video
        self.assertLessEqual(frames[-1], video[-1])

    def test_a_jump_in_the_video_is_not_filled(self):
        s = silence.Silence()
        s.before(0)
        self.assertEqual(self.audio(s.before(60_000)), [60_000])
        self.assertEqual(self.audio(s.before(100)), [100])  # back in time too

    def test_weave_puts_each_video_tag_after_its_silence(self):
        tags = [meta(VIDEO_META), AVC_CONFIG, keyframe(0), interframe(50)]
        kinds = [kind for kind, _, _ in parse_tags(flv_header() + silence.Silence().weave(tags))]
        self.assertEqual(kinds[:4], [SCRIPT, AUDIO, AUDIO, VIDEO])  # header + frame at 0
        self.assertEqual(kinds.count(VIDEO), 3)
        self.assertEqual(kinds[-1], VIDEO)
