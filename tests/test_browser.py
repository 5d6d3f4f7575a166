"""The viewer page and the admin page in a real browser, against the real daemon.

Playwright for Python drives Debian's Chromium (``/usr/bin/chromium``, installed by
``make install``; no browser is ever downloaded), headless. Playwright's async API runs on
an asyncio loop of its own in a worker thread (``BrowserThread``); the tests themselves run
on trial's reactor, which also runs the daemon and the ffmpeg publisher as child processes.
``BrowserThread.run`` hands a coroutine to that loop and gives back a Deferred.

Every page opened here records console errors, uncaught exceptions and CSP violations;
each test ends by asserting there were none (failed loads of ``/hls/...`` before the
stream exists are expected and ignored). Screenshots go to ``test-artifacts/`` at the
repository root and are kept.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import imageio_ffmpeg
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.daemon import REPO_ROOT, Daemon, sleep, start_daemon

try:
    from playwright.async_api import async_playwright
except ImportError:  # reported by setUp: `make install` installs it
    async_playwright = None

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The network is closed here; background fetches would only flood refused connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
KEY = "browser-test-stream-key"
ADMIN_CREDENTIALS = {"username": "admin", "password": KEY}
ADMIN = ("admin", KEY)
WIDTHS = (375, 1280)
#: Milliseconds Playwright waits for anything before it fails the step.
STEP_TIMEOUT_MS = 20_000
#: How long a broadcast waits for its publisher to come back before it ends.
RECONNECT_GRACE_MS = 30_000

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
#: Two variants: the input copied as is, and a small re-encoded one.
VARIANTS = [
    {
        "videoPassthrough": True,
        "audioPassthrough": True,
        "videoBitrate": 1200,
        "audioBitrate": 128,
        "scaledWidth": 0,
        "scaledHeight": 0,
        "framerate": 30,
        "cpuUsageLevel": 0,
    },
    {
        "videoPassthrough": False,
        "audioPassthrough": False,
        "videoBitrate": 300,
        "audioBitrate": 64,
        "scaledWidth": 0,
        "scaledHeight": 180,
        "framerate": 30,
        "cpuUsageLevel": 0,
    },
]

#: Samples the viewer page's video five times a second: its time and its colour (the
#: reconnect test publishes solid blue, then solid red), and marks the page and its
#: player, so a reload or a new player shows.
_SAMPLER = """() => {
  window.__page = true;
  window.__hls = owncastPlayer.hls;
  window.__samples = [];
  const video = document.getElementById("video");
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 8;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  setInterval(() => {
    if (video.readyState < 2) return;
    context.drawImage(video, 0, 0, 8, 8);
    const data = context.getImageData(0, 0, 8, 8).data;
    let red = 0, blue = 0;
    for (let i = 0; i < data.length; i += 4) { red += data[i]; blue += data[i + 2]; }
    const colour = red > blue + 2000 ? "red" : blue > red + 2000 ? "blue" : "grey";
    window.__samples.push({ time: video.currentTime, colour });
  }, 200);
}"""

#: Reports CSP violations as console errors, where the error collector sees them.
_CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline"));
});
"""


def _settle(d: Deferred, future: Any) -> None:
    if d.called:  # cancelled on the reactor side already
        return
    if future.cancelled():
        d.errback(Failure(CancelledError()))
    elif future.exception() is not None:
        d.errback(Failure(future.exception()))
    else:
        d.callback(future.result())


