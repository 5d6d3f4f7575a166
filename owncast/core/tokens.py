"""Access tokens for integrations: creation, scopes, and constant-time lookup.

Tokens are kept in memory keyed by their SHA-256 digest, so finding one takes the
same time whatever prefix an attacker guesses; the store keeps them durable.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from twisted.logger import Logger

from owncast.core.errors import ValidationError

_log = Logger()

CAN_SEND_MESSAGES = "CAN_SEND_MESSAGES"
CAN_SEND_SYSTEM_MESSAGES = "CAN_SEND_SYSTEM_MESSAGES"
HAS_ADMIN_ACCESS = "HAS_ADMIN_ACCESS"
SCOPES = (CAN_SEND_MESSAGES, CAN_SEND_SYSTEM_MESSAGES, HAS_ADMIN_ACCESS)

#: Write ``lastUsed`` to storage at most this often per token (seconds).
TOUCH_INTERVAL = 60.0
#: Seconds between reloads of the token list prompted by unknown tokens.
REFRESH_INTERVAL = 2.0


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def validate_new_token(body: Any) -> tuple[str, list[str]]:
    """The ``{name, scopes}`` of a create request, checked."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object {name, scopes}")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationError("name must be a non-empty string of at most 200 characters")
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise ValidationError("scopes must be a non-empty array of strings")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValidationError(f"unknown scopes: {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    return name.strip(), list(dict.fromkeys(scopes))


class TokenRegistry:
    """The tokens in memory, mirrored to an ``IStore``."""

    def __init__(self, store: Any):
        self._store = store
        self._by_digest: dict[bytes, dict] = {}
        self._touched: dict[bytes, float] = {}
        self._refreshed = float("-inf")

    def load(self, records: list[dict]) -> None:
        self._by_digest = {_digest(r["token"]): dict(r) for r in records}

    async def refresh(self, now: float) -> None:
        """Reload from the store: tokens created or deleted by another node take effect."""
        self.load(await self._store.list_tokens())

    def may_refresh(self, now: float) -> bool:
        """Claim a reload for an unknown token: at most one per ``REFRESH_INTERVAL``."""
        if now - self._refreshed < REFRESH_INTERVAL:
            return False
        self._refreshed = now
        return True

    async def create(self, name: str, scopes: list[str], now: float) -> dict:
        token = secrets.token_urlsafe(32)
        record = {
            "token": token,
            "name": name,
            "scopes": scopes,
            "timestamp": now,
            "lastUsed": None,
        }
        await self._store.add_token(record)
        self._by_digest[_digest(token)] = record
        return dict(record)

    async def delete(self, token: str) -> bool:
        existed = self._by_digest.pop(_digest(token), None) is not None
        await self._store.delete_token(token)
        return existed

    def all(self) -> list[dict]:
        return sorted((dict(r) for r in self._by_digest.values()), key=lambda r: r["timestamp"])

    def lookup(self, token: str) -> dict | None:
        return self._by_digest.get(_digest(token))

    def touch(self, record: dict, now: float) -> None:
        """Note a use; the store hears of it at most once per ``TOUCH_INTERVAL``."""
        record["lastUsed"] = now
        key = _digest(record["token"])
        if now - self._touched.get(key, float("-inf")) >= TOUCH_INTERVAL:
            self._touched[key] = now
            d = self._store.touch_token(record["token"], now)
            d.addErrback(lambda f: _log.failure("could not record token use", f))
