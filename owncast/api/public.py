"""Public endpoints: config, status, chat history, directory info, emoji, social platforms,
video variants, the OpenAPI file.

Shapes as Owncast 0.0.7's controllers (``owncast.api.shapes``). The endpoints 0.0.7 let
any web page read (config, status, chat history, social platforms) answer with
``Access-Control-Allow-Origin: *`` as it did, so dashboards and embeds elsewhere work.
"""

from __future__ import annotations

import os
from pathlib import Path

from owncast.api import shapes
from owncast.api.http import JsonApp, iso, json_api, json_app, ok, viewer_key
from owncast.core.errors import NotFoundError

EMOJI_SUFFIXES = (".png", ".gif", ".svg", ".webp", ".jpg", ".jpeg")


def list_emoji(*folders: Path) -> list[dict]:
    """Emoji files in ``folders`` (earlier folders win a name clash), sorted by name."""
    found: dict[str, dict] = {}
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for filename in names:
            stem, suffix = os.path.splitext(filename)
            if suffix.lower() in EMOJI_SUFFIXES and not filename.startswith(".") and stem:
                found.setdefault(stem, {"name": stem, "emoji": f"/img/emoji/{filename}"})
    return sorted(found.values(), key=lambda e: e["name"].lower())


def any_origin(request) -> None:
    """Let pages on any site read this answer (it carries nothing private)."""
    request.setHeader(b"access-control-allow-origin", b"*")


class PublicApi(JsonApp):
    app = json_app()

    @app.route("/config", methods=["GET"])
    @json_api
    def config(self, request):
        any_origin(request)
        details = shapes.instance_details(self.ctx.settings)
        # Ours, not 0.0.7's (its clients ignore it): the viewer page shows it while offline.
        details["offlineMessage"] = self.ctx.settings["offlineMessage"]
        return details

    @app.route("/status", methods=["GET"])
    @json_api
    def status(self, request):
        """controllers/status.go: 0.0.7 stopped showing the peak viewer counts here, and
        has no disconnect time while live."""
        any_origin(request)
        stream = self.ctx.stream
        return {
            "online": stream.online,
            "viewerCount": self.ctx.viewers.count(),
            "lastConnectTime": iso(stream.last_connect_time),
            "lastDisconnectTime": None if stream.online else iso(stream.last_disconnect_time),
            "versionNumber": shapes.API_VERSION,
            "streamTitle": self.ctx.settings["streamTitle"],
        }

    @app.route("/ping", methods=["GET", "POST"])
    @json_api
    def ping(self, request):
        """The viewer page says it is still watching."""
        self.ctx.viewers.seen(viewer_key(self.ctx, request))
        return ok("pong")

    @app.route("/chat", methods=["GET"])
    @json_api
    async def chat(self, request):
        any_origin(request)
        return [shapes.message(m) for m in await self.ctx.chat.history()]

    @app.route("/yp", methods=["GET"])
    @json_api
    def yp(self, request):
        """yp/api.go: what the directory reads; 404 unless the listing is enabled."""
        ctx = self.ctx
        settings = ctx.settings
        if not settings["directoryEnabled"]:
            raise NotFoundError("this server is not listed in the directory")
        details = {"name": settings["name"], "description": settings["summary"]}
        details.update(shapes.omit_empty(streamTitle=settings["streamTitle"]))
        details.update(
            logo="/logo",
            nsfw=settings["nsfw"],
            tags=list(settings["tags"]),
            online=ctx.stream.online,
            viewerCount=ctx.viewers.count(),
            overallMaxViewerCount=ctx.viewers.overall_max,
            sessionMaxViewerCount=ctx.viewers.session_max,
            social=[dict(h) for h in settings["socialHandles"]],
            lastConnectTime=iso(ctx.stream.last_connect_time),
        )
        return details

    @app.route("/socialplatforms", methods=["GET"])
    @json_api
    def social_platforms(self, request):
        any_origin(request)
        return shapes.social_platforms()

    @app.route("/video/variants", methods=["GET"])
    @json_api
    def video_variants(self, request):
        return shapes.variants_menu(self.ctx.settings["videoQualityVariants"])

    @app.route("/emoji", methods=["GET"])
    @json_api
    async def emoji(self, request):
        ctx = self.ctx
        return await ctx.blocking(list_emoji, ctx.datadir / "emoji", ctx.webroot / "img" / "emoji")

    @app.route("/openapi.yaml", methods=["GET"])
    def openapi(self, request):
        request.setHeader(b"content-type", b"application/yaml; charset=utf-8")
        path = Path(__file__).resolve().parent / "openapi.yaml"
        return self.ctx.blocking(path.read_bytes)
