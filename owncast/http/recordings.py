"""``/recordings/``: the past-broadcasts pages and each recording's media, from the data dir.

Only these paths answer (anything else is 404, so no path leaves the folders)::

    /recordings/, /recordings/<id>, /recordings/clips/<clip>   the page (web/recordings/)
    /recordings/recordings.js, recordings.css                  its code and style
    /recordings/<id>/stream.m3u8, <id>/<n>/stream.m3u8         playlists
    /recordings/<id>/<n>/stream-<k>.ts                          segments (never change)
    /recordings/<id>/<n>/seg<k>.m4s, <id>/<n>/init<i>.mp4       a low-latency broadcast's
                                       fMP4 segments and initialization sections
    /recordings/<id>/thumbnail.jpg
    /recordings/<id>/download.mp4      the whole recording as MP4 (made on first ask,
                                       sent as it is made; 409 while still recorded)
    /recordings/clips/<clip>.mp4       a clip's MP4

Files are sent by ``twisted.web.static.File``, which reads them in chunks as the client
takes them and answers range requests (players seek in the MP4). A whole recording's
MP4 still being made is followed as ffmpeg writes it (``Making.tail``), chunked, with no
length and no ranges; a recording still being recorded has none (409, JSON).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web.resource import NoResource, Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.static import File
from zope.interface import implementer

_log = Logger()

_ID = rb"[0-9]{1,19}"
_MEDIA = re.compile(
    rb"(?P<id>" + _ID + rb")/(?:(?P<playlist>(?:[0-9]{1,2}/)?stream\.m3u8)"
    rb"|(?P<segment>[0-9]{1,2}/stream-[0-9]{1,19}\.ts)"
    rb"|(?P<fragment>[0-9]{1,2}/seg[0-9]{1,19}\.m4s)|(?P<init>[0-9]{1,2}/init[0-9]{1,19}\.mp4)"
    rb"|(?P<thumbnail>thumbnail\.jpg)|(?P<download>download\.mp4))"
)
_PAGE = re.compile(rb"|index\.html|" + _ID + rb"/?|clips/" + _ID + rb"-[0-9]{1,6}")
_CLIP_MP4 = re.compile(rb"clips/(?P<clip>" + _ID + rb"-[0-9]{1,6})\.mp4")
_ASSETS = {
    b"recordings.js": b"text/javascript; charset=utf-8",
    b"recordings.css": b"text/css; charset=utf-8",
}
_TYPES = {
    "playlist": b"application/vnd.apple.mpegurl",
    "segment": b"video/mp2t",
    "fragment": b"video/mp4",
    "init": b"video/mp4",
    "thumbnail": b"image/jpeg",
    "download": b"video/mp4",
}
_CACHE = {
    "playlist": b"no-cache",
    "segment": b"public, max-age=31536000, immutable",
    "fragment": b"public, max-age=31536000, immutable",
    "init": b"public, max-age=31536000, immutable",
    "thumbnail": b"public, max-age=60",
    "download": b"public, max-age=3600",
}


_UNKNOWN = (404, "no such recording")
_LIVE = (
    409,
    "this recording is still going on: its MP4 can be downloaded once the broadcast "
    "ends (a clip can be made now)",
)


class _Typed(File):
    """A file sent with the type and cache rule we say."""

    def __init__(self, path: str, kind: bytes, cache: bytes):
        super().__init__(path, defaultType=kind.decode())
        self.type = kind.decode()
        self.encoding = None
        self._cache = cache

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"cache-control", self._cache)
        request.setHeader(b"access-control-allow-origin", b"*")
        return super().render_GET(request)


class RecordingsResource(Resource):
    """``library`` is the ``owncast.recordings.library.Library``; ``pages`` is
    ``web/recordings``."""

    isLeaf = True

    def __init__(self, library: Any, pages: Path):
        super().__init__()
        self._library = library
        self._pages = pages

    def render_GET(self, request: Any) -> Any:
        path = b"/".join(request.postpath)
        if _PAGE.fullmatch(path):
            page = _Typed(str(self._pages / "index.html"), b"text/html; charset=utf-8", b"no-cache")
            return page.render_GET(request)
        if path in _ASSETS:
            return _Typed(str(self._pages / path.decode()), _ASSETS[path], b"no-cache").render_GET(
                request
            )
        clip = _CLIP_MP4.fullmatch(path)
        if clip is not None:
            target = self._library.clip_path(clip.group("clip").decode())
            return _Typed(target, _TYPES["download"], _CACHE["download"]).render_GET(request)
        match = _MEDIA.fullmatch(path)
        if match is None:
            return NoResource().render(request)
        kind = next(k for k in _TYPES if match.group(k))
        recording_id = match.group("id").decode()
        if kind == "download":
            d = Deferred.fromCoroutine(self._download(request, recording_id))
            d.addErrback(lambda f: _log.failure("A recording download failed", f))
            return NOT_DONE_YET
        rest = match.group(kind).decode()
        if kind == "playlist" and "/" in rest:
            d = Deferred.fromCoroutine(self._variant(request, recording_id, rest.split("/")[0]))
            d.addErrback(lambda f: _log.failure("A recording playlist failed", f))
            return NOT_DONE_YET
        target = str(Path(self._library.folder(recording_id), rest))
        return _Typed(target, _TYPES[kind], _CACHE[kind]).render_GET(request)

    async def _variant(self, request: Any, recording_id: str, variant: str) -> None:
        """A variant playlist goes through the library: its segments may be in S3."""
        gone: list[object] = []
        request.notifyFinish().addErrback(gone.append)
        body = await self._library.variant_playlist(recording_id, variant)
        if gone:
            return
        if body is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            body = b"No such playlist.\n"
        else:
            request.setHeader(b"content-type", _TYPES["playlist"])
            request.setHeader(b"cache-control", _CACHE["playlist"])
            request.setHeader(b"access-control-allow-origin", b"*")
        request.write(body)
        request.finish()

    async def _download(self, request: Any, recording_id: str) -> None:
        """The whole recording as MP4: the file once made (ranges answered), else the
        run making it, followed as it grows (no length, no ranges). A recording still
        going on has no MP4 yet: 409."""
        gone: list[object] = []
        request.notifyFinish().addErrback(gone.append)
        meta = await self._library.get(recording_id)
        if gone:
            return
        if meta is None or meta.live:
            _json_error(request, *(_LIVE if meta else _UNKNOWN))
            return
        try:
            found = await self._library.mp4(meta)
        except Exception:
            _log.failure("Could not make the MP4 of recording {id}", id=recording_id)
            if not gone:
                _json_error(request, 500, "could not make the MP4")
            return
        if gone:
            return
        name = f'attachment; filename="recording-{recording_id}.mp4"'
        request.setHeader(b"content-disposition", name.encode())
        if isinstance(found, str):
            result = _Typed(found, _TYPES["download"], _CACHE["download"]).render_GET(request)
            if result is not NOT_DONE_YET:
                request.write(result)
                request.finish()
            return
        request.setHeader(b"content-type", _TYPES["download"])
        request.setHeader(b"cache-control", _CACHE["download"])
        request.setHeader(b"access-control-allow-origin", b"*")
        if request.method == b"HEAD":
            request.finish()
            return
        await _follow(request, found.tail(), gone)


def _json_error(request: Any, code: int, message: str) -> None:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-cache")
    request.write(json.dumps({"success": False, "message": message}).encode())
    request.finish()


@implementer(IPushProducer)
class _Pump:
    """Flow control of one followed download: the transport pauses and resumes it."""

    def __init__(self) -> None:
        self._paused: Deferred | None = None
        self.stopped = False

    def pauseProducing(self) -> None:
        if self._paused is None:
            self._paused = Deferred()

    def resumeProducing(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.callback(None)

    def stopProducing(self) -> None:
        self.stopped = True
        self.resumeProducing()

    async def ready(self) -> None:
        if self._paused is not None:
            await self._paused


async def _follow(request: Any, tail: Any, gone: list) -> None:
    """Send an MP4 being made as it grows. Should making it fail before the first byte,
    the answer is a 500; after, the connection is cut before the end of the chunked
    body, so no client takes a part for the whole."""
    pump = _Pump()
    request.registerProducer(pump, True)
    sent = False
    try:
        while not (pump.stopped or gone):
            await pump.ready()
            data = await tail.read()
            if not data or pump.stopped or gone:
                break
            request.write(data)
            sent = True
    except Exception:
        _log.failure("A recording download failed while its MP4 was made")
        request.unregisterProducer()
        if gone:
            return
        if sent:
            request.channel.transport.abortConnection()
        else:
            request.responseHeaders.removeHeader(b"content-disposition")
            _json_error(request, 500, "could not make the MP4")
        return
    finally:
        await tail.close()
    request.unregisterProducer()
    if not gone:
        request.finish()


class _SlashRoot(Resource):
    """A Klein app mounted at a name: the bare name (``/api/recordings``) is its root
    ``/``, so wrong methods there are a 405 like anywhere else (not a redirect or 404)."""

    isLeaf = True

    def __init__(self, app: Resource):
        super().__init__()
        self._app = app

    def render(self, request: Any) -> Any:
        if not request.postpath:
            request.postpath = [b""]
        return self._app.render(request)


def api_root(app: Resource) -> Resource:
    return _SlashRoot(app)


class _WithChild(Resource):
    """A Klein app's resource with one more child: that name goes to ``child``, every
    other path to the app, whole (as ``ApiRoot`` hands paths to the public app)."""

    def __init__(self, app: Resource, name: bytes, child: Resource):
        super().__init__()
        self._app = app
        self.putChild(name, _SlashRoot(child))

    def getChild(self, path: bytes, request: Any) -> Resource:
        request.prepath.pop()
        request.postpath.insert(0, path)
        return self._app

    def render(self, request: Any) -> Any:
        request.postpath.insert(0, b"")
        return self._app.render(request)


def with_child(app: Resource, name: bytes, child: Resource) -> Resource:
    return _WithChild(app, name, child)
