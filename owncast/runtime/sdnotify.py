"""Telling systemd how the daemon is doing: ready, stopping, and the watchdog's pings.

Under ``Type=notify`` systemd hands the service ``NOTIFY_SOCKET``, a datagram socket to
send ``READY=1`` to once it serves (so units ordered after it, and ``systemctl start``,
wait for the listeners rather than for the process to exist), and ``STOPPING=1`` when
it begins to shut down. With ``WatchdogSec=`` it also hands ``WATCHDOG_USEC``: unless a
``WATCHDOG=1`` arrives that often, systemd kills the service and ``Restart=`` brings it
back. The pings come from a timer on the reactor, so a reactor that hangs (a blocking
call, a busy loop) stops them and gets the daemon restarted; a thread that pinged on
its own would keep a hung daemon alive.

This is the datagram protocol of ``sd_notify(3)`` written out (a few lines, no C
library): one ``sendto`` on a non-blocking socket, so systemd being slow to read never
blocks the reactor: a message that does not fit is dropped and said once in the log.
Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

_log = Logger()


def notify_address(environ: Mapping[str, str]) -> str | None:
    """The socket ``NOTIFY_SOCKET`` names: a path, or ``@name`` in the abstract namespace
    (returned with its leading NUL, as ``sendto`` wants it); None when there is none."""
    value = environ.get("NOTIFY_SOCKET", "")
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings (half systemd's ``WATCHDOG_USEC``, as ``sd_watchdog_enabled(3)``
    advises), or None when there is no watchdog, or it is meant for another process."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    meant_for = environ.get("WATCHDOG_PID")
    if meant_for and meant_for != str(pid):
        return None
    return usec / 2_000_000


class Notifier:
    """Sends ``sd_notify`` messages to the socket ``environ`` names (``os.environ`` in the
    daemon); ``pid`` is this process's, which a watchdog must be meant for."""

    def __init__(self, environ: Mapping[str, str], pid: int | None = None):
        self.address = notify_address(environ)
        self.watchdog_interval = (
            watchdog_interval(environ, os.getpid() if pid is None else pid)
            if self.address is not None
            else None
        )
        self._socket: socket.socket | None = None
        self._complained: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One message of ``KEY=value`` lines; True when the socket took it."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto("\n".join(fields).encode("utf-8"), self.address)
        except OSError as e:
            kind = e.__class__.__name__
            if kind not in self._complained:  # once per kind: pings come every few seconds
                self._complained.add(kind)
                _log.warn(
                    "Could not notify systemd at {address}: {error}",
                    address=self.address.replace("\0", "@"),
                    error=e,
                )
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=Stopping")

    def ping(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class Watchdog:
    """Pings systemd's watchdog from the reactor every ``notifier.watchdog_interval``
    seconds while started (nothing without a watchdog). systemd watches only from
    ``READY=1`` to ``STOPPING=1``, so the ``ready`` child starts and stops it."""

    def __init__(self, notifier: Notifier, clock: IReactorTime):
        self.notifier = notifier
        self._clock = clock
        self._loop: LoopingCall | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.running

    def start(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None or self.running:
            return
        self._loop = LoopingCall(self._ping)
        self._loop.clock = self._clock
        self._loop.start(interval, now=True)

    def _ping(self) -> None:
        try:
            self.notifier.ping()
        except Exception:  # noqa: BLE001 - a raise would end the loop, and the daemon with it
            _log.failure("Pinging systemd's watchdog failed")

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
