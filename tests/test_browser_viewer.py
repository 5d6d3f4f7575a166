"""The viewer page as a viewer meets it, in real Chromium against the real daemon.

A small phone screen shows the video and the message box without scrolling; chat bodies
show emoji shortcodes as images and addresses as safe links (never a ``javascript:`` one);
the owner's offline message, social icons with names, "live for h:mm" once live; the chat
hides and pops out into ``/embed/chat/readwrite``; the thumbnail is also at the web root;
and axe-core (from npm, ``node_modules/axe-core``) finds no serious or critical problem at
375 and 1280 px. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.daemon import REPO_ROOT
from tests.test_browser import (
    ADMIN,
    ARTIFACTS,
    STEP_TIMEOUT_MS,
    WIDTHS,
    BrowserCase,
    BrowserThread,
    publish,
    text,
)

AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: The phone the small-screen checks use (an iPhone SE's CSS pixels).
PHONE = {"width": 375, "height": 667}
SOCIAL = [
    {"platform": "github", "url": "https://github.com/owncast/owncast"},
    {"platform": "mastodon", "url": "https://social.example.org/@owncast"},
    {"platform": "keyoxide", "url": "https://keyoxide.org/example"},
]
OFFLINE = "Back on Friday at 8 pm. See you then!"


async def send_chat(page: Any, body: str) -> None:
    """Type ``body`` and send it; the form keeps the text until the socket took it."""
    for _ in range(100):
        await page.fill("#chat-input", body)
        await page.click("#chat-form button[type=submit]")
        if await page.input_value("#chat-input") == "":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the chat socket never opened")


async def axe_problems(page: Any) -> list[str]:
    """axe-core's serious and critical violations on ``page``, one line each."""
    # Evaluated through the DevTools protocol: the page's CSP forbids injected scripts.
    await page.evaluate(AXE.read_text("utf-8"))
    result = await page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


