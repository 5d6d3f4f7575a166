"""The ffmpeg child of a live broadcast: spawn it, feed it, restart it, and always end it.

Life of a broadcast, as the ingest drives it (see ``ITranscoder``, an ``IMediaSink``)::

    begin()  -> the output directory is prepared off the reactor thread: emptied for a
                new broadcast, kept when the last one is still in its reconnect grace
                (see ``end()``), so the playlists continue (``append_list``). ffmpeg is
                spawned once the tracks the publisher really sends are known
                (``owncast.media.tracks``: from onMetaData and the first tags, so at
                once for every common encoder), and reads an FLV header announcing
                exactly those first.
    media()  -> each ``MediaTag`` is written to ffmpeg's stdin as an FLV tag: the only
                place the broadcast becomes FLV. A ``Replay`` remembers, from the tags'
                flags, the metadata and sequence headers and the tags since the last
                keyframe.
    ffmpeg exits while live -> respawned after 0.5 s, doubling up to 10 s, back to 0.5 s
                once a run lasted 30 s. The new ffmpeg first reads the FLV header, then
                the remembered metadata, sequence headers and current GOP, so it starts
                on a keyframe; the playlists get a discontinuity and keep their media
                sequence.
    end()    -> the publisher left. stdin is closed (ffmpeg flushes and writes its last
                segment), TERM after ``stop_grace`` seconds, KILL ``kill_timeout``
                seconds later. The playlists get no end marker: for ``keep_output_for``
                seconds (30) the broadcast may go on, and a player that waits at the
                live edge carries on with the next segment. Only when that grace is
                over are the playlists ended (``output.finish_output``:
                ``EXT-X-ENDLIST``, missing segments dropped); the Deferred fires then,
                or as soon as a new ``begin()`` took the broadcast over.
                ``stopService`` ends everything at once.

While live, ``PreviewMaker`` (``preview``) refreshes ``preview.gif`` every 15 s with a
separate short-lived ffmpeg (when there is video); ``end()`` ends that one too.

If ffmpeg reads slower than the broadcast arrives, stdin backs up: past ``max_backlog``
bytes written while the pipe is full, tags are dropped until the next keyframe, so memory
stays bounded and the output stays live.

Segment numbers of a fresh broadcast start at the current POSIX time, so a name like
``0/stream-1700000123.ts`` is never reused by a later broadcast and can be cached forever.
A previous run of the daemon may have left an unfinished broadcast behind (it was
killed): the service ends those playlists when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from owncast.interfaces import ITranscoder
from owncast.llhls import output as llhls
from owncast.llhls.output import LlOutput
from owncast.media import AUDIO, VIDEO, MediaTag, flv
from owncast.media.replay import Replay
from owncast.media.silence import Silence
from owncast.media.tracks import Found, Tracks
from owncast.transcode import ffenv
from owncast.transcode.argv import build_argv, build_ll_argv
from owncast.transcode.child import FfmpegProtocol
from owncast.transcode.output import finish_output, prepare_output
from owncast.transcode.preview import PreviewMaker

_log = Logger()

_MB = 1024 * 1024


@dataclass(frozen=True)
class TranscodeConfig:
    """What ffmpeg needs from the settings, read again at every spawn."""

    ffmpeg: str | None
    variants: list[dict]
    codec: str
    latency_level: int
    #: LL-HLS (``owncast.llhls``) instead of MPEG-TS HLS files
    low_latency: bool = False


def config_from_context(ctx: Any) -> Callable[[], TranscodeConfig]:
    """The current ``TranscodeConfig`` of an ``AppContext``."""

    def current() -> TranscodeConfig:
        settings = ctx.settings
        return TranscodeConfig(
            ffmpeg=ctx.ffmpeg_path(),
            variants=settings["videoQualityVariants"],
            codec=settings["videoCodec"],
            latency_level=settings["latencyLevel"],
            low_latency=bool(settings.get("lowLatency", False)),
        )

    return current


async def _all_ended(*ended: Deferred) -> None:
    for d in ended:
        await d


@implementer(ITranscoder)
class Transcoder(Service):
    """Runs ffmpeg for the live broadcast; a child of the daemon's ``MultiService``.

    ``reactor`` provides ``IReactorProcess`` and ``IReactorTime``; ``config`` returns the
    current ``TranscodeConfig``; ``blocking(fn, *args) -> Deferred`` runs file work off
    the reactor thread (default: the reactor's thread pool); ``env`` is ffmpeg's
    environment (``None``: this process's, which hardware encoders may need);
    ``keep_output_for`` is the reconnect grace in seconds; ``preview=False`` makes no
    ``preview.gif``; ``ll_output`` is the low-latency mode's ``LlOutput`` (the one
    ``/hls/`` serves).
    """

    name = "transcoder"

    def __init__(
        self,
        reactor: Any,
        config: Callable[[], TranscodeConfig],
        output_dir: str | os.PathLike,
        *,
        blocking: Callable[..., Deferred] | None = None,
        env: dict | None = None,
        stop_grace: float = 2.0,
        kill_timeout: float = 5.0,
        restart_initial: float = 0.5,
        restart_max: float = 10.0,
        stable_after: float = 30.0,
        keep_output_for: float = 30.0,
        max_backlog: int = 8 * _MB,
        max_gop: int = 32 * _MB,
        preview: bool = True,
        ll_output: LlOutput | None = None,
    ):
        self._reactor = reactor
        self._config = config
        self.output_dir = os.fspath(output_dir)
        #: ffmpeg runs restarted after a crash or a failed start (``/metrics``)
        self.restarts = 0
        self._blocking = blocking or self._in_thread
        self._env = env
        self._stop_grace = stop_grace
        self._kill_timeout = kill_timeout
        self._restart_initial = restart_initial
        self._restart_max = restart_max
        self._stable_after = stable_after
        self.keep_output_for = keep_output_for
        self._max_backlog = max_backlog
        self._max_gop = max_gop

        self._live = False
        #: bumped by start/stop/every launch, so a stale launch or restart does nothing
        self._generation = 0
        self._prepare_lock = DeferredLock()
        self._proc: FfmpegProtocol | None = None
        self._spawned_at = 0.0
        self._delay = restart_initial
        self._restart_call: Any = None
        self._start_number = 0
        self._append = False
        #: the low-latency mode the current broadcast's output began in
        self._low_latency: bool | None = None
        #: whether the current broadcast's output began with audio
        self._began_with_audio: bool | None = None
        #: the silent audio woven into the input while the broadcast goes on without
        self._silence: Silence | None = None
        #: the generation whose output is ready, waiting for the tracks to be known
        self._prepared: int | None = None
        self._accepting = False
        self._paused = False
        self._backlog = 0
        self._dropping = False
        self._no_audio = False
        #: Between end() and the next begin() or the grace's end: the output is kept.
        self._holding = False
        self._hold_call: Any = None
        #: ending the playlists of a broadcast whose grace is over
        self._finishing: Deferred | None = None
        #: end()'s Deferreds, fired once the broadcast is let go
        self._let_go: list[Deferred] = []
        self._reset_stream()
        #: the low-latency mode's renditions, which ``/hls/`` serves (the service hands
        #: the same ``LlOutput`` to both)
        self.llhls = ll_output or LlOutput(self.output_dir, self._blocking)
        self.preview = (
            PreviewMaker(reactor, config, self.output_dir, self._blocking, env=env)
            if preview
            else None
        )

    def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), fn, *args)

    def _now(self) -> float:
        return self._reactor.seconds()

    def _reset_stream(self) -> None:
        self._replay = Replay(self._max_gop)
        self._tracks = Tracks()

    @property
    def live(self) -> bool:
        return self._live

    @property
    def holding(self) -> bool:
        """True while the last broadcast's output waits for its publisher to return."""
        return self._holding

    @property
    def pid(self) -> int | None:
        """The running ffmpeg's process id, or None."""
        proc = self._proc
        return proc.pid if proc is not None and not proc.ended else None

    # -- the service ---------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        # A previous run may have been killed mid-broadcast: end what it left (under the
        # lock, so a broadcast starting meanwhile prepares the output after it).
        d = self._prepare_lock.run(self._blocking, finish_output, self.output_dir)
        d.addErrback(lambda f: _log.failure("Could not end the playlists left behind", f))

    def stopService(self) -> Deferred:
        super().stopService()
        let_go = self.end()
        self._finish()
        stopped = self.preview.stop() if self.preview is not None else succeed(None)
        return Deferred.fromCoroutine(_all_ended(let_go, self._terminate(), stopped))

    # -- what the ingest calls (IMediaSink) ----------------------------------------------
    def begin(self) -> Deferred:
        if not self.running:
            _log.warn("The transcoder was asked to start while its service is stopped")
            return succeed(None)
        if self._live:
            _log.warn("A new broadcast started while one was live; restarting ffmpeg")
        continuing = self._live or self._holding
        if self._holding:
            _log.info("The publisher is back: the playlists continue")
            self._stop_holding()
        self._live = True
        self._reset_stream()
        self._no_audio = False
        self._delay = self._restart_initial
        self._cancel_restart()
        return self._launch(clear=not continuing)

    def media(self, tag: MediaTag) -> None:
        if not self._live:
            return
        tracks = self._tracks.decided
        if tracks is None:
            tracks = self._tracks.see(tag)
            if tracks is not None:
                self._tracks_known(tracks)
        elif (tag.kind == AUDIO and not tracks.audio) or (tag.kind == VIDEO and not tracks.video):
            self._track_appeared(tag.kind)
            tracks = self._tracks.decided
        # Without a video track, any audio frame is a place a decoder can start.
        sync = tag.keyframe or (tag.kind == AUDIO and tracks is not None and not tracks.video)
        self._replay.remember(tag, sync)
        if not self._accepting:
            return
        if self._dropping:
            if not (sync and not self._paused):
                return
            self._dropping = False
            _log.info("ffmpeg caught up; feeding it again from a keyframe")
        data = flv.tag(tag.kind, tag.timestamp, tag.payload)
        if self._silence is not None and tag.kind == VIDEO:
            data = self._silence.before(tag.timestamp) + data
        self._feed(data)

    def end(self) -> Deferred:
        if self._live:
            self._live = False
            self._generation += 1
            self._cancel_restart()
            self._accepting = False
            self._prepared = None
            self._reset_stream()
            self._terminate()
            if self.preview is not None:
                self.preview.stop()
            self._holding = True
            self._hold_call = self._reactor.callLater(self.keep_output_for, self._grace_over)
        if not self._holding and self._finishing is None:
            return succeed(None)
        d: Deferred = Deferred()
        self._let_go.append(d)
        return d

    def reload(self) -> Deferred:
        if not self._live:
            return succeed(None)
        self._cancel_restart()
        return self._launch(clear=False)

    # -- the reconnect grace -------------------------------------------------------------
    def _grace_over(self) -> None:
        self._hold_call = None
        _log.info("No publisher came back within {grace} s", grace=self.keep_output_for)
        self._finish()

    def _finish(self) -> None:
        """End the held broadcast now: once ffmpeg and the preview are gone, its playlists
        get their end marker; then end()'s Deferreds fire."""
        if not self._holding:
            return
        self._stop_holding(release=False)
        d = self._finishing = Deferred.fromCoroutine(self._end_playlists(self._generation))
        d.addErrback(lambda f: _log.failure("Could not end the playlists", f))
        d.addBoth(self._finished)

    def _finished(self, _: object) -> None:
        self._finishing = None
        self._release()

    async def _end_playlists(self, generation: int) -> None:
        await self._terminate()
        if self.preview is not None:
            await self.preview.stop()
        await self._prepare_lock.acquire()
        try:
            # A broadcast that began meanwhile owns the directory now.
            if generation == self._generation and not self._live:
                await self.llhls.end()  # low latency: its last segments and ended playlists
                await self._blocking(finish_output, self.output_dir)
        finally:
            self._prepare_lock.release()

    def _stop_holding(self, release: bool = True) -> None:
        self._holding = False
        if self._hold_call is not None and self._hold_call.active():
            self._hold_call.cancel()
        self._hold_call = None
        if release:
            self._release()

    def _release(self) -> None:
        waiters, self._let_go = self._let_go, []
        for d in waiters:
            d.callback(None)

    # -- the tracks ----------------------------------------------------------------------
    def _tracks_known(self, tracks: Found) -> None:
        names = [name for name, on in (("video", tracks.video), ("audio", tracks.audio)) if on]
        _log.info("The broadcast has {tracks}", tracks=" and ".join(names))
        self._maybe_spawn()

    def _track_appeared(self, kind: int) -> None:
        """A track that was not there at first arrived: ffmpeg starts again with it."""
        decided = self._tracks.decided
        assert decided is not None
        self._tracks.decided = Found(
            audio=decided.audio or kind == AUDIO, video=decided.video or kind == VIDEO
        )
        _log.warn("A track the broadcast did not start with arrived; restarting ffmpeg")
        self.reload()

    # -- spawning ------------------------------------------------------------------------
    def _launch(self, clear: bool) -> Deferred:
        self._generation += 1
        self._prepared = None
        generation = self._generation

        def failed(failure: Any) -> None:
            _log.failure("Could not start ffmpeg", failure)
            if generation == self._generation and self._live:
                self._schedule_restart()

        d = Deferred.fromCoroutine(self._prepare_and_spawn(generation, clear))
        d.addErrback(failed)
        return d

    async def _prepare_and_spawn(self, generation: int, clear: bool) -> None:
        # The previous ffmpeg writes the same files: it must be gone first.
        await self._terminate()
        if generation != self._generation:
            return
        start_number = await self._prepare_lock.run(
            self._blocking, prepare_output, self.output_dir, clear, int(self._now())
        )
        if generation != self._generation or not self._live:
            return
        self._start_number = start_number
        self._append = not clear
        self._prepared = generation
        self._maybe_spawn()

    def _maybe_spawn(self) -> None:
        """Spawn ffmpeg once the output is ready and the tracks are known."""
        if (
            self._prepared != self._generation
            or self._tracks.decided is None
            or self._proc is not None
            or not self._live
        ):
            return
        self._prepared = None
        try:
            self._spawn(self._tracks.decided)
        except Exception:
            _log.failure("Could not start ffmpeg")
            self._schedule_restart()

    def _spawn(self, tracks: Found) -> None:
        config = self._config()
        # The mode is the broadcast's: a reconnect inside the grace, a restart after a
        # crash or a new track continue the playlists (and the recording) in the mode
        # they began in; a change of ``lowLatency`` applies from the next broadcast.
        if not self._append or self._low_latency is None:
            self._low_latency = config.low_latency
        elif config.low_latency != self._low_latency:
            _log.info(
                "Low latency was turned {state} during the broadcast: from the next one",
                state="on" if config.low_latency else "off",
            )
            config = replace(config, low_latency=self._low_latency)
        if not config.ffmpeg:
            raise RuntimeError("no ffmpeg binary is configured or bundled")
        audio = tracks.audio and not (self._no_audio and tracks.video)
        # Players keep the tracks they began with: a publisher back without audio (or a
        # restart without it) continues a broadcast that had audio with a silent track,
        # or hls.js would wait for audio that never comes.
        if not self._append or self._began_with_audio is None:
            self._began_with_audio = audio
        silence = bool(self._began_with_audio and not audio and tracks.video)
        self._silence = Silence() if silence else None
        if silence:
            _log.info("The broadcast goes on without audio: a silent track stands in")
            audio = True
        if config.low_latency:
            self._spawn_low_latency(config, audio, tracks)
            return
        self.llhls.clear()
        argv = build_argv(
            config.ffmpeg,
            config.variants,
            config.codec,
            config.latency_level,
            self.output_dir,
            self._start_number,
            audio=audio,
            video=tracks.video,
            append=self._append,
        )
        proto = FfmpegProtocol(self, audio, tracks.video)
        self._start(proto, argv, ffenv.CHILD_FDS, tracks)
        _log.info(
            "ffmpeg started (pid {pid}): {variants} variant(s), {codec}, latency level {latency}",
            pid=proto.pid,
            variants=len(config.variants),
            codec=config.codec,
            latency=config.latency_level,
        )

    def _spawn_low_latency(self, config: TranscodeConfig, audio: bool, tracks: Found) -> None:
        """ffmpeg writing fMP4 per variant over pipes into ``self.llhls`` (LL-HLS)."""
        assert config.ffmpeg
        argv = build_ll_argv(
            config.ffmpeg,
            config.variants,
            config.codec,
            self.output_dir,
            segment_seconds=llhls.SEGMENT_SECONDS,
            fragment_us=llhls.FRAGMENT_US,
            audio=audio,
            video=tracks.video,
        )
        proto = llhls.LlFfmpegProtocol(self, audio, tracks.video, self.llhls)
        self.llhls.begin([dict(v) for v in config.variants], not self._append, self._start_number)
        self._start(proto, argv, llhls.child_fds(len(config.variants)), tracks)
        _log.info(
            "ffmpeg started (pid {pid}): {variants} variant(s), {codec}, low latency (LL-HLS)",
            pid=proto.pid,
            variants=len(config.variants),
            codec=config.codec,
        )

    def _start(
        self, proto: FfmpegProtocol, argv: list[str], child_fds: dict[int, str], tracks: Found
    ) -> None:
        """Spawn one ffmpeg run (and the preview maker beside a video one)."""
        self._proc = proto
        self._spawned_at = self._now()
        try:
            ffenv.spawn(self._reactor, proto, argv, self._env, child_fds)
        except Exception:
            self._proc = None
            raise
        if self.preview is not None and tracks.video and not self.preview.live:
            self.preview.start()

    def _process_started(self, proto: FfmpegProtocol) -> None:
        if proto is not self._proc:
            return
        proto.transport.registerProducer(proto, True)
        self._paused, self._backlog, self._dropping = False, 0, False
        self._accepting = True
        header = flv.header(audio=proto.audio, video=proto.video)
        tags = self._replay.tags()
        silence = self._silence
        self._feed(header + (flv.encode(tags) if silence is None else silence.weave(tags)))

    # -- feeding -------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        proc = self._proc
        if proc is None or not data:
            return
        proc.transport.write(data)
        if self._paused:
            self._backlog += len(data)
            if self._backlog > self._max_backlog and not self._dropping:
                self._dropping = True
                _log.warn("ffmpeg is not keeping up; dropping input until the next keyframe")

    def _stdin_paused(self, proto: FfmpegProtocol, paused: bool) -> None:
        if proto is self._proc:
            self._paused = paused
            if not paused:
                self._backlog = 0

    def _audio_missing(self, proto: FfmpegProtocol) -> None:
        if not self._no_audio:
            _log.warn("The broadcast announced audio but has none; continuing without audio")
            self._no_audio = True
            if not self._append:  # its output never had audio: no silence to keep it
                self._began_with_audio = False

    # -- ending and restarting -----------------------------------------------------------
    def _process_ended(self, proto: FfmpegProtocol, reason: Any) -> None:
        if proto is not self._proc:
            return
        self._proc = None
        self._accepting = False
        status = getattr(reason.value, "exitCode", None)
        signal = getattr(reason.value, "signal", None)
        if proto.expected or not self._live:
            _log.info(
                "ffmpeg (pid {pid}) ended: exit code {code}, signal {signal}",
                pid=proto.pid,
                code=status,
                signal=signal,
            )
            return
        uptime = self._now() - self._spawned_at
        if uptime >= self._stable_after:
            self._delay = self._restart_initial
        _log.warn(
            "ffmpeg (pid {pid}) exited (code {code}, signal {signal}) after {uptime:.1f} s;"
            " restarting in {delay} s. Last output: {tail}",
            pid=proto.pid,
            code=status,
            signal=signal,
            uptime=uptime,
            delay=self._delay,
            tail=" | ".join(proto.tail) or "(none)",
        )
        self._schedule_restart()

    def _schedule_restart(self) -> None:
        self._cancel_restart()
        self.restarts += 1
        delay = self._delay
        self._delay = min(delay * 2, self._restart_max)
        self._restart_call = self._reactor.callLater(delay, self._restart, self._generation)

    def _restart(self, generation: int) -> None:
        self._restart_call = None
        if generation == self._generation and self._live:
            self._launch(clear=False)

    def _cancel_restart(self) -> None:
        if self._restart_call is not None and self._restart_call.active():
            self._restart_call.cancel()
        self._restart_call = None

    def _terminate(self) -> Deferred:
        """End the running ffmpeg (see ``FfmpegProtocol.stop``); fire once it has ended."""
        proto = self._proc
        if proto is None:
            return succeed(None)
        self._accepting = False
        return proto.stop(self._reactor, self._stop_grace, self._kill_timeout)
