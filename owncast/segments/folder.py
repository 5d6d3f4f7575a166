"""Segments copied to a directory that another web server or a CDN origin serves."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from twisted.internet.defer import Deferred
from zope.interface import implementer

from owncast.interfaces import ISegmentStorage
from owncast.segments.sigv4 import canonical_path


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers never see half a segment


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


@implementer(ISegmentStorage)
class DirectorySegmentStorage:
    """``root`` is the directory; ``base_url`` where it is served; ``blocking`` runs the
    file work off the reactor thread."""

    def __init__(self, root: str | os.PathLike, base_url: str, blocking: Callable[..., Deferred]):
        self.root = Path(root)
        self._base = base_url.rstrip("/")
        self._blocking = blocking

    def _file(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes, content_type: str, cache_control: str) -> Deferred:
        return self._blocking(_write, self._file(key), data)

    def delete(self, key: str) -> Deferred:
        return self._blocking(_remove, self._file(key))

    def url(self, key: str) -> str:
        return f"{self._base}/{canonical_path(key)}"