class BrowserThread:
    """Chromium through Playwright's async API, on an asyncio loop in a thread of its own."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="playwright", daemon=True
        )
        self._thread.start()
        self._playwright: Any = None
        self.browser: Any = None
        self.errors: list[str] = []

    def run(self, coro: Coroutine[Any, Any, Any]) -> Deferred:
        """Run ``coro`` on the browser's loop; the Deferred fires on the reactor thread."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        d: Deferred = Deferred(lambda _: future.cancel())
        future.add_done_callback(lambda f: reactor.callFromThread(_settle, d, f))
        return d

    async def _launch(self) -> None:
        self._playwright = await async_playwright().start()
        self.browser = await self._playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )

    async def _close(self) -> None:
        try:
            if self.browser is not None:
                await self.browser.close()
        finally:
            if self._playwright is not None:
                await self._playwright.stop()

    async def start(self) -> BrowserThread:
        await self.run(self._launch())
        return self

    async def stop(self) -> None:
        try:
            await self.run(asyncio.wait_for(self._close(), 20))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()

    # -- called on the browser's loop ---------------------------------------------------
    async def context(self, width: int = 1280, height: int = 800, admin: bool = False) -> Any:
        """A fresh browser context (own cookies, storage, auth) that watches for errors."""
        options: dict[str, Any] = {"viewport": {"width": width, "height": height}}
        if admin:
            options["http_credentials"] = ADMIN_CREDENTIALS
        context = await self.browser.new_context(**options)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        await context.add_init_script(_CSP_REPORTER)
        context.on("page", self._watch)
        return context

    async def page(self, context: Any, url: str) -> Any:
        page = await context.new_page()
        await page.goto(url)
        return page

    def _watch(self, page: Any) -> None:
        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            where = (message.location or {}).get("url", "")
            # Before the stream exists its playlist is a 404: expected, not a page bug.
            if message.text.startswith("Failed to load resource") and "/hls/" in where:
                return
            self.errors.append(f"console error on {page.url}: {message.text} ({where})")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"page error on {page.url}: {error}"))


class _Publisher(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred = Deferred()
        self.running = True
        self.err = bytearray()

    async def stop(self) -> None:
        """Kill it (a broadcaster vanishing) and wait until it is gone."""
        if self.running:
            self.transport.signalProcess("KILL")
            await self.ended

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Any) -> None:
        self.running = False
        self.ended.callback(None)


def publish(
    testcase: unittest.TestCase,
    daemon: Daemon,
    seconds: int = 60,
    video: str = "testsrc=size=640x360:rate=30",
) -> _Publisher:
    """The real ffmpeg publishing a test pattern (or another lavfi ``video``) with a tone,
    in real time, to the daemon."""
    url = f"rtmp://127.0.0.1:{daemon.rtmp_port}/live/{KEY}"
    argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", video,
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264",
            "-preset", "ultrafast", "-g", "30", "-c:a", "aac", "-f", "flv", url]  # fmt: skip
    proto = _Publisher()
    reactor.spawnProcess(proto, FFMPEG, argv, env=dict(os.environ))
    testcase.addCleanup(proto.stop)
    return proto


def tmpdir(testcase: unittest.TestCase) -> Path:
    return Path(testcase.mktemp()).resolve()


async def is_hidden(page: Any, selector: str) -> bool:
    return await page.eval_on_selector(selector, "(el) => el.hidden")


async def text(page: Any, selector: str) -> str:
    return (await page.text_content(selector) or "").strip()


async def overflow(page: Any) -> int:
    """How many pixels the page scrolls sideways (0 when it fits its viewport)."""
    return await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


#: Another site's page that tries to forge admin requests: fetches that need no preflight
#: (a form's content type, or a body without a type) and a form posting JSON as text/plain.
_FORGERY = """<!doctype html><html><head><title>Cute cats</title></head><body>
<form id="form" method="POST" enctype="text/plain" action="TARGET/api/admin/config/name">
<input name='{"value": "Forged by a form", "pad": "' value='"}'></form>
<script>
async function forge() {
  const post = (path, body, type) => fetch("TARGET/api/admin/" + path, {
    method: "POST", mode: "no-cors", credentials: "include",
    headers: type ? {"Content-Type": type} : {}, body: type ? body : new Blob([body])});
  await Promise.allSettled([
    post("config/name", JSON.stringify({value: "Forged by fetch"}), "text/plain"),
    post("config/key", JSON.stringify({value: "forged-key-123"}), null),
    post("webhooks/create", JSON.stringify({url: "https://evil.example/", events: ["CHAT"]}),
         "text/plain"),
  ]);
  return "done";
}
</script></body></html>"""


