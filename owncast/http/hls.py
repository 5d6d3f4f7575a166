"""``/hls/``: the transcoder's output directory over HTTP, and nothing else from it.

Only these names are served (anything else is 404, so no path can leave the directory)::

    stream.m3u8, <n>/stream.m3u8    application/vnd.apple.mpegurl, never cached
    <n>/stream-<k>.ts               video/mp2t, cached for a year (names are never reused)
    thumbnail.jpg                   image/jpeg, cached for 10 seconds
    preview.gif                     image/gif, cached for 10 seconds

Playlists and recent segments are served from memory; files are only ever read off the
reactor thread (``blocking``), and concurrent requests for a file that is not in memory
share one read.

* **Playlists** are rewritten every segment (ffmpeg writes a temporary file and renames
  it), so a kept copy is only served while the file is still the one it was read from:
  every request stats the playlist (on the reactor thread: one syscall answered from
  the kernel's inode cache, a few microseconds; the old code stat-ed and opened every
  segment there) and compares device, inode, size and mtime with those of the file the
  copy was read from (``fstat`` of the descriptor it was read through). There is no
  TTL: a request after ffmpeg rewrote a playlist (or removed it: a 404 is remembered the
  same way) gets the new one; only a request arriving while the playlist is being read
  shares that read, so it may get the version the read opened a moment before. The
  ``discontinuities`` file beside it is read with it; it only ever gains a number above
  the listed segments before ffmpeg writes the playlist again, so it cannot change the
  served playlist on its own. (A TTL would let a player, or a test, read a playlist up
  to the TTL old, e.g. without the ``EXT-X-ENDLIST`` ffmpeg wrote as it exited; Twisted's
  ``INotify`` closes itself when any watched directory is deleted, which every new
  broadcast does to the variant directories.) Playlists are sent without
  ``Last-Modified`` (a one-second mtime would let a conditional request get a stale
  304), with the ``EXT-X-DISCONTINUITY-SEQUENCE`` that ``read_playlist`` adds.
* **Segments** never change once they have their final name (ffmpeg writes ``.tmp`` and
  renames), and names are never reused (numbers start at the broadcast's Unix time and
  grow by one a segment), so their bytes are kept by path in an LRU bounded by
  ``segment_cache_bytes`` in total (64 MiB by default), together with the file's mtime for
  ``Last-Modified`` / ``If-Modified-Since``. A segment stays servable from memory after
  ffmpeg has deleted it from the window, which only helps a late player. Segments larger
  than ``max_cached_segment`` (16 MiB), and range requests for segments not in memory,
  go through ``twisted.web.static.File``, which streams them; single ranges of a segment
  in memory are answered from memory, anything fancier (several ranges, an unsatisfiable
  one) by ``File``. Large bodies are handed to the transport without a copy
  (``_send_large``).
* **Images** change every few seconds and are fetched rarely: always ``File``.

Every GET carries ``Access-Control-Allow-Origin: *`` so players on other origins can load
the stream.
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import NoResource, Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.static import File

from owncast.runtime.compat import flush_queue
from owncast.transcode.output import DISCONTINUITIES, discontinuity_sequence

_log = Logger()

_NAME = re.compile(
    rb"(?P<playlist>(?:[0-9]{1,2}/)?stream\.m3u8)"
    rb"|(?P<segment>[0-9]{1,2}/stream-[0-9]{1,19}\.ts)"
    rb"|(?P<fmp4>[0-9]{1,2}/(?:seg[0-9]{1,19}\.m4s|init[0-9]{1,9}\.mp4))"
    rb"|(?P<thumbnail>thumbnail\.jpg)"
    rb"|(?P<preview>preview\.gif)"
)
PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
PLAYLIST_CACHE = b"no-cache, no-store"
SEGMENT_TYPE = b"video/mp2t"
SEGMENT_CACHE = b"public, max-age=31536000, immutable"
FMP4_TYPE = b"video/mp4"
THUMBNAIL_CACHE = b"public, max-age=10"
_PLAYLIST_HEADERS = b"Content-Type: %s\r\nCache-Control: %s\r\n" % (PLAYLIST_TYPE, PLAYLIST_CACHE)
_SEGMENT_HEADERS = b"Content-Type: %s\r\nCache-Control: %s\r\nAccept-Ranges: bytes\r\n" % (
    SEGMENT_TYPE,
    SEGMENT_CACHE,
)
_MAX_PLAYLIST = 1024 * 1024

#: Total bytes of segments kept in memory (least recently used first out).
SEGMENT_CACHE_BYTES = 64 * 1024 * 1024
#: Segments larger than this are streamed from disk, never kept in memory.
MAX_CACHED_SEGMENT = 16 * 1024 * 1024
#: Bodies from memory at least this large are sent with ``_send_large``.
LARGE_BODY = 128 * 1024


#: What identifies one version of a file: device, inode, size, mtime in ns.
FileKey = tuple[int, int, int, int]


def file_key(stat: os.stat_result) -> FileKey:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class Playlist(NamedTuple):
    body: bytes | None  # None: not there (yet)
    key: FileKey | None  # the file the body was read from; None when it was not there


def read_playlist_keyed(path: str) -> Playlist:
    """Blocking: the playlist's bytes (None when it is not there) and which version of the
    file they are. A variant playlist gets the discontinuity sequence its appended runs
    need."""
    try:
        with open(path, "rb") as f:
            key = file_key(os.fstat(f.fileno()))
            body = f.read(_MAX_PLAYLIST)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return Playlist(None, None)
    try:
        with open(os.path.join(os.path.dirname(path), DISCONTINUITIES), "rb") as f:
            joins = f.read(64 * 1024)
    except OSError:
        return Playlist(body, key)
    return Playlist(discontinuity_sequence(body, joins), key)


def read_playlist(path: str) -> bytes | None:
    """Blocking: the playlist's bytes, or None when it is not there (yet). A variant
    playlist gets the discontinuity sequence its appended runs need."""
    return read_playlist_keyed(path).body


def _current_key(path: str) -> FileKey | None | bool:
    """The key of the file at ``path`` now, None when there is none, False when that
    cannot be told (then the file is read again)."""
    try:
        return file_key(os.stat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return False


class Segment(NamedTuple):
    body: bytes
    mtime: float


#: ``read_segment``'s answer for a file over the size limit.
TOO_BIG = "too big"


def read_segment(path: str, limit: int) -> Segment | str | None:
    """Blocking: the segment's bytes and mtime; None when it is not there, ``TOO_BIG``
    when it is larger than ``limit`` bytes."""
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            if stat.st_size > limit:
                return TOO_BIG
            body = f.read(limit + 1)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    if len(body) > limit:
        return TOO_BIG
    return Segment(body, stat.st_mtime)


class ByteLru:
    """``key -> Segment``, least recently used dropped first once the bodies together
    exceed ``max_bytes``. Reactor thread only."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, Segment] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> Segment | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, item: Segment) -> None:
        size = len(item.body)
        if size > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old.body)
        self._items[key] = item
        self.size += size
        while self.size > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.size -= len(dropped.body)


