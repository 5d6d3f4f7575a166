"""The public endpoints, in memory: shapes, history window, emoji, unknown paths."""

from __future__ import annotations

from pathlib import Path

from twisted.trial import unittest

from tests.helpers import Client, LiveServer, make_context, result_of


class PublicApiTests(unittest.TestCase):
    def setUp(self):
        self.datadir = Path(self.mktemp())
        self.ctx = make_context(self.datadir)
        self.client = Client(self.ctx)

    def test_config_has_instance_details(self):
        code, body, _ = self.client.get("/api/config")
        self.assertEqual(code, 200)
        for field in (
            "name",
            "summary",
            "logo",
            "tags",
            "socialHandles",
            "extraPageContent",
            "version",
        ):
            self.assertIn(field, body)
        self.assertIn("<h1>", body["extraPageContent"])

    def test_status_offline(self):
        code, body, response = self.client.get("/api/status")
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type")[0][:16], "application/json")
        self.assertFalse(body["online"])
        self.assertEqual(body["viewerCount"], 0)
        self.assertIsNone(body["lastConnectTime"])
        self.assertIsNone(body["lastDisconnectTime"])
        self.assertEqual(body["overallMaxViewerCount"], 0)
        self.assertEqual(body["sessionMaxViewerCount"], 0)

    def test_yp_shape(self):
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
                "lastConnectTime",
            },
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
        self.assertEqual((status["viewerCount"], status["sessionMaxViewerCount"]), (2, 2))
        ctx.reactor.advance(61)
        self.assertEqual(client.get("/api/status")[1]["viewerCount"], 0)
