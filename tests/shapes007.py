"""Owncast 0.0.7's JSON shapes, for the contract tests (``tests/test_compat_007.py``).

Each shape is written from Owncast's source at tag v0.0.7 (commit 3810ce4f), the Go file
it comes from named beside it: which fields are there, which are left out (Go's
``omitempty``: ``Maybe``), their JSON types. ``problems`` says how a real answer differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Eq:
    """Exactly this value."""

    value: Any


@dataclass(frozen=True)
class Nullable:
    spec: Any


@dataclass(frozen=True)
class Maybe:
    """An object field that may be absent (Go's ``omitempty``), else ``spec``."""

    spec: Any


@dataclass(frozen=True)
class ListOf:
    spec: Any


@dataclass(frozen=True)
class MapOf:
    """An object with any keys, every value ``spec``."""

    spec: Any


class _Time:
    """An RFC 3339 date-time string (Go's ``time.Time`` in JSON)."""


class _Number:
    """A JSON number, whole or not (Go's ``float32``)."""


TIME, NUM = _Time(), _Number()
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def problems(value: Any, spec: Any, where: str = "$") -> list[str]:
    """How ``value`` differs from ``spec``: field names, presence, types, fixed values."""
    if isinstance(spec, Eq):
        return [] if value == spec.value else [f"{where}: {value!r} != {spec.value!r}"]
    if isinstance(spec, Nullable):
        return [] if value is None else problems(value, spec.spec, where)
    if isinstance(spec, _Time):
        if isinstance(value, str) and _RFC3339.match(value):
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return []
        return [f"{where}: {value!r} is not an RFC 3339 time"]
    if isinstance(spec, _Number):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not a number"]
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__} is not an array"]
        return [
            p for i, item in enumerate(value) for p in problems(item, spec.spec, f"{where}[{i}]")
        ]
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__} is not an object"]
        return [p for k, item in value.items() for p in problems(item, spec.spec, f"{where}.{k}")]
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__} is not an object"]
        found = []
        for key, field in spec.items():
            if key not in value:
                if not isinstance(field, Maybe):
                    found.append(f"{where}: no field {key!r}")
                continue
            inner = field.spec if isinstance(field, Maybe) else field
            found += problems(value[key], inner, f"{where}.{key}")
        found += [
            f"{where}: field {key!r} that 0.0.7 never sent" for key in value if key not in spec
        ]
        return found
    if spec is int or spec is str or spec is bool:
        if isinstance(value, spec) and (spec is bool or not isinstance(value, bool)):
            return []
        return [f"{where}: {value!r} is not {spec.__name__}"]
    raise AssertionError(f"unknown spec {spec!r}")


# models/baseAPIResponse.go
BASIC = {"success": bool, "message": str}


def said(message: str, success: bool = True) -> dict:
    return {"success": Eq(success), "message": Eq(message)}


def failed() -> dict:
    # 0.0.7 answered failures with 400 {"success": false, "message"} or {"error"}; we
    # always answer the former (docs/compatibility.md).
    return {"success": Eq(False), "message": str}


