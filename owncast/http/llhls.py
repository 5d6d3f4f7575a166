"""LL-HLS over HTTP: the playlists and media of ``owncast.llhls`` renditions, from memory.

Names served (anything else is 404)::

    stream.m3u8                     the master playlist
    <n>/stream.m3u8                 a media playlist; ``_HLS_msn``/``_HLS_part`` block,
                                    ``_HLS_skip=YES`` (or ``v2``) asks for a delta update
    <n>/init<i>.mp4                 an fMP4 initialization section (one per ffmpeg run)
    <n>/seg<m>.m4s                  a complete segment
    <n>/part<k>.m4s                 a partial segment; the next one (the preload hint)
                                    is held until it lands

A blocking request is a Deferred on the rendition, fired when the awaited part lands, and
cancelled when the client goes away or after ``3 x`` the target duration (then 503, as the
spec allows). Cache rules are the ones an LL-HLS CDN expects: a blocking playlist
response names a unique position, so it may be kept briefly; a plain playlist is never
cached; parts, segments and the init section never change once served.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python import log
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from owncast.llhls.output import LlOutput, master_attributes
from owncast.llhls.rendition import Rendition

PLAYLIST = b"application/vnd.apple.mpegurl"
MP4 = b"video/mp4"
IMMUTABLE = b"public, max-age=31536000, immutable"
_MEDIA = re.compile(rb"^(init(\d{0,6})\.mp4|seg(\d{1,12})\.m4s|part(\d{1,12})\.m4s|stream\.m3u8)$")
#: Rendered playlists kept (a few positions of each rendition, full and delta).
_KEPT = 64


def media_match(name: bytes) -> re.Match[bytes] | None:
    """Groups: 1 the name, 2 an init number, 3 a segment number, 4 a part number."""
    return _MEDIA.match(name)


def master_playlist(variants: Sequence[dict[str, Any]]) -> str:
    """The master playlist: one ``EXT-X-STREAM-INF`` per rendition (``bandwidth`` in
    bits/s, optional ``resolution`` ``WxH`` and ``codecs``)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for n, v in enumerate(variants):
        attrs = [f"BANDWIDTH={int(v['bandwidth'])}"]
        if v.get("resolution"):
            attrs.append(f"RESOLUTION={v['resolution']}")
        if v.get("codecs"):
            attrs.append(f'CODECS="{v["codecs"]}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), f"{n}/stream.m3u8"]
    return "\n".join(lines) + "\n"


def _int_arg(request: Any, name: bytes) -> int | None:
    values = request.args.get(name)
    if not values:
        return None
    if not values[0].isdigit() or len(values[0]) > 12:
        raise ValueError(name.decode())
    return int(values[0])


class LlHlsResource(Resource):
    """``/<root>/``: ``renditions()`` gives the live renditions (empty while offline) and
    ``variants()`` their master-playlist attributes."""

    isLeaf = True

    def __init__(
        self,
        clock: IReactorTime,
        renditions: Callable[[], Sequence[Rendition]],
        variants: Callable[[], Sequence[dict[str, Any]]],
        on_playlist: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.renditions = renditions
        self.variants = variants
        self.on_playlist = on_playlist
        self._rendered: dict[tuple, tuple[Rendition, bytes]] = {}
        self._master: tuple[Any, bytes] | None = None

    def playlist_bytes(self, renditions: Sequence[Rendition], n: int, skip: bool) -> bytes:
        """Rendition ``n``'s media playlist now, rendered once per version however many
        ask (the fast path, ``owncast.http.llfast``, shares it too): the key is its
        ``version`` and the others' (the rendition reports say where they are)."""
        r = renditions[n]
        others = tuple((id(o), o.version) for o in renditions if o is not r)
        key = (id(r), n, skip, r.version, others)
        cached = self._rendered.get(key)
        if cached is not None and cached[0] is r:
            return cached[1]
        reports = [(f"../{i}/stream.m3u8", o) for i, o in enumerate(renditions) if i != n]
        body = r.playlist(skip=skip, reports=reports).encode()
        if len(self._rendered) >= _KEPT:
            self._rendered.clear()
        self._rendered[key] = (r, body)
        return body

    def master_bytes(self) -> bytes:
        variants = self.variants()
        if self._master is None or self._master[0] != variants:
            self._master = (list(variants), master_playlist(variants).encode())
        return self._master[1]

    def render_GET(self, request: Any) -> Any:
        path = request.postpath
        renditions = self.renditions()
        request.setHeader(b"access-control-allow-origin", b"*")
        if path == [b"stream.m3u8"] and renditions:
            request.setHeader(b"content-type", PLAYLIST)
            request.setHeader(b"cache-control", b"no-cache")
            return self.master_bytes()
        if len(path) != 2 or not path[0].isdigit() or int(path[0]) >= len(renditions):
            return self._status(request, 404)
        n = int(path[0])
        match = media_match(path[1])
        if match is None:
            return self._status(request, 404)
        rendition = renditions[n]
        if match.group(1) == b"stream.m3u8":
            return self._playlist(request, n, renditions)
        if match.group(2) is not None:  # init<n>.mp4
            init = rendition.inits.get(int(match.group(2) or 0))
            return self._media(request, init)
        if match.group(3) is not None:
            segment = rendition.segment(int(match.group(3)))
            return self._media(request, segment.data if segment else None)
        pending = rendition.wait_part(int(match.group(4)))
        if pending is None:
            return self._status(request, 404)
        self._hold(request, pending, lambda part: self._media(request, part.data, True))
        return NOT_DONE_YET

    def _playlist(self, request: Any, n: int, renditions: Sequence[Rendition]) -> Any:
        rendition = renditions[n]
        if self.on_playlist is not None:
            self.on_playlist(request)
        try:
            msn = _int_arg(request, b"_HLS_msn")
            part = _int_arg(request, b"_HLS_part")
        except ValueError as e:
            return self._status(request, 400, f"bad {e}")
        if part is not None and msn is None:
            return self._status(request, 400, "_HLS_part without _HLS_msn")
        skip = request.args.get(b"_HLS_skip", [b""])[0] in (b"YES", b"v2")

        def answer(_: object = None) -> Any:
            request.setHeader(b"content-type", PLAYLIST)
            # A blocking response names one position: a CDN may keep it a moment.
            held = b"public, max-age=%d" % rendition.target_duration
            request.setHeader(b"cache-control", held if msn is not None else b"no-cache")
            return self.playlist_bytes(renditions, n, skip)

        if msn is None:
            return answer()
        if msn > rendition.open.msn + 2:
            return self._status(request, 400, "_HLS_msn is too far ahead")
        self._hold(request, rendition.wait(msn, part), answer)
        return NOT_DONE_YET

    def _hold(self, request: Any, pending: Deferred, respond: Callable[[Any], Any]) -> None:
        """Answer ``request`` with ``respond(result)`` once ``pending`` fires; 503 after three
        target durations; cancel when the client goes away."""
        renditions = self.renditions()
        limit = 3 * max((r.target_duration for r in renditions), default=1)
        timer = self.clock.callLater(limit, pending.cancel)
        gone: list[bool] = []

        def lost(_: object) -> None:
            gone.append(True)
            pending.cancel()

        request.notifyFinish().addErrback(lost)

        def done(result: Any) -> None:
            if timer.active():
                timer.cancel()
            if gone or request.finished:
                return
            body = respond(result)
            if isinstance(body, bytes):
                request.setHeader(b"content-length", b"%d" % len(body))
                request.write(body)
                request.finish()

        def failed(failure: Any) -> None:
            if timer.active():
                timer.cancel()
            if gone or request.finished:
                return
            if not failure.check(CancelledError, KeyError):
                log.err(failure, "LL-HLS: answering a held request")
            body = self._status(request, 503 if failure.check(CancelledError) else 404)
            request.setHeader(b"content-length", b"%d" % len(body))
            request.write(body)
            request.finish()

        pending.addCallbacks(done, failed)

    def _media(self, request: Any, data: bytes | None, direct: bool = False) -> Any:
        if data is None:
            return self._status(request, 404)
        request.setHeader(b"content-type", MP4)
        request.setHeader(b"cache-control", IMMUTABLE)
        if direct:
            request.setHeader(b"content-length", b"%d" % len(data))
            request.write(data)
            request.finish()
            return None
        return data

    @staticmethod
    def _status(request: Any, code: int, message: str = "") -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        return (message or {400: "bad request", 404: "not found", 503: "try again"}[code]).encode()


class HlsSwitch(Resource):
    """``/hls/``: the LL-HLS renditions while there are some (the broadcast runs, or last
    ran, in low-latency mode), else the transcoder's files (``legacy``); the thumbnail
    and preview are files either way."""

    FILES = (b"thumbnail.jpg", b"preview.gif")

    def __init__(self, output: LlOutput, legacy: Resource, ll: LlHlsResource) -> None:
        super().__init__()
        self.output = output
        self.legacy = legacy
        self.ll = ll

    def getChildWithDefault(self, path: bytes, request: Any) -> Resource:
        # Both are leaves that read the whole path below /hls/ themselves.
        request.postpath.insert(0, request.prepath.pop())
        return self.ll if self.output.live and path not in self.FILES else self.legacy

    def render(self, request: Any) -> Any:
        return self.legacy.render(request)


def hls_switch(
    clock: IReactorTime, output: LlOutput, legacy: Resource, on_playlist: Callable[[Any], None]
) -> HlsSwitch:
    """``/hls/`` for the broadcast whose low-latency renditions are ``output``'s, in
    either mode."""
    ll = LlHlsResource(
        clock, lambda: output.renditions, lambda: master_attributes(output.variants), on_playlist
    )
    return HlsSwitch(output, legacy, ll)
