"""The JSON shapes of the API, built from domain records, as Owncast 0.0.7 sent them.

Field names, which fields are present and which are left out follow 0.0.7's models and
controllers (the Go file each shape comes from is named in its docstring; Go's
``omitempty`` left a field out when it was empty). ``docs/compatibility.md`` lists
where we differ and why.
"""

from __future__ import annotations

import functools
from typing import Any

from owncast import __version__
from owncast.api.http import iso
from owncast.core.markup import render_page
from owncast.core.settings import variant_name

#: What 0.0.7 clients read as ``versionNumber``: the version of the API we speak.
API_VERSION = "0.0.7"
#: ``version`` in ``/api/config``: 0.0.7's "Owncast v<version>-<platform> (<commit>)",
#: with our name and version where 0.0.7 put its build platform and commit.
RELEASE_STRING = f"Owncast v{API_VERSION}-owncast-py ({__version__})"

#: Platforms 0.0.7 knew, and their icons (models/socialHandle.go): ``/api/config`` adds
#: the icon to a handle whose platform is one of these keys; ``/api/socialplatforms``
#: lists them all.
SOCIAL_PLATFORMS: dict[str, tuple[str, str]] = {
    "bandcamp": ("Bandcamp", "bandcamp.svg"),
    "discord": ("Discord", "discord.svg"),
    "facebook": ("Facebook", "facebook.svg"),
    "github": ("GitHub", "github.svg"),
    "gitlab": ("GitLab", "gitlab.svg"),
    "instagram": ("Instagram", "instagram.svg"),
    "keyoxide": ("Keyoxide", "keyoxide.png"),
    "kofi": ("Ko-Fi", "ko-fi.svg"),
    "linkedin": ("LinkedIn", "linkedin.svg"),
    "mastodon": ("Mastodon", "mastodon.svg"),
    "patreon": ("Patreon", "patreon.svg"),
    "paypal": ("Paypal", "paypal.svg"),
    "snapchat": ("Snapchat", "snapchat.svg"),
    "soundcloud": ("Soundcloud", "soundcloud.svg"),
    "spotify": ("Spotify", "spotify.svg"),
    "tiktok": ("TikTok", "tiktok.svg"),
    "twitch": ("Twitch", "twitch.svg"),
    "twitter": ("Twitter", "twitter.svg"),
    "youtube": ("YouTube", "youtube.svg"),
    "odysee": ("Odysee", "odysee.svg"),
    "lbry": ("LBRY", "lbry.svg"),
    "liberapay": ("LiberaPay", "liberapay.svg"),
    "donate": ("Donations", "donate.svg"),
    "follow": ("Follow", "follow.svg"),
}
ICON_PREFIX = "/img/platformlogos/"


@functools.lru_cache(maxsize=8)
def _rendered(markdown: str) -> str:
    return render_page(markdown)


def omit_empty(**fields: Any) -> dict:
    """Go's ``omitempty``: the fields whose value is not empty."""
    return {k: v for k, v in fields.items() if v not in ("", None, False, 0)}


def message(record: dict) -> dict:
    """models/chatMessage.go ``ChatEvent``: author and body left out when empty."""
    out = omit_empty(author=record.get("author"), body=record["body"])
    out.update(
        id=record["id"],
        type=record["type"],
        visible=record["visible"],
        timestamp=iso(record["timestamp"]),
    )
    return out


def token(record: dict) -> dict:
    """models/accessToken.go."""
    return {
        "token": record["token"],
        "name": record["name"],
        "scopes": list(record["scopes"]),
        "timestamp": iso(record["timestamp"]),
        "lastUsed": iso(record.get("lastUsed")),
    }


def webhook_id(value: Any) -> int | str:
    """0.0.7's webhook ids are integers; ours are stored as decimal strings."""
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() else text


def webhook(record: dict) -> dict:
    """models/webhook.go."""
    return {
        "id": webhook_id(record["id"]),
        "url": record["url"],
        "events": list(record["events"]),
        "timestamp": iso(record["timestamp"]),
        "lastUsed": iso(record.get("lastUsed")),
    }


def client(record: dict) -> dict:
    """models/client.go ``Client``: ``geo`` is there, null when not looked up."""
    return {
        "connectedAt": iso(record["connectedAt"]),
        "messageCount": record["messageCount"],
        "userAgent": record["userAgent"],
        "ipAddress": record["ipAddress"],
        "username": record.get("username"),
        "clientID": record["clientID"],
        "geo": record.get("geo"),
    }


