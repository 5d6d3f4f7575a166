"""Outbound HTTP: the one client that webhooks and the directory pings go through.

The domain takes plain callables (``post(url, body) -> Deferred``); this module makes
them from treq over the daemon's reactor, so every request the server makes on its own
leaves through one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

#: Seconds to wait for a TCP connection to a receiver.
CONNECT_TIMEOUT = 10.0
_JSON = Headers({b"content-type": [b"application/json"]})


class JsonClient:
    """POSTs JSON bodies; each answer is ``(status code, body bytes)``."""

    def __init__(self, reactor: Any, connect_timeout: float = CONNECT_TIMEOUT):
        self._reactor = reactor
        self._client = HTTPClient(Agent(reactor, connectTimeout=connect_timeout))

    async def _post(self, url: str, body: bytes) -> tuple[int, bytes]:
        response = await self._client.post(url, data=body, headers=_JSON)
        return response.code, await response.content()

    def post(self, url: str, body: bytes, timeout: float | None = None) -> Deferred:
        """Fire with ``(code, body)``; cancelled after ``timeout`` seconds when given."""
        d = Deferred.fromCoroutine(self._post(url, body))
        if timeout is not None:
            d.addTimeout(timeout, self._reactor)
        return d

    def status_poster(self) -> Callable[[str, bytes], Deferred]:
        """``post(url, body)`` firing with the status code alone (webhook deliveries)."""
        return lambda url, body: self.post(url, body).addCallback(lambda answer: answer[0])

    def timed_poster(self) -> Callable[[str, bytes, float], Deferred]:
        """``post(url, body, timeout)`` firing with ``(code, body)`` (directory pings)."""
        return self.post
