"""Running under systemd: the unit file, ``sd_notify`` (ready, stopping, watchdog pings).

The unit is checked by systemd's own tools (``systemd-analyze verify``, and ``security``
offline, which needs no running systemd). The notifier is checked against a datagram
socket the test binds, first in memory on a fake clock, then with the real daemon
started as ``Type=notify`` starts it (``NOTIFY_SOCKET``, ``WATCHDOG_USEC``).
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial import unittest

from owncast.runtime.sdnotify import Notifier, Watchdog, notify_address, watchdog_interval
from tests.daemon import REPO_ROOT, Daemon, http, wait_until

UNIT = REPO_ROOT / "systemd" / "owncast.service"
INI = REPO_ROOT / "etc" / "owncast.ini"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
#: The most exposure (``systemd-analyze security``, 0 to 10) the unit may have.
MOST_EXPOSURE = 3.0


def unit_service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT, encoding="utf-8")
    return parser["Service"]


class Datagrams(DatagramProtocol):
    """What arrives at the fake ``NOTIFY_SOCKET``: one dict of fields per datagram."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        fields = dict(line.partition("=")[::2] for line in data.decode().split("\n") if line)
        self.messages.append(fields)

    def having(self, key: str) -> list[dict[str, str]]:
        return [m for m in self.messages if key in m]


def short_folder(testcase: unittest.TestCase) -> str:
    """A fresh folder with a short path (a socket's path must fit in 108 bytes), removed
    at cleanup."""
    folder = tempfile.mkdtemp(prefix="owncast-sd-")
    testcase.addCleanup(shutil.rmtree, folder, True)
    return folder


def bound_socket(testcase: unittest.TestCase) -> tuple[str, socket.socket]:
    """A datagram socket bound at a fresh path, closed at cleanup."""
    path = os.path.join(short_folder(testcase), "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    testcase.addCleanup(sock.close)
    return path, sock


class EnvironmentTests(unittest.TestCase):
    def test_the_socket_is_a_path_or_an_abstract_name(self):
        self.assertEqual(notify_address({"NOTIFY_SOCKET": "/run/x"}), "/run/x")
        self.assertEqual(notify_address({"NOTIFY_SOCKET": "@abc"}), "\0abc")
        for value in ("", "@", "relative/path", "vsock:2:3"):
            self.assertIsNone(notify_address({"NOTIFY_SOCKET": value}), value)
        self.assertIsNone(notify_address({}))

    def test_pings_come_at_half_the_watchdog_timeout_and_only_for_this_process(self):
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "30000000"}, 7), 15.0)
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, 7), 1)
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "8"}, 7))
        for usec in ("", "0", "-5", "soon"):
            self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": usec}, 7), usec)

    def test_outside_systemd_nothing_is_sent(self):
        notifier = Notifier({"WATCHDOG_USEC": "1000000"})
        self.assertFalse(notifier.enabled)
        self.assertIsNone(notifier.watchdog_interval)
        self.assertFalse(notifier.ready())


class NotifierTests(unittest.TestCase):
    def test_messages_reach_the_socket_as_sd_notify_writes_them(self):
        path, sock = bound_socket(self)
        notifier = Notifier({"NOTIFY_SOCKET": path})
        self.addCleanup(notifier.close)
        self.assertTrue(notifier.ready("Serving"))
        self.assertTrue(notifier.ping())
        self.assertTrue(notifier.stopping())
        self.assertEqual(sock.recv(4096), b"READY=1\nSTATUS=Serving")
        self.assertEqual(sock.recv(4096), b"WATCHDOG=1")
        self.assertEqual(sock.recv(4096), b"STOPPING=1\nSTATUS=Stopping")

    def test_a_socket_nobody_reads_costs_a_warning_once_and_never_blocks(self):
        path, sock = bound_socket(self)
        notifier = Notifier({"NOTIFY_SOCKET": path})
        self.addCleanup(notifier.close)
        with capturedLogs() as events:
            sent = [notifier.ping() for _ in range(5000)]  # far more than the queue holds
        self.assertIn(False, sent)
        self.assertEqual(sent[0], True)
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("Could not notify systemd", formatEvent(warnings[0]))

    def test_a_missing_socket_is_reported_not_raised(self):
        path = os.path.join(short_folder(self), "gone")
        notifier = Notifier({"NOTIFY_SOCKET": path})
        self.addCleanup(notifier.close)
        self.assertFalse(notifier.ready())
        self.assertFalse(notifier.ping())


class WatchdogTests(unittest.TestCase):
    def test_pings_come_from_the_clock_until_stopped(self):
        path, sock = bound_socket(self)
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
        self.addCleanup(notifier.close)
        clock = Clock()
        watchdog = Watchdog(notifier, clock)
        watchdog.start()
        self.assertEqual(sock.recv(64), b"WATCHDOG=1")  # at once
        clock.advance(4.9)
        self.assertRaises(BlockingIOError, sock.recv, 64)
        clock.advance(0.1)
        self.assertEqual(sock.recv(64), b"WATCHDOG=1")
        watchdog.stop()
        clock.advance(20)
        self.assertRaises(BlockingIOError, sock.recv, 64)
        self.assertFalse(watchdog.running)

    def test_without_a_watchdog_nothing_is_scheduled(self):
        clock = Clock()
        watchdog = Watchdog(Notifier({}), clock)
        watchdog.start()
        self.assertFalse(watchdog.running)
        self.assertEqual(clock.getDelayedCalls(), [])
        watchdog.stop()


