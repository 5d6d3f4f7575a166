"""How far behind live the viewer is, and the way back, in real Chromium against the real
daemon while the real ffmpeg publishes.

At live the player says how many seconds behind it is and offers nothing more; paused for
a few seconds it falls behind and a "Jump to live" button (a real button, named for
assistive technology, reachable with the keyboard) appears; pressing it puts playback back
at hls.js's live sync position and the button goes away. Positions are compared with
``hls.liveSyncPosition`` and the seekable end, never with the wall clock. Screenshots at
375 and 1280 px, at live and paused behind, go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
from typing import Any

from tests.test_browser import ARTIFACTS, STEP_TIMEOUT_MS, BrowserCase, overflow, publish, text
from tests.test_browser_viewer import PHONE, axe_problems

#: Where playback is against the live edge, and the target duration of the playlist.
_POSITIONS = """() => {
  const video = document.getElementById("video"), hls = owncastPlayer.hls;
  const seekable = video.seekable;
  return { current: video.currentTime, sync: hls.liveSyncPosition,
           end: seekable.length ? seekable.end(seekable.length - 1) : null,
           target: hls.latestLevelDetails.targetduration, paused: video.paused };
}"""
_PLAYING = (
    "() => { const v = document.getElementById('video');"
    " return !v.paused && v.readyState >= 3 && v.currentTime > 0; }"
)
_AT_LIVE = (
    "() => { const v = document.getElementById('video');"
    " return !v.paused && v.readyState >= 3 && document.getElementById('jump-live').hidden"
    " && !document.getElementById('behind').hidden; }"
)
BEHIND_TEXT = re.compile(r"^\d+(\.\d)? s behind live$")


class LiveEdgeTests(BrowserCase):
    async def test_jump_to_live_appears_when_behind_and_brings_playback_back(self):
        daemon, browser = await self.start(**{"video/streamlatencylevel": 0})
        ARTIFACTS.mkdir(exist_ok=True)
        publisher = publish(self, daemon, seconds=120)

        async def at_live() -> tuple[Any, dict[str, Any]]:
            context = await browser.context(width=1280, height=800)
            page = await browser.page(context, daemon.base + "/")
            await page.wait_for_function(_PLAYING, timeout=STEP_TIMEOUT_MS * 2)
            await page.wait_for_function(_AT_LIVE)
            found = {"text": await text(page, "#behind")}
            await page.screenshot(path=str(ARTIFACTS / "viewer-at-live-1280.png"))
            return page, found

        page, found = await browser.run(at_live())
        self.assertRegex(found["text"], BEHIND_TEXT)

        async def paused_behind() -> dict[str, Any]:
            await page.evaluate("() => document.getElementById('video').pause()")
            await page.wait_for_selector("#jump-live", state="visible")
            found: dict[str, Any] = await page.evaluate(_POSITIONS)
            found["button"] = await page.eval_on_selector(
                "#jump-live", "(b) => [b.tagName, b.type, b.getAttribute('aria-label')]"
            )
            found["late"] = await page.eval_on_selector("#behind", "(t) => t.className")
            await page.screenshot(path=str(ARTIFACTS / "viewer-behind-1280.png"))
            found["problems"] = {1280: await axe_problems(page)}
            await page.set_viewport_size(PHONE)
            found["problems"][375] = await axe_problems(page)
            found["overflow"] = await overflow(page)
            found["box"] = await page.eval_on_selector(
                "#jump-live", "(b) => { const r = b.getBoundingClientRect();"
                " return [r.left, r.right, r.height]; }"
            )  # fmt: skip
            await page.screenshot(path=str(ARTIFACTS / "viewer-behind-375.png"))
            return found

        behind = await browser.run(paused_behind())
        self.assertTrue(behind["paused"])
        self.assertEqual(behind["button"][:2], ["BUTTON", "button"])
        self.assertTrue(behind["button"][2].startswith("Jump to live"), behind["button"])
        self.assertIn("late", behind["late"])
        # Behind by more than a segment: the live sync position and the seekable end are ahead.
        self.assertGreater(behind["sync"] - behind["current"], behind["target"], behind)
        self.assertGreater(behind["end"] - behind["current"], behind["target"], behind)
        self.assertEqual(behind["problems"], {1280: [], 375: []})
        self.assertEqual(behind["overflow"], 0)
        left, right, height = behind["box"]
        self.assertGreaterEqual(left, 0)
        self.assertLessEqual(right, PHONE["width"])
        self.assertGreaterEqual(height, 24)  # a touch target, not a speck

        async def jump() -> dict[str, Any]:
            # With the keyboard: a real button takes Enter.
            await page.focus("#jump-live")
            await page.keyboard.press("Enter")
            await page.wait_for_function(_AT_LIVE)
            found: dict[str, Any] = await page.evaluate(_POSITIONS)
            found["focused"] = await page.evaluate("() => document.activeElement.id")
            found["text"] = await text(page, "#behind")
            await page.screenshot(path=str(ARTIFACTS / "viewer-at-live-375.png"))
            return found

        back = await browser.run(jump())
        self.assertFalse(back["paused"])
        # Back near the live sync position, much nearer the seekable end than when paused.
        self.assertLess(abs(back["sync"] - back["current"]), back["target"], back)
        self.assertLess(back["end"] - back["current"], behind["end"] - behind["current"], back)
        # The button went away under the keyboard focus: the focus went to the video.
        self.assertEqual(back["focused"], "video")
        self.assertRegex(back["text"], BEHIND_TEXT)

        # The video embed runs the same player: it says how far behind it is too.
        async def embed() -> str:
            context = await browser.context(width=640, height=400)
            page = await browser.page(context, daemon.base + "/embed/video")
            await page.wait_for_function(_PLAYING, timeout=STEP_TIMEOUT_MS * 2)
            await page.wait_for_selector("#behind", state="visible")
            await page.screenshot(path=str(ARTIFACTS / "viewer-embed-video-live.png"))
            return await text(page, "#behind")

        self.assertRegex(await browser.run(embed()), BEHIND_TEXT)
        self.assertTrue(publisher.running, bytes(publisher.err))
        self.assertNoPageErrors(browser)
