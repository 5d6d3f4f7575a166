"""The hardening, against the real daemon: behind a trusted proxy a guesser cannot lock
the owner out; hundreds of idle RTMP connections from loopback, re-opened as soon as they
are dropped, do not keep the real ffmpeg from publishing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.trial import unittest

from owncast.chat.server import MAX_PER_IP
from tests.daemon import start_daemon, wait_until
from tests.test_chat_e2e import dial
from tests.test_live_e2e import spawn

KEY = "security-e2e-stream-key"
ADMIN = ("admin", KEY)


class _IdleFlood(ClientFactory):
    """``count`` connections that never send a byte, each re-opened ``delay`` seconds
    after the server drops it (the ``vol_idle_500`` attack)."""

    protocol = Protocol

    def __init__(self, port: int, count: int, delay: float = 0.5):
        self.port = port
        self.count = count
        self.delay = delay
        self.running = True
        self.made = 0
        self.dropped = 0
        self.open = 0
        self.connectors: list[Any] = []
        self._later: set[Any] = set()

    def start(self) -> None:
        for _ in range(self.count):
            self.connectors.append(reactor.connectTCP("127.0.0.1", self.port, self))

    def buildProtocol(self, addr: Any) -> Protocol:
        self.made += 1
        self.open += 1
        return super().buildProtocol(addr)

    def _again(self, connector: Any) -> None:
        if self.running:

            def reconnect() -> None:
                self._later.discard(call)
                connector.connect()

            call = reactor.callLater(self.delay, reconnect)
            self._later.add(call)

    def clientConnectionLost(self, connector: Any, reason: Any) -> None:
        self.open -= 1
        self.dropped += 1
        self._again(connector)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self._again(connector)

    async def stop(self) -> None:
        """Stop re-opening, close what is open, and wait until it is closed."""
        self.running = False
        for call in self._later:
            call.cancel()
        self._later.clear()
        for connector in self.connectors:
            connector.disconnect()
        await wait_until(lambda: self.open == 0, 10, "the idle connections to close")


class TrustedProxyEndToEndTests(unittest.TestCase):
    timeout = 60

    async def test_behind_a_trusted_proxy_guesses_lock_out_only_the_guesser(self):
        """As nginx would pass them on: each request from 127.0.0.1 (the proxy) names its
        client in X-Forwarded-For, after whatever the client wrote there itself."""
        daemon = await start_daemon(
            self,
            Path(self.mktemp()).resolve(),
            args=["--streamkey", KEY, "--trustedproxy", "127.0.0.1", "--trustedproxy", "::1"],
        )

        async def login(client: str, auth: Any, spoofed: str = "") -> int:
            forwarded = f"{spoofed}, {client}" if spoofed else client
            response = await treq.get(
                daemon.base + "/api/admin/status",
                auth=auth,
                headers={"X-Forwarded-For": [forwarded]},
                persistent=False,
                timeout=10,
            )
            await response.content()
            return response.code

        codes = [
            await login("203.0.113.9", ("admin", f"guess-{n}"), spoofed=f"10.9.9.{n}")
            for n in range(9)
        ]
        self.assertEqual(codes, [401] * 6 + [429] * 3)
        self.assertEqual(await login("198.51.100.7", ADMIN), 200)
        self.assertEqual(await login("203.0.113.9", ADMIN), 429)

    async def test_behind_a_trusted_proxy_chat_caps_each_client_not_the_proxy(self):
        """Every chat socket comes from the proxy's address: the per-address cap counts
        the clients it names, so more viewers than the cap can chat, and one client still
        cannot open more than its share."""
        daemon = await start_daemon(
            self,
            Path(self.mktemp()).resolve(),
            args=["--streamkey", KEY, "--trustedproxy", "127.0.0.1"],
        )

        async def sockets(clients: list[str]) -> list[Any]:
            opened = [
                await dial(self, daemon.web_port, headers={"X-Forwarded-For": client})
                for client in clients
            ]
            await wait_until(
                lambda: all(c.opened or c.closed for c in opened), 20, "the handshakes"
            )
            return opened

        many = await sockets([f"198.51.100.{n}" for n in range(MAX_PER_IP + 5)])
        self.assertEqual([c.opened for c in many], [True] * (MAX_PER_IP + 5))
        one = await sockets(["203.0.113.50"] * (MAX_PER_IP + 1))
        self.assertEqual([c.opened for c in one], [True] * MAX_PER_IP + [False])


class RtmpFloodEndToEndTests(unittest.TestCase):
    timeout = 90

    async def test_idle_connections_from_loopback_do_not_keep_ffmpeg_out(self):
        daemon = await start_daemon(self, Path(self.mktemp()).resolve(), args=["--streamkey", KEY])
        flood = _IdleFlood(daemon.rtmp_port, 500)
        self.addCleanup(flood.stop)
        flood.start()
        await wait_until(lambda: flood.made >= 500, 30, "500 idle connections")
        await wait_until(lambda: flood.dropped >= 100, 30, "the daemon to drop idle ones")

        url = f"rtmp://127.0.0.1:{daemon.rtmp_port}/live/{KEY}"
        args = ["-hide_banner", "-loglevel", "error", "-re",
                "-f", "lavfi", "-i", "testsrc=size=320x180:rate=15",
                "-f", "lavfi", "-i", "sine=frequency=440",
                "-t", "20", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
                "-g", "15", "-c:a", "aac", "-f", "flv", url]  # fmt: skip
        ffmpeg = spawn(self, *args)

        async def online() -> bool:
            return (await daemon.get("/api/status")).json["online"]

        await wait_until(online, 20, f"the broadcast to go live ({bytes(ffmpeg.err)!r})")
        self.assertTrue(ffmpeg.running, bytes(ffmpeg.err))
        self.assertIn("made room for newer ones", daemon.output)
        await flood.stop()
