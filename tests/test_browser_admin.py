"""The admin page in real Chromium against the real daemon (set-up from ``tests.test_browser``):
sections that save and show the server's refusals, the structured editors, the hidden
stream key, the charts, an axe-core audit, and screenshots of every section at 375 and
1280 px in ``test-artifacts/``. The S3 connection test's endpoint is also checked
against moto with the real segment storage client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool
from twisted.web.server import Site

from owncast.api.admin import AdminApi
from owncast.segments.s3 import S3SegmentStorage
from tests.daemon import REPO_ROOT, Daemon, wait_until
from tests.helpers import ADMIN as CTX_ADMIN
from tests.helpers import make_context
from tests.s3server import start_s3
from tests.test_browser import (
    ADMIN,
    ARTIFACTS,
    KEY,
    WIDTHS,
    BrowserCase,
    BrowserThread,
    publish,
)

AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: The server's settings, fetched by the page.
SERVERCONFIG = "() => fetch('/api/admin/serverconfig').then((r) => r.json())"
#: The recordings overview, fetched by the page (with its basic auth).
OVERVIEW = "() => fetch('/api/admin/recordings').then((r) => r.json())"
#: Elements outside a scroll box that reach past the window's right edge.
WIDER = """() => [...document.querySelectorAll('body *')].filter((e) =>
  e.getBoundingClientRect().right > innerWidth + 1 && !e.parentElement.closest('.grid')
  && e.offsetParent !== null).map((e) => e.tagName + '#' + e.id + '.' + e.className)"""
TABS = ("dashboard", "settings", "video", "recordings", "chat", "integrations", "logs")


async def open_admin(browser: BrowserThread, daemon: Daemon, tab: str, width: int = 1280) -> Any:
    """The admin page on ``tab``, once its settings came from the server."""
    context = await browser.context(width=width, height=900, admin=True)
    page = await browser.page(context, f"{daemon.base}/admin/#{tab}")
    await page.wait_for_selector("body[data-ready]")
    return page


async def save(page: Any, section: str) -> None:
    """Clicks the section's Save and waits until the section is done (its button is
    disabled while the section saves)."""
    button = page.locator(f"#section-{section} button.save")
    await button.click()
    await page.wait_for_function(
        "(s) => !document.querySelector(`#section-${s} button.save`).disabled", arg=section
    )


async def field_value(page: Any, key: str) -> Any:
    return await page.evaluate("(k) => OwncastAdmin.settings.fields[k].editor.get()", key)


async def error_of(page: Any, key: str) -> str:
    return (await page.text_content(f".field[data-key='{key}'] .error") or "").strip()


class AdminPageTests(BrowserCase):
    timeout = 240

    async def config(self, daemon: Daemon) -> dict:
        return (await daemon.get("/api/admin/serverconfig", auth=ADMIN)).json

    async def server_says(self, daemon: Daemon, path: str, value: Any) -> str:
        response = await daemon.post(f"/api/admin/config/{path}", {"value": value}, auth=ADMIN)
        self.assertEqual(response.code, 400, response)
        return response.json["message"]

    def forget_refusals(self, browser: BrowserThread, status: int) -> int:
        """Chromium logs each refused request itself: expected here, counted and dropped."""
        refused = [e for e in browser.errors if f"status of {status}" in e]
        for error in refused:
            browser.errors.remove(error)
        return len(refused)

    async def test_each_section_saves_and_shows_the_servers_error(self):
        """Per section: a good value is saved (the config says so, the unsaved mark comes
        and goes); a bad one is refused by the server and its message shows under the field."""
        daemon, browser = await self.start()
        # section, tab, key, fill(page, good?) -> None, path, where the config keeps it
        cases = [
            ("general", "settings", "name", "Admin page test", "   ", "name"),
            (
                "appearance",
                "settings",
                "customStyles",
                "body { color: #eee; }",
                "</style>",
                "customstyles",
            ),
            ("server", "settings", "webServerPort", None, "70000", "webserverport"),
            (
                "integrations",
                "integrations",
                "serverUrl",
                "https://live.example.org",
                "live.example.org",
                "serverurl",
            ),
        ]

        async def run() -> dict:
            seen: dict[str, Any] = {}
            for section, tab, key, good, bad, _ in cases:
                page = await open_admin(browser, daemon, tab)
                control = page.locator(f".field[data-key='{key}'] [name=value]")
                if good is not None:
                    await control.fill(good)
                    seen[section + " dirty"] = await page.text_content(
                        f"#section-{section} .dirty-note"
                    )
                    await save(page, section)
                    seen[section + " clean"] = await page.text_content(
                        f"#section-{section} .dirty-note"
                    )
                else:
                    port = page.locator(".field[data-key='rtmpServerPort'] [name=value]")
                    await port.fill("1940")
                    await save(page, section)
                await control.fill(bad)
                await save(page, section)
                seen[section] = (await error_of(page, key), await field_value(page, key))
                await page.close()
            # video: a latency level saves; an odd custom width is refused
            page = await open_admin(browser, daemon, "video")
            await page.locator("input[type=radio][value='1']").check()
            await save(page, "video")
            await page.select_option(".variant select >> nth=0", "custom")
            await page.locator(".variant .size input >> nth=0").fill("641")
            await save(page, "video")
            seen["video"] = (await error_of(page, "variants"), await field_value(page, "variants"))
            # storage: a complete, disabled configuration saves; enabled without a bucket not
            page = await open_admin(browser, daemon, "settings")
            s3 = page.locator("#section-storage")
            for index, value in enumerate(
                ["https://s3.example.org", "stream", "", "key", "secret"]
            ):
                await s3.locator("input:not([type=checkbox])").nth(index).fill(value)
            await save(page, "storage")
            await s3.locator("input").nth(2).fill("")  # the bucket
            await s3.locator("input[type=checkbox]").check()
            await save(page, "storage")
            seen["storage"] = (await error_of(page, "s3"), await field_value(page, "s3"))
            return seen

        seen = await browser.run(run())
        for section, _, _, good, _, path in cases:
            message, value = seen[section]
            self.assertEqual(message, await self.server_says(daemon, path, value), section)
            self.assertTrue(message)
            if good is not None:
                self.assertEqual(seen[section + " dirty"], "Unsaved changes")
                self.assertEqual(seen[section + " clean"], "")
        for section, path in (("video", "video/streamoutputvariants"), ("storage", "s3")):
            message, value = seen[section]
            self.assertEqual(message, await self.server_says(daemon, path, value), section)
        self.assertIn("even", seen["video"][0])
        self.assertIn("bucket", seen["storage"][0])
        config = await self.config(daemon)
        self.assertEqual(config["instanceDetails"]["name"], "Admin page test")
        self.assertEqual(config["instanceDetails"]["customStyles"], "body { color: #eee; }")
        self.assertEqual(config["rtmpServerPort"], 1940)
        self.assertEqual(config["webServerPort"], daemon.web_port)
        self.assertEqual(config["yp"]["instanceUrl"], "https://live.example.org")
        self.assertEqual(config["videoSettings"]["latencyLevel"], 1)
        self.assertEqual(config["s3"]["endpoint"], "https://s3.example.org")
        self.assertFalse(config["s3"]["enabled"])
        self.assertEqual(self.forget_refusals(browser, 400), 6)
        self.assertEqual(browser.errors, [])

    async def test_structured_editors_round_trip(self):
        """Social links (a javascript: link is stopped in the page), variants from presets
        and S3 from moto's fields save, come back after a reload, and S3's connection
        test shows what the server answers for those fields."""
        moto = await start_s3(self)
        daemon, browser = await self.start(args=["--allowprivate"])
        s3 = moto.config("admin-test")
        await S3SegmentStorage(s3, reactor, allow_private=True).create_bucket()

        async def edit() -> dict:
            out: dict[str, Any] = {}
            page = await open_admin(browser, daemon, "integrations")
            editor = page.locator(".field[data-key='socialHandles']")
            out["defaults"] = await editor.locator("li.handle").count()
            while await editor.locator("li.handle").count():
                await editor.locator("li.handle button").first.click()
            for platform, url in (
                ("github", "https://github.com/owncast/owncast"),
                ("mastodon", "https://social.example.org/@owncast"),
                ("twitter", "javascript:alert(1)"),
            ):
                await editor.locator("button", has_text="Add a link").click()
                row = editor.locator("li.handle").last
                await row.locator("select").select_option(platform)
                await row.locator("input").fill(url)
            await save(page, "integrations")
            out["refused"] = (
                await editor.locator("li.handle").nth(2).locator(".error").text_content()
            )
            out["stored before"] = (await self.config_in_page(page))["instanceDetails"][
                "socialHandles"
            ]
            await editor.locator("li.handle").nth(2).locator("button").click()
            await save(page, "integrations")

            page = await open_admin(browser, daemon, "video")
            cards = page.locator(".variant")
            await cards.nth(0).locator("select").first.select_option("passthrough")
            for preset in ("720p", "480p"):
                await page.locator("button", has_text="Add a variant").click()
                await cards.last.locator("select").first.select_option(preset)
            await save(page, "video")

            page = await open_admin(browser, daemon, "settings")
            storage = page.locator("#section-storage")
            labels = {
                "Endpoint": s3["endpoint"],
                "Bucket": s3["bucket"],
                "Access key": s3["accessKey"],
                "Secret key": s3["secret"],
            }
            for label, value in labels.items():
                await storage.get_by_label(label, exact=True).fill(value)
            await save(page, "storage")
            await storage.locator("button.s3-test").click()
            await page.wait_for_function(
                "() => /^(Works|Failed)/.test(document.querySelector('.test-result').textContent)"
            )
            out["test"] = await page.text_content(".test-result")
            out["test body"] = await field_value(page, "s3")

            page = await open_admin(browser, daemon, "integrations")
            out["handles"] = [
                (
                    await row.locator("select").input_value(),
                    await row.locator("input").input_value(),
                )
                for row in await page.locator("li.handle").all()
            ]
            page = await open_admin(browser, daemon, "video")
            out["presets"] = [
                await card.locator("select").first.input_value()
                for card in await page.locator(".variant").all()
            ]
            page = await open_admin(browser, daemon, "settings")
            out["s3"] = await field_value(page, "s3")
            return out

        out = await browser.run(edit())
        self.assertEqual(out["refused"], "Link 3 must start with https://")
        self.assertEqual(len(out["stored before"]), out["defaults"])
        handles = [
            ("github", "https://github.com/owncast/owncast"),
            ("mastodon", "https://social.example.org/@owncast"),
        ]
        self.assertEqual(out["handles"], handles)
        config = await self.config(daemon)
        self.assertEqual(
            [(h["platform"], h["url"]) for h in config["instanceDetails"]["socialHandles"]],
            handles,
        )
        self.assertEqual(out["presets"], ["passthrough", "720p", "480p"])
        variants = config["videoSettings"]["videoQualityVariants"]
        self.assertTrue(variants[0]["videoPassthrough"])
        self.assertEqual([v.get("scaledHeight") for v in variants[1:]], [720, 480])
        self.assertEqual([v["videoBitrate"] for v in variants[1:]], [2500, 1200])
        for key in ("endpoint", "bucket", "accessKey", "secret"):
            self.assertEqual(config["s3"][key], s3[key])
            self.assertEqual(out["s3"][key], s3[key])
        # The page shows what the endpoint answers for the same fields.
        response = await daemon.post(
            "/api/admin/config/s3/test", {"value": out["test body"]}, auth=ADMIN
        )
        if response.code == 200 and response.json["success"]:
            self.assertTrue(out["test"].startswith("Works: uploaded and deleted"), out["test"])
        else:
            self.assertEqual(out["test"], "Failed: " + response.json["message"])
            self.forget_refusals(browser, response.code)
        self.assertEqual(browser.errors, [])

    async def config_in_page(self, page: Any) -> dict:
        return await page.evaluate("() => OwncastAdmin.api('serverconfig')")

    async def test_stream_key_hidden_until_revealed(self):
        daemon, browser = await self.start()

        async def look() -> dict:
            page = await open_admin(browser, daemon, "settings")
            key = page.locator(".field[data-key='streamKey'] input")
            shown = {"type": await key.get_attribute("type")}
            shown["value"] = await key.input_value()
            await page.screenshot(path=str(ARTIFACTS / "admin-streamkey-hidden.png"))
            await page.locator("button.reveal").click()
            shown["revealed"] = await key.get_attribute("type")
            shown["pressed"] = await page.locator("button.reveal").get_attribute("aria-pressed")
            await page.locator("button", has_text="Generate a new one").click()
            shown["new"] = await key.input_value()
            shown["dirty"] = await page.text_content("#section-server .dirty-note")
            return shown

        ARTIFACTS.mkdir(exist_ok=True)
        shown = await browser.run(look())
        self.assertEqual(shown["type"], "password")
        self.assertEqual(shown["value"], KEY)
        self.assertEqual((shown["revealed"], shown["pressed"]), ("text", "true"))
        self.assertNotEqual(shown["new"], KEY)
        self.assertGreaterEqual(len(shown["new"]), 32)
        self.assertEqual(shown["dirty"], "Unsaved changes")
        # Generated, not saved: the server still has the old key.
        self.assertEqual((await self.config(daemon))["streamKey"], KEY)
        self.assertEqual(browser.errors, [])

    async def test_charts_have_labelled_axes_from_real_samples(self):
        daemon, browser = await self.start()
        hardware = (await daemon.get("/api/admin/hardwarestats", auth=ADMIN)).json

        async def look() -> dict:
            page = await open_admin(browser, daemon, "dashboard")
            await page.wait_for_function(
                "() => Object.keys(OwncastAdmin.charts.instances).length == 4"
            )
            charts = await page.evaluate(
                """() => Object.fromEntries(Object.entries(OwncastAdmin.charts.instances).map(
                  ([k, u]) => [k, {x: u.axes[0].label, y: u.axes[1].label, time: u.scales.x.time,
                    points: u.data[1].length, canvas: u.root.querySelector('canvas').width}]))"""
            )
            plot = page.locator("#chart-memory .u-over")
            box = await plot.bounding_box()
            await page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
            await page.wait_for_selector("#chart-memory .chart-tip:not([hidden])")
            charts["tip"] = await page.text_content("#chart-memory .chart-tip")
            charts["summary"] = await page.text_content("#fig-memory .chart-summary")
            return charts

        charts = await browser.run(look())
        self.assertEqual(charts["viewers"]["y"], "Viewers")
        self.assertEqual(charts["cpu"]["y"], "CPU (%)")
        self.assertEqual(charts["memory"]["y"], "Memory (%)")
        self.assertEqual(charts["disk"]["y"], "Disk (%)")
        for kind in ("viewers", "cpu", "memory", "disk"):
            self.assertEqual(charts[kind]["x"], "Time (local)")
            self.assertTrue(charts[kind]["time"])
            self.assertGreater(charts[kind]["canvas"], 100)
        for kind in ("cpu", "memory", "disk"):
            self.assertGreaterEqual(charts[kind]["points"], len(hardware[kind]))
            self.assertGreaterEqual(len(hardware[kind]), 1)
        self.assertIn("%", charts["tip"])
        self.assertTrue(charts["summary"].startswith("Now "), charts["summary"])
        self.assertEqual(browser.errors, [])

    async def test_live_dashboard_names_the_broadcast_in_words_and_units(self):
        """A real ffmpeg publishes: the dashboard says since when it is live, the
        broadcaster's details with labels and units, and the transcoder's health."""
        daemon, browser = await self.start()
        publish(self, daemon, seconds=120)

        async def online() -> bool:
            return (await daemon.get("/api/admin/status", auth=ADMIN)).json["online"]

        await wait_until(online, 60, "the broadcast to start")
        ARTIFACTS.mkdir(exist_ok=True)

        async def look(width: int) -> dict:
            page = await open_admin(browser, daemon, "dashboard", width)
            await page.wait_for_function(
                "() => document.getElementById('dash-online').textContent === 'Live'"
            )
            await page.wait_for_function(
                "() => OwncastAdmin.charts.instances.viewers !== undefined"
            )
            shown = await page.evaluate(
                """() => Object.fromEntries(['dash-health', 'dash-broadcaster'].map((id) => [id,
                  Object.fromEntries([...document.querySelectorAll(`#${id} dt`)].map(
                    (dt) => [dt.textContent, dt.nextElementSibling.textContent]))]))"""
            )
            shown["since"] = await page.text_content("#dash-since")
            await page.screenshot(
                path=str(ARTIFACTS / f"admin-section-dashboard-live-{width}.png"), full_page=True
            )
            return shown

        for width in WIDTHS:
            shown = await browser.run(look(width))
            details = shown["dash-broadcaster"]
            self.assertEqual(details["Resolution"], "640 × 360 px")
            self.assertEqual(details["Frame rate"], "30 fps")
            self.assertEqual(details["Video codec"], "H.264")
            self.assertTrue(details["Address"].startswith("127.0.0.1:"), details)
            self.assertRegex(shown["since"], r"^Live since .+ \(\d+ (s|min \d+ s)\)$")
            health = shown["dash-health"]
            self.assertEqual(health["Transcoder (ffmpeg)"], "running")
            self.assertIn("Ingest bitrate", health)
        self.assertEqual(browser.errors, [])

    async def test_axe_finds_nothing_serious_and_screenshots_every_section(self):
        """axe-core (from npm) on every tab at 375 and 1280 px: no serious or critical
        violation; each tab's screenshot is kept."""
        daemon, browser = await self.start()
        await daemon.post(
            "/api/admin/config/socialhandles",
            {"value": [{"platform": "github", "url": "https://github.com/owncast/owncast"}]},
            auth=ADMIN,
        )
        axe = AXE.read_text()
        ARTIFACTS.mkdir(exist_ok=True)

        async def audit(width: int) -> dict[str, list]:
            found: dict[str, list] = {}
            page = await open_admin(browser, daemon, "dashboard", width)
            await page.evaluate(axe)  # evaluated by the browser's debugger, not as page script
            for tab in TABS:
                await page.click(f"#tabs a[href='#{tab}']")
                await page.wait_for_selector(f"#{tab}:not([hidden])")
                await page.wait_for_load_state("networkidle")
                result = await page.evaluate("() => axe.run(document)")
                found[tab] = [
                    (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                    for v in result["violations"]
                    if v["impact"] in ("serious", "critical")
                ]
                await page.screenshot(
                    path=str(ARTIFACTS / f"admin-section-{tab}-{width}.png"), full_page=True
                )
            return found

        for width in WIDTHS:
            found = await browser.run(audit(width))
            self.assertEqual(found, dict.fromkeys(TABS, []), f"at {width} px")
            for tab in TABS:
                self.assertGreater(
                    (ARTIFACTS / f"admin-section-{tab}-{width}.png").stat().st_size, 1000
                )
        self.assertEqual(browser.errors, [])

    async def test_low_latency_mode_is_a_latency_choice(self):
        """The low-latency mode sits beside the five levels: choosing it posts the mode on
        (and leaves the level); choosing a level again turns it off and sets that level."""
        daemon, browser = await self.start()

        async def run() -> list:
            page = await open_admin(browser, daemon, "video")
            posted = []
            page.on(
                "request",
                lambda r: (
                    posted.append((r.url.rpartition("/config/")[2], r.post_data_json))
                    if "/api/admin/config/" in r.url
                    else None
                ),
            )
            label = await page.text_content("label:has-text('Low-latency mode')")
            await page.locator("input[type=radio][value='low']").check()
            await save(page, "video")
            server = (await page.evaluate(SERVERCONFIG))["lowLatency"]
            # After the section reloaded from the server, the mode is still the choice.
            kept = await page.is_checked("input[type=radio][value='low']")
            await page.locator("input[type=radio][value='1']").check()
            async with page.expect_response("**/api/admin/config/video/streamlatencylevel"):
                await save(page, "video")
            await page.wait_for_function("() => !document.querySelector('.dirty')")
            server_after = (await page.evaluate(SERVERCONFIG))["lowLatency"]
            return [label, posted, await error_of(page, "latencyLevel"), server, kept, server_after]

        label, posted, error, server, kept, server_after = await browser.run(run())
        self.assertTrue(server)
        self.assertTrue(kept)
        self.assertFalse(server_after)
        self.assertIn("1.2 s behind live", label)
        self.assertEqual(
            posted,
            [
                ("video/lowlatency", {"value": True}),
                ("video/lowlatency", {"value": False}),
                ("video/streamlatencylevel", {"value": 1}),
            ],
        )
        self.assertEqual(error, "")
        config = await self.config(daemon)
        self.assertEqual(config["videoSettings"]["latencyLevel"], 1)
        self.assertEqual(browser.errors, [])

    async def test_offline_message_saves_and_shows_the_servers_error(self):
        """The General section's offline message saves (the viewer page's config carries
        it); one over the server's limit is refused and its message shows under the field."""
        daemon, browser = await self.start()
        too_long = "x" * 2_001

        async def run() -> dict:
            page = await open_admin(browser, daemon, "settings")
            control = page.locator(".field[data-key='offlineMessage'] [name=value]")
            await control.fill("Back on Sunday at 8")
            await save(page, "general")
            saved = await error_of(page, "offlineMessage")
            await control.fill(too_long)
            await save(page, "general")
            refused = await error_of(page, "offlineMessage")
            viewer = await browser.page(await browser.context(), daemon.base + "/")
            await viewer.wait_for_function(
                "() => document.getElementById('offline-message').textContent"
                " === 'Back on Sunday at 8'"
            )
            return {"saved": saved, "refused": refused}

        seen = await browser.run(run())
        self.assertEqual(seen["saved"], "")
        self.assertEqual((await self.config(daemon))["offlineMessage"], "Back on Sunday at 8")
        public = (await daemon.get("/api/config")).json
        self.assertEqual(public["offlineMessage"], "Back on Sunday at 8")
        self.assertEqual(
            seen["refused"], await self.server_says(daemon, "offlinemessage", too_long)
        )
        self.assertTrue(seen["refused"])
        self.assertEqual(self.forget_refusals(browser, 400), 1)
        self.assertEqual(browser.errors, [])

    async def test_recordings_tab_lists_renames_and_deletes_a_real_recording(self):
        """A real ffmpeg publishes a few seconds, recorded: the Recordings tab lists it
        with its size and links, renames it, saves the setting, deletes it after the
        confirmation; axe-core finds nothing serious on the tab at 375 and 1280 px."""
        daemon, browser = await self.start()
        enabled = {"enabled": True, "variants": "all", "maxDays": 0, "maxGiB": 0, "minFreeGiB": 0,
                   "viewerClips": True}  # fmt: skip
        response = await daemon.post("/api/admin/config/recordings", {"value": enabled}, auth=ADMIN)
        self.assertEqual(response.code, 200, response)
        publisher = publish(self, daemon, seconds=8)

        async def recording_now() -> Any:
            return (await daemon.get("/api/admin/recordings", auth=ADMIN)).json["recording"]

        live_id = await wait_until(recording_now, 30, "the recording to start")

        async def while_live() -> list:
            page = await open_admin(browser, daemon, "recordings")
            live_row = f"tr.recording[data-id='{live_id}']"
            await page.wait_for_selector(live_row)
            return [
                await page.text_content("#rec-now"),
                await page.text_content(f"{live_row} td:nth-child(3)"),
                await page.is_disabled(f"{live_row} button.danger"),
            ]

        self.assertEqual(await browser.run(while_live()), ["Recording now", "recording now", True])
        await publisher.ended
        await daemon.post("/api/admin/disconnect", {}, auth=ADMIN)

        async def finished() -> Any:
            listed = (await daemon.get("/api/admin/recordings", auth=ADMIN)).json["recordings"]
            return listed[0] if listed and not listed[0]["live"] else None

        recording = await wait_until(finished, 30, "the recording to end")
        made = await daemon.post(
            "/api/admin/recordings/clip",
            {"id": recording["id"], "start": 1, "end": 3, "title": "A clip"},
            auth=ADMIN,
        )
        self.assertEqual(made.code, 200, made)
        clip = made.json
        axe = AXE.read_text()
        ARTIFACTS.mkdir(exist_ok=True)
        row = f"tr.recording[data-id='{recording['id']}']"

        async def look(width: int) -> dict:
            page = await open_admin(browser, daemon, "recordings", width)
            await page.wait_for_selector(row)
            await page.evaluate(axe)
            result = await page.evaluate("() => axe.run(document)")
            await page.screenshot(
                path=str(ARTIFACTS / f"admin-section-recordings-{width}.png"), full_page=True
            )
            cells = await page.eval_on_selector_all(
                f"{row} td", "(tds) => tds.map((td) => td.textContent.trim())"
            )
            links = await page.eval_on_selector_all(
                f"{row} a", "(as) => as.map((a) => a.getAttribute('href'))"
            )
            # the clip's row follows its recording's
            nested = await page.eval_on_selector(
                f"{row} + tr.clip",
                "(tr) => [tr.dataset.clip, tr.cells[0].textContent,"
                " [...tr.querySelectorAll('a')].map((a) => a.getAttribute('href'))]",
            )
            return {
                "violations": [
                    (v["id"], [n["target"] for n in v["nodes"]][:3])
                    for v in result["violations"]
                    if v["impact"] in ("serious", "critical")
                ],
                "cells": cells,
                "links": links,
                "nested": nested,
                "wider": await page.evaluate(WIDER),
                "scroll": await page.evaluate("() => document.documentElement.scrollWidth"),
                "now": await page.text_content("#rec-now"),
                "used": await page.text_content("#rec-used"),
                "free": await page.text_content("#rec-free"),
                "full_hidden": await page.eval_on_selector("#rec-disk-full", "(e) => e.hidden"),
            }

        async def change() -> dict:
            page = await open_admin(browser, daemon, "recordings")
            await page.wait_for_selector(row)
            await page.locator(f"{row} input[name=title]").fill("Renamed in the admin page")
            async with page.expect_response("**/api/admin/recordings/title"):
                await page.click(f"{row} button.rename")
            await page.wait_for_function(
                "(r) => document.querySelector(r + ' input[name=title]')?.value"
                " === 'Renamed in the admin page'",
                arg=row,
            )
            renamed = await page.evaluate(OVERVIEW)
            # the setting: a whole object; a bad one is refused under the form
            form = page.locator("#recordings-settings")
            await form.locator("[name=maxDays]").fill("30")
            await form.locator("[name=variants]").select_option("highest")
            await form.locator("[name=viewerClips]").uncheck()
            async with page.expect_response("**/api/admin/config/recordings"):
                await form.locator("button.save").click()
            await page.wait_for_function(
                "() => !document.querySelector('#recordings-settings button.save').disabled"
            )
            await form.locator("[name=maxDays]").fill("-1")
            await form.locator("button.save").click()
            await page.wait_for_function(
                "() => document.getElementById('rec-settings-error').textContent !== ''"
            )
            refused = await page.text_content("#rec-settings-error")
            # delete: dismissing the confirmation keeps it, accepting removes it
            page.once("dialog", lambda dialog: dialog.dismiss())
            await page.click(f"{row} button.danger")
            kept = len((await page.evaluate(OVERVIEW))["recordings"])
            page.once("dialog", lambda dialog: dialog.accept())
            async with page.expect_response("**/api/admin/recordings/delete"):
                await page.click(f"{row} button.danger")
            await page.wait_for_selector(row, state="detached")
            empty = await page.eval_on_selector("#rec-empty", "(e) => e.hidden")
            return {"renamed": renamed, "refused": refused, "kept": kept, "empty_hidden": empty}

        for width in WIDTHS:
            seen = await browser.run(look(width))
            self.assertEqual(seen["violations"], [], f"at {width} px")
            self.assertEqual(seen["wider"], [], f"at {width} px")
            self.assertEqual(seen["scroll"], width)
            self.assertGreater(
                (ARTIFACTS / f"admin-section-recordings-{width}.png").stat().st_size, 1000
            )
            self.assertEqual(seen["now"], "Not recording")
            self.assertRegex(seen["used"], r"^\d+(\.\d)? (KiB|MiB)$")
            self.assertRegex(seen["free"], r" (MiB|GiB|TiB)$")
            self.assertTrue(seen["full_hidden"])
            self.assertEqual(seen["links"], [recording["url"], recording["download"], None][:2])
            self.assertEqual(seen["cells"][5], "1")  # clips
            self.assertEqual(
                seen["nested"], [clip["id"], "Clip: A clip", [clip["url"], clip["download"]]]
            )
            self.assertRegex(seen["cells"][2], r"^\d+ s$")
        seen = await browser.run(change())
        titles = [r["title"] for r in seen["renamed"]["recordings"]]
        self.assertEqual(titles, ["Renamed in the admin page"])
        settings = (await daemon.get("/api/admin/recordings", auth=ADMIN)).json["settings"]
        changed = {"maxDays": 30, "variants": "highest", "viewerClips": False}
        self.assertEqual(settings, {**enabled, **changed})
        response = await daemon.post(
            "/api/admin/config/recordings",
            {"value": {**settings, "maxDays": -1}},
            auth=ADMIN,
        )
        self.assertEqual(seen["refused"], response.json["message"])
        self.assertEqual(seen["kept"], 1)
        self.assertFalse(seen["empty_hidden"])
        self.assertEqual(
            (await daemon.get("/api/admin/recordings", auth=ADMIN)).json["recordings"], []
        )
        self.assertEqual(self.forget_refusals(browser, 400), 1)
        self.assertEqual(browser.errors, [])


class S3ConnectionTestEndpoint(unittest.TestCase):
    """``POST /api/admin/config/s3/test`` through the real S3 client against moto."""

    timeout = 60

    async def asyncSetUp(self) -> tuple[Any, str]:
        moto = await start_s3(self)
        await S3SegmentStorage(moto.config("probe"), reactor, allow_private=True).create_bucket()
        ctx = make_context(Path(self.mktemp()))
        api = AdminApi(ctx, s3_storage=lambda c: S3SegmentStorage(c, reactor, allow_private=True))
        port = reactor.listenTCP(0, Site(api.app.resource()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return moto, f"http://127.0.0.1:{port.getHost().port}"

    async def post(self, base: str, value: Any) -> tuple[int, dict]:
        response = await treq.post(
            base + "/config/s3/test",
            json.dumps({"value": value}).encode(),
            headers={"Content-Type": ["application/json"]},
            auth=CTX_ADMIN,
            pool=HTTPConnectionPool(reactor, persistent=False),
        )
        return response.code, json.loads(await response.content())

    async def test_probe_uploaded_and_deleted(self):
        moto, base = await self.asyncSetUp()
        code, body = await self.post(base, {**moto.config("probe"), "enabled": False})
        self.assertEqual(code, 200, body)
        self.assertTrue(body["success"], body)
        self.assertRegex(
            body["message"], r"^uploaded and deleted owncast-connection-test-\w+\.txt$"
        )
        listing = await S3SegmentStorage(
            moto.config("probe"), reactor, allow_private=True
        )._request("GET", "")
        self.assertNotIn(b"owncast-connection-test", listing)

    async def test_wrong_secret_and_bucket_reported(self):
        moto, base = await self.asyncSetUp()
        code, body = await self.post(base, {**moto.config("probe"), "secret": "wrong"})
        self.assertEqual(code, 200)
        self.assertFalse(body["success"])
        self.assertIn("upload of owncast-connection-test-", body["message"])
        self.assertIn("HTTP 403", body["message"])
        code, body = await self.post(base, {**moto.config("missing-bucket")})
        self.assertFalse(body["success"])
        self.assertIn("HTTP 404", body["message"])

    async def test_incomplete_body_is_400(self):
        moto, base = await self.asyncSetUp()
        code, body = await self.post(base, {"enabled": False, "endpoint": moto.endpoint})
        self.assertEqual(code, 400)
        self.assertEqual(body, {"success": False, "message": body["message"]})
        self.assertIn("bucket", body["message"])
        code, body = await self.post(base, "not an object")
        self.assertEqual(code, 400)
