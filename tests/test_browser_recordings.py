"""Past broadcasts in the real Chromium: a broadcast the real daemon recorded is listed
on ``/recordings/`` (title, date, duration, thumbnail) and its page plays it with hls.js,
offers both variants in the quality menu, and seeks to anywhere in the broadcast."""

from __future__ import annotations

from typing import Any

from tests.daemon import Daemon, sleep, wait_until
from tests.test_browser import (
    ADMIN,
    ARTIFACTS,
    VARIANTS,
    BrowserCase,
    is_hidden,
    publish,
    text,
)

#: Seconds of the broadcast.
BROADCAST = 14


async def _online(daemon: Daemon) -> bool:
    return (await daemon.get("/api/status")).json["online"]


async def _ended(testcase: Any, daemon: Daemon) -> dict:
    """The broadcast's recording once the owner has disconnected and it has ended."""
    await sleep(1)
    response = await daemon.post("/api/admin/disconnect", {}, auth=ADMIN)
    testcase.assertEqual(response.code, 200, response)

    async def finished() -> Any:
        listed = (await daemon.get("/api/recordings")).json
        return listed[0] if listed and not listed[0]["live"] else None

    return await wait_until(finished, 15, "the recording to end")


async def _duration(page: Any) -> float:
    """The video's duration, once hls.js knows it."""
    await page.wait_for_function(
        "() => { const v = document.getElementById('video');"
        " return v.duration > 0 && isFinite(v.duration); }"
    )
    return await page.evaluate("document.getElementById('video').duration")


async def _play_from(page: Any, target: float) -> float:
    """Seek to ``target`` and play: where the video is once it plays from there."""
    await page.evaluate(
        "(t) => { const v = document.getElementById('video'); v.muted = true;"
        " v.currentTime = t; v.play(); }",
        target,
    )
    await page.wait_for_function(
        "(t) => { const v = document.getElementById('video');"
        " return !v.seeking && v.readyState >= 3 && v.currentTime > t + 0.5; }",
        arg=target,
    )
    return await page.evaluate("document.getElementById('video').currentTime")


async def _refused(page: Any) -> str:
    """Submit the clip form again: the message the page shows for the refusal."""
    await page.evaluate("document.getElementById('clip-result').textContent = ''")
    await page.click("#clip-form button[type=submit]")
    await page.wait_for_function(
        "() => { const t = document.getElementById('clip-result').textContent;"
        " return t !== '' && !t.startsWith('Making'); }"
    )
    return await text(page, "#clip-result")


