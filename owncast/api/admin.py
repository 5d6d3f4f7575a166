"""Admin endpoints under ``/api/admin``: basic auth ``admin`` / stream key on every route.

Answers as Owncast 0.0.7's controllers/admin/ (shapes in ``owncast.api.shapes``), success
messages included; failures are our ``{"success": false, "message"}`` with a status.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from owncast.api import logo, shapes
from owncast.api.http import (
    JsonApp,
    admin,
    body_object,
    config_value,
    iso,
    json_api,
    json_app,
    ok,
)
from owncast.core import events
from owncast.core.errors import ApiError, NotFoundError, ValidationError
from owncast.core.settings import KNOWN_CODECS, SETTERS, http_url
from owncast.core.settings import s3 as s3_settings
from owncast.core.tokens import validate_new_token
from owncast.interfaces import ISegmentStorage

#: What 0.0.7 answered each setting with (controllers/admin/config.go); "changed" otherwise.
SAVED_MESSAGES = {
    "webserverport": "http port set",
    "rtmpserverport": "rtmp port set",
    "serverurl": "server url set",
    "directoryenabled": "directory state changed",
    "video/streamlatencylevel": "set stream latency",
    "video/streamoutputvariants": "stream output variants updated",
    "video/codec": "video codec updated",
    "s3": "storage configuration changed",
    "socialhandles": "social handles updated",
    "customstyles": "custom styles updated",
    "chat/disable": "chat disabled status updated",
    "externalactions": "external actions update",
}


async def change_title(ctx: Any, title: str) -> None:
    """Store a new stream title; unless it was emptied, tell the connected chat clients
    (a notice, never stored, as 0.0.7) and the ``STREAM_TITLE_UPDATED`` webhooks."""
    await ctx.save({"streamTitle": title})
    if title:
        ctx.chat.announce(f"Stream title changed to **{title}**")
        ctx.events.emit(events.STREAM_TITLE_UPDATED, events.stream_event(ctx.settings, ctx.now()))


def visibility_request(request: Any) -> tuple[list[str], bool]:
    """The ``{visible, idArray}`` body of a moderation request, checked."""
    body = body_object(request, "visible", "idArray")
    visible, ids = body["visible"], body["idArray"]
    if not isinstance(visible, bool):
        raise ValidationError("visible must be true or false")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise ValidationError("idArray must be an array of message ids")
    if len(ids) > 1000:
        raise ValidationError("at most 1000 ids at a time")
    return ids, visible


def webhook_request(body: dict) -> tuple[str, list[str]]:
    url = http_url(body.get("url"), "url")
    names = body.get("events")
    if not isinstance(names, list) or not names or not all(isinstance(e, str) for e in names):
        raise ValidationError("events must be a non-empty array of event names")
    unknown = [e for e in names if e not in events.WEBHOOK_EVENTS]
    if unknown:
        raise ValidationError(
            f"unknown events: {', '.join(unknown)}; known: {', '.join(events.WEBHOOK_EVENTS)}"
        )
    return url, list(dict.fromkeys(names))


class AdminApi(JsonApp):
    app = json_app()

    def __init__(
        self,
        ctx: Any,
        disk: Any = None,
        s3_storage: Callable[[dict], ISegmentStorage] | None = None,
    ):
        super().__init__(ctx)
        #: the disk-full watch (``owncast.http.diskfull.DiskWatch``), for the status
        self.disk = disk
        #: ``s3 setting -> S3SegmentStorage``, handed in by the tree (the API layer may
        #: not import ``owncast.segments``); the connection test goes through it
        self.s3_storage = s3_storage

    # -- status and control ------------------------------------------------------------
    @app.route("/status", methods=["GET"])
    @json_api
    @admin
    def status(self, request):
        """controllers/admin/status.go; ``currentBroadcast`` (the variants and latency the
        broadcast uses) is null while offline, as ``broadcaster`` is."""
        ctx = self.ctx
        broadcaster = ctx.stream.broadcaster
        current = None
        if broadcaster is not None:
            broadcaster = {
                "remoteAddr": broadcaster["remoteAddr"],
                "streamDetails": dict(broadcaster["streamDetails"]),
                "time": iso(broadcaster["time"]),
            }
            current = {
                "outputSettings": [shapes.variant(v) for v in ctx.settings["videoQualityVariants"]],
                "latencyLevel": {"level": ctx.settings["latencyLevel"]},
            }
        return {
            "broadcaster": broadcaster,
            "currentBroadcast": current,
            "online": ctx.stream.online,
            "viewerCount": ctx.viewers.count(),
            "overallPeakViewerCount": ctx.viewers.overall_max,
            "sessionPeakViewerCount": ctx.viewers.session_max,
            "streamTitle": ctx.settings["streamTitle"],
            "versionNumber": shapes.API_VERSION,
            # ours, not 0.0.7's: the data dir's disk is full (``http.diskfull``)
            "diskFull": bool(self.disk is not None and self.disk.full),
            # Ours: recording stopped at the free-space floor (the live stream goes on).
            "recordingDiskFull": bool(
                ctx.recordings is not None
                and ctx.recordings.recorder is not None
                and ctx.recordings.recorder.disk_full
            ),
        }

    @app.route("/disconnect", methods=["POST"])
    @json_api
    @admin
    def disconnect(self, request):
        if not self.ctx.stream.disconnect():
            raise ApiError("no inbound stream connected")
        return ok("inbound stream disconnected")

    @app.route("/yp/reset", methods=["POST"])
    @json_api
    @admin
    async def yp_reset(self, request):
        await self.ctx.save({"ypRegistrationKey": ""})
        return ok("reset")

    @app.route("/clients", methods=["GET"])
    @json_api
    @admin
    def clients(self, request):
        return [shapes.client(c) for c in self.ctx.chat.clients.values()]

    @app.route("/logs", methods=["GET"])
    @json_api
    @admin
    def logs(self, request):
        return [shapes.log_entry(e) for e in self.ctx.logs.entries()]

    @app.route("/logs/warnings", methods=["GET"])
    @json_api
    @admin
    def warnings(self, request):
        return [shapes.log_entry(e) for e in self.ctx.logs.warnings()]

    @app.route("/serverconfig", methods=["GET"])
    @json_api
    @admin
    async def serverconfig(self, request):
        """controllers/admin/serverConfig.go."""
        ctx = self.ctx
        settings = ctx.settings
        ffmpeg = ctx.ffmpeg_path() or ""
        return {
            "instanceDetails": shapes.admin_instance_details(settings),
            "ffmpegPath": ffmpeg,
            "streamKey": settings["streamKey"],
            "webServerPort": settings["webServerPort"],
            "rtmpServerPort": settings["rtmpServerPort"],
            "s3": shapes.s3(settings["s3"]),
            "videoSettings": {
                "videoQualityVariants": [
                    shapes.variant(v, as_configured=True) for v in settings["videoQualityVariants"]
                ],
                "latencyLevel": settings["latencyLevel"],
            },
            # 0.0.7 sent an unset field here (always 0); ours carries the level.
            "latencyLevel": settings["latencyLevel"],
            # Ours: LL-HLS for the next broadcast (POST /api/admin/config/video/lowlatency).
            "lowLatency": settings["lowLatency"],
            "yp": {
                "enabled": settings["directoryEnabled"],
                "instanceUrl": settings["serverUrl"],
            },
            "chatDisabled": settings["chatDisabled"],
            "externalActions": [dict(a) for a in settings["externalActions"]],
            "supportedCodecs": await self._supported_codecs(ffmpeg),
            "videoCodec": settings["videoCodec"],
            # Ours, not 0.0.7's: what the viewer page shows while offline.
            "offlineMessage": settings["offlineMessage"],
        }

    async def _supported_codecs(self, ffmpeg: str) -> list[str]:
        """The H.264 encoders we drive that this ffmpeg offers (cached by the probe)."""
        if not ffmpeg:
            return []
        try:
            offered = await self.ctx.probe.encoders(ffmpeg)
        except Exception:
            return []
        return [codec for codec in KNOWN_CODECS if codec in offered]

    # -- chat moderation ---------------------------------------------------------------
    @app.route("/chat/messages", methods=["GET"])
    @json_api
    @admin
    async def messages(self, request):
        return [shapes.message(m) for m in await self.ctx.chat.moderation()]

    @app.route("/chat/updatemessagevisibility", methods=["POST"])
    @json_api
    @admin
    async def visibility(self, request):
        ids, visible = visibility_request(request)
        await self.ctx.chat.set_visibility(ids, visible)
        return ok("changed")

    # -- settings ----------------------------------------------------------------------
    @app.route("/config/<path:name>", methods=["POST"])
    @json_api
    @admin
    async def config(self, request, name):
        ctx = self.ctx
        value = config_value(request)
        if name == "video/codec":
            path = ctx.ffmpeg_path()
            if not path:
                raise ValidationError("no ffmpeg is configured to check the codec against")
            await self._save("videoCodec", await ctx.probe.check_codec(path, value))
        elif name == "ffmpegpath":
            await ctx.probe.version(value)
            await self._save("ffmpegPath", value)
        elif name == "logo":
            await self._save("logo", await self._logo(value))
        elif name in SETTERS:
            key, validate = SETTERS[name]
            await self._save(key, validate(value))
        else:
            raise NotFoundError(f"no such setting: {name}")
        return ok(SAVED_MESSAGES.get(name, "changed"))

    @app.route("/config/s3/test", methods=["POST"])
    @json_api
    @admin
    async def s3_test(self, request):
        """Ours: upload a small probe object with the given ``s3`` value (saved or not) and
        delete it again, through the storage segments go through. ``success`` says whether
        both worked; ``message`` carries the storage's error for the admin page."""
        config = s3_settings(config_value(request))
        missing = [k for k in ("endpoint", "accessKey", "secret", "bucket") if not config[k]]
        if missing:
            raise ValidationError(f"s3 needs {', '.join(missing)} to test a connection")
        if self.s3_storage is None:  # the tree handed no storage client to this app
            return {"success": False, "message": "this server cannot test S3 connections"}
        storage = self.s3_storage(config)
        key = f"owncast-connection-test-{secrets.token_hex(8)}.txt"
        step = "upload"
        try:
            await storage.put(key, b"owncast connection test\n", "text/plain", "no-store")
            step = "delete"
            await storage.delete(key)
        except Exception as error:
            return {"success": False, "message": f"{step} of {key} failed: {error}"[:600]}
        return ok(f"uploaded and deleted {key}")

    async def _save(self, key: str, value: Any) -> None:
        if key == "streamTitle":
            await change_title(self.ctx, value)
        else:
            await self.ctx.save({key: value})

    async def _logo(self, value: Any) -> str:
        ctx = self.ctx
        if not isinstance(value, str):
            raise ValidationError("logo must be a string: a path or a data: URI")
        if value.startswith("data:"):
            data, suffix = logo.decode_upload(value)
            return await ctx.blocking(logo.save_upload, ctx.datadir, data, suffix)
        return await ctx.blocking(logo.local_path, value, ctx.webroot, ctx.datadir)

    # -- stats -------------------------------------------------------------------------
    @app.route("/viewersOverTime", methods=["GET"])
    @json_api
    @admin
    async def viewers_over_time(self, request):
        return shapes.samples(await self.ctx.history.series("viewers"))

    @app.route("/hardwarestats", methods=["GET"])
    @json_api
    @admin
    async def hardware_stats(self, request):
        history = self.ctx.history
        return {
            kind: shapes.samples(await history.series(kind)) for kind in ("cpu", "memory", "disk")
        }

    # -- access tokens -----------------------------------------------------------------
    @app.route("/accesstokens", methods=["GET"])
    @json_api
    @admin
    def tokens(self, request):
        return [shapes.token(t) for t in self.ctx.tokens.all()]

    @app.route("/accesstokens/create", methods=["POST"])
    @json_api
    @admin
    async def create_token(self, request):
        name, scopes = validate_new_token(body_object(request))
        record = await self.ctx.tokens.create(name, scopes, self.ctx.now())
        return shapes.token(record)

    @app.route("/accesstokens/delete", methods=["POST"])
    @json_api
    @admin
    async def delete_token(self, request):
        value = body_object(request, "token")["token"]
        if not isinstance(value, str) or not value:
            raise ValidationError("token must be a non-empty string")
        if not await self.ctx.tokens.delete(value):
            raise ApiError("no such access token", 404)
        return ok("deleted token")

    # -- webhooks ----------------------------------------------------------------------
    @app.route("/webhooks", methods=["GET"])
    @json_api
    @admin
    async def webhooks(self, request):
        return [shapes.webhook(w) for w in await self.ctx.webhooks.all()]

    @app.route("/webhooks/create", methods=["POST"])
    @json_api
    @admin
    async def create_webhook(self, request):
        url, names = webhook_request(body_object(request, "url", "events"))
        record = await self.ctx.webhooks.create(url, names, self.ctx.now())
        return shapes.webhook(record)

    @app.route("/webhooks/delete", methods=["POST"])
    @json_api
    @admin
    async def delete_webhook(self, request):
        value = body_object(request, "id")["id"]
        # 0.0.7 took a number (and answers with one), the seed says string: take both.
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValidationError("id must be a webhook id")
        if not (str(value).isascii() and str(value).isdigit()):
            raise ValidationError("id must be a webhook id")
        if not await self.ctx.webhooks.delete(str(int(value))):
            raise ApiError("no such webhook", 404)
        return ok("deleted webhook")
