"""The resource tree: ``/api`` (Klein apps), ``/img/emoji``, ``/logo``, ``/admin``, web assets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.web.resource import IResource, Resource
from twisted.web.server import Site
from twisted.web.static import File

from owncast.api.admin import AdminApi
from owncast.api.context import AppContext
from owncast.api.http import check_admin, viewer_key
from owncast.api.integrations import IntegrationsApi
from owncast.api.logo import LogoResource
from owncast.api.public import PublicApi
from owncast.api.recordings import RecordingsAdminApi, RecordingsApi, RecordingsIntegrationsApi
from owncast.core.errors import ApiError
from owncast.core.throttle import TrustedProxies, address_key, parse_ip
from owncast.http.diskfull import CompleteSegments, DiskWatch
from owncast.http.fastpath import HlsFastPath, OwncastChannel
from owncast.http.hls import HlsResource, PlaylistCache
from owncast.http.llhls import HlsSwitch, hls_switch
from owncast.http.recordings import RecordingsResource, api_root, with_child
from owncast.http.webroot import WEB_ROOT
from owncast.interfaces import ISegmentStorage
from owncast.llhls.output import LlOutput

#: No inline script or style anywhere: pages load their code from /js and /css.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'self'; form-action 'self'"
)

_SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
}


class ApiRoot(Resource):
    """``/api``: admin and integrations are apps of their own; the rest goes to the public app."""

    def __init__(
        self,
        ctx: Any,
        disk: DiskWatch | None = None,
        s3_storage: Callable[[dict], ISegmentStorage] | None = None,
    ):
        super().__init__()
        self._public = PublicApi(ctx).app.resource()
        admin = AdminApi(ctx, disk, s3_storage).app.resource()
        integrations = IntegrationsApi(ctx).app.resource()
        # .../recordings of each (owncast.api.recordings) are apps of their own too.
        owner = RecordingsAdminApi(ctx).app.resource()
        bots = RecordingsIntegrationsApi(ctx).app.resource()
        self.putChild(b"admin", with_child(admin, b"recordings", owner))
        self.putChild(b"integrations", with_child(integrations, b"recordings", bots))
        self.putChild(b"recordings", api_root(RecordingsApi(ctx).app.resource()))

    def getChild(self, path: bytes, request: Any) -> Resource:
        # Hand the segment back so the public Klein app routes on the whole path.
        request.prepath.pop()
        request.postpath.insert(0, path)
        return self._public

    def render(self, request: Any) -> Any:
        request.postpath.insert(0, b"")
        return self._public.render(request)


class MergedFolder(Resource):
    """Files looked up in several folders in turn (``<datadir>/emoji`` over built-in emoji)."""

    def __init__(self, *folders: Path):
        super().__init__()
        self._folders = folders

    def getChild(self, path: bytes, request: Any) -> Resource:
        name = path.decode("utf-8", "replace")
        if name and not name.startswith(".") and "/" not in name and "\x00" not in name:
            for folder in self._folders:
                candidate = folder / name
                if candidate.is_file():
                    return CachedFile(str(candidate))
        return File.childNotFound


class CachedFile(File):
    """A file that may be cached for an hour (emoji, the logo): ``OwncastSite`` says so."""

    cache_seconds = 3600


class _Refused(Resource):
    isLeaf = True

    def __init__(self, error: ApiError):
        super().__init__()
        self._error = error

    def render(self, request: Any) -> bytes:
        request.setResponseCode(self._error.status)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return self._error.message.encode("utf-8")


class AdminGuard(Resource):
    """Puts the admin web page behind the same basic auth as the admin API."""

    def __init__(self, ctx: Any, inner: Resource):
        super().__init__()
        self._ctx = ctx
        self._inner = inner

    def _allowed(self, request: Any) -> ApiError | None:
        try:
            check_admin(self._ctx, request)
        except ApiError as e:
            return e
        return None

    def getChildWithDefault(self, path: bytes, request: Any) -> Resource:
        refused = self._allowed(request)
        if refused is not None:
            return _Refused(refused)
        return self._inner.getChildWithDefault(path, request)

    def render(self, request: Any) -> bytes:
        refused = self._allowed(request)
        if refused is not None:
            return _Refused(refused).render(request)
        return self._inner.render(request)


class HlsAlias(Resource):
    """``/thumbnail.jpg`` (and ``/preview.gif``) at the web root, where Owncast 0.0.7 served
    them: the file of the same name under ``/hls/``."""

    isLeaf = True

    def __init__(self, hls: Resource, name: bytes):
        super().__init__()
        self._hls = hls
        self._name = name

    def render(self, request: Any) -> Any:
        request.postpath = [self._name]
        return self._hls.render(request)


#: Embed pages are meant for frames on other sites (0.0.7's were too).
EMBED_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "frame-ancestors 'self'", "frame-ancestors *"
)


class EmbedPage(File):
    """A page of ``/embed/``: any site may frame it; everything else as the viewer page."""

    isLeaf = True

    def render(self, request: Any) -> Any:
        request.setHeader(b"content-security-policy", EMBED_CONTENT_SECURITY_POLICY.encode())
        return super().render(request)


class EmbedChat(Resource):
    """``/embed/chat/readwrite`` and ``/embed/chat/readonly``; ``/embed/chat`` itself is
    the read-write one."""

    def __init__(self, pages: Path):
        super().__init__()
        self._readwrite = EmbedPage(str(pages / "chat-readwrite.html"))
        self.putChild(b"", self._readwrite)
        self.putChild(b"readwrite", self._readwrite)
        self.putChild(b"readonly", EmbedPage(str(pages / "chat-readonly.html")))

    def render(self, request: Any) -> Any:
        return self._readwrite.render(request)


def embed_tree(pages: Path) -> Resource:
    """``/embed/chat/...`` and ``/embed/video``: the chat or the video alone, as Owncast
    0.0.7 offered them."""
    embed = Resource()
    embed.putChild(b"chat", EmbedChat(pages))
    embed.putChild(b"video", EmbedPage(str(pages / "video.html")))
    return embed


class CustomStyles(Resource):
    """``/customstyles.css``: the owner's CSS as a stylesheet, never inlined into HTML."""

    isLeaf = True

    def __init__(self, ctx: Any):
        super().__init__()
        self._ctx = ctx

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/css; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        return self._ctx.settings["customStyles"].encode("utf-8")


