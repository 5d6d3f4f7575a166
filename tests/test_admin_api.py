"""The admin API in memory: auth and throttling, every setter's validation and persistence,
tokens, webhooks, moderation, stats."""

from __future__ import annotations

import base64
import ipaddress
import random
from pathlib import Path
from urllib.parse import urlsplit

from twisted.trial import unittest

from owncast.api.admin import SAVED_MESSAGES
from owncast.core.errors import ValidationError
from owncast.core.settings import HTTP_URL, Settings, http_url
from tests.helpers import (
    ADMIN,
    STREAM_KEY,
    Client,
    LiveServer,
    make_context,
    make_store,
    result_of,
    run,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class AdminAuthTests(unittest.TestCase):
    def setUp(self):
        self.ctx = make_context(Path(self.mktemp()))
        self.client = Client(self.ctx)

    def test_no_credentials_is_401_with_basic_challenge(self):
        code, body, response = self.client.get("/api/admin/status")
        self.assertEqual(code, 401)
        self.assertEqual(body["success"], False)
        challenge = response.headers.getRawHeaders("www-authenticate")[0]
        self.assertTrue(challenge.startswith("Basic realm="))

    def test_wrong_user_or_password_is_401(self):
        for auth in (("admin", "wrong"), ("root", STREAM_KEY), ("admin", "")):
            code, _, _ = self.client.get("/api/admin/status", auth=auth)
            self.assertEqual(code, 401, auth)

    def test_every_admin_route_needs_auth(self):
        gets = [
            "status",
            "clients",
            "logs",
            "logs/warnings",
            "serverconfig",
            "chat/messages",
            "viewersOverTime",
            "hardwarestats",
            "accesstokens",
            "webhooks",
        ]
        posts = [
            "disconnect",
            "yp/reset",
            "chat/updatemessagevisibility",
            "config/name",
            "config/customstyles",
            "config/key",
            "accesstokens/create",
            "accesstokens/delete",
            "webhooks/create",
            "webhooks/delete",
        ]
        for path in gets:
            self.assertEqual(self.client.get("/api/admin/" + path)[0], 401, path)
        for path in posts:
            self.assertEqual(self.client.post("/api/admin/" + path, {"value": "x"})[0], 401, path)
        # Requests without credentials are not guesses: none of them was throttled.
        self.assertEqual(self.ctx.throttle.retry_after("127.0.0.1"), 0)
        code, _, _ = self.client.get("/admin/")
        self.assertEqual(code, 401)

    async def test_admin_page_served_with_auth(self):
        server = LiveServer(self.ctx)
        self.addCleanup(server.stop)
        code, _, _ = await server.request("GET", "/admin/")
        self.assertEqual(code, 401)
        code, content, _ = await server.request("GET", "/admin/", auth=ADMIN)
        self.assertEqual(code, 200)
        self.assertIn(b"<html", content)

    def test_repeated_failures_are_throttled_then_forgiven(self):
        for _ in range(5):
            self.assertEqual(self.client.get("/api/admin/status", auth=("admin", "x"))[0], 401)
        self.assertEqual(self.client.get("/api/admin/status", auth=("admin", "x"))[0], 401)
        code, body, response = self.client.get("/api/admin/status", auth=ADMIN)
        self.assertEqual(code, 429)
        self.assertEqual(body["success"], False)
        self.assertTrue(int(response.headers.getRawHeaders("retry-after")[0]) >= 1)
        self.ctx.reactor.advance(2)
        self.assertEqual(self.client.get("/api/admin/status", auth=ADMIN)[0], 200)

    def test_penalty_grows(self):
        throttle = self.ctx.throttle
        for _ in range(8):
            throttle.failed("10.0.0.1")
        self.assertEqual(throttle.retry_after("10.0.0.1"), 4.0)
        throttle.failed("10.0.0.1")
        self.assertEqual(throttle.retry_after("10.0.0.1"), 8.0)
        self.assertEqual(throttle.retry_after("10.0.0.2"), 0.0)
        self.ctx.reactor.advance(1000)
        self.assertEqual(throttle.retry_after("10.0.0.1"), 0.0)

    def test_changing_the_key_changes_the_password_at_once(self):
        code, body = self.client.admin_post("/api/admin/config/key", {"value": "new-key-123456"})
        self.assertEqual((code, body["success"]), (200, True))
        self.assertEqual(self.client.get("/api/admin/status", auth=ADMIN)[0], 401)
        code, _, _ = self.client.get("/api/admin/status", auth=("admin", "new-key-123456"))
        self.assertEqual(code, 200)
        stored = result_of(self.ctx.store.get_settings())
        self.assertEqual(stored["streamKey"], "new-key-123456")


class AdminReadTests(unittest.TestCase):
    def setUp(self):
        self.ctx = make_context(Path(self.mktemp()))
        self.client = Client(self.ctx)

    def test_status_offline_shape(self):
        body = self.client.admin_get("/api/admin/status")
        self.assertIsNone(body["broadcaster"])
        self.assertFalse(body["online"])
        for field in (
            "viewerCount",
            "sessionPeakViewerCount",
            "overallPeakViewerCount",
            "versionNumber",
        ):
            self.assertIn(field, body)

    def test_status_while_live_and_disconnect(self):
        dropped = []
        self.ctx.stream.start(
            "192.0.2.7", {"width": 1280, "height": 720}, lambda: dropped.append(True)
        )
        body = self.client.admin_get("/api/admin/status")
        self.assertTrue(body["online"])
        self.assertEqual(body["broadcaster"]["remoteAddr"], "192.0.2.7")
        self.assertEqual(body["broadcaster"]["streamDetails"]["width"], 1280)
        self.assertTrue(body["broadcaster"]["time"].startswith("20"))
        code, body = self.client.admin_post("/api/admin/disconnect", None)
        self.assertEqual((code, body["success"]), (200, True))
        self.assertEqual(dropped, [True])
        self.assertFalse(self.ctx.stream.online)
        _, status, _ = self.client.get("/api/status")
        self.assertIsNotNone(status["lastDisconnectTime"])
        code, body = self.client.admin_post("/api/admin/disconnect", None)
        self.assertEqual(body["success"], False)

    def test_serverconfig_shape(self):
        body = self.client.admin_get("/api/admin/serverconfig")
        self.assertEqual(
            set(body)
            >= {
                "instanceDetails",
                "ffmpegPath",
                "webServerPort",
                "rtmpServerPort",
                "s3",
                "videoSettings",
                "yp",
            },
            True,
        )
        self.assertEqual(body["webServerPort"], 8080)
        self.assertEqual(body["rtmpServerPort"], 1935)
        self.assertEqual(body["videoSettings"]["latencyLevel"], 2)
        self.assertEqual(len(body["videoSettings"]["videoQualityVariants"]), 1)
        self.assertEqual(body["yp"], {"enabled": False, "instanceUrl": ""})
        self.assertIn("enabled", body["s3"])
        self.assertTrue(body["ffmpegPath"])

    def test_logs_and_warnings(self):
        self.ctx.logs(
            {
                "log_level": _level("info"),
                "log_format": "hello {x}",
                "x": 1,
                "log_time": 1_700_000_000.0,
            }
        )
        self.ctx.logs(
            {"log_level": _level("warn"), "log_format": "careful", "log_time": 1_700_000_001.0}
        )
        logs = self.client.admin_get("/api/admin/logs")
        self.assertEqual([e["message"] for e in logs], ["hello 1", "careful"])
        self.assertEqual([e["level"] for e in logs], ["info", "warning"])
        warnings = self.client.admin_get("/api/admin/logs/warnings")
        self.assertEqual([e["message"] for e in warnings], ["careful"])
        self.assertTrue(warnings[0]["time"].startswith("2023-11-14T22:13:21"))

    def test_stats_over_time(self):
        store = self.ctx.store
        now = self.ctx.now()
        result_of(store.add_sample("viewers", now - 25 * 3600, 9))
        result_of(store.add_sample("viewers", now - 60, 3))
        result_of(store.add_sample("cpu", now - 60, 12.6))
        result_of(store.add_sample("memory", now - 60, 40))
        result_of(store.add_sample("disk", now - 60, 70))
        viewers = self.client.admin_get("/api/admin/viewersOverTime")
        self.assertEqual([v["value"] for v in viewers], [3])
        hardware = self.client.admin_get("/api/admin/hardwarestats")
        self.assertEqual(hardware["cpu"][0]["value"], 13)
        self.assertEqual(set(hardware), {"cpu", "memory", "disk"})

    def test_yp_reset(self):
        run(self.ctx.save({"ypRegistrationKey": "abc"}))
        code, body = self.client.admin_post("/api/admin/yp/reset", None)
        self.assertEqual((code, body["success"]), (200, True))
        self.assertEqual(result_of(self.ctx.store.get_settings())["ypRegistrationKey"], "")

    def test_clients_empty_list(self):
        self.assertEqual(self.client.admin_get("/api/admin/clients"), [])


def _level(name):
    from twisted.logger import LogLevel

    return LogLevel.levelWithName(name)


class ConfigSetterTests(unittest.TestCase):
    """Each setter: a good value is stored and shown; a bad one is a 400 and changes nothing."""

    GOOD = {
        "name": ("name", "My stream", "My stream"),
        "serversummary": ("summary", "About me", "About me"),
        "streamtitle": ("streamTitle", "Now: testing", "Now: testing"),
        "pagecontent": ("pageContent", "# Hi", "# Hi"),
        "tags": ("tags", ["a", " b "], ["a", "b"]),
        "webserverport": ("webServerPort", 8081, 8081),
        "rtmpserverport": ("rtmpServerPort", 1936, 1936),
        "nsfw": ("nsfw", True, True),
        "directoryenabled": ("directoryEnabled", True, True),
        "serverurl": ("serverUrl", "https://live.example.com", "https://live.example.com"),
        "video/streamlatencylevel": ("latencyLevel", 4, 4),
        "socialhandles": (
            "socialHandles",
            [{"platform": "github", "url": "https://github.com/x"}],
            [{"platform": "github", "url": "https://github.com/x"}],
        ),
        "customstyles": ("customStyles", "body { color: orange; }", "body { color: orange; }"),
        "logo": ("logo", "img/logo.svg", "/img/logo.svg"),
    }

    BAD = {
        "name": [5, "", None, ["x"]],
        "tags": ["a,b", [1, 2], {"a": 1}],
        "webserverport": [-1, 70000, "8080", True, 1.5],
        "rtmpserverport": [-1, 65536],
        "nsfw": ["yes", 1],
        "directoryenabled": [None],
        "serverurl": ["ftp://x", "not a url", "javascript:alert(1)", "http://[", "http://[::1"],
        "video/streamlatencylevel": [-1, "2", 2.5],
        "video/streamoutputvariants": [
            "x",
            [{"videoBitrate": -5}],
            [{"framerate": -1}],
            [{"scaledWidth": 641}],
            [{"nonsense": 1}],
            [{"cpuUsageLevel": 9}],
            [1],
        ],
        "s3": [
            {"endpoint": "https://s3"},
            {"enabled": "yes"},
            {"enabled": True, "endpoint": "https://s3.example.com"},
            "x",
            {"enabled": False, "endpoint": "not a url"},
        ],
        "socialhandles": [
            [{"platform": "x", "url": "javascript:alert(1)"}],
            [{"platform": ""}],
            {"platform": "x"},
        ],
        "customstyles": ["</style><script>alert(1)</script>", 5, "a { content: '\ud800' }"],
        "key": ["", "has space", "a/b", 123],
        "logo": [
            "/nonexistent.png",
            "../../etc/passwd",
            "/../owncast.db",
            "data:image/png;base64,notbase64!",
            "data:image/svg+xml;base64,PHN2Zz4=",
            "data:image/png;base64," + base64.b64encode(b"GIF89a").decode(),
            5,
        ],
        "streamtitle": [None, 7, "\udfff"],
        "pagecontent": [False],
    }

    def setUp(self):
        self.ctx = make_context(Path(self.mktemp()))
        self.client = Client(self.ctx)

    def test_good_values_are_stored(self):
        for path, (key, value, expected) in self.GOOD.items():
            code, body = self.client.admin_post(f"/api/admin/config/{path}", {"value": value})
            message = SAVED_MESSAGES.get(path, "changed")  # 0.0.7's answers
            self.assertEqual((code, body), (200, {"success": True, "message": message}), path)
            self.assertEqual(self.ctx.settings[key], expected, path)
            self.assertEqual(result_of(self.ctx.store.get_settings())[key], expected, path)

    def test_bad_values_are_400_and_change_nothing(self):
        before = result_of(self.ctx.store.get_settings())
        for path, values in self.BAD.items():
            for value in values:
                code, body = self.client.admin_post(f"/api/admin/config/{path}", {"value": value})
                self.assertEqual(code, 400, (path, value, body))
                self.assertEqual(body["success"], False)
                self.assertTrue(body["message"])
        self.assertEqual(result_of(self.ctx.store.get_settings()), before)

    def test_malformed_bodies_are_400(self):
        for raw in (b"", b"{", b"[1, 2]", b'"value"', b'{"val": 1}', b"\xff\xfe"):
            code, body, _ = self.client.post("/api/admin/config/name", raw=raw, auth=ADMIN)
            self.assertEqual(code, 400, raw)
            self.assertEqual(body["success"], False)

    def test_unknown_setting_is_404(self):
        code, body = self.client.admin_post("/api/admin/config/nope", {"value": 1})
        self.assertEqual((code, body["success"]), (404, False))

    def test_variants_are_filled_with_defaults(self):
        code, _ = self.client.admin_post(
            "/api/admin/config/video/streamoutputvariants",
            {
                "value": [
                    {
                        "framerate": 30,
                        "videoBitrate": 1800,
                        "cpuUsageLevel": 2,
                        "videoPassthrough": False,
                        "audioPassthrough": True,
                    },
                    {"framerate": 24, "videoBitrate": 1000, "scaledWidth": 640},
                ]
            },
        )
        self.assertEqual(code, 200)
        variants = self.client.admin_get("/api/admin/serverconfig")["videoSettings"][
            "videoQualityVariants"
        ]
        self.assertEqual([v["videoBitrate"] for v in variants], [1800, 1000])
        self.assertEqual(variants[1]["scaledWidth"], 640)
        # 0.0.7's shape: a name (made from the settings), no scaledHeight while it is 0.
        self.assertEqual(
            set(variants[1]),
            {
                "name",
                "videoPassthrough",
                "audioPassthrough",
                "videoBitrate",
                "audioBitrate",
                "scaledWidth",
                "framerate",
                "cpuUsageLevel",
            },
        )
        self.assertEqual(variants[1]["name"], "640w")

    def test_s3_config(self):
        value = {
            "enabled": True,
            "endpoint": "https://s3.example.com",
            "accessKey": "k",
            "secret": "s",
            "bucket": "video",
            "region": "us-east-1",
        }
        code, _ = self.client.admin_post("/api/admin/config/s3", {"value": value})
        self.assertEqual(code, 200)
        s3 = self.client.admin_get("/api/admin/serverconfig")["s3"]
        self.assertEqual(s3["bucket"], "video")
        self.assertNotIn("acl", s3, "0.0.7 leaves empty S3 fields out")

    def test_page_content_is_rendered_and_sanitized(self):
        markdown = (
            "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) "
            "<img src=x onerror=alert(1)> **bold**"
        )
        self.client.admin_post("/api/admin/config/pagecontent", {"value": markdown})
        html = self.client.get("/api/config")[1]["extraPageContent"]
        self.assertIn("<h1>Title</h1>", html)
        self.assertIn("<strong>bold</strong>", html)
        self.assertNotIn("<script", html)
        self.assertNotIn('href="javascript', html)
        self.assertNotIn("onerror", html)

    def test_logo_upload_is_stored_and_served(self):
        uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
        code, body = self.client.admin_post("/api/admin/config/logo", {"value": uri})
        self.assertEqual(code, 200, body)
        self.assertEqual(self.client.get("/api/config")[1]["logo"], "/logo")
        logo = self.client.admin_get("/api/admin/serverconfig")["instanceDetails"]["logo"]
        self.assertTrue(logo.startswith("/logo/logo-") and logo.endswith(".png"))
        self.assertEqual((self.ctx.datadir / "logo" / logo.split("/")[-1]).read_bytes(), PNG)
        # An uploaded logo may be chosen again by its path.
        code, _ = self.client.admin_post("/api/admin/config/logo", {"value": logo})
        self.assertEqual(code, 200)

    def test_title_change_emits_event(self):
        seen = []
        self.ctx.events.subscribe(lambda kind, data: seen.append((kind, data)))
        self.client.admin_post("/api/admin/config/streamtitle", {"value": "Hello"})
        self.assertEqual([kind for kind, _ in seen], ["STREAM_TITLE_UPDATED"])
        data = seen[-1][1]
        self.assertEqual((data["streamTitle"], data["name"]), ("Hello", "Owncast"))
        self.assertTrue(data["id"] and data["timestamp"])
        # The chat notice is ephemeral (0.0.7): sent to connected clients, not stored.
        self.assertEqual(self.client.get("/api/chat")[1], [])

    def test_command_line_override_wins_until_set(self):
        settings = Settings({"webServerPort": 9000}, {"webServerPort": 9100})
        self.assertEqual(settings["webServerPort"], 9100)
        settings.update({"webServerPort": 9200})
        self.assertEqual(settings["webServerPort"], 9200)


class TokenAndWebhookTests(unittest.TestCase):
    def setUp(self):
        self.ctx = make_context(Path(self.mktemp()))
        self.client = Client(self.ctx)

    def test_token_lifecycle(self):
        code, token = self.client.admin_post(
            "/api/admin/accesstokens/create",
            {"name": "bot", "scopes": ["CAN_SEND_MESSAGES", "HAS_ADMIN_ACCESS"]},
        )
        self.assertEqual(code, 200)
        self.assertEqual(set(token), {"token", "name", "scopes", "timestamp", "lastUsed"})
        self.assertEqual(token["scopes"], ["CAN_SEND_MESSAGES", "HAS_ADMIN_ACCESS"])
        self.assertIsNone(token["lastUsed"])
        self.assertGreaterEqual(len(token["token"]), 40)
        listed = self.client.admin_get("/api/admin/accesstokens")
        self.assertEqual(listed, [token])
        stored = result_of(self.ctx.store.list_tokens())
        self.assertEqual([t["token"] for t in stored], [token["token"]])
        code, body = self.client.admin_post(
            "/api/admin/accesstokens/delete", {"token": token["token"]}
        )
        self.assertEqual((code, body["success"]), (200, True))
        self.assertEqual(self.client.admin_get("/api/admin/accesstokens"), [])
        self.assertEqual(result_of(self.ctx.store.list_tokens()), [])
        code, body = self.client.admin_post(
            "/api/admin/accesstokens/delete", {"token": token["token"]}
        )
        self.assertEqual((code, body["success"]), (404, False))

    def test_bad_token_requests(self):
        for body in (
            {"name": "x", "scopes": ["NOPE"]},
            {"name": "x", "scopes": []},
            {"name": "", "scopes": ["HAS_ADMIN_ACCESS"]},
            {"scopes": ["HAS_ADMIN_ACCESS"]},
            {"name": "x", "scopes": "HAS_ADMIN_ACCESS"},
            [1],
        ):
            code, reply = self.client.admin_post("/api/admin/accesstokens/create", body)
            self.assertEqual((code, reply["success"]), (400, False), body)
        self.assertEqual(self.client.admin_get("/api/admin/accesstokens"), [])
        for body in ({}, {"token": 5}, {"token": ""}):
            code, _ = self.client.admin_post("/api/admin/accesstokens/delete", body)
            self.assertEqual(code, 400, body)

    def test_webhook_lifecycle(self):
        code, hook = self.client.admin_post(
            "/api/admin/webhooks/create",
            {"url": "https://example.com/hook", "events": ["CHAT", "STREAM_STARTED"]},
        )
        self.assertEqual(code, 200)
        self.assertEqual(set(hook), {"id", "url", "events", "timestamp", "lastUsed"})
        self.assertIs(type(hook["id"]), int)
        self.assertEqual(self.client.admin_get("/api/admin/webhooks"), [hook])
        code, second = self.client.admin_post(
            "/api/admin/webhooks/create",
            {"url": "http://127.0.0.1:9/x", "events": ["VISIBILITY-UPDATE"]},
        )
        self.assertEqual(code, 200)
        # Owncast 0.0.7 clients send a number, the seed a string: both work.
        code, body = self.client.admin_post("/api/admin/webhooks/delete", {"id": hook["id"]})
        self.assertEqual((code, body["success"]), (200, True))
        code, body = self.client.admin_post("/api/admin/webhooks/delete", {"id": str(second["id"])})
        self.assertEqual((code, body["success"]), (200, True))
        self.assertEqual(self.client.admin_get("/api/admin/webhooks"), [])
        code, body = self.client.admin_post("/api/admin/webhooks/delete", {"id": second["id"]})
        self.assertEqual(code, 404)

    def test_bad_webhook_requests(self):
        for body in (
            {"url": "https://x.example", "events": ["NOPE"]},
            {"url": "https://x.example", "events": []},
            {"url": "mailto:a@b", "events": ["CHAT"]},
            {"url": "https://x.example"},
            {"events": ["CHAT"]},
            {"url": 5, "events": ["CHAT"]},
        ):
            code, reply = self.client.admin_post("/api/admin/webhooks/create", body)
            self.assertEqual((code, reply["success"]), (400, False), body)
        self.assertEqual(self.client.admin_get("/api/admin/webhooks"), [])
        for body in ({}, {"id": "abc"}, {"id": True}, {"id": None}):
            code, _ = self.client.admin_post("/api/admin/webhooks/delete", body)
            self.assertEqual(code, 400, body)


class ModerationTests(unittest.TestCase):
    def setUp(self):
        self.ctx = make_context(Path(self.mktemp()))
        self.client = Client(self.ctx)

    def test_hide_and_show(self):
        first = run(self.ctx.chat.send_user("ann", "hello"))
        second = run(self.ctx.chat.send_user("bob", "spam"))
        updates = []
        self.ctx.chat.listeners.append(updates.append)
        code, body = self.client.admin_post(
            "/api/admin/chat/updatemessagevisibility",
            {"visible": False, "idArray": [second["id"], "unknown-id"]},
        )
        self.assertEqual((code, body["success"]), (200, True))
        self.assertEqual([u["type"] for u in updates], ["VISIBILITY-UPDATE"])
        self.assertEqual(updates[0]["id"], second["id"])
        self.assertFalse(updates[0]["visible"])
        public = [m["id"] for m in self.client.get("/api/chat")[1]]
        self.assertEqual(public, [first["id"]])
        everything = self.client.admin_get("/api/admin/chat/messages")
        self.assertEqual(
            [(m["id"], m["visible"]) for m in everything],
            [(first["id"], True), (second["id"], False)],
        )
        self.client.admin_post(
            "/api/admin/chat/updatemessagevisibility", {"visible": True, "idArray": [second["id"]]}
        )
        self.assertEqual(len(self.client.get("/api/chat")[1]), 2)

    def test_bad_visibility_requests(self):
        for body in (
            {"visible": "no", "idArray": ["a"]},
            {"visible": False},
            {"visible": False, "idArray": "a"},
            {"visible": False, "idArray": [1]},
        ):
            code, reply = self.client.admin_post("/api/admin/chat/updatemessagevisibility", body)
            self.assertEqual((code, reply["success"]), (400, False), body)


class PersistenceTests(unittest.TestCase):
    """What the API saves is in the store file, and a new context on that file sees it."""

    def test_settings_tokens_webhooks_messages_survive_reopen(self):
        datadir = Path(self.mktemp())
        datadir.mkdir()
        path = str(datadir / "owncast.db")
        ctx = make_context(datadir, store=make_store(path))
        client = Client(ctx)
        client.admin_post("/api/admin/config/name", {"value": "Persistent"})
        _, token = client.admin_post(
            "/api/admin/accesstokens/create", {"name": "t", "scopes": ["HAS_ADMIN_ACCESS"]}
        )
        _, hook = client.admin_post(
            "/api/admin/webhooks/create", {"url": "https://e.example/h", "events": ["CHAT"]}
        )
        run(ctx.chat.send_system("kept"))
        result_of(ctx.store.stop())

        again = make_context(datadir, store=make_store(path))
        client = Client(again)
        self.assertEqual(client.get("/api/config")[1]["name"], "Persistent")
        self.assertEqual(
            [t["token"] for t in client.admin_get("/api/admin/accesstokens")], [token["token"]]
        )
        self.assertEqual(client.admin_get("/api/admin/webhooks"), [hook])
        self.assertEqual([m["body"] for m in client.get("/api/chat")[1]], ["<p>kept</p>"])
        code, _, _ = client.get(
            "/api/integrations/chat", headers={"Authorization": ["Bearer " + token["token"]]}
        )
        self.assertEqual(code, 200)


class WebhookIdTests(unittest.TestCase):
    def test_non_ascii_digits_are_not_ids(self):
        ctx = make_context(Path(self.mktemp()))
        client = Client(ctx)
        _, hook = client.admin_post(
            "/api/admin/webhooks/create", {"url": "https://e.example/h", "events": ["CHAT"]}
        )
        for value in ("²", "١"):
            code, body = client.admin_post("/api/admin/webhooks/delete", {"id": value})
            self.assertEqual((code, body["success"]), (400, False), value)
        self.assertEqual(len(client.admin_get("/api/admin/webhooks")), 1)

    def test_wrong_method_names_the_allowed_ones(self):
        client = Client(make_context(Path(self.mktemp())))
        code, _, response = client.request("DELETE", "/api/admin/webhooks/create", auth=ADMIN)
        self.assertEqual(code, 405)
        self.assertIn("POST", response.headers.getRawHeaders("allow")[0])


class ThrottleCountsGuessesOnlyTests(unittest.TestCase):
    def test_requests_without_credentials_are_not_failures(self):
        ctx = make_context(Path(self.mktemp()))
        client = Client(ctx)
        for _ in range(10):
            self.assertEqual(client.get("/api/admin/status")[0], 401)
        self.assertEqual(client.get("/api/admin/status", auth=ADMIN)[0], 200)


class BracketedHostTests(unittest.TestCase):
    """URLs with an IPv6 host: every RFC 3986 spelling is taken (the IPv4-tailed ones
    too), and whatever the pattern takes is an address ``urlsplit`` will parse."""

    def test_every_spelling_of_random_addresses_is_taken(self) -> None:
        rng = random.Random(7)
        for _ in range(2000):
            # Zero runs are common in real addresses: make them likely.
            groups = [rng.choice((0, 0, rng.randrange(0x10000))) for _ in range(8)]
            address = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))
            tail = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            head = [f"{g:x}" for g in groups[:6]]
            spellings = [address.compressed, address.exploded, f"{':'.join(head)}:{tail}"]
            runs = [(j - i, i) for i in range(6) for j in range(i + 2, 7) if not any(groups[i:j])]
            if runs:  # the longest run of zero groups (two or more) written as "::"
                length, at = max(runs)
                left, right = ":".join(head[:at]), ":".join(head[at + length :])
                spellings.append(f"{left}::{right}{':' if right else ''}{tail}")
            for spelling in spellings:
                self.assertEqual(ipaddress.IPv6Address(spelling), address, spelling)
                url = f"http://[{spelling}]:8080/"
                self.assertEqual(http_url(url, "url"), url)

    def test_what_the_pattern_takes_parses(self) -> None:
        rng = random.Random(11)
        taken = 0
        for _ in range(20000):
            host = "".join(rng.choice("0f:.1") for _ in range(rng.randrange(2, 24)))
            if HTTP_URL.fullmatch(f"http://[{host}]/"):
                taken += 1
                ipaddress.IPv6Address(host)  # raises if the pattern was too loose
                self.assertEqual(urlsplit(f"http://[{host}]/").hostname, host.lower())
        self.assertGreater(taken, 0)

    def test_not_addresses_are_refused(self) -> None:
        for host in ("1:2:3:4:5:6:7:1.2.3.4", "::ffff:256.1.1.1", "::ffff:1.2.3", "::01.2.3.4"):
            with self.assertRaises(ValidationError, msg=host):
                http_url(f"http://[{host}]/", "url")