class _ForeignSite(Resource):
    """Serves ``_FORGERY`` aimed at ``target``, from a port of its own: another origin."""

    isLeaf = True

    def __init__(self, target: str):
        super().__init__()
        self._page = _FORGERY.replace("TARGET", target).encode()

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return self._page


class BrowserCase(unittest.TestCase):
    """A real daemon and a real Chromium per test: the set-up every browser test module
    shares. It has no tests of its own, so a subclass runs only its own."""

    timeout = 150

    def setUp(self) -> None:
        if async_playwright is None:
            self.fail("playwright is not installed: run `make install`")
        if not os.access(CHROMIUM, os.X_OK):
            self.fail(f"{CHROMIUM} is missing: run `make install`")

    async def start(
        self, args: Sequence[str] = (), **settings: Any
    ) -> tuple[Daemon, BrowserThread]:
        """A daemon on a fresh data dir (``self.datadir``) with ``args`` on its command line
        and ``settings`` applied, and a running browser."""
        self.datadir = tmpdir(self)
        daemon = await start_daemon(self, self.datadir, args=["--streamkey", KEY, *args])
        for path, value in settings.items():
            response = await daemon.post(f"/api/admin/config/{path}", {"value": value}, auth=ADMIN)
            self.assertEqual(response.code, 200, (path, response))
        browser = BrowserThread()
        self.addCleanup(browser.stop)
        await browser.start()
        return daemon, browser

    def assertNoPageErrors(self, browser: BrowserThread) -> None:
        self.assertEqual(browser.errors, [])


