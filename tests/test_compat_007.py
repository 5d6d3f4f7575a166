"""Contract tests: the real daemon answers as Owncast 0.0.7 did, field for field.

Every expected shape (``tests/shapes007.py``) is written from Owncast's source at tag
v0.0.7 (commit 3810ce4f), the Go file it comes from named beside it: which fields are
there, which are left out (Go's ``omitempty``), their JSON types; the tests add 0.0.7's
defaults on a fresh data dir. Each test starts the real ``twistd owncast`` on a fresh
data dir, calls every public, admin and integrations endpoint and listens on real chat
websockets, and checks each real answer against its shape; ``test_while_publishing``
does so while a real ffmpeg publishes a 320x180, 24 fps H.264/AAC file over RTMP. Where
we differ from 0.0.7 on purpose, the shape says ours and ``docs/compatibility.md`` why.

A test collects every mismatch before failing, so one run lists them all.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial import unittest

from tests.daemon import Daemon, start_daemon, wait_until
from tests.shapes007 import (
    ADMIN_STATUS,
    CHAT,
    CLIENT,
    CONFIG,
    EMOJI,
    HARDWARE,
    LOG,
    NAME_CHANGE,
    NOTICE,
    PING,
    PLATFORM,
    SAMPLE,
    SERVER_CONFIG,
    STATUS,
    TIME,
    TOKEN,
    USER_JOINED,
    VARIANT_CHOICE,
    WEBHOOK,
    YP,
    Eq,
    ListOf,
    MapOf,
    failed,
    problems,
    said,
)
from tests.test_chat_e2e import PlainSocket, connected
from tests.test_live_e2e import FFMPEG, run, spawn, tmpdir

WAIT = 15.0


#: What 0.0.7 answered each setting with (controllers/admin/config.go), and a value to set.
SETTERS: dict[str, tuple[Any, str]] = {
    "pagecontent": ("<p>random</p>\n\n# Title\n\n<script>x()</script>", "changed"),
    "name": ("Compat server", "changed"),
    "serversummary": ("A summary", "changed"),
    "welcomemessage": ("  Welcome, *everyone*  ", "changed"),
    "chat/disable": (False, "chat disabled status updated"),
    "tags": (["games", "music"], "changed"),
    "nsfw": (True, "changed"),
    "directoryenabled": (True, "directory state changed"),
    "serverurl": ("https://live.example.com", "server url set"),
    "webserverport": (0, "http port set"),
    "rtmpserverport": (1935, "rtmp port set"),
    "video/streamlatencylevel": (7, "set stream latency"),
    "video/codec": ("libx264", "video codec updated"),
    "socialhandles": (
        [
            {"platform": "mastodon", "url": "https://social.example/@me"},
            {"platform": "my-blog", "url": "https://blog.example"},
        ],
        "social handles updated",
    ),
    "customstyles": ("body { color: orange; }", "custom styles updated"),
    "externalactions": (
        [{"url": "https://shop.example", "title": "Merch", "openExternally": True}],
        "external actions update",
    ),
    "s3": (
        {"enabled": False, "endpoint": "https://s3.example.com"},
        "storage configuration changed",
    ),
    "logo": ("/img/logo.svg", "changed"),
    "ffmpegpath": (FFMPEG, "changed"),
}


class Contract:
    """Calls a daemon and records, per endpoint, how its answers differ from 0.0.7's."""

    def __init__(self, daemon: Daemon, key: str):
        self.daemon = daemon
        self.auth = ("admin", key)
        self.found: list[str] = []

    def check(self, what: str, value: Any, spec: Any) -> Any:
        self.found += [f"{what}: {p}" for p in problems(value, spec)]
        return value

    async def call(
        self,
        method: str,
        path: str,
        spec: Any,
        body: Any = None,
        code: int = 200,
        kind: str = "public",
        bearer: str | None = None,
    ) -> Any:
        auth = self.auth if kind == "admin" else None
        response = await self.daemon.request(method, path, body=body, auth=auth, bearer=bearer)
        what = f"{method} {path}"
        if response.code != code:
            self.found.append(f"{what}: status {response.code}, not {code}: {response!r}")
        content_type = response.header("content-type") or ""
        if not content_type.startswith("application/json"):
            self.found.append(f"{what}: content type {content_type!r}")
            return None
        return self.check(what, response.json, spec)


