"""Every setting: its default, its rules, and the in-memory copy the server reads.

Validators are pure: they take the JSON value from a ``ConfigValue`` and return the
normalized value to store, or raise ``ValidationError`` saying what is wrong. Checks
that must ask ffmpeg (codec, binary path) live in ``owncast.transcode.probe``.
"""

from __future__ import annotations

import copy
import re
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

#: What the transcoder assumes for a field a variant lacks (stored variants have them all).
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

#: A fresh data dir's settings: Owncast 0.0.7's (core/data/defaults.go, config/defaults.go),
#: except the stream key (generated on first start, never ``abc123``) and the logo (ours).
DEFAULTS: dict[str, Any] = {
    "name": "Owncast",
    "summary": "Welcome to your new Owncast server!  This description can be changed in the admin",
    "streamTitle": "",
    "logo": "/img/logo.svg",
    "tags": ["owncast", "streaming"],
    "socialHandles": [{"platform": "github", "url": "https://github.com/owncast/owncast"}],
    "pageContent": "This is your page's content that can be edited in the admin.",
    "welcomeMessage": "",
    #: Ours, not 0.0.7's: what the viewer page says while nobody is live (plain text).
    "offlineMessage": "",
    "customStyles": "",
    "nsfw": False,
    "chatDisabled": False,
    "externalActions": [],
    #: Origins (``https://host[:port]``) whose pages may open the chat websocket besides
    #: this server's own; empty: any origin, as 0.0.7.
    "chatAllowedOrigins": [],
    "streamKey": "",
    "ffmpegPath": "",
    "webServerPort": 8080,
    "rtmpServerPort": 1935,
    "serverUrl": "",
    "directoryEnabled": False,
    "ypRegistrationKey": "",
    "latencyLevel": 2,
    #: Ours, not 0.0.7's: LL-HLS (fMP4 parts, blocking reload; ``owncast.llhls``) instead
    #: of the latency level's MPEG-TS segments, from the next broadcast on.
    "lowLatency": False,
    "videoCodec": "libx264",
    "videoQualityVariants": [{**DEFAULT_VARIANT, "name": "", "audioBitrate": 0}],
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
    #: Ours: broadcasts kept as VOD (owncast.recordings). Off here so existing data dirs
    #: keep today's behaviour; a new data dir turns it on at its first start.
    "recordings": {
        "enabled": False,
        "variants": "all",
        "maxDays": 0,
        "maxGiB": 0,
        "minFreeGiB": 2,
        #: Viewers may make clips (``POST /api/recordings/clip``, rate-limited per
        #: address and overall); the owner and bots with ``HAS_ADMIN_ACCESS`` always may.
        "viewerClips": True,
    },
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


_H = "[0-9A-Fa-f]{1,4}"
_BYTE = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_V4 = rf"{_BYTE}(\.{_BYTE}){{3}}"
#: An IPv6 address as URLs carry it in brackets (no zone), also with its last 32 bits
#: written as IPv4 (``[::ffff:192.0.2.1]``, ``[64:ff9b::192.0.2.1]``): RFC 3986's forms.
_IPV6 = "|".join(
    (
        f"({_H}:){{7}}{_H}",
        f"({_H}:){{1,7}}:",
        f"({_H}:){{1,6}}:{_H}",
        f"({_H}:){{1,5}}(:{_H}){{1,2}}",
        f"({_H}:){{1,4}}(:{_H}){{1,3}}",
        f"({_H}:){{1,3}}(:{_H}){{1,4}}",
        f"({_H}:){{1,2}}(:{_H}){{1,5}}",
        f"{_H}:(:{_H}){{1,6}}",
        f":((:{_H}){{1,7}}|:)",
        f"({_H}:){{6}}{_V4}",
        f"::({_H}:){{5}}{_V4}",
        f"({_H})?::({_H}:){{4}}{_V4}",
        f"(({_H}:)?{_H})?::({_H}:){{3}}{_V4}",
        f"(({_H}:){{0,2}}{_H})?::({_H}:){{2}}{_V4}",
        f"(({_H}:){{0,3}}{_H})?::{_H}:{_V4}",
        f"(({_H}:){{0,4}}{_H})?::{_V4}",
    )
)
_HOST = rf"([A-Za-z0-9._~%!$&'()*+,;=-]+|\[({_IPV6})\])(:[0-9]*)?"
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: An absolute http(s) URL with an ASCII host (an IDN in its xn-- form), once trimmed: the
#: pattern owncast/api/openapi.yaml states, so the server and the document agree (and a
#: URL it lets through always parses: ``urlsplit`` raises on stray brackets and on hosts
#: that NFKC turns into a path).
HTTP_URL = re.compile(
    rf"[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9._~%!$&'()*+,;=:-]*@)?{_HOST}([/?#][^{_SPACE}]*)?"
)
#: ``http(s)://host[:port]`` and at most a ``/`` (allowed chat origins), once trimmed.
ORIGIN = re.compile(rf"[Hh][Tt][Tt][Pp][Ss]?://{_HOST}/?")


def http_url(value: Any, what: str, allow_empty: bool = False) -> str:
    """An absolute http(s) URL with a host (``HTTP_URL``)."""
    value = _string(value, what, max_len=2048).strip()
    if not value and allow_empty:
        return value
    if not HTTP_URL.fullmatch(value):
        raise ValidationError(f"{what} must be an absolute http:// or https:// URL")
    return value


def stream_key(value: Any) -> str:
    value = _string(value, "stream key", max_len=256, allow_empty=False)
    if any(c.isspace() or c in "/?#" for c in value):
        raise ValidationError("stream key must not contain spaces, '/', '?' or '#'")
    return value


def port(value: Any, what: str, default: int) -> int:
    """A TCP port; 0 means "not set" (the default port), as 0.0.7 read it."""
    return _int(value, what, 0, 65535) or default


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
    """0 to 4; 0.0.7 took any higher level as its highest, 4."""
    return min(_int(value, "latency level", 0, 1_000_000), max(LATENCY_LEVELS))


#: ``StreamQuality`` fields a client may send, with 0.0.7's meaning of an absent field
#: (Go's zero value); a zero below marked "not set" takes the transcoder's default.
_VARIANT_FIELDS = {
    "name": "",
    "videoPassthrough": False,
    "audioPassthrough": False,
    "videoBitrate": 0,  # not set: DEFAULT_VARIANT's (0.0.7 left it to the encoder)
    "audioBitrate": 0,  # not set: the audio is passed through (0.0.7's rule)
    "scaledWidth": 0,  # not set: the source's (or kept in proportion)
    "scaledHeight": 0,
    "framerate": 0,  # not set: 24 (0.0.7's GetFramerate)
    "cpuUsageLevel": 0,
}


def variants(value: Any) -> list[dict]:
    """An array of ``StreamQuality``, normalized the way 0.0.7 read them: an empty array
    means the default variant, and zeros mean "not set" (see ``_VARIANT_FIELDS``)."""
    if not isinstance(value, list):
        raise ValidationError("stream output variants must be an array")
    if not value:
        return copy.deepcopy(DEFAULTS["videoQualityVariants"])
    if len(value) > 10:
        raise ValidationError("at most 10 stream output variants")
    result = []
    for index, item in enumerate(value):
        what = f"variant {index}"
        if not isinstance(item, dict):
            raise ValidationError(f"{what} must be an object")
        unknown = set(item) - set(_VARIANT_FIELDS)
        if unknown:
            raise ValidationError(f"{what} has unknown fields: {', '.join(sorted(unknown))}")
        merged = {**_VARIANT_FIELDS, **item}
        variant: dict[str, Any] = {
            "name": _string(merged["name"], f"{what} name", 100).strip(),
            "videoPassthrough": _bool(merged["videoPassthrough"], f"{what} videoPassthrough"),
            "audioPassthrough": _bool(merged["audioPassthrough"], f"{what} audioPassthrough"),
            "videoBitrate": _int(merged["videoBitrate"], f"{what} videoBitrate", 0, 100_000),
            "audioBitrate": _int(merged["audioBitrate"], f"{what} audioBitrate", 0, 1_024),
            "scaledWidth": _int(merged["scaledWidth"], f"{what} scaledWidth", 0, 7_680),
            "scaledHeight": _int(merged["scaledHeight"], f"{what} scaledHeight", 0, 4_320),
            "framerate": _int(merged["framerate"], f"{what} framerate", 0, 120),
            "cpuUsageLevel": _int(
                merged["cpuUsageLevel"], f"{what} cpuUsageLevel", 0, max(X264_PRESETS)
            ),
        }
        for side in ("scaledWidth", "scaledHeight"):
            if variant[side] % 2:
                raise ValidationError(f"{what} {side} must be even (0 keeps the source size)")
        if not variant["videoBitrate"] and not variant["videoPassthrough"]:
            variant["videoBitrate"] = DEFAULT_VARIANT["videoBitrate"]
        if not variant["framerate"]:
            variant["framerate"] = DEFAULT_VARIANT["framerate"]
        if not variant["audioBitrate"]:
            variant["audioPassthrough"] = True
        result.append(variant)
    return result


def variant_name(variant: dict) -> str:
    """A variant's label as 0.0.7 made one when the owner gave none (``GetName``)."""
    if variant.get("name"):
        return variant["name"]
    if variant.get("videoPassthrough"):
        return "Source"
    bitrate = _bitrate_label(variant.get("videoBitrate", 0))
    width, height = variant.get("scaledWidth", 0), variant.get("scaledHeight", 0)
    if (width, height) == (1080, 720):  # sic: 0.0.7 matched this pair for "720p"
        return f"720p @{bitrate}"
    if (width, height) == (1920, 1080):
        return f"1080p @{bitrate}"
    if height:
        return f"{height}h"
    if width:
        return f"{width}w"
    return f"{bitrate}@{variant.get('framerate', 0)}fps"


def _bitrate_label(kbps: int) -> str:
    if kbps <= 0:
        return ""
    if kbps < 1000:
        return f"{kbps}Kbps"
    if kbps % 1000 == 0:
        return f"{kbps // 1000}Mbps"
    return f"{kbps / 1000:.1f}Mbps"


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


def recordings(value: Any) -> dict:
    """The ``recordings`` setting: a whole object; limits of 0 mean none."""
    if not isinstance(value, dict):
        raise ValidationError("recordings must be an object")
    unknown = set(value) - set(DEFAULTS["recordings"])
    if unknown:
        raise ValidationError(f"recordings has unknown fields: {', '.join(sorted(unknown))}")
    config = dict(DEFAULTS["recordings"])
    if "enabled" in value:
        config["enabled"] = _bool(value["enabled"], "recordings.enabled")
    if "viewerClips" in value:
        config["viewerClips"] = _bool(value["viewerClips"], "recordings.viewerClips")
    if "variants" in value:
        if value["variants"] not in ("all", "highest"):
            raise ValidationError("recordings.variants must be 'all' or 'highest'")
        config["variants"] = value["variants"]
    for key, high in (("maxDays", 36_500), ("maxGiB", 1_000_000), ("minFreeGiB", 1_000_000)):
        if key in value:
            number = value[key]
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise ValidationError(f"recordings.{key} must be a number")
            if not 0 <= number <= high:
                raise ValidationError(f"recordings.{key} must be 0 to {high}")
            config[key] = number
    return config


def custom_styles(value: Any) -> str:
    value = _string(value, "custom styles", max_len=100_000)
    if "</" in value.lower():
        raise ValidationError("custom styles must be plain CSS, without HTML tags")
    return value


_CSS_COLOR = re.compile(r"^[#a-zA-Z0-9(),.% -]{0,64}$")


def external_actions(value: Any) -> list[dict]:
    """0.0.7's ``ExternalAction`` list: buttons on the viewer page that open a URL."""
    if not isinstance(value, list):
        raise ValidationError("external actions must be an array of objects")
    if len(value) > 20:
        raise ValidationError("at most 20 external actions")
    actions = []
    for index, item in enumerate(value):
        what = f"external action {index}"
        if not isinstance(item, dict):
            raise ValidationError(f"{what} must be an object {{url, title, ...}}")
        icon = _string(item.get("icon", ""), f"{what} icon", 2048).strip()
        if icon and not icon.startswith("/"):
            icon = http_url(icon, f"{what} icon")
        color = _string(item.get("color", ""), f"{what} color", 64).strip()
        if not _CSS_COLOR.match(color):
            raise ValidationError(f"{what} color must be a CSS color")
        actions.append(
            {
                "url": http_url(item.get("url"), f"{what} url"),
                "title": _string(item.get("title"), f"{what} title", 100, False).strip(),
                "description": _string(item.get("description", ""), f"{what} description", 500),
                "icon": icon,
                "color": color,
                "openExternally": _bool(
                    item.get("openExternally", False), f"{what} openExternally"
                ),
            }
        )
    return actions


def origins(value: Any) -> list[str]:
    """Origins allowed to open the chat websocket: ``http(s)://host[:port]``, no path."""
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        raise ValidationError("allowed origins must be an array of strings")
    if len(value) > 50:
        raise ValidationError("at most 50 allowed origins")
    result = []
    for origin in value:
        origin = _string(origin, "allowed origin", 2048).strip()
        if not ORIGIN.fullmatch(origin):
            raise ValidationError(f"{origin} is not an origin: http(s)://host[:port] only")
        parts = urlsplit(origin)
        result.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return list(dict.fromkeys(result))


#: ``/api/admin/config/<path>`` -> (setting key, validator). Codec, ffmpeg path and logo
#: are validated in the API layer because they ask ffmpeg or write files.
SETTERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "key": ("streamKey", stream_key),
    "pagecontent": ("pageContent", lambda v: _string(v, "page content", 100_000)),
    "streamtitle": ("streamTitle", lambda v: _string(v, "stream title", 300)),
    "name": ("name", lambda v: _string(v, "name", 200, allow_empty=False).strip()),
    "serversummary": ("summary", lambda v: _string(v, "summary", 2_000)),
    "tags": ("tags", tags),
    "webserverport": ("webServerPort", lambda v: port(v, "web server port", 8080)),
    "rtmpserverport": ("rtmpServerPort", lambda v: port(v, "RTMP server port", 1935)),
    "nsfw": ("nsfw", lambda v: _bool(v, "nsfw")),
    "directoryenabled": ("directoryEnabled", lambda v: _bool(v, "directory enabled")),
    "serverurl": ("serverUrl", lambda v: http_url(v, "server URL", allow_empty=True)),
    "video/streamlatencylevel": ("latencyLevel", latency_level),
    # Ours: see DEFAULTS["lowLatency"].
    "video/lowlatency": ("lowLatency", lambda v: _bool(v, "low latency")),
    "video/streamoutputvariants": ("videoQualityVariants", variants),
    "s3": ("s3", s3),
    "socialhandles": ("socialHandles", social_handles),
    "customstyles": ("customStyles", custom_styles),
    "welcomemessage": ("welcomeMessage", lambda v: _string(v, "welcome message", 5_000).strip()),
    "chat/disable": ("chatDisabled", lambda v: _bool(v, "chat disabled")),
    "externalactions": ("externalActions", external_actions),
    # Ours, not 0.0.7's: see DEFAULTS["chatAllowedOrigins"].
    "chat/allowedorigins": ("chatAllowedOrigins", origins),
    # Ours: see DEFAULTS["recordings"].
    "recordings": ("recordings", recordings),
    # Ours, not 0.0.7's: see DEFAULTS["offlineMessage"].
    "offlinemessage": ("offlineMessage", lambda v: _string(v, "offline message", 2_000).strip()),
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
