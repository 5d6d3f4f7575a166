"""The daemon's top service: opens storage, loads settings, then starts its children in order.

Order matters and is explicit in ``_start``: storage first (everything reads it), then
settings and tokens, then the web listener, then the periodic samplers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThreadPool
from twisted.logger import FileLogObserver, Logger, formatEventAsClassicLogText, globalLogPublisher
from twisted.python.logfile import DailyLogFile

from owncast.api.context import AppContext
from owncast.chat.bus import LocalChatBus
from owncast.chat.protocol import ChatFactory
from owncast.chat.server import ChatServer
from owncast.core import events
from owncast.core.broadcast import Broadcasts
from owncast.core.chat import ChatHub
from owncast.core.events import EventBus
from owncast.core.settings import Settings, generate_stream_key
from owncast.core.stream import StreamState
from owncast.core.throttle import AuthThrottle
from owncast.core.tokens import TokenRegistry
from owncast.core.viewers import Viewers
from owncast.core.webhooks import WebhookDispatcher, treq_poster
from owncast.http.site import WEB_ROOT, build_site
from owncast.rtmp.session import RtmpFactory
from owncast.runtime.heap import settle_heap
from owncast.segments.publisher import SegmentPublisher
from owncast.segments.s3 import S3SegmentStorage
from owncast.stats.logbuffer import LogBuffer
from owncast.stats.samplers import HardwareSampler, ViewerSampler
from owncast.store.sqlite import SqliteStore
from owncast.store.sync import SharedStateRefresher
from owncast.transcode.probe import FfmpegProbe, bundled_ffmpeg
from owncast.transcode.process import Transcoder, config_from_context
from owncast.yp import DEFAULT_DIRECTORY, DirectoryPinger, treq_json_poster

_log = Logger()


class OwncastService(MultiService):
    def __init__(
        self,
        reactor: Any,
        datadir: Path,
        overrides: dict | None = None,
        ffmpeg_option: str | None = None,
        webroot: Path = WEB_ROOT,
        log_publisher: Any = globalLogPublisher,
        store: Any = None,
        chat_bus: Any = None,
        directory_url: str | None = None,
    ):
        super().__init__()
        self.reactor = reactor
        self.datadir = datadir
        self.overrides = dict(overrides or {})
        self.ffmpeg_option = ffmpeg_option
        self.webroot = webroot
        self.log_publisher = log_publisher
        self.logs = LogBuffer()
        self.store = store or SqliteStore(str(datadir / "owncast.db"), reactor=reactor)
        self.chat_bus = chat_bus or LocalChatBus()
        self.directory_url = directory_url or DEFAULT_DIRECTORY
        self.ctx: AppContext | None = None
        self.chat: ChatServer | None = None
        self.ready: Deferred | None = None
        self._file_observer: FileLogObserver | None = None

    def _blocking(self, fn, *args):
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fn, *args)

    def startService(self) -> None:
        super().startService()
        self.log_publisher.addObserver(self.logs)
        self.ready = Deferred.fromCoroutine(self._start())
        self.ready.addErrback(self._failed)

    def _failed(self, failure: Any) -> None:
        _log.failure("owncast could not start", failure)
        if self.reactor.running:
            self.reactor.stop()

    async def _start(self) -> None:
        reactor = self.reactor
        await self._blocking(self._prepare_datadir)
        logfile = await self._blocking(DailyLogFile, "owncast.log", str(self.datadir / "logs"))
        self._file_observer = FileLogObserver(logfile, formatEventAsClassicLogText)
        self.log_publisher.addObserver(self._file_observer)

        await self.store.start()
        await self.chat_bus.start()
        settings = Settings(await self.store.get_settings(), self.overrides)
        if not settings["streamKey"]:
            key = generate_stream_key()
            await self.store.set_settings({"streamKey": key})
            settings.update({"streamKey": key})
            _log.info(
                "Generated a stream key (also the admin password for user 'admin'): {key}",
                key=key,
            )
        tokens = TokenRegistry(self.store)
        tokens.load(await self.store.list_tokens())

        stream = StreamState(reactor.seconds, settings)
        viewers = Viewers(reactor.seconds, overall_max=settings["overallMaxViewerCount"])
        bus = EventBus()
        hub = ChatHub(
            self.store, reactor.seconds, lambda: settings["name"], events=bus, bus=self.chat_bus
        )
        webhooks = WebhookDispatcher(self.store, reactor, treq_poster(reactor))
        await webhooks.reload()
        bus.subscribe(webhooks)
        ctx = self.ctx = AppContext(
            reactor=reactor,
            store=self.store,
            settings=settings,
            tokens=tokens,
            stream=stream,
            viewers=viewers,
            chat=hub,
            events=bus,
            logs=self.logs,
            probe=FfmpegProbe(reactor),
            throttle=AuthThrottle(reactor.seconds),
            datadir=self.datadir,
            webroot=self.webroot,
            ffmpeg_option=self.ffmpeg_option,
            ffmpeg_default=bundled_ffmpeg,
            blocking=self._blocking,
            webhooks=webhooks,
        )
        stream.listeners.append(self._stream_changed)

        # The transcoder starts before the ingest, so on shutdown the ingest stops first.
        transcoder = Transcoder(
            reactor, config_from_context(ctx), self.datadir / "hls", blocking=self._blocking
        )
        transcoder.setServiceParent(self)
        ctx.transcoder = transcoder

        chat = self.chat = ChatServer(hub, viewers, reactor, lambda: settings["serverUrl"])
        chat.setServiceParent(self)
        port = settings["webServerPort"]
        websocket = WebSocketResource(ChatFactory(chat))
        site = build_site(ctx, self.webroot, websocket)
        web = StreamServerEndpointService(
            serverFromString(reactor, f"tcp:{port}:backlog=1024"), site
        )
        web.setName("web")
        web._raiseSynchronously = True
        web.setServiceParent(self)
        _log.info("Web server running on port: {port}", port=port)

        rtmp_port = settings["rtmpServerPort"]
        self.broadcasts = Broadcasts(stream, lambda: settings["streamKey"], transcoder)
        rtmp = StreamServerEndpointService(
            serverFromString(reactor, f"tcp:{rtmp_port}"), RtmpFactory(self.broadcasts, reactor)
        )
        rtmp.setName("rtmp")
        rtmp._raiseSynchronously = True
        rtmp.setServiceParent(self)
        _log.info("RTMP server is listening for incoming stream on port: {port}", port=rtmp_port)

        publisher = SegmentPublisher(
            self.datadir / "hls",
            lambda: settings["s3"],
            lambda config: S3SegmentStorage(config, reactor),
            self._blocking,
            reactor,
            site.hls.forget,
        )
        site.hls.rewrite = publisher.rewrite
        publisher.setServiceParent(self)

        DirectoryPinger(
            settings,
            ctx.save,
            lambda: stream.online,
            treq_json_poster(reactor),
            reactor,
            self.directory_url,
        ).setServiceParent(self)

        for sampler in (
            HardwareSampler(self.store, reactor, self._blocking, str(self.datadir)),
            ViewerSampler(self.store, reactor, viewers),
        ):
            sampler.setServiceParent(self)
        if not isinstance(self.store, SqliteStore):
            SharedStateRefresher(ctx).setServiceParent(self)
        _log.info("owncast ready; data in {datadir}", datadir=str(self.datadir.resolve()))
        settle_heap()

    def _prepare_datadir(self) -> None:
        for sub in ("", "logs", "emoji", "logo", "hls"):
            (self.datadir / sub).mkdir(parents=True, exist_ok=True)

    def _stream_changed(self, event: str, stream: StreamState) -> None:
        ctx = self.ctx
        if event == events.STREAM_STARTED:
            ctx.viewers.stream_started()
            self.chat.count_viewers()  # people already in chat are watching now
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
        ctx.events.emit(event, events.stream_event(ctx.settings, self.reactor.seconds()))

    async def _stop(self) -> None:
        if self.ready is not None and not self.ready.called:
            await self.ready
        await super().stopService()
        if self.ctx is not None:
            await self.ctx.save({"overallMaxViewerCount": self.ctx.viewers.overall_max})
        await self.chat_bus.stop()
        await self.store.stop()
        self.log_publisher.removeObserver(self.logs)
        if self._file_observer is not None:
            self.log_publisher.removeObserver(self._file_observer)

    def stopService(self) -> Deferred:
        return Deferred.fromCoroutine(self._stop())