#: Connections one address may hold open at once (a browser opens at most 6 to a host;
#: chat sockets, once upgraded, are the chat server's to count).
MAX_PER_ADDRESS = 128
#: Seconds an idle keep-alive connection is kept (players poll every few seconds).
IDLE_TIMEOUT = 30
#: Peers whose connections are not counted: a reverse proxy on this host connects from
#: there, so every visitor behind it would share one count (the proxy limits its own).
UNCOUNTED = frozenset(("127.0.0.1", "::1"))


class Upgrade(Resource):
    """The chat websocket (``/entry``): a connection it takes over counts against its
    address no more here (the chat server caps its sockets per address itself)."""

    isLeaf = True

    def __init__(self, websocket: IResource):
        super().__init__()
        self._websocket = websocket

    def render(self, request: Any) -> Any:
        channel = request.channel
        result = self._websocket.render(request)
        if channel.transport is None:  # taken over
            released = getattr(getattr(channel, "site", None), "released", None)
            if released is not None:
                released(channel)
        return result


class OwncastSite(Site):
    """A Site that adds security headers and our cache rules to every response.

    It keeps no per-request access log: formatting one costs as much as serving a
    playlist, and thousands of players poll playlists every second. (Owncast keeps none.)
    Its channels answer plain requests for HLS files in memory themselves through
    ``hls_fast`` (``owncast.http.fastpath``), so it speaks HTTP/1.1 only, never HTTP/2.

    Against exhaustion: a peer address may hold ``max_per_address`` connections at once
    (more are closed as they are accepted), idle keep-alive connections close after
    ``IDLE_TIMEOUT`` seconds, and a request head must arrive within the channel's
    ``HEAD_TIMEOUT``.
    """

    # twisted's stubs want a _GenericHTTPChannelProtocol factory; ours is an HTTPChannel
    protocol = OwncastChannel  # type: ignore[assignment]

    def __init__(
        self,
        root: Resource,
        hls_fast: HlsFastPath | None = None,
        reactor: Any = None,
        max_per_address: int = MAX_PER_ADDRESS,
        uncounted: frozenset[str] = UNCOUNTED,
        disk: DiskWatch | None = None,
        proxies: TrustedProxies | None = None,
    ):
        super().__init__(root, reactor=reactor, timeout=IDLE_TIMEOUT)
        self.hls_fast = hls_fast
        #: watches the HLS directory's disk while the site listens
        self.disk = disk
        self.displayTracebacks = False
        self.max_per_address = max_per_address
        self.uncounted = uncounted
        #: ``--trustedproxy``: a reverse proxy carries many clients' connections, so its
        #: address is not capped (the clients it names are, per request)
        self.proxies = proxies if proxies is not None else TrustedProxies()
        #: open connections by peer address (those counted)
        self.connections: dict[str, int] = {}
        #: connections closed as they came because their address held its share
        self.refused = 0
        #: answers by status code (``/metrics``), for what twisted.web answers
        self.statuses: dict[int, int] = {}

    def startFactory(self) -> None:
        super().startFactory()
        if self.disk is not None:
            self.disk.startService()

    def stopFactory(self) -> None:
        if self.disk is not None and self.disk.running:
            self.disk.stopService()
        super().stopFactory()

    def log(self, request: Any) -> None:
        # Called by twisted.web for every finished request: a count, not a log line.
        code = request.code
        self.statuses[code] = self.statuses.get(code, 0) + 1

    def buildProtocol(self, addr: Any) -> Any:
        """A channel for a new connection, or None (the port closes it) when its address
        already holds its share."""
        host = getattr(addr, "host", None)
        if host in self.uncounted or (host is not None and self._proxy(host)):
            host = None
        if host is not None:
            if ":" in host:  # an IPv6 /64 is one address, as for the throttle
                host = address_key(host)
            count = self.connections.get(host, 0)
            if count >= self.max_per_address:
                self.refused += 1
                return None
            self.connections[host] = count + 1
        channel = super().buildProtocol(addr)
        channel.counted = host
        return channel

    def _proxy(self, host: str) -> bool:
        if not self.proxies:
            return False
        ip = parse_ip(host)
        return ip is not None and self.proxies.trusts(ip)

    def released(self, channel: Any) -> None:
        """``channel`` closed, or a websocket took its connection over: it counts no more."""
        host, channel.counted = channel.counted, None
        if host is not None:
            left = self.connections[host] - 1
            if left:
                self.connections[host] = left
            else:
                del self.connections[host]

    def getResourceFor(self, request: Any) -> Resource:
        for name, value in _SECURITY_HEADERS.items():
            request.setHeader(name, value)
        resource = super().getResourceFor(request)
        if isinstance(resource, CachedFile):
            max_age = f"public, max-age={resource.cache_seconds}"
            request.setHeader(b"cache-control", max_age.encode())
        return resource


