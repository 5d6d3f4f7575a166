"""Listing in the Owncast directory: pinging it while ``directoryEnabled`` is on.

As Owncast 0.0.7 does, the server ``POST``s ``{"key", "url"}`` to
``<directory>/api/ping`` every four minutes, ``url`` being the ``serverUrl`` setting (the
directory then reads ``<url>/api/yp``); the directory answers
``{"success", "error", "key"}`` and the key it hands out is kept as
``ypRegistrationKey`` and sent with every later ping (``/api/admin/yp/reset`` clears
it). Nothing is sent without a public http(s) ``serverUrl``.

Where we do better: the key the directory hands out is the one saved (0.0.7 saved the
old one again), a ping goes out within ``CHECK_INTERVAL`` of the listing being turned on,
the URL changing or the stream starting or stopping (not up to four minutes later),
requests time out after ``TIMEOUT`` seconds, and each kind of failure is logged once
until a ping succeeds again, not every four minutes.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from owncast.runtime.timers import GuardedTimerService

_log = Logger()

DEFAULT_DIRECTORY = "https://directory.owncast.online"
PING_INTERVAL = 4 * 60.0
CHECK_INTERVAL = 5.0
TIMEOUT = 10.0


def public_url(url: str) -> bool:
    """An http(s) URL the directory could reach: a host name with a dot, or a public IP."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return "." in host and host != "localhost" and not host.endswith(".localhost")


class DirectoryPinger(GuardedTimerService):
    """``settings`` is the live ``Settings``; ``save(values)`` stores settings (async);
    ``online()`` tells whether a broadcast is live; ``post(url, body, timeout)`` sends
    JSON and returns a Deferred of ``(status, body bytes)``."""

    name = "directory"

    def __init__(
        self,
        settings: Any,
        save: Callable[[dict], Any],
        online: Callable[[], bool],
        post: Callable[[str, bytes, float], Deferred],
        clock: Any,
        directory: str = DEFAULT_DIRECTORY,
    ):
        self._settings = settings
        self._save = save
        self._online = online
        self._post = post
        super().__init__(CHECK_INTERVAL, self.check, clock, _log, "A directory check")
        self.ping_url = directory.rstrip("/") + "/api/ping"
        self._last_state: tuple | None = None
        self._last_ping = -1e18
        self._error: str | None = None
        self._busy = False

    def check(self) -> Deferred | None:
        """Ping when it is time, or when what the directory shows has changed."""
        settings = self._settings
        state = (settings["directoryEnabled"], settings["serverUrl"], self._online())
        changed = state != self._last_state
        due = self.now() - self._last_ping >= PING_INTERVAL
        if self._busy or not state[0] or not (changed or due):
            if not state[0]:
                self._last_state = state
            return None
        self._last_state = state
        self._last_ping = self.now()
        return Deferred.fromCoroutine(self.ping())

    async def ping(self) -> None:
        url = self._settings["serverUrl"]
        if not public_url(url):
            self._report(
                "url",
                f"the server URL {url!r} is not a public http(s) URL; set "
                "one (Server URL in the admin page) to be listed",
            )
            return
        key = self._settings["ypRegistrationKey"]
        body = json.dumps({"key": key, "url": url}).encode()
        self._busy = True
        try:
            status, content = await self._post(self.ping_url, body, TIMEOUT)
        except Exception as e:
            self._report("network", f"could not reach {self.ping_url}: {e}")
            return
        finally:
            self._busy = False
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or status != 200:
            self._report("answer", f"{self.ping_url} answered {status}: {content[:200]!r}")
            return
        if not answer.get("success"):
            self._report("refused", f"the directory refused the listing: {answer.get('error')}")
            return
        if self._error is not None:
            _log.info("Listed in the directory again")
        self._error = None
        new_key = answer.get("key")
        if isinstance(new_key, str) and new_key and new_key != key:
            await self._save({"ypRegistrationKey": new_key})

    def _report(self, kind: str, message: str) -> None:
        if self._error != kind:
            _log.warn("Directory: {message}", message=message)
        self._error = kind
