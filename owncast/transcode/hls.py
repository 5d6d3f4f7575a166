"""``/hls/``: the transcoder's output directory over HTTP, and nothing else from it.

Only these names are served (anything else is 404, so no path can leave the directory)::

    stream.m3u8, <n>/stream.m3u8    application/vnd.apple.mpegurl, never cached
    <n>/stream-<k>.ts               video/mp2t, cached for a year (names are never reused)
    thumbnail.jpg                   image/jpeg, cached for 10 seconds
    preview.gif                     image/gif, cached for 10 seconds

Playlists are small and rewritten every segment, so they are read whole off the reactor
thread and sent without ``Last-Modified`` (a one-second mtime would let a conditional
request get a stale 304). Segments and the images go through ``twisted.web.static.File``,
which streams them and answers range requests. Every GET carries
``Access-Control-Allow-Origin: *`` so players on other origins can load the stream.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import NoResource, Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.static import File

from owncast.transcode.output import DISCONTINUITIES, discontinuity_sequence

_log = Logger()

_NAME = re.compile(
    rb"(?P<playlist>(?:[0-9]{1,2}/)?stream\.m3u8)"
    rb"|(?P<segment>[0-9]{1,2}/stream-[0-9]{1,19}\.ts)"
    rb"|(?P<thumbnail>thumbnail\.jpg)"
    rb"|(?P<preview>preview\.gif)"
)
PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
PLAYLIST_CACHE = b"no-cache, no-store"
SEGMENT_CACHE = b"public, max-age=31536000, immutable"
THUMBNAIL_CACHE = b"public, max-age=10"
_MAX_PLAYLIST = 1024 * 1024


def read_playlist(path: str) -> bytes | None:
    """Blocking: the playlist's bytes, or None when it is not there (yet). A variant
    playlist gets the discontinuity sequence its appended runs need."""
    try:
        with open(path, "rb") as f:
            body = f.read(_MAX_PLAYLIST)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        with open(os.path.join(os.path.dirname(path), DISCONTINUITIES), "rb") as f:
            joins = f.read(64 * 1024)
    except OSError:
        return body
    return discontinuity_sequence(body, joins)


class HlsResource(Resource):
    """Serves ``directory`` under ``/hls/``.

    ``blocking(fn, *args) -> Deferred`` runs file reads off the reactor thread (the
    daemon's ``ctx.blocking``). ``on_playlist(request)``, when given, is called for every
    playlist served, so viewers watching over HLS can be counted; its errors are logged.
    """

    isLeaf = True

    def __init__(
        self,
        directory: str | os.PathLike,
        blocking: Callable[..., Deferred],
        on_playlist: Callable[[Any], None] | None = None,
    ):
        super().__init__()
        self.directory = os.fspath(directory)
        self._blocking = blocking
        self._on_playlist = on_playlist

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"access-control-allow-origin", b"*")
        name = b"/".join(request.postpath)
        match = _NAME.fullmatch(name)
        if match is None:
            return self._not_found(request)
        path = os.path.join(self.directory, *name.decode("ascii").split("/"))
        if match.group("playlist"):
            Deferred.fromCoroutine(self._send_playlist(request, path))
            return NOT_DONE_YET
        if match.group("segment"):
            kind, cache = "video/mp2t", SEGMENT_CACHE
        elif match.group("preview"):
            kind, cache = "image/gif", THUMBNAIL_CACHE
        else:
            kind, cache = "image/jpeg", THUMBNAIL_CACHE
        resource = File(path)
        if not resource.isfile():
            return self._not_found(request)
        resource.type, resource.encoding = kind, None
        request.setHeader(b"cache-control", cache)
        return resource.render_GET(request)

    render_HEAD = render_GET

    def _not_found(self, request: Any) -> bytes:
        request.setHeader(b"cache-control", b"no-cache")
        return NoResource("No such file.").render(request)

    async def _send_playlist(self, request: Any, path: str) -> None:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        try:
            body = await self._blocking(read_playlist, path)
        except Exception:
            _log.failure("Could not read the playlist {path}", path=path)
            if not gone:
                request.setResponseCode(500)
                request.setHeader(b"cache-control", b"no-cache")
                request.finish()
            return
        if gone:
            return
        if body is None:
            request.write(self._not_found(request))
            request.finish()
            return
        if self._on_playlist is not None:
            try:
                self._on_playlist(request)
            except Exception:
                _log.failure("The playlist hook failed")
        request.setHeader(b"content-type", PLAYLIST_TYPE)
        request.setHeader(b"cache-control", PLAYLIST_CACHE)
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()