class ViewerPageTests(BrowserCase):
    def setUp(self) -> None:
        super().setUp()
        if not AXE.is_file():
            self.fail(f"{AXE} is missing: run `make install` (npm ci)")
        ARTIFACTS.mkdir(exist_ok=True)

    async def viewer(
        self, browser: BrowserThread, url: str, width: int = 1280, height: int = 800
    ) -> Any:
        context = await browser.context(width=width, height=height)
        page = await browser.page(context, url)
        # Ready once the config (page content) and the emoji list arrived.
        await page.wait_for_function("() => document.getElementById('summary').textContent")
        return page

    async def test_small_screen_shows_video_and_message_box_without_scrolling(self):
        daemon, browser = await self.start(socialhandles=SOCIAL)

        async def check() -> dict[str, Any]:
            page = await self.viewer(browser, daemon.base + "/", **PHONE)
            await send_chat(page, "Hello from a phone")
            await page.wait_for_selector("#messages li .body")
            found = await page.evaluate(
                """() => {
                  const box = (id) => document.getElementById(id).getBoundingClientRect();
                  const video = box("video"), input = box("chat-input");
                  return {
                    scrolls: document.scrollingElement.scrollHeight > innerHeight,
                    videoTop: video.top, videoBottom: video.bottom, videoHeight: video.height,
                    inputTop: input.top, inputBottom: input.bottom, height: innerHeight,
                    aboutShown: getComputedStyle(document.getElementById("about")).display,
                  };
                }"""
            )
            # The input is on top where it is (not covered by anything else).
            found["inputHit"] = await page.evaluate(
                """() => { const r = document.getElementById("chat-input").getBoundingClientRect();
                  return document.elementFromPoint(r.left + 5, r.top + r.height / 2).id; }"""
            )
            await page.screenshot(path=str(ARTIFACTS / "viewer-phone-chat-375.png"))
            # The About tab, with the keyboard: arrow to it, the panel swaps.
            await page.focus("#tab-chat")
            await page.keyboard.press("ArrowRight")
            found["focused"] = await page.evaluate("() => document.activeElement.id")
            found["chatShown"] = await page.evaluate(
                "() => getComputedStyle(document.getElementById('chat')).display"
            )
            await page.wait_for_selector("#social img")
            found["aboutVisible"] = await page.is_visible("#page-content")
            await page.screenshot(path=str(ARTIFACTS / "viewer-phone-about-375.png"))
            await page.keyboard.press("ArrowLeft")
            found["backToChat"] = await page.is_visible("#chat-input")
            return found

        found = await browser.run(check())
        self.assertFalse(found["scrolls"], found)
        self.assertGreaterEqual(found["videoTop"], 0, found)
        self.assertGreater(found["videoHeight"], 150, found)
        self.assertLessEqual(found["videoBottom"], found["height"], found)
        self.assertGreater(found["inputTop"], found["videoBottom"], found)
        self.assertLessEqual(found["inputBottom"], found["height"], found)
        self.assertEqual(found["inputHit"], "chat-input")
        self.assertEqual(found["aboutShown"], "none")
        self.assertEqual((found["focused"], found["chatShown"]), ("tab-about", "none"))
        self.assertTrue(found["aboutVisible"])
        self.assertTrue(found["backToChat"])
        self.assertEqual(browser.errors, [])

    async def test_shortcodes_and_links_render_and_javascript_links_do_not(self):
        daemon, browser = await self.start()
        body = (
            "hi :smile: and :nosuchemoji: see https://example.org/a?b=1 "
            "[bad](javascript:alert(1)) javascript:alert(2) <a href='javascript:alert(3)'>x</a>"
        )

        async def check() -> dict[str, Any]:
            page = await self.viewer(browser, daemon.base + "/")
            await page.wait_for_selector("#emoji-picker button img", state="attached")
            await send_chat(page, body)
            item = "#messages li:has-text('hi')"
            await page.wait_for_selector(item + " img.emoji")
            shown = await page.eval_on_selector(
                item + " .body",
                """(body) => ({
                  emoji: [...body.querySelectorAll("img.emoji")].map((i) => i.getAttribute("src")),
                  links: [...body.querySelectorAll("a")].map((a) => [a.href, a.rel, a.target]),
                  text: body.textContent,
                  paragraphInline: [...body.querySelectorAll("p")]
                    .every((p) => getComputedStyle(p).display === "inline"),
                })""",
            )
            # The page's own guard, for bodies from anywhere: only http(s) links survive.
            shown["guard"] = await page.evaluate(
                """() => { const el = document.createElement("span");
                  owncastChatView.render(el, '<p><a href="javascript:alert(4)">evil</a> ' +
                    '<a href="https://ok.example/">ok</a> :wave: www.example.com</p>',
                    new Map([["wave", "/img/emoji/wave.svg"]]));
                  return { links: [...el.querySelectorAll("a")].map((a) => a.href),
                           emoji: el.querySelectorAll("img.emoji").length,
                           text: el.textContent }; }"""
            )
            # The picker puts a shortcode in the message box, with the keyboard too.
            await page.click("#emoji-button")
            await page.keyboard.press("Enter")
            shown["picked"] = await page.input_value("#chat-input")
            await page.screenshot(path=str(ARTIFACTS / "viewer-chat-rendering-1280.png"))
            return shown

        shown = await browser.run(check())
        self.assertEqual(shown["emoji"], ["/img/emoji/smile.svg"])
        self.assertIn(":nosuchemoji:", shown["text"])
        self.assertEqual(len(shown["links"]), 1, shown["links"])
        href, rel, target = shown["links"][0]
        self.assertEqual(href, "https://example.org/a?b=1")
        self.assertEqual(set(rel.split()), {"noopener", "nofollow", "ugc"})
        self.assertEqual(target, "_blank")
        self.assertIn("javascript:alert(2)", shown["text"])
        self.assertTrue(shown["paragraphInline"])
        self.assertEqual(shown["guard"]["links"], ["https://ok.example/"])
        self.assertEqual(shown["guard"]["emoji"], 1)
        self.assertIn("evil", shown["guard"]["text"])
        self.assertRegex(shown["picked"], r"^:[A-Za-z0-9_+-]+: $")
        self.assertEqual(browser.errors, [])

    async def test_axe_finds_no_serious_problem_at_both_widths(self):
        daemon, browser = await self.start(
            socialhandles=SOCIAL,
            offlinemessage=OFFLINE,
            streamtitle="Accessibility check",
            tags=["a11y", "axe"],
            pagecontent="## About\n\nSome [words](https://example.org) about the stream.",
        )

        async def audit(width: int) -> dict[str, Any]:
            page = await self.viewer(browser, daemon.base + "/", width=width, height=800)
            await page.wait_for_selector("#social img", state="attached")
            # Keyboard: the first Tab reaches the skip link, which is visible when focused.
            await page.keyboard.press("Tab")
            skip = await page.evaluate(
                "() => [document.activeElement.className,"
                " document.activeElement.getBoundingClientRect().top >= 0,"
                " getComputedStyle(document.activeElement).outlineStyle]"
            )
            await send_chat(page, f"An accessible message at {width} px :smile:")
            await page.wait_for_selector("#messages li img.emoji")
            found: dict[str, Any] = {"problems": await axe_problems(page)}
            found["offline"] = await text(page, "#offline-message")
            found["social"] = await page.eval_on_selector_all(
                "#social a", "(links) => links.map((a) => [a.querySelector('img').alt, a.href])"
            )
            await page.screenshot(path=str(ARTIFACTS / f"viewer-a11y-{width}.png"), full_page=True)
            found["skip"] = skip
            return found

        for width in WIDTHS:
            found = await browser.run(audit(width))
            self.assertEqual(found["problems"], [], f"at {width} px")
            self.assertEqual(found["offline"], OFFLINE)
            self.assertEqual(
                [alt for alt, _ in found["social"]], ["GitHub", "Mastodon", "Keyoxide"]
            )
            self.assertEqual(found["skip"], ["skip-link", True, "solid"])

        # The embeds too.
        async def embeds() -> dict[str, list[str]]:
            problems = {}
            for path in ("/embed/chat/readwrite", "/embed/chat/readonly", "/embed/video"):
                context = await browser.context(width=400, height=600)
                page = await browser.page(context, daemon.base + path)
                await page.wait_for_load_state("networkidle")
                problems[path] = await axe_problems(page)
                name = path.strip("/").replace("/", "-")
                await page.screenshot(path=str(ARTIFACTS / f"viewer-{name}.png"))
            return problems

        problems = await browser.run(embeds())
        self.assertEqual(problems, dict.fromkeys(problems, []))
        for width in WIDTHS:
            self.assertGreater((ARTIFACTS / f"viewer-a11y-{width}.png").stat().st_size, 1000)
        self.assertEqual(browser.errors, [])

    async def test_chat_hides_and_pops_out(self):
        daemon, browser = await self.start()

        async def check() -> dict[str, Any]:
            context = await browser.context(width=1280, height=800)
            page = await browser.page(context, daemon.base + "/")
            found: dict[str, Any] = {}
            duration = (
                "() => getComputedStyle(document.getElementById('chat-toggle')).transitionDuration"
            )
            found["motion"] = [await page.evaluate(duration)]
            await page.emulate_media(reduced_motion="reduce")
            found["motion"].append(await page.evaluate(duration))
            await page.click("#chat-toggle")
            found["hidden"] = (
                await page.is_visible("#chat"),
                await page.get_attribute("#chat-toggle", "aria-expanded"),
                await text(page, "#chat-toggle"),
            )
            await page.reload()
            found["remembered"] = await page.is_visible("#chat")
            await page.click("#chat-toggle")
            async with context.expect_page() as info:
                await page.click("#chat-popout")
            popout = await info.value
            await popout.wait_for_load_state()
            found["popout"] = popout.url
            found["mainChatAfter"] = await page.is_visible("#chat")
            await send_chat(popout, "sent from the pop-out")
            await popout.wait_for_selector("#messages li:has-text('sent from the pop-out')")
            found["readonlyForm"] = (
                await (await browser.page(context, daemon.base + "/embed/chat/readonly"))
                .locator("#chat-input")
                .count()
            )
            return found

        found = await browser.run(check())
        # Buttons fade their colour, except for those who asked for less motion.
        self.assertEqual(found["motion"], ["0.15s", "0s"])
        self.assertEqual(found["hidden"], (False, "false", "Show chat"))
        self.assertFalse(found["remembered"])
        self.assertTrue(found["popout"].endswith("/embed/chat/readwrite"), found)
        self.assertFalse(found["mainChatAfter"])
        self.assertEqual(found["readonlyForm"], 0)
        self.assertEqual(browser.errors, [])

    async def test_offline_message_thumbnail_at_the_root_and_live_time(self):
        daemon, browser = await self.start()
        bad = await daemon.post("/api/admin/config/offlinemessage", {"value": 5}, auth=ADMIN)
        self.assertEqual(bad.code, 400)
        self.assertEqual(bad.json["success"], False)
        ok = await daemon.post("/api/admin/config/offlinemessage", {"value": OFFLINE}, auth=ADMIN)
        self.assertEqual(ok.code, 200)
        self.assertEqual((await daemon.get("/api/config")).json["offlineMessage"], OFFLINE)
        config = (await daemon.get("/api/admin/serverconfig", auth=ADMIN)).json
        self.assertEqual(config["offlineMessage"], OFFLINE)

        # 0.0.7 served the thumbnail at the web root; ours is the same file as /hls's.
        (self.datadir / "hls").mkdir(parents=True, exist_ok=True)
        (self.datadir / "hls" / "thumbnail.jpg").write_bytes(b"\xff\xd8not really a jpeg")
        root = await daemon.get("/thumbnail.jpg")
        self.assertEqual((root.code, root.header("content-type")), (200, "image/jpeg"))
        self.assertEqual(root.content, (await daemon.get("/hls/thumbnail.jpg")).content)
        # The embeds (0.0.7's paths) may sit in frames on other sites; the viewer page not.
        for path in (
            "/embed/chat",
            "/embed/chat/readwrite",
            "/embed/chat/readonly",
            "/embed/video",
        ):
            embed = await daemon.get(path)
            self.assertEqual(embed.code, 200, path)
            self.assertIn("frame-ancestors *", embed.header("content-security-policy"), path)
            self.assertIn(b'id="messages"' if "chat" in path else b'id="video"', embed.content)
        page_csp = (await daemon.get("/")).header("content-security-policy")
        self.assertIn("frame-ancestors 'self'", page_csp)
        (self.datadir / "hls" / "preview.gif").write_bytes(b"GIF89a not really")
        preview = await daemon.get("/preview.gif")
        self.assertEqual((preview.code, preview.content), (200, b"GIF89a not really"))

        async def offline() -> tuple[str, bool]:
            page = await self.viewer(browser, daemon.base + "/")
            await page.wait_for_function(
                "(m) => document.getElementById('offline-message').textContent === m", arg=OFFLINE
            )
            return page, await page.is_visible("#live-time")

        page, live_time_shown = await browser.run(offline())
        self.assertFalse(live_time_shown)
        publish(self, daemon)

        async def live() -> str:
            await page.wait_for_selector("#live-time:not([hidden])", timeout=STEP_TIMEOUT_MS * 2)
            return await text(page, "#live-time")

        self.assertRegex(await browser.run(live()), re.compile(r"^Live for \d+:\d\d$"))

        # Live on a phone: the header holds more, and still the video plays above a
        # message box that needs no scrolling.
        async def phone() -> dict[str, Any]:
            phone = await self.viewer(browser, daemon.base + "/", **PHONE)
            await phone.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return v.readyState >= 2 && v.currentTime > 0; }",
                timeout=STEP_TIMEOUT_MS * 2,
            )
            await phone.wait_for_selector("#live-time:not([hidden])")
            await phone.screenshot(path=str(ARTIFACTS / "viewer-live-375.png"))
            return await phone.evaluate(
                """() => ({
                  scrolls: document.scrollingElement.scrollHeight > innerHeight,
                  videoHeight: document.getElementById("video").getBoundingClientRect().height,
                  inputBottom: document.getElementById("chat-input").getBoundingClientRect().bottom,
                  height: innerHeight,
                })"""
            )

        found = await browser.run(phone())
        self.assertFalse(found["scrolls"], found)
        self.assertGreater(found["videoHeight"], 150, found)
        self.assertLessEqual(found["inputBottom"], found["height"], found)
        self.assertEqual(browser.errors, [])