async def new_daemon(testcase: unittest.TestCase) -> tuple[Daemon, Contract]:
    """A daemon on a fresh data dir; its directory pings (the tests list it) go to a
    closed loopback port, never to the real directory."""
    daemon = await start_daemon(
        testcase, tmpdir(testcase), args=["--directoryurl", "http://127.0.0.1:9/"]
    )
    [key] = daemon.generated_keys()
    return daemon, Contract(daemon, key)


class FreshDataDirTests(unittest.TestCase):
    timeout = 120

    async def test_every_endpoint_on_a_fresh_data_dir(self) -> None:
        """Offline, on a fresh data dir: every endpoint's answer has 0.0.7's shape and
        0.0.7's defaults; setters answer with 0.0.7's messages; chat messages sent through
        the integrations API reach a websocket in 0.0.7's shapes."""
        daemon, c = await new_daemon(self)

        # -- public, fresh defaults (core/data/defaults.go, config/defaults.go)
        config = await c.call("GET", "/api/config", CONFIG)
        c.check(
            "fresh /api/config",
            config,
            {
                **CONFIG,
                "name": Eq("Owncast"),
                "summary": Eq(
                    "Welcome to your new Owncast server!  This description can be changed in"
                    " the admin"
                ),
                "tags": Eq(["owncast", "streaming"]),
                "nsfw": Eq(False),
                "extraPageContent": Eq(
                    "<p>This is your page's content that can be edited in the admin.</p>"
                ),
                "socialHandles": Eq(
                    [
                        {
                            "platform": "github",
                            "url": "https://github.com/owncast/owncast",
                            "icon": "/img/platformlogos/github.svg",
                        }
                    ]
                ),
                "chatDisabled": Eq(False),
                "externalActions": Eq([]),
                "customStyles": Eq(""),
            },
        )
        status = await c.call("GET", "/api/status", STATUS)
        c.check(
            "fresh /api/status",
            status,
            {
                **STATUS,
                "online": Eq(False),
                "viewerCount": Eq(0),
                "lastConnectTime": Eq(None),
                "lastDisconnectTime": Eq(None),
                "streamTitle": Eq(""),
            },
        )
        await c.call("GET", "/api/chat", Eq([]))
        await c.call("GET", "/api/yp", failed(), code=404)
        await c.call("GET", "/api/emoji", ListOf(EMOJI))
        platforms = await c.call("GET", "/api/socialplatforms", MapOf(PLATFORM))
        self.assertEqual(len(platforms or {}), 24)
        await c.call("GET", "/api/video/variants", Eq([{"name": "1.2Mbps@24fps", "index": 0}]))
        logo = await daemon.get("/logo")
        self.assertEqual((logo.code, logo.header("content-type")), (200, "image/svg+xml"))

        # -- admin, fresh
        c.check(
            "fresh /api/admin/status",
            await c.call("GET", "/api/admin/status", ADMIN_STATUS, kind="admin"),
            {**ADMIN_STATUS, "broadcaster": Eq(None), "currentBroadcast": Eq(None)},
        )
        server = await c.call("GET", "/api/admin/serverconfig", SERVER_CONFIG, kind="admin")
        c.check(
            "fresh /api/admin/serverconfig",
            server,
            {
                **SERVER_CONFIG,
                "webServerPort": Eq(daemon.web_port),
                "rtmpServerPort": Eq(daemon.rtmp_port),
                "s3": Eq({"enabled": False}),
                "videoSettings": Eq(
                    {
                        "videoQualityVariants": [
                            {
                                "name": "1.2Mbps@24fps",
                                "videoPassthrough": False,
                                "audioPassthrough": True,
                                "videoBitrate": 1200,
                                "audioBitrate": 0,
                                "framerate": 24,
                                "cpuUsageLevel": 2,
                            }
                        ],
                        "latencyLevel": 2,
                    }
                ),
                "yp": Eq({"enabled": False, "instanceUrl": ""}),
                "chatDisabled": Eq(False),
                "externalActions": Eq([]),
                "videoCodec": Eq("libx264"),
            },
        )
        self.assertIn("libx264", (server or {}).get("supportedCodecs", []))
        await c.call("POST", "/api/admin/disconnect", failed(), code=400, kind="admin")
        await c.call("POST", "/api/admin/yp/reset", said("reset"), kind="admin")
        await c.call("GET", "/api/admin/clients", Eq([]), kind="admin")
        await c.call("GET", "/api/admin/logs", ListOf(LOG), kind="admin")
        await c.call("GET", "/api/admin/logs/warnings", ListOf(LOG), kind="admin")
        await c.call("GET", "/api/admin/chat/messages", Eq([]), kind="admin")
        await c.call("GET", "/api/admin/viewersOverTime", ListOf(SAMPLE), kind="admin")
        await c.call("GET", "/api/admin/hardwarestats", HARDWARE, kind="admin")
        await c.call("GET", "/api/admin/accesstokens", Eq([]), kind="admin")
        await c.call("GET", "/api/admin/webhooks", Eq([]), kind="admin")

        # -- every setter answers as 0.0.7 did, and the config reads back in its shape
        for name, (value, message) in SETTERS.items():
            await c.call(
                "POST", f"/api/admin/config/{name}", said(message), {"value": value}, kind="admin"
            )
        await c.call(
            "POST",
            "/api/admin/config/video/streamoutputvariants",
            said("stream output variants updated"),
            {"value": [{"videoBitrate": 800, "scaledHeight": 180, "framerate": 0}]},
            kind="admin",
        )
        await c.call(
            "POST",
            "/api/admin/config/streamtitle",
            said("changed"),
            {"value": "Tonight"},
            kind="admin",
        )
        config = await c.call("GET", "/api/config", CONFIG)
        c.check(
            "/api/config after setting",
            config,
            {
                **CONFIG,
                "streamTitle": Eq("Tonight"),
                "socialHandles": Eq(
                    [
                        {
                            "platform": "mastodon",
                            "url": "https://social.example/@me",
                            "icon": "/img/platformlogos/mastodon.svg",
                        },
                        {"platform": "my-blog", "url": "https://blog.example"},
                    ]
                ),
                "externalActions": Eq(
                    [
                        {
                            "url": "https://shop.example",
                            "title": "Merch",
                            "description": "",
                            "icon": "",
                            "color": "",
                            "openExternally": True,
                        }
                    ]
                ),
            },
        )
        page = (config or {}).get("extraPageContent", "")
        self.assertIn("<p>random</p>", page)
        self.assertIn("<h1>Title</h1>", page)
        self.assertNotIn("script", page)
        server = await c.call("GET", "/api/admin/serverconfig", SERVER_CONFIG, kind="admin")
        c.check(
            "/api/admin/serverconfig after setting",
            server,
            {
                **SERVER_CONFIG,
                "instanceDetails": {
                    **SERVER_CONFIG["instanceDetails"],
                    "welcomeMessage": Eq("Welcome, *everyone*"),
                    "extraPageContent": Eq(SETTERS["pagecontent"][0]),
                    "streamTitle": Eq("Tonight"),
                },
                "webServerPort": Eq(8080),  # 0 meant "the default" to 0.0.7
                "latencyLevel": Eq(4),  # 0.0.7 read a level above 4 as 4
                "videoSettings": Eq(
                    {
                        "videoQualityVariants": [
                            {
                                "name": "180h",
                                "videoPassthrough": False,
                                "audioPassthrough": True,
                                "videoBitrate": 800,
                                "audioBitrate": 0,
                                "scaledHeight": 180,
                                "framerate": 24,
                                "cpuUsageLevel": 0,
                            }
                        ],
                        "latencyLevel": 4,
                    }
                ),
                "s3": Eq({"enabled": False, "endpoint": "https://s3.example.com"}),
                "yp": Eq({"enabled": True, "instanceUrl": "https://live.example.com"}),
                "ffmpegPath": Eq(FFMPEG),
            },
        )
        await c.call(
            "POST",
            "/api/admin/config/welcomemessage",
            said("changed"),
            {"value": ""},
            kind="admin",
        )
        c.check(
            "/api/yp once listed",
            await c.call("GET", "/api/yp", YP),
            {**YP, "streamTitle": Eq("Tonight"), "nsfw": Eq(True)},
        )

        # -- tokens and webhooks
        made = await c.call(
            "POST",
            "/api/admin/accesstokens/create",
            TOKEN,
            {
                "name": "bot",
                "scopes": ["CAN_SEND_MESSAGES", "CAN_SEND_SYSTEM_MESSAGES", "HAS_ADMIN_ACCESS"],
            },
            kind="admin",
        )
        token = made["token"]
        await c.call("GET", "/api/admin/accesstokens", ListOf(TOKEN), kind="admin")
        hook = await c.call(
            "POST",
            "/api/admin/webhooks/create",
            WEBHOOK,
            {"url": "https://hooks.example/owncast", "events": ["CHAT", "USER_JOINED"]},
            kind="admin",
        )
        await c.call("GET", "/api/admin/webhooks", ListOf(WEBHOOK), kind="admin")
        await c.call(
            "POST",
            "/api/admin/webhooks/delete",
            said("deleted webhook"),
            {"id": hook["id"]},
            kind="admin",
        )

        # -- chat through the integrations API, heard on a plain websocket
        listener = await PlainSocket.open(self, daemon.web_port, origin="https://elsewhere.example")
        viewer = await connected(self, daemon.web_port, useragent="compat-viewer/1.0")
        viewer.send_json({"type": "USER_JOINED", "username": "viewer"})
        sends = (
            ("/api/integrations/chat/user", {"user": "quizbot", "body": "Question *one*"}),
            ("/api/integrations/chat/send", {"author": "oldbot", "body": "still here"}),
            ("/api/integrations/chat/system", {"body": "## Rules\n\nbe kind"}),
            ("/api/integrations/chat/action", {"body": "rolled a 6", "author": "dicebot"}),
            ("/api/integrations/chat/action", {"body": "The show starts soon"}),
        )
        for path, body in sends:
            await c.call("POST", path, said("sent"), body, bearer=token)
        await wait_until(lambda: len(viewer.frames) >= 5, WAIT, "the five messages")
        kinds = [m["type"] for m in map(json.loads, viewer.frames)]
        self.assertEqual(
            kinds[:5],
            ["CHAT", "CHAT", "SYSTEM", "CHAT_ACTION", "CHAT_ACTION"],
            "no USER_JOINED while offline (0.0.7 told clients of joins only while live)",
        )
        messages = [json.loads(f) for f in viewer.frames[:5]]
        for message in messages:
            c.check(f"websocket {message['type']}", message, CHAT)
        self.assertEqual(
            [(m.get("author"), m["body"]) for m in messages],
            [
                ("quizbot", "<p>Question <em>one</em></p>"),
                ("oldbot", "<p>still here</p>"),
                ("Compat server", "<h2>Rules</h2>\n<p>be kind</p>"),
                ("dicebot", "<p>dicebot rolled a 6</p>"),
                (None, "<p>The show starts soon</p>"),
            ],
        )
        await wait_until(lambda: len(listener.payloads) >= 5, WAIT, "the plain socket's copy")

        history = await c.call("GET", "/api/chat", ListOf(CHAT))
        backlog = await c.call("GET", "/api/integrations/chat", ListOf(CHAT), bearer=token)
        self.assertEqual(history, backlog, "0.0.7 served the public history to integrations")
        await c.call("GET", "/api/integrations/clients", ListOf(CLIENT), bearer=token)
        await c.call("GET", "/api/admin/clients", ListOf(CLIENT), kind="admin")
        moderation = await c.call("GET", "/api/admin/chat/messages", ListOf(CHAT), kind="admin")
        self.assertEqual({m["type"] for m in moderation}, {"CHAT"}, "moderation: users' chat")
        first = messages[0]["id"]
        for path, kind, bearer in (
            ("/api/admin/chat/updatemessagevisibility", "admin", None),
            ("/api/integrations/chat/messagevisibility", "public", token),
            ("/api/integrations/chat/updatemessagevisibility", "public", token),
        ):
            await c.call(
                "POST",
                path,
                said("changed"),
                {"idArray": [first], "visible": path.endswith("/messagevisibility")},
                kind=kind,
                bearer=bearer,
            )
        await wait_until(lambda: len(viewer.of_type("VISIBILITY-UPDATE")) >= 3, WAIT, "the updates")
        for update in viewer.of_type("VISIBILITY-UPDATE"):
            c.check(
                "websocket VISIBILITY-UPDATE", update, {**CHAT, "type": Eq("VISIBILITY-UPDATE")}
            )

        await c.call(
            "POST",
            "/api/integrations/streamtitle",
            said("changed"),
            {"value": "Later"},
            bearer=token,
        )
        await wait_until(lambda: viewer.of_type("CHAT_ACTION")[2:], WAIT, "the title notice")
        c.check("websocket title notice", viewer.of_type("CHAT_ACTION")[2], NOTICE)
        self.assertEqual(
            [m["id"] for m in (await daemon.get("/api/chat")).json],
            [m["id"] for m in history if m["id"] != first],
            "the first message is hidden, and the notice is not stored",
        )
        viewer.send_json({"type": "NAME_CHANGE", "oldName": "viewer", "newName": "watcher"})
        await wait_until(lambda: viewer.of_type("NAME_CHANGE"), WAIT, "the rename")
        c.check("websocket NAME_CHANGE", viewer.of_type("NAME_CHANGE")[0], NAME_CHANGE)
        await c.call(
            "POST",
            "/api/admin/accesstokens/delete",
            said("deleted token"),
            {"token": token},
            kind="admin",
        )
        await c.call(
            "POST", "/api/admin/config/key", said("changed"), {"value": "k-7"}, kind="admin"
        )
        self.assertEqual(c.found, [], "\n".join(c.found))