def hls_resource(
    ctx: AppContext,
    rewrite: Callable[[bytes, bytes], bytes] | None = None,
    playlists: PlaylistCache | None = None,
) -> HlsResource:
    """``/hls/``: the transcoder's output; every playlist request counts its viewer."""
    return HlsResource(
        ctx.datadir / "hls",
        ctx.blocking,
        on_playlist=lambda request: ctx.viewers.seen(viewer_key(ctx, request)),
        rewrite=rewrite,
        playlists=playlists,
        read_playlist=CompleteSegments(),
    )


def ll_switch(ctx: AppContext, hls: Resource, ll_output: LlOutput | None = None) -> HlsSwitch:
    """``/hls/``: LL-HLS (``ll_output``'s renditions, ``owncast.llhls``) while the
    broadcast is in low-latency mode, else ``hls``'s files."""
    seen = lambda request: ctx.viewers.seen(viewer_key(ctx, request))  # noqa: E731
    return hls_switch(ctx.reactor, ll_output or LlOutput(), hls, seen)


def build_root(
    ctx: AppContext,
    webroot: Path = WEB_ROOT,
    websocket: IResource | None = None,
    hls: HlsResource | None = None,
    probes: dict[bytes, Resource] | None = None,
    metrics: Resource | None = None,
    disk: DiskWatch | None = None,
    s3_storage: Callable[[dict], ISegmentStorage] | None = None,
    switch: HlsSwitch | None = None,
) -> Resource:
    """``probes`` (``/healthz``, ``/readyz``) are open to all; ``metrics`` is mounted at
    ``/metrics`` behind the admin's basic auth; ``disk`` tells the admin status;
    ``s3_storage(config)`` is what the admin's S3 connection test talks to."""
    root = File(str(webroot))
    for name, probe in (probes or {}).items():
        root.putChild(name, probe)
    if metrics is not None:
        root.putChild(b"metrics", AdminGuard(ctx, metrics))
    if websocket is not None:
        root.putChild(b"entry", Upgrade(websocket))
    root.putChild(b"api", ApiRoot(ctx, disk, s3_storage))
    if ctx.recordings is not None:  # past broadcasts (owncast.recordings)
        root.putChild(b"recordings", RecordingsResource(ctx.recordings, webroot / "recordings"))
    img = File(str(webroot / "img"))
    img.putChild(b"emoji", MergedFolder(ctx.datadir / "emoji", webroot / "img" / "emoji"))
    root.putChild(b"img", img)
    root.putChild(b"logo", LogoResource(ctx, MergedFolder(ctx.datadir / "logo")))
    root.putChild(b"customstyles.css", CustomStyles(ctx))
    hls = hls if hls is not None else hls_resource(ctx)
    root.putChild(b"hls", switch if switch is not None else ll_switch(ctx, hls))
    root.putChild(b"thumbnail.jpg", HlsAlias(hls, b"thumbnail.jpg"))
    root.putChild(b"preview.gif", HlsAlias(hls, b"preview.gif"))
    root.putChild(b"embed", embed_tree(webroot / "embed"))
    root.putChild(b"admin", AdminGuard(ctx, File(str(webroot / "admin"))))
    return root


