"""The public endpoints, in memory: shapes (as Owncast 0.0.7), history window, emoji,
the logo, unknown paths."""

from __future__ import annotations

import base64
from pathlib import Path

from twisted.trial import unittest

from tests.helpers import Client, LiveServer, make_context, result_of


class PublicApiTests(unittest.TestCase):
    def setUp(self):
        self.datadir = Path(self.mktemp())
        self.ctx = make_context(self.datadir)
        self.client = Client(self.ctx)

    def test_config_has_instance_details(self):
        """0.0.7's /api/config on a fresh data dir: its fields, its defaults, the logo at
        /logo, no streamTitle while it is empty, any origin may read it."""
        code, body, response = self.client.get("/api/config")
        self.assertEqual(code, 200)
        self.assertEqual(
            set(body),
            {
                "name",
                "summary",
                "logo",
                "tags",
                "version",
                "nsfw",
                "extraPageContent",
                "socialHandles",
                "chatDisabled",
                "externalActions",
                "customStyles",
                "offlineMessage",
            },
        )
        self.assertEqual(body["logo"], "/logo")
        self.assertEqual(body["name"], "Owncast")
        self.assertEqual(body["tags"], ["owncast", "streaming"])
        self.assertEqual(
            body["extraPageContent"],
            "<p>This is your page's content that can be edited in the admin.</p>",
        )
        self.assertEqual(
            body["socialHandles"],
            [
                {
                    "platform": "github",
                    "url": "https://github.com/owncast/owncast",
                    "icon": "/img/platformlogos/github.svg",
                }
            ],
        )
        self.assertEqual((body["chatDisabled"], body["externalActions"]), (False, []))
        self.assertTrue(body["version"].startswith("Owncast v0.0.7-"), body["version"])
        self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"), ["*"])
        result_of(_coro(self.ctx.save({"streamTitle": "Live now", "pageContent": "<p>random</p>"})))
        body = self.client.get("/api/config")[1]
        self.assertEqual(body["streamTitle"], "Live now")
        self.assertEqual(body["extraPageContent"], "<p>random</p>")

    def test_status_offline(self):
        code, body, response = self.client.get("/api/status")
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type")[0][:16], "application/json")
        self.assertFalse(body["online"])
        self.assertEqual(body["viewerCount"], 0)
        self.assertIsNone(body["lastConnectTime"])
        self.assertIsNone(body["lastDisconnectTime"])
        self.assertEqual(
            set(body),
            {
                "online",
                "viewerCount",
                "lastConnectTime",
                "lastDisconnectTime",
                "versionNumber",
                "streamTitle",
            },
            "0.0.7 shows no peak viewer counts publicly",
        )
        self.assertEqual(body["versionNumber"], "0.0.7")

    def test_no_disconnect_time_while_live(self):
        """0.0.7 cleared lastDisconnectTime when a broadcast began."""
        stream = self.ctx.stream
        stream.start("192.0.2.1", {}, lambda: None)
        stream.stop()
        self.assertIsNotNone(self.client.get("/api/status")[1]["lastDisconnectTime"])
        stream.start("192.0.2.1", {}, lambda: None)
        status = self.client.get("/api/status")[1]
        self.assertIsNone(status["lastDisconnectTime"])
        self.assertIsNotNone(status["lastConnectTime"])

    def test_yp_is_404_until_the_directory_is_enabled(self):
        code, body, _ = self.client.get("/api/yp")
        self.assertEqual((code, body["success"]), (404, False))
        result_of(_coro(self.ctx.save({"directoryEnabled": True})))
        code, body, _ = self.client.get("/api/yp")
        self.assertEqual(code, 200)
        self.assertEqual(
            set(body),
            {
                "name",
                "description",
                "logo",
                "nsfw",
                "tags",
                "online",
                "viewerCount",
                "overallMaxViewerCount",
                "sessionMaxViewerCount",
                "social",
                "lastConnectTime",
            },
        )
        self.assertEqual(body["logo"], "/logo")
        result_of(_coro(self.ctx.save({"streamTitle": "On air"})))
        self.assertEqual(self.client.get("/api/yp")[1]["streamTitle"], "On air")

    def test_social_platforms_and_video_variants(self):
        code, platforms, _ = self.client.get("/api/socialplatforms")
        self.assertEqual(code, 200)
        self.assertEqual(
            platforms["mastodon"],
            {"platform": "Mastodon", "icon": "/img/platformlogos/mastodon.svg"},
        )
        self.assertEqual(
            self.client.get("/api/video/variants")[1], [{"name": "1.2Mbps@24fps", "index": 0}]
        )
        result_of(
            _coro(
                self.ctx.save(
                    {
                        "videoQualityVariants": [
                            {"videoBitrate": 800, "scaledHeight": 360, "videoPassthrough": False},
                            {"videoBitrate": 4000, "videoPassthrough": True, "name": ""},
                            {"videoBitrate": 1500, "name": "HD"},
                        ]
                    }
                )
            )
        )
        self.assertEqual(
            self.client.get("/api/video/variants")[1],
            [
                {"name": "Source", "index": 1},
                {"name": "HD", "index": 2},
                {"name": "360h", "index": 0},
            ],
        )

    def test_chat_history_is_visible_recent_oldest_first_and_capped(self):
        chat = self.ctx.chat
        clock = self.ctx.reactor
        old = result_of(_coro(chat.send_system("too old")))
        clock.advance(6 * 3600)
        sent = [result_of(_coro(chat.send_user("bob", f"message {i}"))) for i in range(55)]
        hidden = sent[-1]
        result_of(_coro(chat.set_visibility([hidden["id"]], False)))
        code, body, _ = self.client.get("/api/chat")
        self.assertEqual(code, 200)
        ids = [m["id"] for m in body]
        self.assertEqual(len(body), 50)
        self.assertNotIn(old["id"], ids)
        self.assertNotIn(hidden["id"], ids)
        self.assertEqual(ids, [m["id"] for m in sent[4:54]])
        self.assertEqual(set(body[0]), {"id", "type", "author", "body", "visible", "timestamp"})
        self.assertEqual(body[0]["body"], "<p>message 4</p>")

    def test_chat_history_leaves_out_an_empty_author(self):
        """0.0.7's ChatEvent has ``author,omitempty``: an action without one has none."""
        result_of(_coro(self.ctx.chat.send_action("waves")))
        [action] = self.client.get("/api/chat")[1]
        self.assertEqual(set(action), {"id", "type", "body", "visible", "timestamp"})
        self.assertEqual(action["type"], "CHAT_ACTION")

    def test_emoji_lists_builtin_and_datadir_files(self):
        (self.datadir / "emoji" / "party.gif").write_bytes(b"GIF89a")
        (self.datadir / "emoji" / "notes.txt").write_text("not an emoji")
        code, body, _ = self.client.get("/api/emoji")
        self.assertEqual(code, 200)
        by_name = {e["name"]: e["emoji"] for e in body}
        self.assertEqual(by_name["party"], "/img/emoji/party.gif")
        self.assertEqual(by_name["smile"], "/img/emoji/smile.svg")
        self.assertNotIn("notes", by_name)

    async def test_emoji_files_are_served_from_both_folders(self):
        (self.datadir / "emoji" / "party.gif").write_bytes(b"GIF89a")
        server = LiveServer(self.ctx)
        self.addCleanup(server.stop)
        code, content, response = await server.request("GET", "/img/emoji/party.gif")
        self.assertEqual((code, content), (200, b"GIF89a"))
        self.assertIn("max-age", response.headers.getRawHeaders("cache-control")[0])
        code, content, _ = await server.request("GET", "/img/emoji/smile.svg")
        self.assertEqual(code, 200)
        self.assertIn(b"<svg", content)

    async def test_logo_serves_the_configured_image(self):
        """GET /logo (0.0.7's logo route) serves the default logo, then an uploaded one,
        cacheable for 30 s; the uploaded file also stays at its own path."""
        server = LiveServer(self.ctx)
        self.addCleanup(server.stop)

        def header(response, name):
            return response.headers.getRawHeaders(name)

        code, content, response = await server.request("GET", "/logo")
        self.assertEqual(code, 200)
        self.assertIn(b"<svg", content)
        self.assertEqual(header(response, "content-type"), ["image/svg+xml"])
        self.assertEqual(header(response, "cache-control"), ["public, max-age=30"])
        png = b"\x89PNG\r\n\x1a\n" + bytes(40)
        uri = "data:image/png;base64," + base64.b64encode(png).decode()
        code, body = self.client.admin_post("/api/admin/config/logo", {"value": uri})
        self.assertEqual(code, 200, body)
        code, content, response = await server.request("GET", "/logo")
        self.assertEqual((code, content), (200, png))
        self.assertEqual(header(response, "content-type"), ["image/png"])
        self.assertEqual(response.length, len(png))
        stored = self.ctx.settings["logo"]
        self.assertEqual((await server.request("GET", stored))[:2], (200, png))
        self.assertEqual(self.client.get("/api/config")[1]["logo"], "/logo")
        code, content, _ = await server.request("HEAD", "/logo")
        self.assertEqual((code, content), (200, b""))
        (self.datadir / "logo" / stored.rsplit("/", 1)[1]).unlink()
        code, content, _ = await server.request("GET", "/logo")
        self.assertEqual(code, 200)
        self.assertIn(b"<svg", content, "a missing file falls back to the default logo")
        self.assertEqual((await server.request("GET", "/logo/"))[0], 404)

    async def test_emoji_path_traversal_is_refused(self):
        (self.datadir / "secret.txt").write_text("secret")
        server = LiveServer(self.ctx)
        self.addCleanup(server.stop)
        for path in (
            "/img/emoji/..%2fsecret.txt",
            "/img/emoji/%2e%2e/%2e%2e/secret.txt",
            "/img/emoji/.hidden",
            "/logo/..%2fsecret.txt",
        ):
            code, content, _ = await server.request("GET", path)
            self.assertEqual(code, 404, path)
            self.assertNotIn(b"secret", content)

    def test_unknown_api_path_is_json_404(self):
        code, body, _ = self.client.get("/api/nothing-here")
        self.assertEqual(code, 404)
        self.assertEqual(body["success"], False)
        self.assertTrue(body["message"])

    def test_wrong_method_is_json_405(self):
        code, body, _ = self.client.post("/api/status", {})
        self.assertEqual(code, 405)
        self.assertEqual(body["success"], False)

    def test_openapi_document_is_served(self):
        code, body, response = self.client.get("/api/openapi.yaml")
        self.assertEqual(code, 200)
        self.assertIn(b"openapi:", body)

    def test_custom_styles_served_as_css(self):
        result_of(_coro(self.ctx.save({"customStyles": "body { color: red; }"})))
        code, body, response = self.client.get("/customstyles.css")
        self.assertEqual(code, 200)
        self.assertEqual(body, b"body { color: red; }")
        self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith("text/css"))


def _coro(coroutine):
    from twisted.internet.defer import Deferred

    return Deferred.fromCoroutine(coroutine)


class PingTests(unittest.TestCase):
    def test_ping_counts_a_viewer_while_live(self):
        ctx = make_context(Path(self.mktemp()))
        client = Client(ctx)
        code, body, _ = client.get("/api/ping", headers={"User-Agent": ["a"]})
        self.assertEqual((code, body["success"]), (200, True))
        self.assertEqual(client.get("/api/status")[1]["viewerCount"], 0)
        ctx.viewers.stream_started()
        client.get("/api/ping", headers={"User-Agent": ["a"]})
        client.post("/api/ping", headers={"User-Agent": ["b"]})
        client.get("/api/ping", headers={"User-Agent": ["a"]})
        status = client.get("/api/status")[1]
        self.assertEqual((status["viewerCount"], ctx.viewers.session_max), (2, 2))
        ctx.reactor.advance(61)
        self.assertEqual(client.get("/api/status")[1]["viewerCount"], 0)
