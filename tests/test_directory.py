"""Directory listing: pings to a stand-in for the public Owncast directory (the one thing
that cannot run here), over real HTTP, with time driven by a Clock where it matters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from owncast.core.settings import Settings
from owncast.http.client import JsonClient
from owncast.listing.directory import (
    CHECK_INTERVAL,
    PING_INTERVAL,
    DirectoryPinger,
    public_url,
)
from tests.daemon import start_daemon, wait_until


class FakeDirectory(Resource):
    """``POST /api/ping``: records each ping; hands out ``key`` to pings without one."""

    isLeaf = True

    def __init__(self, answer: dict | None = None):
        super().__init__()
        self.pings: list[dict] = []
        self.answer = answer

    def render_POST(self, request: Any) -> bytes:
        if request.path != b"/api/ping":
            request.setResponseCode(404)
            return b"{}"
        ping = json.loads(request.content.read())
        self.pings.append(ping)
        answer = self.answer or {"success": True, "error": "", "key": ping["key"] or "dir-key-1"}
        return json.dumps(answer).encode()


def serve(testcase: unittest.TestCase, directory: FakeDirectory) -> str:
    port = reactor.listenTCP(0, Site(directory), interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)
    return f"http://127.0.0.1:{port.getHost().port}"


class PublicUrlTests(unittest.TestCase):
    def test_only_urls_the_directory_can_reach(self):
        for url in ("https://live.example.org", "http://93.184.216.34:8080/", "https://a.b.c/x"):
            self.assertTrue(public_url(url), url)
        for url in (
            "",
            "live.example.org",
            "ftp://live.example.org",
            "http://localhost:8080",
            "http://127.0.0.1:8080",
            "http://192.168.1.2",
            "http://intranet",
            "http://app.localhost",
        ):
            self.assertFalse(public_url(url), url)


class PingerTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.settings = Settings({"serverUrl": "https://live.example.org"})
        self.live = False
        self.sent: list[dict] = []
        self.answers: list[Any] = []
        self.pinger = DirectoryPinger(
            self.settings,
            self.save,
            lambda: self.live,
            self.post,
            self.clock,
            "https://dir.example/",
        )

    def save(self, values: dict) -> Deferred:
        self.settings.update(values)
        return succeed(None)

    def post(self, url: str, body: bytes, timeout: float) -> Deferred:
        self.assertEqual(url, "https://dir.example/api/ping")
        self.sent.append(json.loads(body))
        answer = self.answers.pop(0) if self.answers else {"success": True, "key": "k1"}
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed((200, json.dumps(answer).encode()))

    def test_nothing_is_sent_while_listing_is_off(self):
        self.pinger.startService()
        self.clock.advance(PING_INTERVAL * 2)
        self.assertEqual(self.sent, [])

    def test_pings_soon_after_turning_on_then_every_four_minutes_with_its_key(self):
        self.pinger.startService()
        self.settings.update({"directoryEnabled": True})
        self.clock.advance(CHECK_INTERVAL)
        self.assertEqual(self.sent, [{"key": "", "url": "https://live.example.org"}])
        self.assertEqual(self.settings["ypRegistrationKey"], "k1")
        self.clock.advance(PING_INTERVAL - CHECK_INTERVAL)
        self.assertEqual(len(self.sent), 1)
        self.clock.advance(CHECK_INTERVAL)
        self.assertEqual(self.sent[-1], {"key": "k1", "url": "https://live.example.org"})
        self.live = True  # going live is shown within seconds
        self.clock.advance(CHECK_INTERVAL)
        self.assertEqual(len(self.sent), 3)
        self.pinger.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failures_are_logged_once_per_kind_until_a_ping_succeeds(self):
        self.settings.update({"directoryEnabled": True, "serverUrl": "http://localhost:8080"})
        logged: list = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)

        def warnings() -> list[str]:
            return [
                formatEvent(e)
                for e in logged
                if e.get("log_level") == LogLevel.warn
                and e.get("log_namespace") == "owncast.listing.directory"
            ]

        self.pinger.startService()
        self.clock.advance(PING_INTERVAL)
        self.assertEqual(self.sent, [])  # no public URL: nothing sent
        self.assertEqual(len(warnings()), 1)
        self.settings.update({"serverUrl": "https://live.example.org"})
        self.answers = [
            ConnectionRefusedError("down"),
            ConnectionRefusedError("down"),
            {"success": False, "error": "banned"},
            {"success": True, "key": "k9"},
        ]
        for _ in range(4):
            self.clock.advance(PING_INTERVAL)
        self.assertEqual(len(self.sent), 4)
        self.assertEqual(len(warnings()), 3, warnings())  # url, network (once for two), refused
        self.assertEqual(self.settings["ypRegistrationKey"], "k9")

    async def test_over_real_http(self):
        directory = FakeDirectory()
        pinger = DirectoryPinger(
            self.settings,
            self.save,
            lambda: True,
            JsonClient(reactor, allow_private=True).timed_poster(),
            reactor,
            serve(self, directory),
        )
        self.settings.update({"directoryEnabled": True})
        await pinger.ping()
        await pinger.ping()
        self.assertEqual(
            directory.pings,
            [
                {"key": "", "url": "https://live.example.org"},
                {"key": "dir-key-1", "url": "https://live.example.org"},
            ],
        )

    async def test_a_silent_directory_times_out(self):
        class Silent(Resource):
            isLeaf = True

            def render_POST(self, request):
                return NOT_DONE_YET

        pinger = DirectoryPinger(
            self.settings,
            self.save,
            lambda: True,
            lambda url, body, timeout: JsonClient(reactor, allow_private=True).post(url, body, 0.2),
            reactor,
            serve(self, Silent()),
        )
        self.settings.update({"directoryEnabled": True})
        await pinger.ping()
        self.assertEqual(pinger._error, "network")


class DaemonDirectoryTests(unittest.TestCase):
    timeout = 60

    async def test_the_daemon_registers_and_reset_clears_the_key(self):
        directory = FakeDirectory()
        url = serve(self, directory)
        daemon = await start_daemon(
            self,
            Path(self.mktemp()).resolve(),
            args=["--directoryurl", url, "--streamkey", "dir-test-key"],
        )
        auth = ("admin", "dir-test-key")
        for name, value in (("serverurl", "https://live.example.org"), ("directoryenabled", True)):
            response = await daemon.post(f"/api/admin/config/{name}", {"value": value}, auth=auth)
            self.assertEqual(response.code, 200, response)
        await wait_until(lambda: directory.pings, CHECK_INTERVAL * 3, "a ping")
        self.assertEqual(directory.pings[0], {"key": "", "url": "https://live.example.org"})

        async def ping_after(url: str) -> dict:
            """Change the server URL, which pings again within seconds."""
            seen = len(directory.pings)
            response = await daemon.post("/api/admin/config/serverurl", {"value": url}, auth=auth)
            self.assertEqual(response.code, 200, response)
            await wait_until(lambda: len(directory.pings) > seen, CHECK_INTERVAL * 3, "a ping")
            return directory.pings[-1]

        self.assertEqual(
            await ping_after("https://b.example.org"),
            {"key": "dir-key-1", "url": "https://b.example.org"},
        )
        response = await daemon.post("/api/admin/yp/reset", {}, auth=auth)
        self.assertEqual(response.code, 200)
        self.assertEqual(
            await ping_after("https://c.example.org"), {"key": "", "url": "https://c.example.org"}
        )
        listing = (await daemon.get("/api/yp")).json
        self.assertEqual(listing["online"], False)
