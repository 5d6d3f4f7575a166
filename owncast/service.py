"""The service tree of ``twistd owncast``, built whole from constructors before it starts.

``build`` makes every object and attaches every child; nothing opens a file, a socket, a
database or a process until the tree starts, and nothing is attached or patched later.
The children start one after the other, each once the one before is up
(``OrderedMultiService``), and stop in reverse:

==================  ===================================================================
``self-test``       the private Twisted/Autobahn internals we rely on are still there
``datadir``         the data directory and the log file, before anything logs to them
``store``           settings, tokens, webhooks, chat and stats: everything reads it
``chat-bus``        carries chat to every node's sockets (in-process, or Redis)
``settings``        stored settings, tokens and webhooks read into memory; a stream key
                    generated on first start. Everything below may read settings.
``transcoder``      ffmpeg; starts before the ingest, so on shutdown the ingest stops first
``recorder``        keeps broadcasts as recordings (ends those a killed run left open)
``chat``            the chat sockets' keepalive sweeps
``web``             HTTP: pages, API, chat websocket, HLS (``--listen`` or the port setting)
``rtmp``            RTMP ingest (``--rtmplisten`` or the port setting)
``segment-publisher``  copies finished segments to S3-compatible storage when enabled
``directory``       pings the Owncast directory while listing is on
``hardware-stats``, ``viewer-stats``  samples for the admin charts
``shared-state``    with a shared store only: reloads what other nodes changed
``ready``           logs that the daemon is up, settles the heap, tells systemd
                    (``READY=1``) and ``/readyz``, and pings systemd's watchdog; the
                    first to hear of a stop
==================  ===================================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import FileLogObserver, Logger, formatEventAsClassicLogText, globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.logfile import DailyLogFile

from owncast.api.context import AppContext
from owncast.chat.bus import LocalChatBus
from owncast.chat.protocol import ChatFactory
from owncast.chat.server import ChatServer
from owncast.core import events
from owncast.core.broadcast import Broadcasts
from owncast.core.chat import ChatHub
from owncast.core.events import EventBus
from owncast.core.samples import StatsHistory
from owncast.core.settings import Settings, generate_stream_key
from owncast.core.stream import StreamState
from owncast.core.throttle import AuthThrottle, TrustedProxies
from owncast.core.tokens import TokenRegistry
from owncast.core.viewers import Viewers
from owncast.core.webhooks import WebhookDispatcher, WebhookRegistry
from owncast.http.client import JsonClient
from owncast.http.health import Liveness, Readiness, ReadinessResource
from owncast.http.hls import PlaylistCache
from owncast.http.site import WEB_ROOT, build_site, hls_resource
from owncast.interfaces import IChatBus, IStore
from owncast.listing.directory import DEFAULT_DIRECTORY, DirectoryPinger
from owncast.llhls.output import LlOutput
from owncast.recordings.library import Library
from owncast.recordings.recorder import Recorder
from owncast.rtmp.session import RtmpFactory
from owncast.runtime import compat
from owncast.runtime.heap import FullCollections, settle_heap
from owncast.runtime.sdnotify import Notifier, Watchdog
from owncast.runtime.services import ListenerService, OrderedMultiService, StartStopService
from owncast.segments.publisher import SegmentPublisher
from owncast.segments.s3 import S3SegmentStorage
from owncast.stats.logbuffer import LogBuffer
from owncast.stats.metrics import ChatCounts, DaemonMetrics, Sources
from owncast.stats.samplers import HardwareSampler, ViewerSampler
from owncast.store.sqlite import SqliteStore
from owncast.store.sync import SharedStateRefresher
from owncast.transcode.probe import FfmpegProbe, bundled_ffmpeg
from owncast.transcode.process import Transcoder, config_from_context

_log = Logger()

#: Sub-directories of the data dir, made when the daemon starts.
DATADIR_LAYOUT = ("", "logs", "emoji", "logo", "hls")


@dataclass
class Config:
    """What ``twistd owncast`` was told (``owncast.tap.Options``, after the config file)."""

    datadir: Path
    #: settings that win over stored ones for this run (``--webserverport``, ``--streamkey``)
    overrides: dict
    #: endpoint descriptions; None: ``tcp:<port setting>``
    listen: str | None = None
    rtmp_listen: str | None = None
    ffmpeg: str | None = None
    directory_url: str = DEFAULT_DIRECTORY
    webroot: Path = WEB_ROOT
    #: ``--trustedproxy``: reverse proxies whose forwarding headers name the client
    trusted_proxies: tuple[str, ...] = ()
    #: ``--allowprivate``: webhooks and S3 may reach loopback and private addresses
    allow_private: bool = False


class OwncastService(OrderedMultiService):
    """The root of the tree; ``ready`` fires once every child has started."""

    def __init__(self, reactor: Any, ctx: AppContext, chat: ChatServer, store: IStore):
        super().__init__()
        self.reactor = reactor
        self.ctx = ctx
        self.chat = chat
        self.store = store
        self.ready: Deferred | None = None

    def startService(self) -> Deferred:
        self.ready = super().startService()
        self.ready.addErrback(self._failed)
        return self.ready

    def _failed(self, failure: Failure) -> None:
        _log.failure("owncast could not start", failure)
        if self.reactor.running:
            self.reactor.stop()

    def stopService(self) -> Deferred:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self.ready is not None and not self.ready.called:
            await self.ready
        await super().stopService()


class DataDir:
    """The data directory, the daily log file in it, and the in-memory log ring."""

    def __init__(
        self, datadir: Path, blocking: Callable[..., Deferred], logs: LogBuffer, publisher: Any
    ):
        self._datadir = datadir
        self._blocking = blocking
        self._logs = logs
        self._publisher = publisher
        self._file_observer: FileLogObserver | None = None

    async def open(self) -> None:
        self._publisher.addObserver(self._logs)
        await self._blocking(self._prepare)
        logfile = await self._blocking(DailyLogFile, "owncast.log", str(self._datadir / "logs"))
        self._file_observer = FileLogObserver(logfile, formatEventAsClassicLogText)
        self._publisher.addObserver(self._file_observer)

    def _prepare(self) -> None:
        for sub in DATADIR_LAYOUT:
            (self._datadir / sub).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self._publisher.removeObserver(self._logs)
        if self._file_observer is not None:
            self._publisher.removeObserver(self._file_observer)
            self._file_observer = None


class StoredState:
    """Reads what the store keeps into the domain objects, and saves the peaks at exit.

    The one child that later children wait for: once it has started, settings, tokens,
    webhooks and the last broadcast's times are in memory.
    """

    def __init__(self, ctx: AppContext):
        self._ctx = ctx

    async def load(self) -> None:
        ctx = self._ctx
        stored = await ctx.store.get_settings()
        ctx.settings.reload(stored)
        if not stored:  # a new data dir: broadcasts are recorded (owncast.recordings)
            await ctx.save({"recordings": {**ctx.settings["recordings"], "enabled": True}})
        if not ctx.settings["streamKey"]:
            key = generate_stream_key()
            await ctx.save({"streamKey": key})
            _log.info(
                "Generated a stream key (also the admin password for user 'admin'): {key}",
                key=key,
            )
        ctx.stream.restore(ctx.settings)
        ctx.viewers.overall_max = ctx.settings["overallMaxViewerCount"]
        ctx.tokens.load(await ctx.store.list_tokens())
        await ctx.webhooks.reload()

    async def save(self) -> None:
        await self._ctx.save({"overallMaxViewerCount": self._ctx.viewers.overall_max})


class StreamLifecycle:
    """What follows a broadcast starting or stopping: viewer counts, saved times, events."""

    def __init__(self, ctx: AppContext, chat: ChatServer):
        self._ctx = ctx
        self._chat = chat

    def __call__(self, event: str, stream: StreamState) -> None:
        ctx = self._ctx
        if event == events.STREAM_STARTED:
            ctx.viewers.stream_started()
            self._chat.count_viewers()  # people already in chat are watching now
        else:
            ctx.viewers.stream_stopped()
        d = Deferred.fromCoroutine(
            ctx.save(
                {
                    "lastConnectTime": stream.last_connect_time,
                    "lastDisconnectTime": stream.last_disconnect_time,
                    "overallMaxViewerCount": ctx.viewers.overall_max,
                }
            )
        )
        d.addErrback(lambda f: _log.failure("could not save stream times", f))
        ctx.events.emit(event, events.stream_event(ctx.settings, ctx.now()))


class Announcer:
    """The last child: once it starts, everything serves. It says so in the log, to
    systemd (``Type=notify``, then the watchdog's pings) and at ``/readyz``; stopping, it
    is the first to say that the daemon is going (``STOPPING=1``, ``/readyz`` 503)
    while the rest still work. Once up, what lives as long as the process leaves the
    collector's reach and full collections keep to ``collections``' schedule."""

    def __init__(
        self,
        datadir: Path,
        readiness: Readiness,
        notifier: Notifier,
        clock: Any,
        collections: FullCollections,
    ):
        self._datadir = datadir
        self._readiness = readiness
        self._notifier = notifier
        self._watchdog = Watchdog(notifier, clock)
        self._collections = collections

    def up(self) -> None:
        _log.info("owncast ready; data in {datadir}", datadir=str(self._datadir.resolve()))
        settle_heap()
        self._collections.start()
        self._readiness.serving = True
        self._notifier.ready("Serving")
        self._watchdog.start()

    def down(self) -> None:
        self._readiness.serving = False
        self._watchdog.stop()
        self._notifier.stopping()
        self._collections.stop()


def build(
    reactor: Any,
    config: Config,
    store: IStore | None = None,
    chat_bus: IChatBus | None = None,
    log_publisher: Any = globalLogPublisher,
    shared: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> OwncastService:
    """The whole tree. ``store`` and ``chat_bus`` default to SQLite in the data dir and
    the in-process bus; ``shared`` says other nodes use the same store (``--redis``);
    ``environ`` may name systemd's notification socket and watchdog."""
    datadir = config.datadir
    store = store if store is not None else SqliteStore(str(datadir / "owncast.db"), reactor)
    chat_bus = chat_bus if chat_bus is not None else LocalChatBus()

    def blocking(fn: Callable[..., Any], *args: Any) -> Deferred:
        return deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)

    settings = Settings({}, config.overrides)
    bus = EventBus()
    viewers = Viewers(reactor.seconds)
    webhooks = WebhookRegistry(store)
    ctx = AppContext(
        reactor=reactor,
        store=store,
        settings=settings,
        tokens=TokenRegistry(store),
        webhooks=webhooks,
        stream=StreamState(reactor.seconds),
        viewers=viewers,
        chat=ChatHub(store, reactor.seconds, events=bus, bus=chat_bus, settings=settings),
        events=bus,
        logs=LogBuffer(),
        history=StatsHistory(store, reactor.seconds),
        probe=FfmpegProbe(reactor),
        throttle=AuthThrottle(reactor.seconds, proxies=TrustedProxies(config.trusted_proxies)),
        datadir=datadir,
        webroot=config.webroot,
        blocking=blocking,
        ffmpeg_option=config.ffmpeg,
        ffmpeg_default=bundled_ffmpeg,
    )
    # Webhook URLs come from admins: private targets only with --allowprivate. The
    # directory URL is the operator's own --directoryurl.
    hooks_client = JsonClient(reactor, allow_private=config.allow_private)
    client = JsonClient(reactor, allow_private=True)
    dispatcher = WebhookDispatcher(webhooks, reactor, hooks_client.status_poster())
    bus.subscribe(dispatcher)

    hls_dir = datadir / "hls"
    # The low-latency mode's output: the transcoder feeds it, /hls/ serves it, and its
    # complete segments land in hls_dir for the recorder and segment storage.
    ll_output = LlOutput(hls_dir, blocking)
    transcoder = Transcoder(
        reactor, config_from_context(ctx), hls_dir, blocking=blocking, ll_output=ll_output
    )
    chat = ChatServer(
        ctx.chat, viewers, reactor, lambda: settings["serverUrl"], ctx.throttle.proxies
    )
    ctx.stream.listeners.append(StreamLifecycle(ctx, chat))
    recorder = Recorder(
        datadir / "recordings",
        hls_dir,
        lambda: settings["recordings"],
        lambda: settings["videoQualityVariants"],
        lambda: settings["streamTitle"],
        lambda: viewers.session_max,
        blocking,
        reactor,
    )
    ctx.stream.listeners.append(recorder.on_stream)
    ctx.recordings = Library(datadir / "recordings", blocking, reactor, ctx.ffmpeg_path, recorder)

    playlists = PlaylistCache(hls_dir)

    def s3_storage(s3: dict) -> S3SegmentStorage:
        return S3SegmentStorage(s3, reactor, allow_private=config.allow_private)

    def playlist_changed(name: bytes | None) -> None:
        playlists.forget(name)
        variant = (name or b"").partition(b"/")[0]
        ll_output.changed(int(variant) if variant.isdigit() else None)

    publisher = SegmentPublisher(
        hls_dir,
        lambda: settings["s3"],
        s3_storage,
        blocking,
        reactor,
        playlist_changed,
        keeps=recorder.keeps,
    )
    # S3: the LL-HLS playlists name stored segments by their copy's URL (parts stay here).
    ll_output.locate = publisher.url_of
    # S3: recordings' segments stay in the bucket, and go with the recording.
    recorder.removed = publisher.remove
    ctx.recordings.segment_url = publisher.url_of
    # A wrong stream key counts in the same throttle as a wrong admin password.
    broadcasts = Broadcasts(ctx.stream, lambda: settings["streamKey"], transcoder, ctx.throttle)

    def web_endpoint() -> str:
        return config.listen or f"tcp:{settings['webServerPort']}:backlog=1024"

    def rtmp_endpoint() -> str:
        return config.rtmp_listen or f"tcp:{settings['rtmpServerPort']}"

    # Probes and metrics read what the listeners and the objects above already keep.
    chat_counts = ChatCounts()
    ctx.chat.listeners.append(chat_counts)
    metrics = Sources(
        clock=reactor,
        stream=ctx.stream,
        viewers=viewers,
        hls_dir=str(hls_dir),
        chat_sockets=lambda: len(chat.peers),
        chat_counts=chat_counts,
        transcoder=transcoder,
        webhooks=dispatcher,
        throttle=ctx.throttle,
        publisher=publisher,
        site=lambda: site,
    )
    readiness = Readiness(reactor, store.get_settings, lambda: (web, rtmp))
    collections = FullCollections(reactor)
    site = build_site(
        ctx,
        config.webroot,
        WebSocketResource(ChatFactory(chat)),
        hls_resource(ctx, publisher.rewrite, playlists),
        probes={b"healthz": Liveness(), b"readyz": ReadinessResource(readiness)},
        metrics=DaemonMetrics(metrics).resource(),
        s3_storage=s3_storage,
        ll_output=ll_output,
        quiet=collections.quiet,
    )
    web = ListenerService("web", reactor, web_endpoint, site, "Web server")
    rtmp = ListenerService("rtmp", reactor, rtmp_endpoint, RtmpFactory(broadcasts, reactor), "RTMP")
    announcer = Announcer(datadir, readiness, Notifier(environ), reactor, collections)

    files = DataDir(datadir, blocking, ctx.logs, log_publisher)
    state = StoredState(ctx)
    root = OwncastService(reactor, ctx, chat, store)
    children = [
        StartStopService("self-test", compat.self_test),
        StartStopService("datadir", files.open, files.close),
        StartStopService("store", store.start, store.stop),
        StartStopService("chat-bus", chat_bus.start, chat_bus.stop),
        StartStopService("settings", state.load, state.save),
        transcoder,
        recorder,
        chat,
        web,
        rtmp,
        publisher,
        DirectoryPinger(
            settings,
            ctx.save,
            lambda: ctx.stream.online,
            client.timed_poster(),
            reactor,
            config.directory_url,
        ),
        HardwareSampler(store, reactor, blocking, str(datadir)),
        ViewerSampler(store, reactor, viewers),
    ]
    if shared:
        children.append(SharedStateRefresher(ctx))
    children.append(StartStopService("ready", announcer.up, announcer.down))
    for child in children:
        child.setServiceParent(root)
    return root