def _position(digits: bytes) -> int:
    """A range bound's digits as a number, capped at 10**18 (past any body): ``int``
    refuses more than 4300 digits, and a client may send them."""
    digits = digits.lstrip(b"0")
    return int(digits or b"0") if len(digits) <= 18 else 10**18


def single_range(header: bytes, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte positions for a satisfiable single ``bytes=`` range over
    ``size`` bytes, or None for anything else (left to ``File``)."""
    unit, equals, spec = header.partition(b"=")
    if not equals or unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    start, dash, end = spec.strip().partition(b"-")
    start, end = start.strip(), end.strip()
    if not dash or (start and not start.isdigit()) or (end and not end.isdigit()):
        return None
    if not start:  # the last N bytes
        if not end or _position(end) == 0:
            return None
        first, last = max(size - _position(end), 0), size - 1
    else:
        first = _position(start)
        last = min(_position(end), size - 1) if end else size - 1
        if end and _position(end) < first:
            return None
    if first >= size:
        return None
    return first, last


class PlaylistCache(dict):
    """Playlists of one HLS directory as last read, by path (at most 101: the names are
    fixed). ``forget`` is handed to whatever changes how playlists are rewritten (the
    segment publisher), so it can exist before the resource that serves them."""

    def __init__(self, directory: str | os.PathLike):
        super().__init__()
        self.directory = os.fspath(directory)

    def forget(self, name: bytes | None) -> None:
        """Read the playlist ``name`` (``b"0/stream.m3u8"``; None: every playlist) again
        at its next request, because what ``rewrite`` makes of it changed."""
        if name is None:
            self.clear()
        else:
            self.pop(os.path.join(self.directory, *name.decode().split("/")), None)


class HlsResource(Resource):
    """Serves ``directory`` under ``/hls/``.

    ``blocking(fn, *args) -> Deferred`` runs file reads off the reactor thread (the
    daemon's ``ctx.blocking``). ``on_playlist(request)``, when given, is called for every
    playlist served, so viewers watching over HLS can be counted; its errors are logged.
    ``rewrite(name, body) -> body``, when given, rewrites variant playlists as they are
    served (segments stored elsewhere: ``SegmentPublisher.rewrite``); the publisher then
    tells ``playlists`` (shared with it) when to read a playlist again.
    """

    isLeaf = True

    def __init__(
        self,
        directory: str | os.PathLike,
        blocking: Callable[..., Deferred],
        on_playlist: Callable[[Any], None] | None = None,
        *,
        rewrite: Callable[[bytes, bytes], bytes] | None = None,
        playlists: PlaylistCache | None = None,
        read_playlist: Callable[[str], Playlist] = read_playlist_keyed,
        segment_cache_bytes: int = SEGMENT_CACHE_BYTES,
        max_cached_segment: int = MAX_CACHED_SEGMENT,
    ):
        super().__init__()
        self.directory = os.fspath(directory)
        self._blocking = blocking
        self._on_playlist = on_playlist
        self.max_cached_segment = min(max_cached_segment, segment_cache_bytes)
        #: path -> the playlist as last read
        self.playlists: PlaylistCache = (
            playlists if playlists is not None else PlaylistCache(self.directory)
        )
        self.segments = ByteLru(segment_cache_bytes)
        #: path -> Deferreds waiting for the read in flight
        self._loading: dict[str, list[Deferred]] = {}
        #: name -> (kind, path) for ``from_memory``
        self._names: dict[bytes, tuple[str | None, str]] = {}
        #: ``rewrite(name, body) -> body`` for variant playlists (``SegmentPublisher``)
        self.rewrite = rewrite
        #: blocking: a playlist as served (``diskfull.CompleteSegments.read`` leaves out
        #: segments a full disk cut short)
        self.read_playlist = read_playlist

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"access-control-allow-origin", b"*")
        name = b"/".join(request.postpath)
        match = _NAME.fullmatch(name)
        if match is None:
            return self._not_found(request)
        path = os.path.join(self.directory, *name.decode("ascii").split("/"))
        kind = match.lastgroup
        if kind == "playlist":
            cached = self.playlists.get(path)
            if (
                cached is not None
                and path not in self._loading
                and cached.key == _current_key(path)
            ):
                return self._playlist_response(request, cached.body)
            Deferred.fromCoroutine(self._playlist_miss(request, path, name))
            return NOT_DONE_YET
        if kind == "segment":
            segment = self.segments.get(path)
            if segment is not None:
                return self._segment_response(request, segment, path)
            if request.getHeader(b"range") is not None:
                return self._file(request, path, SEGMENT_TYPE, SEGMENT_CACHE)
            Deferred.fromCoroutine(self._segment_miss(request, path))
            return NOT_DONE_YET
        if kind == "fmp4":  # a low-latency broadcast's files, once it is no longer live
            return self._file(request, path, FMP4_TYPE, SEGMENT_CACHE)
        if kind == "preview":
            return self._file(request, path, b"image/gif", THUMBNAIL_CACHE)
        return self._file(request, path, b"image/jpeg", THUMBNAIL_CACHE)

    render_HEAD = render_GET

    def from_memory(self, name: bytes) -> tuple[bytes, bytes, bool] | None:
        """For the HTTP fast path (``owncast.http.fastpath``): ``(headers, body, is_playlist)``
        for a plain ``GET /hls/<name>`` that memory answers exactly as ``render_GET``
        would, or None (then ``render_GET`` answers, and fills memory). ``headers`` are
        this file's own header lines (type, caching, validators), each ending CRLF."""
        known = self._names.get(name)
        if known is None:
            match = _NAME.fullmatch(name)
            if match is None:
                return None
            if len(self._names) >= 4096:  # segment names come and go
                self._names.clear()
            known = self._names[name] = (
                match.lastgroup,
                os.path.join(self.directory, *name.decode("ascii").split("/")),
            )
        kind, path = known
        if kind == "playlist":
            cached = self.playlists.get(path)
            if (
                cached is None
                or cached.body is None
                or path in self._loading
                or cached.key != _current_key(path)
            ):
                return None
            return _PLAYLIST_HEADERS, cached.body, True
        if kind == "segment":
            segment = self.segments.get(path)
            if segment is None:
                return None
            modified = http.datetimeToString(math.ceil(segment.mtime))
            return _SEGMENT_HEADERS + b"Last-Modified: %s\r\n" % modified, segment.body, False
        return None

    # -- reading, once per file however many ask at the same time ------------------------

    def _load(self, path: str, store: Callable[[Any], None], fn: Callable, *args: Any) -> Deferred:
        """``fn(*args)`` off the reactor thread, unless a read of ``path`` is in flight:
        then wait for that one. ``store(result)`` runs once, before anyone is woken."""
        waiter: Deferred = Deferred()
        waiting = self._loading.get(path)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        self._loading[path] = [waiter]

        def done(result: Any) -> None:
            waiters = self._loading.pop(path)
            if not isinstance(result, Failure):
                try:
                    store(result)
                except Exception:
                    _log.failure("Could not keep {path} in memory", path=path)
            for d in waiters:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(result)

        try:
            self._blocking(fn, *args).addBoth(done)
        except Exception:
            done(Failure())
        return waiter

    async def _read(
        self,
        request: Any,
        path: str,
        what: str,
        fn: Callable,
        *args: Any,
        store: Callable[[Any], None],
    ) -> tuple[bool, Any]:
        """(still wanted, result) of a shared read; answers 500 itself when it fails."""
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        try:
            result = await self._load(path, store, fn, *args)
        except Exception:
            _log.failure("Could not read the {what} {path}", what=what, path=path)
            if not gone:
                request.setResponseCode(500)
                request.setHeader(b"cache-control", b"no-cache")
                request.finish()
            return False, None
        return not gone, result

    # -- playlists -----------------------------------------------------------------------

    async def _playlist_miss(self, request: Any, path: str, name: bytes) -> None:
        def store(playlist: Playlist) -> None:
            self.playlists[path] = Playlist(self._rewritten(name, playlist.body), playlist.key)

        wanted, playlist = await self._read(
            request, path, "playlist", self.read_playlist, path, store=store
        )
        if wanted:
            body = self._rewritten(name, playlist.body)
            _finish(request, self._playlist_response(request, body))

    def _rewritten(self, name: bytes, body: bytes | None) -> bytes | None:
        if body is None or self.rewrite is None or b"/" not in name:
            return body
        try:
            return self.rewrite(name, body)
        except Exception:
            _log.failure("Could not rewrite the playlist {name}", name=name)
            return body

    def forget(self, name: bytes | None) -> None:
        """Read the playlist ``name`` again at its next request (``PlaylistCache.forget``)."""
        self.playlists.forget(name)

    def _playlist_response(self, request: Any, body: bytes | None) -> bytes:
        if body is None:
            return self._not_found(request)
        if self._on_playlist is not None:
            try:
                self._on_playlist(request)
            except Exception:
                _log.failure("The playlist hook failed")
        request.setHeader(b"content-type", PLAYLIST_TYPE)
        request.setHeader(b"cache-control", PLAYLIST_CACHE)
        request.setHeader(b"content-length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body

    # -- segments ------------------------------------------------------------------------

    async def _segment_miss(self, request: Any, path: str) -> None:
        def store(result: Segment | str | None) -> None:
            if isinstance(result, Segment):
                self.segments.put(path, result)

        wanted, result = await self._read(
            request, path, "segment", read_segment, path, self.max_cached_segment, store=store
        )
        if not wanted:
            return
        if result is None:
            body = self._not_found(request)
        elif isinstance(result, Segment):
            body = self._segment_response(request, result, path)
        else:
            body = self._file(request, path, SEGMENT_TYPE, SEGMENT_CACHE)
        if body is not NOT_DONE_YET:
            _finish(request, body)

    def _segment_response(self, request: Any, segment: Segment, path: str) -> Any:
        """The headers ``File`` would send (type, length, ``Accept-Ranges``,
        ``Last-Modified``, 304 to a matching ``If-Modified-Since``), from memory."""
        byte_range = request.getHeader(b"range")
        span = None
        if byte_range is not None:
            span = single_range(byte_range, len(segment.body))
            if span is None:
                return self._file(request, path, SEGMENT_TYPE, SEGMENT_CACHE)
        request.setHeader(b"cache-control", SEGMENT_CACHE)
        request.setHeader(b"accept-ranges", b"bytes")
        if request.setLastModified(segment.mtime) is http.CACHED:
            return b""
        request.setHeader(b"content-type", SEGMENT_TYPE)
        body = segment.body
        if span is not None:
            first, last = span
            request.setResponseCode(http.PARTIAL_CONTENT)
            request.setHeader(b"content-range", b"bytes %d-%d/%d" % (first, last, len(body)))
            body = body[first : last + 1]
        request.setHeader(b"content-length", b"%d" % len(body))
        if request.method == b"HEAD":
            return b""
        if len(body) >= LARGE_BODY:
            return _send_large(request, body)
        return body

    # -- everything else -----------------------------------------------------------------

    def _file(self, request: Any, path: str, kind: bytes, cache: bytes) -> Any:
        resource = File(path)
        if not resource.isfile():
            return self._not_found(request)
        resource.type, resource.encoding = kind.decode("ascii"), None
        request.setHeader(b"cache-control", cache)
        return resource.render_GET(request)

    def _not_found(self, request: Any) -> bytes:
        request.setHeader(b"cache-control", b"no-cache")
        return NoResource("No such file.").render(request)


def _send_large(request: Any, body: bytes) -> Any:
    """Write a large ``body`` after the status line and headers without the transport
    copying it (see ``send_ahead``)."""
    request.write(b"")  # the status line and headers
    send_ahead(getattr(getattr(request, "channel", None), "transport", None))
    request.write(body)
    request.finish()
    return NOT_DONE_YET


def send_ahead(transport: Any) -> None:
    """Hand what a transport has queued to its socket now, so a large body written next
    is queued alone.

    A TCP transport queues writes in a list and joins that list into one buffer when it
    runs low (``FileDescriptor.doWrite``): the status line, the headers and a 1 MB body
    queued together cost a 1 MB copy (and its page faults) per response, about as much as
    the send itself. Queued alone, the body *is* the join (``b"".join`` of one bytes object
    returns it). So the headers go to the socket first, with the transport's own
    ``doWrite`` (what the reactor calls when the socket is writable; if the socket takes
    only part of them, the body is copied as before, nothing worse). Other transports
    (TLS, test doubles) are left alone.
    """
    try:
        flush_queue(transport)  # an error is met again, and handled, at the next write
    except Exception:
        _log.failure("Could not send the headers ahead of the body")


def _finish(request: Any, body: bytes) -> None:
    """What ``Request.render`` does with a body returned by a resource, done later."""
    request.write(body)
    request.finish()
