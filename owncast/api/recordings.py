"""``/api/recordings``: past broadcasts and their clips (ours; Owncast 0.0.7 had none).

Public (``/api/recordings``): the list, one recording (with its playlist and download
URLs and its clips), a recording's chat, one clip, and a viewer's clip (``POST
/api/recordings/clip``: while the ``recordings`` setting's ``viewerClips`` is on, from this
server's own pages, rate-limited per address and overall, since each clip runs ffmpeg and
takes disk). Admin (``/api/admin/recordings``):
the overview with sizes and disk space, rename, delete, create a clip. Integrations
(``/api/integrations/recordings/clip``, ``HAS_ADMIN_ACCESS``): create a clip, so a chat
bot can offer ``!clip``. Media is served outside the API, at ``/recordings/<id>/...``
(``owncast.http.recordings``).
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import BaseConverter

from owncast.api import shapes
from owncast.api.http import (
    JsonApp,
    admin,
    auth_address,
    body_object,
    check_same_site,
    iso,
    json_api,
    json_app,
    ok,
    token,
)
from owncast.core.errors import ApiError, NotFoundError
from owncast.core.ratelimit import WindowLimiter
from owncast.core.throttle import address_key
from owncast.core.tokens import HAS_ADMIN_ACCESS
from owncast.recordings.vod import RECORDING_ID, Meta, clip_span, title_value

#: Chat messages replayed with one recording at most.
CHAT_LIMIT = 10_000
#: Viewers' clips from one address (an IPv6 /64): one per 30 s, ten an hour.
VIEWER_CLIPS_PER_ADDRESS = ((1, 30.0), (10, 3600.0))
#: Viewers' clips from everyone together: sixty an hour.
VIEWER_CLIPS_OVERALL = ((60, 3600.0),)


def summary(meta: Meta) -> dict:
    base = f"/recordings/{meta.id}"
    return {
        "id": meta.id,
        "title": meta.title,
        "startTime": iso(meta.startTime),
        "endTime": iso(meta.endTime),
        "duration": round(meta.duration, 3),
        "peakViewers": meta.peakViewers,
        "live": meta.live,
        "stopped": meta.stopped,
        "size": meta.size,
        "variants": meta.variants,
        "url": base,
        "playlist": f"{base}/stream.m3u8",
        "thumbnail": f"{base}/thumbnail.jpg",
        "download": None if meta.live else f"{base}/download.mp4",
    }


def clip_shape(clip: dict) -> dict:
    return {**clip, "url": f"/recordings/clips/{clip['id']}", "download": clip_download(clip)}


def clip_download(clip: dict) -> str:
    return f"/recordings/clips/{clip['id']}.mp4"


def body_id(body: dict) -> str:
    """A recording id sent in a body: malformed is a 400 (a well-formed unknown one is a
    404, from ``_meta``)."""
    value = body["id"]
    if not isinstance(value, str) or not RECORDING_ID.fullmatch(value):
        raise ApiError("id must be a recording id (digits)")
    return value


class _Recordings(JsonApp):
    @property
    def library(self) -> Any:
        library = getattr(self.ctx, "recordings", None)
        if library is None:
            raise NotFoundError("recordings are not available")
        return library

    async def _meta(self, recording_id: Any) -> Meta:
        meta = None
        if isinstance(recording_id, str) and RECORDING_ID.fullmatch(recording_id):
            meta = await self.library.get(recording_id)
        if meta is None:
            raise NotFoundError("no such recording")
        return meta

    async def _clip(self, request: Any) -> dict:
        """``{id?, start, end, title?}``: a clip of that span; without ``id``, of the
        broadcast being recorded (else the latest recording)."""
        return await self._make(*await self._clip_request(request))

    async def _clip_request(self, request: Any) -> tuple[Meta, float, float, str]:
        """The recording, span and title a clip request asks for (400/404 if bad)."""
        body = body_object(request, "start", "end")
        if "id" in body:
            meta = await self._meta(body_id(body))
        else:
            listed = await self.library.recordings()
            if not listed:
                raise NotFoundError("no recording to clip")
            meta = listed[0]
        try:
            start, end = clip_span(body["start"], body["end"], meta.duration)
            title = title_value(body["title"]) if "title" in body else meta.title or "Clip"
        except ValueError as e:
            raise ApiError(str(e)) from e
        return meta, start, end, title

    async def _make(self, meta: Meta, start: float, end: float, title: str) -> dict:
        try:
            clip = await self.library.make_clip(meta, start, end, title)
        except Exception as e:
            raise ApiError(f"could not make the clip: {e}", 500) from e
        return clip_shape(clip)


class _RecordingIdConverter(BaseConverter):
    """A path segment taken for a recording id (checked by ``_meta``), but never ``clip``:
    a GET of ``/clip`` is then a 405, as for any documented path asked with another
    method."""

    regex = r"(?!clip(?![^/]))[^/]+"


class _TooManyClipsError(ApiError):
    status = 429

    def __init__(self, wait: float):
        self.wait = int(wait) + 1
        super().__init__(f"too many clips for now; try again in {self.wait} s")


class RecordingsApi(_Recordings):
    """``/api/recordings``: public reads, and viewers' clips."""

    app = json_app()
    app.url_map.converters["recording"] = _RecordingIdConverter

    def __init__(self, ctx: Any):
        super().__init__(ctx)
        #: viewers' clips, per address and overall (the owner's and bots' are not counted)
        self.clip_limits = WindowLimiter(ctx.now, VIEWER_CLIPS_PER_ADDRESS, VIEWER_CLIPS_OVERALL)

    def _viewer_clips(self) -> bool:
        return bool(self.ctx.settings["recordings"].get("viewerClips", True))

    @app.route("/", methods=["GET"])
    @json_api
    async def list(self, request):
        return [summary(m) for m in await self.library.recordings()]

    @app.route("/clips/<clip_id>", methods=["GET"])
    @json_api
    async def clip(self, request, clip_id):
        clip = await self.library.clip(clip_id)
        if clip is None:
            raise NotFoundError("no such clip")
        return clip_shape(clip)

    @app.route("/<recording:recording_id>", methods=["GET"])
    @json_api
    async def one(self, request, recording_id):
        meta = await self._meta(recording_id)
        clips = await self.library.clips(meta.id)
        return {
            **summary(meta),
            "clips": [clip_shape(c) for c in clips],
            "viewerClips": self._viewer_clips(),
        }

    @app.route("/clip", methods=["POST"])
    @json_api
    async def make_clip(self, request):
        """A viewer's clip, as the owner's: refused from another site's page (403, or 415
        for a form's body), while ``viewerClips`` is off (403) and past the limits (429
        with ``Retry-After``; bad requests count for nothing)."""
        check_same_site(self.ctx, request, bearer=False)
        if not self._viewer_clips():
            raise ApiError("clips by viewers are turned off on this server", 403)
        address = address_key(auth_address(self.ctx, request))
        self._limit(request, self.clip_limits.retry_after(address))
        clip = await self._clip_request(request)
        self._limit(request, self.clip_limits.take(address))
        return await self._make(*clip)

    @staticmethod
    def _limit(request: Any, wait: float) -> None:
        if wait > 0:
            refused = _TooManyClipsError(wait)
            request.setHeader(b"retry-after", str(refused.wait).encode())
            raise refused

    @app.route("/<recording:recording_id>/chat", methods=["GET"])
    @json_api
    async def chat(self, request, recording_id):
        """The visible chat messages sent during the broadcast, with ``offset``: seconds
        from its start, for replay in time with the video."""
        meta = await self._meta(recording_id)
        end = meta.endTime if meta.endTime is not None else self.ctx.now()
        found = []
        stored = await self.ctx.store.list_messages(
            since=meta.startTime, visible_only=True, limit=CHAT_LIMIT
        )
        for message in stored:
            when = message.get("timestamp")
            if isinstance(when, (int, float)) and meta.startTime <= when <= end:
                found.append({**shapes.message(message), "offset": when - meta.startTime})
        return found


