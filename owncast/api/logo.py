"""The ``logo`` setting: a file under the web root, or an image uploaded as a ``data:`` URI."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import posixpath
import re
from pathlib import Path

from owncast.core.errors import ValidationError

MAX_LOGO_BYTES = 2 * 1024 * 1024
#: Served at ``/logo/<file>`` from ``<datadir>/logo``.
URL_PREFIX = "/logo/"

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