def build_site(
    ctx: AppContext,
    webroot: Path = WEB_ROOT,
    websocket: IResource | None = None,
    hls: HlsResource | None = None,
    probes: dict[bytes, Resource] | None = None,
    metrics: Resource | None = None,
    s3_storage: Callable[[dict], ISegmentStorage] | None = None,
    ll_output: LlOutput | None = None,
    quiet: Callable[[], None] = lambda: None,
) -> OwncastSite:
    """The whole web tree; ``hls`` is also answered below twisted.web by the fast path
    (which calls ``quiet`` at its quiet moments: ``heap.FullCollections.quiet``)."""
    hls = hls if hls is not None else hls_resource(ctx)
    switch = ll_switch(ctx, hls, ll_output)
    fast = HlsFastPath(
        hls,
        ctx.viewers.seen,
        ctx.reactor,
        _SECURITY_HEADERS.items(),
        switch,
        ctx.throttle.proxies,
        quiet,
    )
    segments = hls.read_playlist if isinstance(hls.read_playlist, CompleteSegments) else None
    disk = DiskWatch(hls.directory, ctx.blocking, ctx.reactor, segments)
    root = build_root(ctx, webroot, websocket, hls, probes, metrics, disk, s3_storage, switch)
    return OwncastSite(root, fast, reactor=ctx.reactor, disk=disk, proxies=ctx.throttle.proxies)
