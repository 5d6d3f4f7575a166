"""Copies finished segments to segment storage (S3) and points players at the copies.

While the ``s3`` setting is enabled, every ``SCAN_INTERVAL`` the HLS directory is listed
(off the reactor thread) and each finished segment (``<n>/stream-<k>.ts``, or in
low-latency mode ``<n>/seg<k>.m4s``; both are renamed into place, so a listed name is
whole) not yet stored is read and ``put`` under the same key (``hls/<n>/<name>``),
oldest first, a few at a time. Playlists stay on this server: ``rewrite`` turns each
stored segment's line of a variant playlist into the absolute URL of its copy, and
segments not stored yet keep their relative name, so they are served from here until
their upload lands (``HlsResource`` asks again once it has; the LL-HLS playlists ask
``url_of`` for each complete segment, and their parts and initialization sections always
come from here). If storage is slow or down, players just keep fetching from this server; failed
uploads are retried after ``RETRY_AFTER`` seconds. A segment ffmpeg removed from the
local window is deleted from storage ``DELETE_AFTER`` seconds later (late players may
still ask for it), unless ``keeps(key)`` says a recording holds it: then it stays in the
bucket (``retained``), the recording's VOD playlists point at it (``url_of``), and it
goes when the recording does (``remove``). Turning S3 off, or changing its settings,
starts over.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from owncast.http.hls import SEGMENT_CACHE, SEGMENT_TYPE
from owncast.runtime.timers import GuardedTimerService

_log = Logger()

SCAN_INTERVAL = 0.5
RETRY_AFTER = 5.0
DELETE_AFTER = 60.0
CONCURRENCY = 2
#: Failures logged at most this often (seconds); the rest are counted.
LOG_EVERY = 30.0

_VARIANT = re.compile(r"[0-9]{1,2}")
_SEGMENT = re.compile(r"stream-([0-9]{1,19})\.ts|seg([0-9]{1,19})\.m4s")
#: Content types by segment format (MPEG-TS, fMP4).
_TYPES = {".ts": SEGMENT_TYPE.decode(), ".m4s": "video/mp4"}


def list_segments(hls_dir: str) -> list[str]:
    """Blocking: the keys (``hls/<n>/<name>``) of the finished segments on disk, oldest
    first (by segment number, then variant)."""
    found = []
    try:
        variants = [e.name for e in os.scandir(hls_dir) if _VARIANT.fullmatch(e.name)]
    except FileNotFoundError:
        return []
    for variant in variants:
        try:
            entries = list(os.scandir(os.path.join(hls_dir, variant)))
        except FileNotFoundError:
            continue
        for entry in entries:
            match = _SEGMENT.fullmatch(entry.name)
            if match:
                number = int(match.group(1) or match.group(2))
                found.append((number, int(variant), f"hls/{variant}/{entry.name}"))
    return [key for _, _, key in sorted(found)]


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


class SegmentPublisher(GuardedTimerService):
    """``config()`` is the current ``s3`` setting; ``make_storage(config)`` an
    ``ISegmentStorage`` for it; ``changed(name)`` is told a variant playlist (``b"0/
    stream.m3u8"``) must be rewritten again; ``blocking`` runs file work in a thread."""

    name = "segment-publisher"

    def __init__(
        self,
        hls_dir: str | os.PathLike,
        config: Callable[[], dict],
        make_storage: Callable[[dict], Any],
        blocking: Callable[..., Deferred],
        clock: Any,
        changed: Callable[[bytes | None], None],
        keeps: Callable[[str], bool] | None = None,
    ):
        self.hls_dir = os.fspath(hls_dir)
        self._config = config
        self._make_storage = make_storage
        self._blocking = blocking
        super().__init__(SCAN_INTERVAL, self.scan, clock, _log, "A segment storage scan")
        self._changed = changed
        self._keeps = keeps
        #: stored segments a recording holds: never deleted for leaving the live window
        self.retained: set[str] = set()
        #: segments of removed recordings still in the local output: never stored again
        self._removed: set[str] = set()
        self.storage: Any = None
        self._active: dict | None = None
        self.stored: set[str] = set()
        self._in_flight: set[str] = set()
        self._retry_at: dict[str, float] = {}
        self._gone_at: dict[str, float] = {}
        self._generation = 0
        self._logged_at = -1e18
        self.failures = 0

    # -- players -------------------------------------------------------------------------
    def rewrite(self, name: bytes, body: bytes) -> bytes:
        """A variant playlist with the lines of stored segments made absolute URLs."""
        if self.storage is None or not self.stored or b"/" not in name:
            return body
        variant = name.split(b"/", 1)[0].decode("ascii")
        lines = body.split(b"\n")
        for i, line in enumerate(lines):
            if line and not line.startswith(b"#"):
                key = f"hls/{variant}/{line.strip().decode('utf-8', 'replace')}"
                if key in self.stored:
                    lines[i] = self.storage.url(key).encode("utf-8")
        return b"\n".join(lines)

    def url_of(self, key: str) -> str | None:
        """Where players fetch a stored segment (``hls/<n>/<name>``); None: from here."""
        if self.storage is None or (key not in self.stored and key not in self.retained):
            return None
        return self.storage.url(key)

    def remove(self, keys: list[str]) -> None:
        """A recording was removed: delete its segments from storage (all of them, also
        those a previous run uploaded; a missing key deletes fine)."""
        if self.storage is None:
            return
        for key in keys:
            self.retained.discard(key)
            self._removed.add(key)
            if key in self.stored:  # still in the live window: served from here again
                self.stored.discard(key)
                self._changed(key.split("/")[1].encode() + b"/stream.m3u8")
            d = Deferred.fromCoroutine(self._forget(key, self._generation))
            d.addErrback(lambda f: _log.failure("Could not delete a recording's segment", f))

    async def _forget(self, key: str, generation: int) -> None:
        try:
            await self.storage.delete(key)
        except Exception as e:
            if generation == self._generation:
                self._report(f"delete {key}", e)

    # -- the work ------------------------------------------------------------------------
    def _start_over(self, config: dict | None) -> None:
        self._generation += 1
        self._active = config
        self.storage = self._make_storage(config) if config is not None else None
        self.stored.clear()
        self.retained.clear()
        self._removed.clear()
        self._in_flight.clear()
        self._retry_at.clear()
        self._gone_at.clear()
        self._changed(None)  # every playlist

    async def scan(self) -> None:
        config = self._config()
        if not config.get("enabled"):
            if self._active is not None:
                self._start_over(None)
            return
        if config != self._active:
            self._start_over(dict(config))
        generation = self._generation
        on_disk = await self._blocking(list_segments, self.hls_dir)
        if generation != self._generation:
            return
        now = self.now()
        local = set(on_disk)
        self._removed &= local
        for key in [k for k in self.stored if k not in local]:
            if self._keeps is not None and self._keeps(key):
                self.stored.discard(key)
                self.retained.add(key)
                continue
            gone = self._gone_at.setdefault(key, now)
            if now - gone >= DELETE_AFTER and key not in self._in_flight:
                self._in_flight.add(key)
                Deferred.fromCoroutine(self._delete(key, generation))
        for key in on_disk:
            if len(self._in_flight) >= CONCURRENCY:
                break
            if key in self.stored or key in self._in_flight or key in self._removed:
                continue
            if self._retry_at.get(key, 0) > now:
                continue
            self._in_flight.add(key)
            Deferred.fromCoroutine(self._upload(key, generation))

    async def _upload(self, key: str, generation: int) -> None:
        storage = self.storage
        try:
            data = await self._blocking(_read, os.path.join(self.hls_dir, *key.split("/")[1:]))
            if data is not None:
                kind = _TYPES[os.path.splitext(key)[1]]
                await storage.put(key, data, kind, SEGMENT_CACHE.decode())
        except Exception as e:
            if generation == self._generation:
                self._retry_at[key] = self.now() + RETRY_AFTER
                self._report(f"upload {key}", e)
            return
        finally:
            if generation == self._generation:
                self._in_flight.discard(key)
        if generation == self._generation and key in self._removed:
            await self._forget(key, generation)  # its recording went while it uploaded
        elif generation == self._generation and data is not None:
            self.stored.add(key)
            self._changed(key.split("/")[1].encode() + b"/stream.m3u8")

    async def _delete(self, key: str, generation: int) -> None:
        try:
            await self.storage.delete(key)
        except Exception as e:
            if generation == self._generation:
                self._gone_at[key] = self.now() - DELETE_AFTER + RETRY_AFTER
                self._report(f"delete {key}", e)
            return
        finally:
            if generation == self._generation:
                self._in_flight.discard(key)
        if generation == self._generation:
            self.stored.discard(key)
            self._gone_at.pop(key, None)

    def _report(self, what: str, error: Exception) -> None:
        self.failures += 1
        now = self.now()
        if now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            _log.warn(
                "Segment storage: could not {what} ({failures} failures so far): {error}",
                what=what,
                failures=self.failures,
                error=error,
            )