class PublishingTests(unittest.TestCase):
    timeout = 180

    async def test_while_publishing(self) -> None:
        """While a real ffmpeg publishes a 320x180, 24 fps H.264/AAC file: the status
        endpoints, the broadcaster's details and the live-only chat messages (USER_JOINED,
        PING) have 0.0.7's shapes."""
        daemon, c = await new_daemon(self)
        await c.call(
            "POST",
            "/api/admin/config/video/streamlatencylevel",
            said("set stream latency"),
            {"value": 0},
            kind="admin",
        )
        media = tmpdir(self).with_suffix(".mp4")
        media.parent.mkdir(parents=True, exist_ok=True)
        await run(
            self,
            "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=320x180:rate=24",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", "90", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "24", "-c:a", "aac", "-b:a", "96k", str(media),
            timeout=60,
        )  # fmt: skip
        viewer = await connected(self, daemon.web_port, useragent="compat-live/1.0")
        key = c.auth[1]
        publisher = spawn(
            self,
            "-hide_banner", "-loglevel", "error", "-re", "-i", str(media),
            "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{daemon.rtmp_port}/live/{key}",
        )  # fmt: skip

        async def live() -> bool:
            status = (await daemon.get("/api/status")).json
            return status["online"] and status

        status = await wait_until(live, 20, "the broadcast to go live")
        c.check("live /api/status", status, {**STATUS, "lastDisconnectTime": Eq(None)})

        async def described() -> Any:
            admin = (await daemon.get("/api/admin/status", auth=c.auth)).json
            broadcaster = admin["broadcaster"]
            return broadcaster and broadcaster["streamDetails"]["width"] and admin

        admin = await wait_until(described, 20, "the broadcaster's details")
        c.check("live /api/admin/status", admin, ADMIN_STATUS)
        details = admin["broadcaster"]["streamDetails"]
        self.assertEqual(
            (details["width"], details["height"], details["framerate"]), (320, 180, 24)
        )
        self.assertEqual((details["videoCodec"], details["audioCodec"]), ("H.264", "AAC"))
        self.assertIsNotNone(admin["currentBroadcast"])
        self.assertEqual(admin["currentBroadcast"]["latencyLevel"], {"level": 0})

        viewer.send_json({"type": "USER_JOINED", "username": "live-viewer"})
        await wait_until(lambda: viewer.of_type("USER_JOINED"), WAIT, "USER_JOINED while live")
        c.check("websocket USER_JOINED", viewer.of_type("USER_JOINED")[0], USER_JOINED)
        viewer.send_json({"type": "CHAT", "author": "live-viewer", "body": "it plays"})
        await wait_until(lambda: viewer.of_type("CHAT"), WAIT, "the chat message")
        c.check("websocket CHAT", viewer.of_type("CHAT")[0], {**CHAT, "author": str})
        clients = await c.call("GET", "/api/admin/clients", ListOf(CLIENT), kind="admin")
        self.assertEqual([x["username"] for x in clients], ["live-viewer"])
        await c.call("GET", "/api/yp", failed(), code=404)
        await c.call("GET", "/api/video/variants", ListOf(VARIANT_CHOICE))
        await wait_until(lambda: viewer.of_type("PING"), 45, "a PING (every 30 s)")
        c.check("websocket PING", viewer.of_type("PING")[0], PING)
        self.assertTrue(publisher.running, publisher.stderr[-2000:])

        await c.call(
            "POST", "/api/admin/disconnect", said("inbound stream disconnected"), kind="admin"
        )

        async def offline() -> Any:
            status = (await daemon.get("/api/status")).json
            return not status["online"] and status

        status = await wait_until(offline, 20, "the broadcast to end")
        c.check(
            "/api/status after the broadcast",
            status,
            {**STATUS, "lastConnectTime": TIME, "lastDisconnectTime": TIME},
        )
        self.assertEqual(c.found, [], "\n".join(c.found))


