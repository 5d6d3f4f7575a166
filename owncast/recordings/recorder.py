"""The recorder: keeps every broadcast as a VOD HLS presentation, and applies retention.

It follows the stream state (``on_stream``): ``STREAM_STARTED`` opens a recording of
the kept variants (all, or the passthrough/highest one: the ``recordings`` setting),
``STREAM_STOPPED`` closes it. A reconnect inside the transcoder's grace period is no
stop, so it stays one recording. Every ``SCAN_INTERVAL`` seconds the live playlists are
read and the segments they list are hard-linked into the recording's folder
(``owncast.recordings.files.collect``), well before ffmpeg's window deletes them. In
low-latency mode the same playlists and segments are written by ``owncast.llhls``.

Never fill the disk: below the ``minFreeGiB`` floor the open recording is closed (its
``stopped`` says ``diskFull``, the log says so once, ``status()`` tells the API) and
the live stream goes on untouched. Retention (``maxDays``, ``maxGiB``) runs when a
recording closes and every ``RETENTION_INTERVAL`` seconds; oldest go first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from owncast.core import events
from owncast.recordings import files
from owncast.recordings.vod import Meta, expired, highest_variant
from owncast.runtime.timers import GuardedTimerService

_log = Logger()

SCAN_INTERVAL = 1.0
RETENTION_INTERVAL = 600.0
GIB = 1024**3


class Recorder(GuardedTimerService):
    """``settings()`` is the current ``recordings`` setting, ``variants()`` the configured
    variants, ``title()`` the stream title, ``peak()`` the broadcast's viewer peak so far;
    ``free_bytes(path)`` (blocking) reads free space, injectable for tests."""

    name = "recorder"

    def __init__(
        self,
        root: str | os.PathLike,
        hls_dir: str | os.PathLike,
        settings: Callable[[], dict],
        variants: Callable[[], list],
        title: Callable[[], str],
        peak: Callable[[], int],
        blocking: Callable[..., Deferred],
        clock: Any,
        free_bytes: Callable[[str], int] = files.disk_free,
    ):
        super().__init__(SCAN_INTERVAL, self.scan, clock, _log, "A recording scan")
        self.root = os.fspath(root)
        self.hls_dir = os.fspath(hls_dir)
        self._settings = settings
        self._variants = variants
        self._title = title
        self._peak = peak
        self._blocking = blocking
        self._free_bytes = free_bytes
        self._lock = DeferredLock()
        self.session: files.Session | None = None
        #: True while the free-space floor keeps recording off
        self.disk_full = False
        self.free: int | None = None
        self._retention_at = 0.0
        #: the last recordings closed: their segments may still leave the live window
        self._closed: list[files.Session] = []
        #: told the storage keys of the segments of a removed recording (S3 deletes them)
        self.removed: Callable[[list[str]], None] = lambda keys: None

    # -- the service ---------------------------------------------------------------------
    def startService(self) -> Deferred:
        """Recordings a killed run left open are ended before the service counts as
        started, so the web server (started after it) never lists them as live."""
        d = Deferred.fromCoroutine(self._recover())
        d.addErrback(lambda f: _log.failure("Could not end the recordings left open", f))
        super().startService()
        return d

    async def _recover(self) -> None:
        ids = await self._lock.run(
            self._blocking, files.recover, self.root, self.now(), self.hls_dir
        )
        if ids:
            _log.info("Ended {n} recording(s) a previous run left open", n=len(ids))

    def stopService(self) -> Deferred:
        super().stopService()
        return Deferred.fromCoroutine(self.close())

    def status(self) -> dict:
        session = self.session
        return {
            "enabled": bool(self._settings().get("enabled")),
            "recording": session.meta.id if session is not None else None,
            "diskFull": self.disk_full,
            "freeBytes": self.free,
        }

    # -- the stream ----------------------------------------------------------------------
    def on_stream(self, event: str, stream: Any) -> None:
        """A ``StreamState`` listener."""
        if event == events.STREAM_STARTED:
            d = Deferred.fromCoroutine(self.open())
        elif event == events.STREAM_STOPPED:
            d = Deferred.fromCoroutine(self.close())
        else:
            return
        d.addErrback(lambda f: _log.failure("Recording failed", f))

    async def open(self) -> None:
        config = self._settings()
        if not config.get("enabled") or self.session is not None:
            return
        variants = self._variants()
        if config.get("variants") == "highest":
            kept = [str(highest_variant(variants))]
        else:
            kept = [str(i) for i in range(len(variants))]
        now = self.now()
        best = str(highest_variant(variants))
        meta = Meta(
            id=str(int(now)),
            title=self._title() or "",
            startTime=now,
            variants=kept,
            best=best if best in kept else kept[0],
        )
        await self._lock.acquire()
        try:
            if await self._below_floor(config):
                _log.warn("Not recording this broadcast: free disk space is below the floor")
                return
            self.session = await self._blocking(files.open_session, self.root, meta)
        finally:
            self._lock.release()
        _log.info("Recording the broadcast as {id}", id=meta.id)

    async def close(self, stopped: str = "") -> None:
        await self._lock.acquire()
        try:
            session, self.session = self.session, None
            if session is None:
                return
            session.meta.peakViewers = max(session.meta.peakViewers, self._peak())
            session.meta.stopped = stopped
            hls = None if stopped else self.hls_dir
            meta = await self._blocking(files.close_session, hls, session, self.now())
            self._closed = [session, *self._closed[:2]]
        finally:
            self._lock.release()
        _log.info("Recording {id} ended: {d:.0f} s", id=meta.id, d=meta.duration)
        await self.retention()

    # -- the periodic work ---------------------------------------------------------------
    async def scan(self) -> None:
        if self.session is not None:
            config = self._settings()
            if not config.get("enabled"):
                _log.info("Recording turned off: recording {id} ends", id=self.session.meta.id)
                await self.close()
                return
            if await self._below_floor(config):
                _log.warn(
                    "Recording {id} stopped: free disk space is below the floor of {gib} GiB;"
                    " the live stream goes on",
                    id=self.session.meta.id,
                    gib=config.get("minFreeGiB"),
                )
                await self.close(stopped="diskFull")
                return
            await self._lock.acquire()
            try:
                session = self.session
                if session is not None:
                    session.meta.peakViewers = max(session.meta.peakViewers, self._peak())
                    await self._blocking(files.collect, self.hls_dir, session)
            finally:
                self._lock.release()
        elif self.disk_full:  # tell the status when space is back
            await self._below_floor(self._settings())
        if self.now() >= self._retention_at:
            await self.retention()

    async def _below_floor(self, config: dict) -> bool:
        floor = float(config.get("minFreeGiB") or 0) * GIB
        self.free = await self._blocking(self._free_bytes, self.root)
        full = floor > 0 and self.free is not None and self.free < floor
        if self.disk_full and not full:
            _log.info("Free disk space is above the floor again: recording possible")
        self.disk_full = full
        return full

    async def retention(self) -> list[str]:
        """Remove what the retention settings no longer keep; the ids removed."""
        self._retention_at = self.now() + RETENTION_INTERVAL
        config = self._settings()
        days = float(config.get("maxDays") or 0)
        gib = float(config.get("maxGiB") or 0)
        if days <= 0 and gib <= 0:
            return []
        metas = await self._blocking(files.list_recordings, self.root)
        gone = expired(metas, self.now(), days, int(gib * GIB))
        for recording_id in gone:
            await self.delete(recording_id)
            _log.info("Retention removed recording {id}", id=recording_id)
        return gone

    async def delete(self, recording_id: str) -> bool:
        """Remove a recording (closing it first if it is the open one), and its segments
        from segment storage."""
        session = self.session
        if session is not None and session.meta.id == recording_id:
            await self.close()
        self._closed = [s for s in self._closed if s.meta.id != recording_id]
        keys = await self._blocking(files.delete, self.root, recording_id)
        if keys is None:
            return False
        self.removed(keys)
        return True

    def keeps(self, key: str) -> bool:
        """Whether the live segment ``hls/<n>/<name>`` belongs to a recording (segment
        storage then keeps it when it leaves the live window)."""
        _, variant, name = (key.split("/") + ["", ""])[:3]
        for session in [self.session, *self._closed]:
            if session is not None:
                track = session.tracks.get(variant)
                if track is not None and name in track.names:
                    return True
        return False
