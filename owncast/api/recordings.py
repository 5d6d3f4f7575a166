"""``/api/recordings``: past broadcasts and their clips (ours; Owncast 0.0.7 had none).

Public: the list, one recording (with its playlist and download URLs and its clips), a
recording's chat, one clip. Admin (basic auth) or an access token with
``HAS_ADMIN_ACCESS``: rename, delete, create a clip. Media is served outside the API,
at ``/recordings/<id>/...`` (``owncast.http.recordings``).
"""

from __future__ import annotations

from typing import Any

from owncast.api import shapes
from owncast.api.http import (
    JsonApp,
    body_object,
    check_admin,
    check_token,
    iso,
    json_api,
    json_app,
)
from owncast.core.errors import ApiError, NotFoundError
from owncast.core.tokens import HAS_ADMIN_ACCESS
from owncast.recordings.vod import RECORDING_ID, Meta, clip_span, title_value

#: Chat messages replayed with one recording at most.
CHAT_LIMIT = 10_000


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


class RecordingsApi(JsonApp):
    app = json_app()

    @property
    def library(self) -> Any:
        library = getattr(self.ctx, "recordings", None)
        if library is None:
            raise NotFoundError("recordings are not available")
        return library

    async def _meta(self, recording_id: str) -> Meta:
        meta = None
        if RECORDING_ID.fullmatch(recording_id):
            meta = await self.library.get(recording_id)
        if meta is None:
            raise NotFoundError("no such recording")
        return meta

    async def _owner(self, request: Any) -> None:
        """Admin basic auth, or a bearer token with ``HAS_ADMIN_ACCESS`` (a chat bot)."""
        if (request.getHeader(b"authorization") or b"").lower().startswith(b"bearer "):
            await check_token(self.ctx, request, HAS_ADMIN_ACCESS)
        else:
            check_admin(self.ctx, request)

    @app.route("/", methods=["GET"], strict_slashes=False)
    @json_api
    async def list(self, request):
        return [summary(m) for m in await self.library.recordings()]

    @app.route("/status", methods=["GET"])
    @json_api
    async def status(self, request):
        """Admin: whether a broadcast is being recorded, disk space, what is kept."""
        check_admin(self.ctx, request)
        recorder = self.library.recorder
        metas = await self.library.recordings()
        state = recorder.status() if recorder is not None else {}
        return {**state, "count": len(metas), "usedBytes": sum(m.size for m in metas)}

    @app.route("/clips/<clip_id>", methods=["GET"])
    @json_api
    async def clip(self, request, clip_id):
        clip = await self.library.clip(clip_id)
        if clip is None:
            raise NotFoundError("no such clip")
        return clip_shape(clip)

    @app.route("/<recording_id>", methods=["GET"])
    @json_api
    async def one(self, request, recording_id):
        meta = await self._meta(recording_id)
        clips = await self.library.clips(meta.id)
        return {**summary(meta), "clips": [clip_shape(c) for c in clips]}

    @app.route("/<recording_id>/chat", methods=["GET"])
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

    @app.route("/<recording_id>/title", methods=["POST"])
    @json_api
    async def rename(self, request, recording_id):
        await self._owner(request)
        await self._meta(recording_id)
        try:
            title = title_value(body_object(request, "value")["value"])
        except ValueError as e:
            raise ApiError(str(e)) from e
        meta = await self.library.rename(recording_id, title)
        return summary(meta)

    @app.route("/<recording_id>", methods=["DELETE"])
    @app.route("/<recording_id>/delete", methods=["POST"])
    @json_api
    async def delete(self, request, recording_id):
        await self._owner(request)
        await self._meta(recording_id)
        await self.library.delete(recording_id)
        return {"success": True, "message": "deleted"}

    @app.route("/<recording_id>/clips", methods=["POST"])
    @json_api
    async def make_clip(self, request, recording_id):
        await self._owner(request)
        meta = await self._meta(recording_id)
        body = body_object(request, "start", "end")
        try:
            start, end = clip_span(body["start"], body["end"], meta.duration)
            title = title_value(body["title"]) if "title" in body else meta.title or "Clip"
        except ValueError as e:
            raise ApiError(str(e)) from e
        try:
            clip = await self.library.make_clip(meta, start, end, title)
        except Exception as e:
            raise ApiError(f"could not make the clip: {e}", 500) from e
        return clip_shape(clip)