class OwnerChatSettingsTests(unittest.TestCase):
    timeout = 60

    async def test_welcome_message_and_disabled_chat_in_the_daemon(self) -> None:
        """The welcome message (0.0.7: a SYSTEM message with id ``initial-message-1``,
        7 s after joining, to the joiner only) and disabled chat, in the real daemon."""
        daemon, c = await new_daemon(self)
        await c.call(
            "POST",
            "/api/admin/config/welcomemessage",
            said("changed"),
            {"value": "Hello **there**"},
            kind="admin",
        )
        viewer = await connected(self, daemon.web_port)
        await wait_until(lambda: viewer.of_type("SYSTEM"), WAIT, "the welcome message")
        [welcome] = viewer.of_type("SYSTEM")
        c.check(
            "websocket welcome",
            welcome,
            {**CHAT, "author": Eq("Owncast"), "id": Eq("initial-message-1"), "type": Eq("SYSTEM")},
        )
        self.assertEqual((await daemon.get("/api/chat")).json, [], "welcomes are not stored")
        await c.call(
            "POST",
            "/api/admin/config/chat/disable",
            said("chat disabled status updated"),
            {"value": True},
            kind="admin",
        )
        viewer.send_json({"type": "CHAT", "author": "v", "body": "dropped"})
        viewer.send_json({"type": "NAME_CHANGE", "oldName": "v", "newName": "w"})
        await wait_until(lambda: viewer.of_type("NAME_CHANGE"), WAIT, "the rename after it")
        self.assertEqual(viewer.of_type("CHAT"), [], "disabled chat drops messages")
        self.assertEqual((await daemon.get("/api/chat")).json, [])
        self.assertEqual(c.found, [], "\n".join(c.found))
