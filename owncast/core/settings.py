"""Every setting: its default, its rules, and the in-memory copy the server reads.

Validators are pure: they take the JSON value from a ``ConfigValue`` and return the
normalized value to store, or raise ``ValidationError`` saying what is wrong. Checks
that must ask ffmpeg (codec, binary path) live in ``owncast.transcode.probe``.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from owncast.core.errors import ValidationError

#: Latency level -> (seconds per segment, segments in the playlist), as Owncast's levels.
LATENCY_LEVELS: dict[int, tuple[int, int]] = {
    0: (1, 25),
    1: (2, 15),
    2: (3, 10),
    3: (4, 8),
    4: (5, 5),
}

#: cpuUsageLevel -> x264 preset.
X264_PRESETS: dict[int, str] = {
    0: "ultrafast",
    1: "superfast",
    2: "veryfast",
    3: "faster",
    4: "fast",
}

#: Encoders we know how to drive; the configured ffmpeg must also offer the chosen one.
KNOWN_CODECS = (
    "libx264",
    "h264_nvenc",
    "h264_vaapi",
    "h264_qsv",
    "h264_omx",
    "h264_v4l2m2m",
    "h264_videotoolbox",
)

DEFAULT_VARIANT = {
    "videoPassthrough": False,
    "audioPassthrough": True,
    "videoBitrate": 1200,
    "audioBitrate": 128,
    "scaledWidth": 0,
    "scaledHeight": 0,
    "framerate": 24,
    "cpuUsageLevel": 2,
}

DEFAULTS: dict[str, Any] = {
    "name": "Owncast",
    "summary": "A new live stream. The owner can change this text in the admin page.",
    "streamTitle": "",
    "logo": "/img/logo.svg",
    "tags": ["owncast", "streaming"],
    "socialHandles": [],
    "pageContent": "# Welcome\n\nThe owner can write this page in the admin page, in markdown.",
    "customStyles": "",
    "nsfw": False,
    "streamKey": "",
    "ffmpegPath": "",
    "webServerPort": 8080,
    "rtmpServerPort": 1935,
    "serverUrl": "",
    "directoryEnabled": False,
    "ypRegistrationKey": "",
    "latencyLevel": 2,
    "videoCodec": "libx264",
    "videoQualityVariants": [DEFAULT_VARIANT],
    "s3": {
        "enabled": False,
        "endpoint": "",
        "servingEndpoint": "",
        "accessKey": "",
        "secret": "",
        "bucket": "",
        "region": "",
        "acl": "",
    },
    "overallMaxViewerCount": 0,
    "lastConnectTime": None,
    "lastDisconnectTime": None,
}


def generate_stream_key() -> str:
    """A strong random stream key (also the admin password): 24 url-safe characters."""
    return secrets.token_urlsafe(18)


# -- validators ------------------------------------------------------------------------
def _string(value: Any, what: str, max_len: int = 10_000, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string")
    if len(value) > max_len:
        raise ValidationError(f"{what} must be at most {max_len} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON can carry one, pages cannot
        raise ValidationError(f"{what} must be valid Unicode text") from None
    if not allow_empty and not value.strip():
        raise ValidationError(f"{what} must not be empty")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{what} must be true or false")
    return value


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValidationError(f"{what} must be an integer")
    if not low <= value <= high:
        raise ValidationError(f"{what} must be between {low} and {high}")
    return value


def http_url(value: Any, what: str, allow_empty: bool = False) -> str:
    """An absolute http(s) URL with a host."""
    value = _string(value, what, max_len=2048).strip()
    if not value and allow_empty:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{what} must be an absolute http:// or https:// URL")
    return value


def stream_key(value: Any) -> str:
    value = _string(value, "stream key", max_len=256, allow_empty=False)
    if any(c.isspace() or c in "/?#" for c in value):
        raise ValidationError("stream key must not contain spaces, '/', '?' or '#'")
    return value


def port(value: Any, what: str) -> int:
    return _int(value, what, 1, 65535)


def tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValidationError("tags must be an array of strings")
    cleaned = [t.strip() for t in value if t.strip()]
    if len(cleaned) > 50 or any(len(t) > 64 for t in cleaned):
        raise ValidationError("at most 50 tags of at most 64 characters each")
    return cleaned


def social_handles(value: Any) -> list[dict]:
    if not isinstance(value, list):
        raise ValidationError("social handles must be an array of {platform, url}")
    handles = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValidationError(f"social handle {index} must be an object {{platform, url}}")
        platform = _string(item.get("platform"), f"social handle {index} platform", 64, False)
        url = http_url(item.get("url"), f"social handle {index} url")
        handles.append({"platform": platform.strip(), "url": url})
    return handles


def latency_level(value: Any) -> int:
    return _int(value, "latency level", min(LATENCY_LEVELS), max(LATENCY_LEVELS))


def variants(value: Any) -> list[dict]:
    """A non-empty array of ``StreamQuality``; missing fields take the defaults."""
    if not isinstance(value, list) or not value:
        raise ValidationError("stream output variants must be a non-empty array")
    if len(value) > 10:
        raise ValidationError("at most 10 stream output variants")
    result = []
    for index, item in enumerate(value):
        what = f"variant {index}"
        if not isinstance(item, dict):
            raise ValidationError(f"{what} must be an object")
        unknown = set(item) - set(DEFAULT_VARIANT)
        if unknown:
            raise ValidationError(f"{what} has unknown fields: {', '.join(sorted(unknown))}")
        merged = {**DEFAULT_VARIANT, **item}
        variant = {
            "videoPassthrough": _bool(merged["videoPassthrough"], f"{what} videoPassthrough"),
            "audioPassthrough": _bool(merged["audioPassthrough"], f"{what} audioPassthrough"),
            "videoBitrate": _int(merged["videoBitrate"], f"{what} videoBitrate", 100, 100_000),
            "audioBitrate": _int(merged["audioBitrate"], f"{what} audioBitrate", 0, 1_024),
            "scaledWidth": _int(merged["scaledWidth"], f"{what} scaledWidth", 0, 7_680),
            "scaledHeight": _int(merged["scaledHeight"], f"{what} scaledHeight", 0, 4_320),
            "framerate": _int(merged["framerate"], f"{what} framerate", 1, 120),
            "cpuUsageLevel": _int(
                merged["cpuUsageLevel"], f"{what} cpuUsageLevel", 0, max(X264_PRESETS)
            ),
        }
        for side in ("scaledWidth", "scaledHeight"):
            if variant[side] % 2:
                raise ValidationError(f"{what} {side} must be even (0 keeps the source size)")
        result.append(variant)
    return result


def s3(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValidationError("s3 must be an object")
    if "enabled" not in value:
        raise ValidationError("s3.enabled is required")
    unknown = set(value) - set(DEFAULTS["s3"])
    if unknown:
        raise ValidationError(f"s3 has unknown fields: {', '.join(sorted(unknown))}")
    config = dict(DEFAULTS["s3"])
    config["enabled"] = _bool(value["enabled"], "s3.enabled")
    for key in ("endpoint", "servingEndpoint", "accessKey", "secret", "bucket", "region", "acl"):
        if key in value and value[key] is not None:
            config[key] = _string(value[key], f"s3.{key}", 1024).strip()
    for key in ("endpoint", "servingEndpoint"):
        if config[key]:
            http_url(config[key], f"s3.{key}")
    if config["enabled"]:
        missing = [k for k in ("endpoint", "accessKey", "secret", "bucket") if not config[k]]
        if missing:
            raise ValidationError(f"s3 is enabled but {', '.join(missing)} missing")
    return config


def custom_styles(value: Any) -> str:
    value = _string(value, "custom styles", max_len=100_000)
    if "</" in value.lower():
        raise ValidationError("custom styles must be plain CSS, without HTML tags")
    return value


#: ``/api/admin/config/<path>`` -> (setting key, validator). Codec, ffmpeg path and logo
#: are validated in the API layer because they ask ffmpeg or write files.
SETTERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "key": ("streamKey", stream_key),
    "pagecontent": ("pageContent", lambda v: _string(v, "page content", 100_000)),
    "streamtitle": ("streamTitle", lambda v: _string(v, "stream title", 300)),
    "name": ("name", lambda v: _string(v, "name", 200, allow_empty=False).strip()),
    "serversummary": ("summary", lambda v: _string(v, "summary", 2_000)),
    "tags": ("tags", tags),
    "webserverport": ("webServerPort", lambda v: port(v, "web server port")),
    "rtmpserverport": ("rtmpServerPort", lambda v: port(v, "RTMP server port")),
    "nsfw": ("nsfw", lambda v: _bool(v, "nsfw")),
    "directoryenabled": ("directoryEnabled", lambda v: _bool(v, "directory enabled")),
    "serverurl": ("serverUrl", lambda v: http_url(v, "server URL", allow_empty=True)),
    "video/streamlatencylevel": ("latencyLevel", latency_level),
    "video/streamoutputvariants": ("videoQualityVariants", variants),
    "s3": ("s3", s3),
    "socialhandles": ("socialHandles", social_handles),
    "customstyles": ("customStyles", custom_styles),
}


class Settings:
    """The current settings: stored values over defaults, command-line overrides on top.

    Overrides (``--streamkey``, ports, ``--ffmpeg``) win for this run only, until the
    owner sets that value through the API, which then wins and is stored.
    """

    def __init__(self, stored: dict | None = None, overrides: dict | None = None):
        self._values = copy.deepcopy(DEFAULTS)
        self._values.update(stored or {})
        self._overrides = dict(overrides or {})

    def __getitem__(self, key: str) -> Any:
        if key in self._overrides:
            return self._overrides[key]
        return self._values[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def update(self, values: dict) -> None:
        """Apply values that were just stored; they replace any override."""
        for key, value in values.items():
            self._overrides.pop(key, None)
            self._values[key] = copy.deepcopy(value)

    def reload(self, stored: dict) -> None:
        """Replace the stored layer (another node changed it); overrides stay."""
        values = copy.deepcopy(DEFAULTS)
        values.update(stored)
        self._values = values

    def stored_copy(self) -> dict:
        return copy.deepcopy(self._values)
