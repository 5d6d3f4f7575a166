"""Public endpoints: config, status, chat history, directory info, emoji, the OpenAPI file."""

from __future__ import annotations

import os
from pathlib import Path

from owncast.api import shapes
from owncast.api.http import JsonApp, iso, json_api, json_app, ok, viewer_key

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


class PublicApi(JsonApp):
    app = json_app()

    @app.route("/config", methods=["GET"])
    @json_api
    def config(self, request):
        return shapes.instance_details(self.ctx.settings)

    @app.route("/status", methods=["GET"])
    @json_api
    def status(self, request):
        ctx = self.ctx
        return {
            "online": ctx.stream.online,
            "viewerCount": ctx.viewers.count(),
            "sessionMaxViewerCount": ctx.viewers.session_max,
            "overallMaxViewerCount": ctx.viewers.overall_max,
            "lastConnectTime": iso(ctx.stream.last_connect_time),
            "lastDisconnectTime": iso(ctx.stream.last_disconnect_time),
            "versionNumber": shapes.VERSION_STRING,
            "streamTitle": ctx.settings["streamTitle"],
        }

    @app.route("/ping", methods=["GET", "POST"])
    @json_api
    def ping(self, request):
        """The viewer page says it is still watching."""
        self.ctx.viewers.seen(viewer_key(request))
        return ok("pong")

    @app.route("/chat", methods=["GET"])
    @json_api
    async def chat(self, request):
        return [shapes.message(m) for m in await self.ctx.chat.history()]

    @app.route("/yp", methods=["GET"])
    @json_api
    def yp(self, request):
        ctx = self.ctx
        settings = ctx.settings
        return {
            "name": settings["name"],
            "description": settings["summary"],
            "logo": settings["logo"],
            "nsfw": settings["nsfw"],
            "tags": list(settings["tags"]),
            "online": ctx.stream.online,
            "viewerCount": ctx.viewers.count(),
            "overallMaxViewerCount": ctx.viewers.overall_max,
            "sessionMaxViewerCount": ctx.viewers.session_max,
            "lastConnectTime": iso(ctx.stream.last_connect_time),
        }

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