def samples(rows: list[tuple[float, float]]) -> list[dict]:
    """metrics/timestampedValue.go."""
    return [{"time": iso(t), "value": int(round(v))} for t, v in rows]


def log_entry(entry: dict) -> dict:
    """controllers/admin/logs.go ``logsResponse``."""
    return {"message": entry["message"], "level": entry["level"], "time": iso(entry["time"])}


def social_handle(handle: dict) -> dict:
    """A handle as ``/api/config`` shows it: with the platform's icon when known."""
    out = omit_empty(platform=handle.get("platform"), url=handle.get("url"))
    known = SOCIAL_PLATFORMS.get(str(handle.get("platform", "")))
    if known is not None:
        out["icon"] = ICON_PREFIX + known[1]
    return out


def social_platforms() -> dict:
    """controllers/config.go ``GetAllSocialPlatforms``: key -> {platform, icon}."""
    return {
        key: {"platform": name, "icon": ICON_PREFIX + icon}
        for key, (name, icon) in SOCIAL_PLATFORMS.items()
    }


def instance_details(settings: Any) -> dict:
    """controllers/config.go ``webConfigResponse``: ``/api/config``."""
    out = {
        "name": settings["name"],
        "summary": settings["summary"],
        "logo": "/logo",
        "tags": list(settings["tags"]),
        "version": RELEASE_STRING,
        "nsfw": settings["nsfw"],
        "extraPageContent": _rendered(settings["pageContent"]),
    }
    out.update(omit_empty(streamTitle=settings["streamTitle"]))
    out.update(
        socialHandles=[social_handle(h) for h in settings["socialHandles"]],
        chatDisabled=settings["chatDisabled"],
        externalActions=[dict(a) for a in settings["externalActions"]],
        customStyles=settings["customStyles"],
    )
    return out


def admin_instance_details(settings: Any) -> dict:
    """controllers/admin/serverConfig.go ``webConfigResponse``: the settings as stored
    (the page content in markdown, the logo's path); 0.0.7 left ``version`` empty."""
    return {
        "name": settings["name"],
        "summary": settings["summary"],
        "welcomeMessage": settings["welcomeMessage"],
        "logo": settings["logo"],
        "tags": list(settings["tags"]),
        "version": "",
        "nsfw": settings["nsfw"],
        "extraPageContent": settings["pageContent"],
        "streamTitle": settings["streamTitle"],
        "socialHandles": [
            omit_empty(platform=h["platform"], url=h["url"]) for h in settings["socialHandles"]
        ],
        "customStyles": settings["customStyles"],
    }


def variant(v: dict, *, as_configured: bool = False) -> dict:
    """models/streamOutputVariant.go: ``scaledWidth``/``scaledHeight`` left out when 0,
    ``framerate`` as the transcoder uses it (0 for passed-through video).
    ``as_configured``: the server config's view, where 0.0.7 also filled in the name and
    said whether audio is passed through (a 0 audio bitrate means it is)."""
    out = {
        "name": variant_name(v) if as_configured else v.get("name", ""),
        "videoPassthrough": v["videoPassthrough"],
        "audioPassthrough": v["audioPassthrough"] or (as_configured and not v["audioBitrate"]),
        "videoBitrate": v["videoBitrate"],
        "audioBitrate": v["audioBitrate"],
    }
    out.update(omit_empty(scaledWidth=v["scaledWidth"], scaledHeight=v["scaledHeight"]))
    out["framerate"] = 0 if v["videoPassthrough"] else (v["framerate"] or 24)
    out["cpuUsageLevel"] = v["cpuUsageLevel"]
    return out


def s3(config: dict) -> dict:
    """models/s3Storage.go: every field but ``enabled`` left out when empty."""
    out = {"enabled": bool(config.get("enabled"))}
    for key in ("endpoint", "servingEndpoint", "accessKey", "secret", "bucket", "region", "acl"):
        if config.get(key):
            out[key] = config[key]
    return out


def variants_menu(variants: list[dict]) -> list[dict]:
    """controllers/video.go: ``[{name, index}]``, highest video bitrate first."""
    indexed = [{"name": variant_name(v), "index": i} for i, v in enumerate(variants)]
    return sorted(indexed, key=lambda e: -variants[e["index"]]["videoBitrate"])