class PastBroadcastTests(BrowserCase):
    timeout = 180

    async def test_past_broadcast_is_listed_plays_and_seeks(self) -> None:
        daemon, browser = await self.start(
            **{
                "video/streamlatencylevel": 0,
                "video/streamoutputvariants": VARIANTS,
                "streamtitle": "Browser broadcast",
            }
        )
        made = await daemon.post(
            "/api/admin/accesstokens/create",
            {"name": "bot", "scopes": ["CAN_SEND_SYSTEM_MESSAGES"]},
            auth=ADMIN,
        )
        self.assertEqual(made.code, 200, made)
        publisher = publish(self, daemon, seconds=BROADCAST)
        await wait_until(lambda: _online(daemon), 10, "the broadcast to start")
        await sleep(BROADCAST / 2)
        sent = await daemon.post(
            "/api/integrations/chat/system", {"body": "Halfway there"}, bearer=made.json["token"]
        )
        self.assertEqual(sent.code, 200, sent)
        await publisher.ended
        recording = await _ended(self, daemon)
        self.assertGreater(recording["duration"], BROADCAST - 3, recording)
        base = f"http://127.0.0.1:{daemon.web_port}"

        async def in_browser() -> dict:
            context = await browser.context()
            page = await browser.page(context, base + "/recordings/")
            await page.wait_for_selector("#recordings li a")
            listing = {
                "title": await text(page, "#recordings .name"),
                "date": await text(page, "#recordings .date"),
                "empty_hidden": await is_hidden(page, "#empty"),
            }
            await page.click("#recordings li a")
            await page.wait_for_url(f"**/recordings/{recording['id']}")
            await page.wait_for_function(
                "() => document.querySelectorAll('#quality option').length > 2"
            )
            qualities = await page.eval_on_selector_all(
                "#quality option", "(os) => os.map((o) => o.textContent)"
            )
            duration = await _duration(page)
            # Seek near the end, then back near the start: both play from there. The chat
            # sent halfway is replayed once the video is past it, and gone back before it.
            seeks, chats = [], []
            for target in (duration - 4, 2.0):
                seeks.append(await _play_from(page, target))
                chats.append(await text(page, "#chat"))
            # The quality menu switches hls.js to the chosen variant.
            await page.select_option("#quality", "1")
            level = await page.evaluate("window.recordingPlayer.currentLevel")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "recordings-player.png"))
            await context.close()
            return {
                **listing,
                "qualities": qualities,
                "duration": duration,
                "seeks": seeks,
                "level": level,
                "chats": chats,
            }

        seen = await browser.run(in_browser())
        self.assertEqual(seen["title"], "Browser broadcast")
        self.assertIn("0:1", seen["date"])  # a duration of 0:1x
        self.assertTrue(seen["empty_hidden"])
        self.assertEqual(len(seen["qualities"]), 3, seen)
        self.assertLessEqual(abs(seen["duration"] - recording["duration"]), 1.0, seen)
        near_end, near_start = seen["seeks"]
        self.assertGreater(near_end, seen["duration"] - 4, seen)
        self.assertLess(near_start, 8, seen)
        self.assertEqual(seen["level"], 1)
        near_end_chat, near_start_chat = seen["chats"]
        self.assertIn("Halfway there", near_end_chat)
        self.assertNotIn("Halfway there", near_start_chat)
        self.assertEqual(browser.errors, [])

    async def test_low_latency_broadcast_recording_plays_and_seeks(self) -> None:
        """A low-latency broadcast is recorded as fMP4 (init sections, ``seg<k>.m4s``):
        its page plays it with hls.js and seeks to the end and back."""
        daemon, browser = await self.start(**{"video/lowlatency": True})
        publisher = publish(self, daemon, seconds=10)
        await wait_until(lambda: _online(daemon), 10, "the broadcast to start")
        await publisher.ended
        recording = await _ended(self, daemon)
        base = f"http://127.0.0.1:{daemon.web_port}"

        async def in_browser() -> dict:
            context = await browser.context()
            page = await browser.page(context, f"{base}/recordings/{recording['id']}")
            duration = await _duration(page)
            seeks = [await _play_from(page, t) for t in (duration - 3, 1.0)]
            await context.close()
            return {"duration": duration, "seeks": seeks}

        seen = await browser.run(in_browser())
        self.assertLessEqual(abs(seen["duration"] - recording["duration"]), 1.0, seen)
        near_end, near_start = seen["seeks"]
        self.assertGreater(near_end, seen["duration"] - 3, seen)
        self.assertLess(near_start, 5, seen)
        self.assertEqual(browser.errors, [])

    async def test_a_viewer_clips_a_past_broadcast(self) -> None:
        """A viewer (no credentials) marks 1 s to 3 s of a past broadcast on its page and
        makes a clip: it is listed with its page and MP4 links, and the MP4 is served. A
        second at once shows the 429's message; once the owner turns viewers' clips off,
        the 403's, and the reloaded page has no clip form."""
        daemon, browser = await self.start()
        publisher = publish(self, daemon, seconds=6)
        await wait_until(lambda: _online(daemon), 10, "the broadcast to start")
        await publisher.ended
        recording = await _ended(self, daemon)
        base = f"http://127.0.0.1:{daemon.web_port}"

        pages: list = []

        async def clip() -> dict:
            context = await browser.context()
            page = await browser.page(context, f"{base}/recordings/{recording['id']}")
            pages.extend((context, page))
            await page.wait_for_selector("#clip-form:not([hidden])")
            await page.fill("#clip-start", "1")
            await page.fill("#clip-end", "3")
            await page.click("#clip-form button[type=submit]")
            await page.wait_for_selector("#clips li a")
            links = await page.eval_on_selector_all(
                "#clips li a", "(as) => as.map((a) => a.getAttribute('href'))"
            )
            result = await text(page, "#clip-result")
            # At once again: the server's 429 message, under the form.
            return {"links": links, "result": result, "too_many": await _refused(page)}

        async def when_off() -> dict:
            context, page = pages
            turned_off = await _refused(page)  # the open page is told (403)
            await page.reload()
            await page.wait_for_selector("#title:not(:empty)")
            hidden = await is_hidden(page, "#clip-form")
            await context.close()
            return {"turned_off": turned_off, "hidden": hidden}

        seen = await browser.run(clip())
        value = {"enabled": True, "viewerClips": False}
        off = await daemon.post("/api/admin/config/recordings", {"value": value}, auth=ADMIN)
        self.assertEqual(off.code, 200, off)
        seen.update(await browser.run(when_off()))
        clip_id = f"{recording['id']}-1"
        self.assertEqual(
            seen["links"], [f"/recordings/clips/{clip_id}", f"/recordings/clips/{clip_id}.mp4"]
        )
        self.assertEqual(seen["result"], "")
        self.assertRegex(seen["too_many"], r"^too many clips for now; try again in \d+ s$")
        self.assertEqual(seen["turned_off"], "clips by viewers are turned off on this server")
        self.assertTrue(seen["hidden"])
        mp4 = await daemon.get(f"/recordings/clips/{clip_id}.mp4")
        self.assertEqual((mp4.code, mp4.header("content-type")), (200, "video/mp4"))
        self.assertEqual(mp4.content[4:8], b"ftyp")
        clip = (await daemon.get(f"/api/recordings/clips/{clip_id}")).json
        self.assertEqual((clip["start"], clip["end"]), (1, 3))
        # The browser logs each refusal; they are expected, nothing else is.
        refusals = [e for e in browser.errors if "/api/recordings/clip" in e]
        self.assertEqual(len(refusals), 2, browser.errors)
        self.assertEqual([e for e in browser.errors if e not in refusals], [])