class BrowserTests(BrowserCase):
    # -- the player ---------------------------------------------------------------------
    async def test_offline_page_turns_live_and_plays_every_variant(self):
        daemon, browser = await self.start(
            **{"video/streamlatencylevel": 0, "video/streamoutputvariants": VARIANTS}
        )

        async def open_viewer() -> Any:
            context = await browser.context()
            page = await browser.page(context, daemon.base + "/")
            await page.wait_for_load_state("networkidle")
            return page

        page = await browser.run(open_viewer())

        async def offline_state() -> tuple[bool, str, bool, bool]:
            return (
                await is_hidden(page, "#offline"),
                await text(page, "#live-badge"),
                await page.is_visible("#offline"),
                await page.is_disabled("#quality"),
            )

        hidden, badge, visible, disabled = await browser.run(offline_state())
        self.assertEqual((hidden, badge, visible, disabled), (False, "Offline", True, True))

        publisher = publish(self, daemon)

        # No reload: the page polls /api/status and switches by itself.
        async def turns_live() -> tuple[str, bool]:
            await page.wait_for_function(
                "() => document.getElementById('live-badge').textContent === 'Live'"
            )
            return await text(page, "#live-badge"), await page.is_visible("#offline")

        badge, visible = await browser.run(turns_live())
        self.assertEqual((badge, visible), ("Live", False))

        async def playing() -> float:
            await page.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return !v.paused && v.readyState >= 3 && v.currentTime > 0; }",
                timeout=30_000,
            )
            return await page.evaluate("() => document.getElementById('video').currentTime")

        start = await browser.run(playing())
        await sleep(8)
        now = await browser.run(page.evaluate("() => document.getElementById('video').currentTime"))
        self.assertGreaterEqual(now - start, 5.0, (start, now, bytes(publisher.err)))

        async def qualities() -> tuple[list[str], bool]:
            labels = await page.eval_on_selector_all(
                "#quality option", "(options) => options.map((o) => o.textContent)"
            )
            return labels, await page.is_disabled("#quality")

        labels, disabled = await browser.run(qualities())
        self.assertFalse(disabled)
        self.assertEqual(len(labels), 1 + len(VARIANTS), labels)
        self.assertEqual(labels[0], "Auto")
        self.assertTrue(any(label.startswith("180p") for label in labels), labels)
        self.assertTrue(any(label.startswith("360p") for label in labels), labels)

        async def choose(value: str) -> tuple[bool, int]:
            await page.select_option("#quality", value)
            return await page.evaluate(
                "() => [owncastPlayer.hls.autoLevelEnabled, owncastPlayer.hls.manualLevel]"
            )

        self.assertEqual(await browser.run(choose("1")), [False, 1])
        self.assertEqual(await browser.run(choose("-1")), [True, -1])

        async def shot() -> None:
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "viewer-live-1280.png"))

        await browser.run(shot())

        # And back: when the broadcaster goes away (and has not come back within the
        # reconnect grace, 30 s) the page returns to its offline state.
        await publisher.stop()

        async def turns_offline() -> tuple[bool, bool]:
            await page.wait_for_function(
                "() => document.getElementById('live-badge').textContent === 'Offline'",
                timeout=RECONNECT_GRACE_MS + STEP_TIMEOUT_MS,
            )
            return await page.is_visible("#offline"), await page.is_disabled("#quality")

        self.assertEqual(await browser.run(turns_offline()), (True, True))
        self.assertNoPageErrors(browser)

    async def test_player_carries_on_through_a_reconnect(self):
        """The publisher dies and another one (red instead of blue) comes back 5 s later:
        the page stays live, the same hls.js player carries on with the new media without
        a reload, and nothing it played before comes again."""
        daemon, browser = await self.start(
            **{"video/streamlatencylevel": 0, "video/streamoutputvariants": VARIANTS}
        )
        blue = "color=c=blue:size=640x360:rate=30"
        first = publish(self, daemon, video=blue)

        async def watch() -> Any:
            page = await browser.page(await browser.context(), daemon.base + "/")
            await page.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return !v.paused && v.readyState >= 3 && v.currentTime > 1; }",
                timeout=40_000,
            )
            await page.evaluate(_SAMPLER)
            return page

        page = await browser.run(watch())
        await sleep(3)
        await first.stop()  # killed, as OBS crashing or a network cut
        badges = []
        for _ in range(10):  # OBS comes back after about 5 s
            badges.append(await browser.run(text(page, "#live-badge")))
            await sleep(0.5)
        self.assertEqual(set(badges), {"Live"})
        publish(self, daemon, video=blue.replace("blue", "red"))

        async def resumed() -> dict:
            await page.wait_for_function(
                "() => window.__samples.filter((s) => s.colour === 'red').length >= 15",
                timeout=40_000,
            )
            return await page.evaluate(
                "() => ({samples: window.__samples, sameHls: owncastPlayer.hls === window.__hls,"
                " samePage: window.__page === true,"
                " offline: document.getElementById('offline').hidden})"
            )

        seen = await browser.run(resumed())
        samples = seen["samples"]
        self.assertTrue(seen["sameHls"], "the player was not restarted")
        self.assertTrue(seen["samePage"], "the page was not reloaded")
        self.assertTrue(seen["offline"], "the offline notice stayed hidden")
        colours = []
        for sample in samples:
            if sample["colour"] != "grey" and (not colours or colours[-1] != sample["colour"]):
                colours.append(sample["colour"])
        self.assertEqual(colours, ["blue", "red"], samples)
        times = [sample["time"] for sample in samples]
        self.assertEqual(times, sorted(times), "playback never went back")
        red = [s["time"] for s in samples if s["colour"] == "red"]
        self.assertGreater(red[-1] - red[0], 2.0, "the new media plays on")
        self.assertNoPageErrors(browser)

    # -- chat ---------------------------------------------------------------------------
    async def test_chat_between_two_viewers_and_live_moderation(self):
        daemon, browser = await self.start()
        body = f"hello from the browser {uuid.uuid4().hex[:8]}"
        row = f'#moderation tr:has-text("{body}")'
        item = f'#messages li:has-text("{body}")'

        async def open_pages() -> tuple[Any, Any, Any]:
            alice = await browser.page(await browser.context(), daemon.base + "/")
            bob = await browser.page(await browser.context(), daemon.base + "/")
            admin = await browser.page(
                await browser.context(admin=True), daemon.base + "/admin/#chat"
            )
            return alice, bob, admin

        alice, bob, admin = await browser.run(open_pages())

        async def send() -> None:
            await alice.fill("#username", "Alice")
            await alice.press("#username", "Tab")
            # The form keeps the text until the socket took it: submit until it is gone.
            for _ in range(50):
                await alice.fill("#chat-input", body)
                await alice.click("#chat-form button[type=submit]")
                if await alice.input_value("#chat-input") == "":
                    return
                await asyncio.sleep(0.2)
            raise AssertionError("the chat socket never opened")

        await browser.run(send())

        async def received() -> tuple[str, str]:
            await bob.wait_for_selector(item)
            await alice.wait_for_selector(item)
            return await text(bob, item + " .author"), await text(bob, item + " .body")

        self.assertEqual(await browser.run(received()), ("Alice", body))

        async def hide() -> tuple[int, int, str]:
            await admin.click("#tabs a[href='#dashboard']")
            await admin.click("#tabs a[href='#chat']")  # reload the table with the message
            await admin.click(f"{row} button:has-text('Hide')")
            await bob.wait_for_selector(item, state="detached")
            await alice.wait_for_selector(item, state="detached")
            await admin.wait_for_selector(f"{row}.hidden-message button:has-text('Show')")
            return (
                await bob.locator(item).count(),
                await alice.locator(item).count(),
                await text(admin, "#clients"),
            )

        bob_count, alice_count, clients = await browser.run(hide())
        self.assertEqual((bob_count, alice_count), (0, 0))
        self.assertIn("Alice", clients)

        # A reload does not bring it back: hidden messages stay out of the history.
        async def reloaded() -> int:
            await bob.reload()
            await bob.wait_for_load_state("networkidle")
            return await bob.locator(item).count()

        self.assertEqual(await browser.run(reloaded()), 0)
        self.assertNoPageErrors(browser)

    # -- admin settings -----------------------------------------------------------------
    async def test_admin_settings_show_on_viewer_page_and_errors_in_form(self):
        daemon, browser = await self.start()
        title = "Browser-made title"
        name = "Browser Owncast"
        content = (
            "## From the admin page\n\nIt is **bold** and has [a link](https://owncast.online)."
        )

        async def save(page: Any, key: str, value: str) -> None:
            field = page.locator(f".field[data-key='{key}']")
            await field.locator("[name=value]").fill(value)
            section = await field.evaluate("(f) => f.closest('form.section').dataset.section")
            async with page.expect_response(lambda r: "/api/admin/config/" in r.url) as info:
                await page.click(f"#section-{section} button.save")
            response = await info.value
            assert response.ok, (key, response.status, await response.text())
            await page.wait_for_function(
                "(s) => !document.querySelector(`#section-${s} button.save`).disabled",
                arg=section,
            )
            assert not (await field.locator(".error").text_content() or "").strip(), key

        async def edit() -> tuple[str, str]:
            admin = await browser.page(
                await browser.context(admin=True), daemon.base + "/admin/#settings"
            )
            # The sections are filled from /api/admin/serverconfig once it arrived.
            await admin.wait_for_selector("body[data-ready]")
            await save(admin, "name", name)
            await save(admin, "streamTitle", title)
            await save(admin, "pageContent", content)
            await admin.click("#preview-button")
            await admin.wait_for_selector("#page-preview h2")
            preview = await text(admin, "#page-preview strong")

            port = admin.locator(".field[data-key='webServerPort']")
            await port.locator("[name=value]").fill("70000")
            await admin.click("#section-server button.save")
            await admin.wait_for_function(
                "() => document.querySelector(\".field[data-key='webServerPort'] .error\")"
                ".textContent"
            )
            error = await port.locator(".error").text_content()
            return preview, error

        preview, error = await browser.run(edit())
        self.assertEqual(preview, "bold")
        # Chromium logs the refused save itself; that one is expected.
        refused = [e for e in browser.errors if "/api/admin/config/webserverport" in e]
        self.assertEqual(len(refused), 1, browser.errors)
        self.assertIn("status of 400", refused[0])
        browser.errors.remove(refused[0])

        # The form shows exactly what the server says about that value.
        response = await daemon.post(
            "/api/admin/config/webserverport", {"value": 70000}, auth=ADMIN
        )
        self.assertEqual(response.code, 400, response)
        self.assertEqual(error, response.json["message"])
        self.assertTrue(error)
        config = (await daemon.get("/api/admin/serverconfig", auth=ADMIN)).json
        self.assertEqual(config["webServerPort"], daemon.web_port)

        async def viewer() -> dict[str, str]:
            page = await browser.page(await browser.context(), daemon.base + "/")
            await page.wait_for_selector("#page-content h2")
            return {
                "name": await text(page, "#server-name"),
                "title": await text(page, "#stream-title"),
                "heading": await text(page, "#page-content h2"),
                "bold": await text(page, "#page-content strong"),
                "link": await page.get_attribute("#page-content a", "href"),
                "document": await page.title(),
            }

        shown = await browser.run(viewer())
        self.assertEqual(
            shown,
            {
                "name": name,
                "title": title,
                "heading": "From the admin page",
                "bold": "bold",
                "link": "https://owncast.online",
                "document": name,
            },
        )
        self.assertNoPageErrors(browser)

    # -- cross-site requests -----------------------------------------------------------
    async def test_another_sites_page_cannot_forge_admin_requests(self):
        """The admin is logged in (the browser holds the basic credentials); a page on
        another origin makes the browser post to the admin API. Every attempt is refused
        and changes nothing; the admin page, in the same browser, still saves."""
        daemon, browser = await self.start()
        before = (await daemon.get("/api/admin/serverconfig", auth=ADMIN)).json
        port = reactor.listenTCP(0, Site(_ForeignSite(daemon.base)), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        foreign = f"http://127.0.0.1:{port.getHost().port}/"  # another port: another origin

        async def forge() -> list[tuple[str, int]]:
            context = await browser.context(admin=True)
            admin = await browser.page(context, daemon.base + "/admin/")
            await admin.wait_for_selector("#tabs a")
            page = await context.new_page()
            answers: list[tuple[str, int]] = []
            page.on(
                "response",
                lambda r: answers.append((r.url, r.status)) if "/api/admin/" in r.url else None,
            )
            await page.goto(foreign)
            await page.evaluate("forge()")
            async with page.expect_navigation():
                await page.evaluate("document.getElementById('form').submit()")
            # The admin page, in the same browser, saves as before.
            settings = await browser.page(context, daemon.base + "/admin/#settings")
            await settings.wait_for_selector("body[data-ready]")
            await settings.fill(".field[data-key='name'] [name=value]", "Saved by the admin")
            async with settings.expect_response(lambda r: "/api/admin/config/" in r.url) as info:
                await settings.click("#section-general button.save")
            saved = await info.value
            assert saved.ok, (saved.status, await saved.text())
            return answers

        answers = await browser.run(forge())
        paths = sorted(url.rpartition("/api/admin/")[2] for url, _ in answers)
        self.assertEqual(paths, ["config/key", "config/name", "config/name", "webhooks/create"])
        self.assertEqual({status for _, status in answers}, {403}, answers)
        after = (await daemon.get("/api/admin/serverconfig", auth=ADMIN)).json
        self.assertEqual(after["instanceDetails"]["name"], "Saved by the admin")
        self.assertEqual(after["streamKey"], before["streamKey"])
        self.assertEqual((await daemon.get("/api/admin/webhooks", auth=ADMIN)).json, [])
        # Chromium logs the refused requests themselves, and the favicon it looked for
        # beside the form's refused answer; nothing else went wrong.
        for error in [e for e in browser.errors if "status of 403" in e or "favicon.ico" in e]:
            browser.errors.remove(error)
        self.assertNoPageErrors(browser)

    # -- layout, screenshots, CSP -------------------------------------------------------
    async def test_pages_fit_narrow_and_wide_screens(self):
        daemon, browser = await self.start(
            name="A rather long server name for a small phone screen",
            streamtitle="Testing the layout at 375 and 1280 pixels with a long stream title",
            serversummary="Live video and web chat, tested in a real browser.",
            tags=["layout", "responsive", "playwright", "chromium", "owncast"],
            socialhandles=[
                {"platform": "github", "url": "https://github.com/owncast/owncast"},
                {"platform": "mastodon", "url": "https://social.example.org/@owncast"},
            ],
            pagecontent="## About\n\nA long address that must wrap: "
            "https://example.org/a/very/long/path/that/goes/on/and/on/without/any/space/at/all\n\n"
            "| a | table |\n|---|---|\n| with | cells |\n\n"
            "```\n$ ffmpeg -re -i input.mp4 -c:v libx264 -c:a aac -f flv "
            "rtmp://live.example.org/live/a-long-stream-key\n```",
        )
        ARTIFACTS.mkdir(exist_ok=True)
        tabs = ["settings", "video", "chat", "integrations", "logs"]

        async def check(width: int) -> dict[str, int]:
            overflows: dict[str, int] = {}
            viewer = await browser.page(await browser.context(width=width), daemon.base + "/")
            await viewer.wait_for_function(
                "() => document.getElementById('page-content').textContent"
            )
            for _ in range(50):
                await viewer.fill("#chat-input", "A chat message long enough to wrap " * 3)
                await viewer.click("#chat-form button[type=submit]")
                if await viewer.input_value("#chat-input") == "":
                    break
                await asyncio.sleep(0.2)
            await viewer.wait_for_selector("#messages li .body")
            overflows["/"] = await overflow(viewer)
            await viewer.screenshot(path=str(ARTIFACTS / f"viewer-{width}.png"), full_page=True)

            admin = await browser.page(
                await browser.context(width=width, admin=True), daemon.base + "/admin/"
            )
            await admin.wait_for_function(
                "() => !document.getElementById('dash-online').textContent.includes('…')"
            )
            overflows["/admin/"] = await overflow(admin)
            await admin.screenshot(path=str(ARTIFACTS / f"admin-{width}.png"), full_page=True)
            for tab in tabs:
                await admin.click(f"#tabs a[href='#{tab}']")
                await admin.wait_for_selector(f"#{tab}:not([hidden])")
                await admin.wait_for_load_state("networkidle")
                overflows[f"/admin/#{tab}"] = await overflow(admin)
                await admin.screenshot(
                    path=str(ARTIFACTS / f"admin-{tab}-{width}.png"), full_page=True
                )
            return overflows

        for width in WIDTHS:
            overflows = await browser.run(check(width))
            self.assertEqual(overflows, dict.fromkeys(overflows, 0), f"at {width} px")
        for name in ("viewer", "admin"):
            for width in WIDTHS:
                self.assertTrue((ARTIFACTS / f"{name}-{width}.png").stat().st_size > 1000)
        self.assertNoPageErrors(browser)

    async def test_content_security_policy_forbids_inline_code(self):
        daemon, browser = await self.start()
        for path, auth in (("/", None), ("/admin/", ADMIN), ("/js/page.js", None)):
            response = await daemon.get(path, auth=auth)
            self.assertEqual(response.code, 200, (path, response))
            csp = response.header("content-security-policy")
            self.assertTrue(csp, path)
            self.assertNotIn("unsafe-inline", csp)
            self.assertNotIn("unsafe-eval", csp)
            self.assertIn("script-src 'self'", csp)

        # The policy is enforced: an injected inline script is refused and reported.
        async def inject() -> tuple[bool, list[str]]:
            page = await browser.page(await browser.context(), daemon.base + "/")
            await page.wait_for_load_state("networkidle")
            ran = await page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.__inline = true'; document.body.append(s);"
                " return window.__inline === true; }"
            )
            await page.wait_for_timeout(200)
            found = list(browser.errors)
            browser.errors.clear()
            return ran, found

        ran, found = await browser.run(inject())
        self.assertFalse(ran)
        self.assertTrue(any("CSP violation: script-src" in e for e in found), found)

        # Without credentials the admin page asks for them, as the admin API does.
        unauthenticated = await daemon.get("/admin/")
        self.assertEqual(unauthenticated.code, 401)
        self.assertTrue(unauthenticated.header("www-authenticate").startswith("Basic "))
        self.assertNoPageErrors(browser)
