"""The JSON shapes of the API, built from domain records (field names as Owncast 0.0.7)."""

from __future__ import annotations

import functools
from typing import Any

from owncast import VERSION_STRING
from owncast.api.http import iso
from owncast.core.markup import render_page


@functools.lru_cache(maxsize=8)
def _rendered(markdown: str) -> str:
    return render_page(markdown)


def message(record: dict) -> dict:
    return {
        "id": record["id"],
        "type": record["type"],
        "author": record.get("author"),
        "body": record["body"],
        "visible": record["visible"],
        "timestamp": iso(record["timestamp"]),
    }


def token(record: dict) -> dict:
    return {
        "token": record["token"],
        "name": record["name"],
        "scopes": list(record["scopes"]),
        "timestamp": iso(record["timestamp"]),
        "lastUsed": iso(record.get("lastUsed")),
    }


def webhook(record: dict) -> dict:
    return {
        "id": str(record["id"]),
        "url": record["url"],
        "events": list(record["events"]),
        "timestamp": iso(record["timestamp"]),
        "lastUsed": iso(record.get("lastUsed")),
    }


def client(record: dict) -> dict:
    return dict(record, connectedAt=iso(record["connectedAt"]))


def samples(rows: list[tuple[float, float]]) -> list[dict]:
    return [{"time": iso(t), "value": int(round(v))} for t, v in rows]


def log_entry(entry: dict) -> dict:
    return {"time": iso(entry["time"]), "level": entry["level"], "message": entry["message"]}


def instance_details(settings: Any) -> dict:
    return {
        "name": settings["name"],
        "summary": settings["summary"],
        "logo": settings["logo"],
        "tags": list(settings["tags"]),
        "socialHandles": [dict(h) for h in settings["socialHandles"]],
        "extraPageContent": _rendered(settings["pageContent"]),
        "version": VERSION_STRING,
        "streamTitle": settings["streamTitle"],
        "nsfw": settings["nsfw"],
        "customStyles": settings["customStyles"],
    }