class RecordingsAdminApi(_Recordings):
    """``/api/admin/recordings``: the owner's view and changes (basic auth)."""

    app = json_app()

    @app.route("/", methods=["GET"])
    @json_api
    @admin
    async def overview(self, request):
        """Every recording with its size and clips, whether one is being recorded, the
        disk they use and the free space (``diskFull``: below the floor, not recording)."""
        library = self.library
        metas = await library.recordings()
        recorder = library.recorder
        state = recorder.status() if recorder is not None else {}
        listed = []
        for meta in metas:
            clips = await library.clips(meta.id)
            listed.append({**summary(meta), "clips": [clip_shape(c) for c in clips]})
        return {
            "recording": state.get("recording"),
            "diskFull": bool(state.get("diskFull")),
            "freeBytes": state.get("freeBytes"),
            "usedBytes": sum(m.size for m in metas),
            "settings": self.ctx.settings["recordings"],
            "recordings": listed,
        }

    @app.route("/title", methods=["POST"])
    @json_api
    @admin
    async def rename(self, request):
        body = body_object(request, "id", "title")
        meta = await self._meta(body_id(body))
        try:
            title = title_value(body["title"])
        except ValueError as e:
            raise ApiError(str(e)) from e
        return summary(await self.library.rename(meta.id, title))

    @app.route("/delete", methods=["POST"])
    @json_api
    @admin
    async def delete(self, request):
        meta = await self._meta(body_id(body_object(request, "id")))
        await self.library.delete(meta.id)
        return ok("deleted")

    @app.route("/clip", methods=["POST"])
    @json_api
    @admin
    async def make_clip(self, request):
        return await self._clip(request)


class RecordingsIntegrationsApi(_Recordings):
    """``/api/integrations/recordings``: a bot (``HAS_ADMIN_ACCESS``) makes clips."""

    app = json_app()

    @app.route("/clip", methods=["POST"])
    @json_api
    @token(HAS_ADMIN_ACCESS)
    async def make_clip(self, request):
        return await self._clip(request)
