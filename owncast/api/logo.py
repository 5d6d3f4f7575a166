"""The ``logo`` setting: a file under the web root, or an image uploaded as a ``data:`` URI;
and ``GET /logo``, which serves whichever it is, as Owncast 0.0.7 did (controllers/logo.go):
``/api/config`` and ``/api/yp`` always name the logo ``/logo``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import NoResource, Resource
from twisted.web.server import NOT_DONE_YET

from owncast.core.errors import ValidationError

_log = Logger()

MAX_LOGO_BYTES = 2 * 1024 * 1024
#: Served at ``/logo/<file>`` from ``<datadir>/logo``.
URL_PREFIX = "/logo/"
#: What ``/logo`` serves when the configured file is gone (0.0.7: its default logo).
DEFAULT_LOGO = "/img/logo.svg"
#: 0.0.7 let the logo be cached for 30 s: a new one shows soon after it is saved.
CACHE_SECONDS = 30

# SVG is refused on upload: served from our origin it could carry script.
_MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "webp": (b"RIFF",),
}
_DATA_URI = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,(.*)$", re.S)


def decode_upload(value: str) -> tuple[bytes, str]:
    """The bytes and file suffix of a ``data:image/...;base64,`` URI, checked."""
    match = _DATA_URI.match(value)
    if not match:
        raise ValidationError("logo upload must be a base64 data: URI of a PNG, JPEG, GIF or WebP")
    kind = "jpeg" if match.group(1) == "jpg" else match.group(1)
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValidationError("logo upload is not valid base64") from e
    if len(data) > MAX_LOGO_BYTES:
        raise ValidationError(f"logo must be at most {MAX_LOGO_BYTES // 1024} KiB")
    if not data.startswith(_MAGIC[kind]) or (kind == "webp" and data[8:12] != b"WEBP"):
        raise ValidationError(f"logo upload is not a {kind.upper()} image")
    return data, "jpg" if kind == "jpeg" else kind


def save_upload(datadir: Path, data: bytes, suffix: str) -> str:
    """Write an uploaded logo (blocking: run in a thread); return its URL path."""
    folder = datadir / "logo"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"logo-{hashlib.sha256(data).hexdigest()[:16]}.{suffix}"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    return URL_PREFIX + name


def local_path(value: str, webroot: Path, datadir: Path) -> str:
    """Normalize a logo path and check it names an existing file (blocking: run in a thread)."""
    if not value or len(value) > 1024 or "\\" in value or "\x00" in value:
        raise ValidationError("logo must be a path under the web root or a data: URI")
    normalized = posixpath.normpath("/" + value.lstrip("/"))
    if ".." in normalized.split("/") or normalized in ("/", "/."):
        raise ValidationError("logo path must stay under the web root")
    if normalized.startswith(URL_PREFIX):
        candidate = datadir / "logo" / normalized[len(URL_PREFIX) :]
    else:
        candidate = webroot / normalized.lstrip("/")
    if not candidate.is_file():
        raise ValidationError(f"no file at {normalized}")
    return normalized


def file_of(value: str, webroot: Path, datadir: Path) -> Path:
    """Where the logo named by the setting ``value`` is on disk (not checked)."""
    if value.startswith(URL_PREFIX):
        return datadir / "logo" / value[len(URL_PREFIX) :].replace("/", "")
    return webroot / posixpath.normpath("/" + value).lstrip("/")


#: Content types by suffix, as 0.0.7 chose them (anything else it called JPEG).
_CONTENT_TYPES = {
    ".svg": "image/svg+xml",
    ".gif": "image/gif",
    ".png": "image/png",
    ".webp": "image/webp",
}


class LogoResource(Resource):
    """``/logo``: the configured logo image, read off the reactor thread; ``/logo/<file>``:
    ``uploads``, the uploaded logos by name (stored settings name them so)."""

    def __init__(self, ctx: Any, uploads: Resource):
        super().__init__()
        self._ctx = ctx
        self._uploads = uploads

    def getChild(self, path: bytes, request: Any) -> Resource:
        if not path:
            return NoResource()
        return self._uploads.getChildWithDefault(path, request)

    def render_GET(self, request: Any) -> Any:
        ctx = self._ctx
        d = ctx.blocking(_read_logo, str(ctx.settings["logo"]), ctx.webroot, ctx.datadir)
        d.addCallback(self._send, request)
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _send(self, found: tuple[bytes, str], request: Any) -> None:
        data, suffix = found
        if request.finished or request.channel is None:
            return
        request.setHeader(b"content-type", _CONTENT_TYPES.get(suffix, "image/jpeg").encode())
        request.setHeader(b"content-length", str(len(data)).encode())
        request.setHeader(b"cache-control", f"public, max-age={CACHE_SECONDS}".encode())
        request.write(data)
        request.finish()

    def _failed(self, failure: Any, request: Any) -> None:
        _log.failure("serving the logo failed", failure)
        if not request.finished and request.channel is not None:
            request.setResponseCode(500)
            request.finish()


def _read_logo(value: str, webroot: Path, datadir: Path) -> tuple[bytes, str]:
    """The configured logo's bytes and suffix, or the default logo's when it is gone
    (blocking: run in a thread)."""
    for path in (file_of(value, webroot, datadir), file_of(DEFAULT_LOGO, webroot, datadir)):
        try:
            return path.read_bytes(), path.suffix.lower()
        except OSError:
            continue
    raise FileNotFoundError("no logo, not even the default one")