class UnitFileTests(unittest.TestCase):
    async def analyze(self, *args: str) -> tuple[str, int]:
        out, err, code = await getProcessOutputAndValue(
            SYSTEMD_ANALYZE, args, env=dict(os.environ), reactor=reactor
        )
        return (out + err).decode("utf-8", "replace"), code

    def checkable_copy(self) -> str:
        """The unit with ExecStart pointing at this checkout's twistd (verify wants it to
        exist; the unit names the installed one)."""
        twistd = os.path.join(sys.prefix, "bin", "twistd")
        text = UNIT.read_text(encoding="utf-8").replace("/opt/owncast/venv/bin/twistd", twistd)
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "owncast.service")
        Path(path).write_text(text, encoding="utf-8")
        return path

    async def test_systemd_analyze_verify_accepts_the_unit(self):
        output, code = await self.analyze("verify", self.checkable_copy())
        self.assertEqual(code, 0, output)
        self.assertEqual(output.strip(), "")

    async def test_the_sandbox_rates_3_or_better(self):
        output, code = await self.analyze("security", "--offline=yes", self.checkable_copy())
        self.assertEqual(code, 0, output)
        found = re.search(r"Overall exposure level for owncast\.service: ([0-9.]+)", output)
        self.assertIsNotNone(found, output)
        assert found is not None
        self.assertLessEqual(float(found.group(1)), MOST_EXPOSURE, output)

    def test_the_unit_notifies_and_keeps_settings_in_the_config_file_only(self):
        service = unit_service()
        self.assertEqual(service["Type"], "notify")
        self.assertTrue(service["WatchdogSec"])
        argv = shlex.split(service["ExecStart"])
        self.assertEqual(
            argv[:4], ["/opt/owncast/venv/bin/twistd", "--nodaemon", "--pidfile=", "owncast"]
        )
        self.assertEqual(argv[4:], ["--config", "/etc/owncast/owncast.ini"])
        ini = configparser.ConfigParser()
        ini.read(INI, encoding="utf-8")
        self.assertEqual(ini["owncast"]["datadir"], "/var/lib/owncast")
        self.assertIn("/var/lib/owncast", service["WorkingDirectory"])
        self.assertEqual(service["StateDirectory"], "owncast")  # the datadir, writable
        self.assertEqual(service["ProtectHome"], "yes")
        self.assertFalse(argv[0].startswith(("/home/", "/root/")))


class NotifyDaemon(Daemon):
    """The daemon started as ``Type=notify`` starts it: ``NOTIFY_SOCKET`` and
    ``WATCHDOG_USEC`` in its environment (``env`` keeps the pid, as exec does)."""

    def __init__(self, datadir: Path, notify: str, watchdog_usec: int, **kwargs: Any):
        super().__init__(datadir, **kwargs)
        self.env = [f"NOTIFY_SOCKET={notify}", f"WATCHDOG_USEC={watchdog_usec}"]

    def argv(self) -> list[str]:
        return ["/usr/bin/env", *self.env, *super().argv()]


class DaemonNotifyTests(unittest.TestCase):
    timeout = 60

    async def test_ready_once_listening_pings_while_running_stopping_on_sigterm(self):
        folder = short_folder(self)
        path = os.path.join(folder, "notify")
        datagrams = Datagrams()
        port = reactor.listenUNIXDatagram(path, datagrams)
        self.addCleanup(port.stopListening)
        daemon = NotifyDaemon(Path(folder) / "data", path, 1_000_000)
        self.addCleanup(daemon.stop)
        daemon.spawn()

        await wait_until(lambda: datagrams.having("READY"), 30, "READY=1")
        # Ready means listening and serving: the probes answer at once.
        self.assertEqual((await http("GET", daemon.base + "/readyz")).code, 200)
        self.assertEqual((await http("GET", daemon.base + "/healthz")).code, 200)
        self.assertEqual(len(datagrams.having("READY")), 1)

        pings = len(datagrams.having("WATCHDOG"))
        await wait_until(
            lambda: len(datagrams.having("WATCHDOG")) >= pings + 3, 15, "three more pings"
        )
        self.assertEqual(datagrams.having("STOPPING"), [])

        await daemon.stop()
        # twistd ends by the signal it got once it has shut down: a clean stop for systemd.
        self.assertEqual(daemon.exit_signal, signal.SIGTERM, daemon.output)
        self.assertEqual(len(datagrams.having("STOPPING")), 1, datagrams.messages)
        order = [next(iter(m)) for m in datagrams.messages if "WATCHDOG" not in m]
        self.assertEqual(order, ["READY", "STOPPING"])

    async def test_a_watchdog_meant_for_another_process_is_not_pinged(self):
        folder = short_folder(self)
        path = os.path.join(folder, "notify")
        datagrams = Datagrams()
        port = reactor.listenUNIXDatagram(path, datagrams)
        self.addCleanup(port.stopListening)
        daemon = NotifyDaemon(Path(folder) / "data", path, 200_000)
        daemon.env.append("WATCHDOG_PID=1")
        self.addCleanup(daemon.stop)
        daemon.spawn()
        await wait_until(lambda: datagrams.having("READY"), 30, "READY=1")
        await daemon.stop()
        self.assertEqual(datagrams.having("WATCHDOG"), [])