# models/socialHandle.go, with the icon controllers/config.go adds for known platforms
HANDLE = {"platform": str, "url": str, "icon": Maybe(str)}
# models/externalAction.go
ACTION = {
    "url": str,
    "title": str,
    "description": str,
    "icon": str,
    "color": str,
    "openExternally": bool,
}
# controllers/config.go webConfigResponse
CONFIG = {
    "name": str,
    "summary": str,
    "logo": Eq("/logo"),
    "tags": ListOf(str),
    "version": str,
    "nsfw": bool,
    "extraPageContent": str,
    "streamTitle": Maybe(str),
    "socialHandles": ListOf(HANDLE),
    "chatDisabled": bool,
    "externalActions": ListOf(ACTION),
    "customStyles": str,
    "offlineMessage": Maybe(str),  # ours (issue 14)
}
# controllers/status.go webStatusResponse (no peak viewer counts since 0.0.7)
STATUS = {
    "online": bool,
    "viewerCount": int,
    "lastConnectTime": Nullable(TIME),
    "lastDisconnectTime": Nullable(TIME),
    "versionNumber": Eq("0.0.7"),
    "streamTitle": str,
}
# models/chatMessage.go ChatEvent: author and body omitempty, ephemeral omitempty
CHAT = {
    "author": Maybe(str),
    "body": str,
    "id": str,
    "type": str,
    "visible": bool,
    "timestamp": TIME,
}
NOTICE = {**CHAT, "author": Maybe(str), "type": Eq("CHAT_ACTION"), "ephemeral": Eq(True)}
# models/nameChangeEvent.go, models/userJoinedEvent.go, models/pingMessage.go
NAME_CHANGE = {"oldName": str, "newName": str, "image": str, "type": Eq("NAME_CHANGE"), "id": str}
USER_JOINED = {"username": str, "type": Eq("USER_JOINED"), "id": str, "timestamp": TIME}
PING = {"type": Eq("PING")}
# yp/api.go ypDetailsResponse
YP = {
    "name": str,
    "description": str,
    "streamTitle": Maybe(str),
    "logo": Eq("/logo"),
    "nsfw": bool,
    "tags": ListOf(str),
    "online": bool,
    "viewerCount": int,
    "overallMaxViewerCount": int,
    "sessionMaxViewerCount": int,
    "social": ListOf(HANDLE),
    "lastConnectTime": Nullable(TIME),
}
# models/emoji.go, models/socialHandle.go (GetAllSocialHandles), controllers/video.go
EMOJI = {"name": str, "emoji": str}
PLATFORM = {"platform": str, "icon": str}
VARIANT_CHOICE = {"name": str, "index": int}
# models/streamOutputVariant.go (scaledWidth/scaledHeight omitempty)
VARIANT = {
    "name": str,
    "videoPassthrough": bool,
    "audioPassthrough": bool,
    "videoBitrate": int,
    "audioBitrate": int,
    "scaledWidth": Maybe(int),
    "scaledHeight": Maybe(int),
    "framerate": int,
    "cpuUsageLevel": int,
}
# models/broadcaster.go (framerate a float32), models/currentBroadcast.go,
# models/latencyLevels.go; controllers/admin/status.go adminStatusResponse
BROADCASTER = {
    "remoteAddr": str,
    "streamDetails": {
        "width": int,
        "height": int,
        "framerate": NUM,
        "videoBitrate": int,
        "videoCodec": str,
        "audioBitrate": int,
        "audioCodec": str,
        "encoder": str,
    },
    "time": TIME,
}
ADMIN_STATUS = {
    "broadcaster": Nullable(BROADCASTER),
    "currentBroadcast": Nullable(
        {"outputSettings": ListOf(VARIANT), "latencyLevel": {"level": int}}
    ),
    "online": bool,
    "viewerCount": int,
    "overallPeakViewerCount": int,
    "sessionPeakViewerCount": int,
    "streamTitle": str,
    "versionNumber": Eq("0.0.7"),
    # ours, not 0.0.7's: the data dir's disk is full (issue 12; the admin page shows it)
    "diskFull": Maybe(bool),
    # ours: recording stopped at its free-space floor (the live stream goes on)
    "recordingDiskFull": Maybe(bool),
}
# models/client.go Client (geo a pointer: null when not looked up)
CLIENT = {
    "connectedAt": TIME,
    "messageCount": int,
    "userAgent": str,
    "ipAddress": str,
    "username": Nullable(str),
    "clientID": str,
    "geo": Nullable(MapOf(str)),
}
# controllers/admin/logs.go, metrics/timestampedValue.go, metrics/metrics.go
LOG = {"message": str, "level": str, "time": TIME}
SAMPLE = {"time": TIME, "value": int}
HARDWARE = {"cpu": ListOf(SAMPLE), "memory": ListOf(SAMPLE), "disk": ListOf(SAMPLE)}
# models/s3Storage.go (every field but enabled omitempty)
S3 = {
    "enabled": bool,
    **{
        k: Maybe(str)
        for k in ("endpoint", "servingEndpoint", "accessKey", "secret", "bucket", "region", "acl")
    },
}
# controllers/admin/serverConfig.go serverConfigAdminResponse and its webConfigResponse
SERVER_CONFIG = {
    "instanceDetails": {
        "name": str,
        "summary": str,
        "welcomeMessage": str,
        "logo": str,
        "tags": ListOf(str),
        "version": Eq(""),
        "nsfw": bool,
        "extraPageContent": str,
        "streamTitle": str,
        "socialHandles": ListOf(HANDLE),
        "customStyles": str,
    },
    "ffmpegPath": str,
    "streamKey": str,
    "webServerPort": int,
    "rtmpServerPort": int,
    "s3": S3,
    "videoSettings": {"videoQualityVariants": ListOf(VARIANT), "latencyLevel": int},
    "latencyLevel": int,
    "lowLatency": Maybe(bool),  # ours: LL-HLS for the next broadcast (issue 15)
    "yp": {"enabled": bool, "instanceUrl": str},
    "chatDisabled": bool,
    "externalActions": ListOf(ACTION),
    "supportedCodecs": ListOf(str),
    "videoCodec": str,
    "offlineMessage": Maybe(str),  # ours (issue 14)
}
# models/accessToken.go, models/webhook.go (an integer id)
TOKEN = {
    "token": str,
    "name": str,
    "scopes": ListOf(str),
    "timestamp": TIME,
    "lastUsed": Nullable(TIME),
}
WEBHOOK = {
    "id": int,
    "url": str,
    "events": ListOf(str),
    "timestamp": TIME,
    "lastUsed": Nullable(TIME),
}
