"""End to end: the real ``twistd owncast`` daemon as a child process, over real HTTP.

Every test starts its own daemon(s) on free loopback ports and a fresh data dir (see
``tests.daemon``); cleanups stop them with SIGTERM, then SIGKILL, whatever the outcome.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.error import ConnectError
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests.daemon import Daemon, DaemonExitedError, free_port, http, start_daemon

CAN_SEND_MESSAGES = "CAN_SEND_MESSAGES"
CAN_SEND_SYSTEM_MESSAGES = "CAN_SEND_SYSTEM_MESSAGES"
HAS_ADMIN_ACCESS = "HAS_ADMIN_ACCESS"

#: What scenario 2 sets through the admin API: setter path -> value.
SETTINGS: dict[str, Any] = {
    "name": "End-to-end Owncast",
    "serversummary": "A server that survives kill -9.",
    "streamtitle": "Persistence, live",
    "tags": ["e2e", "twisted", "persistence"],
    "pagecontent": "# About this stream\n\nIt is **very** durable. See [docs](https://owncast.online).",
    "socialhandles": [
        {"platform": "github", "url": "https://github.com/owncast/owncast"},
        {"platform": "mastodon", "url": "https://social.example.org/@owncast"},
    ],
    "nsfw": True,
    "customstyles": "body { background: #123456; }\n.title { font-weight: 700; }",
    "video/streamlatencylevel": 4,
    "video/streamoutputvariants": [
        {
            "videoPassthrough": False,
            "audioPassthrough": True,
            "videoBitrate": 2500,
            "audioBitrate": 160,
            "scaledWidth": 1280,
            "scaledHeight": 720,
            "framerate": 30,
            "cpuUsageLevel": 3,
        },
        {
            "videoPassthrough": False,
            "audioPassthrough": False,
            "videoBitrate": 600,
            "audioBitrate": 96,
            "scaledWidth": 640,
            "scaledHeight": 360,
            "framerate": 24,
            "cpuUsageLevel": 1,
        },
    ],
    "s3": {
        "enabled": True,
        "endpoint": "https://s3.example.com",
        "servingEndpoint": "https://cdn.example.com",
        "accessKey": "AKIAE2ETEST",
        "secret": "s3-secret-value",
        "bucket": "owncast-e2e",
        "region": "eu-central-1",
        "acl": "public-read",
    },
    "serverurl": "https://live.example.com",
    "directoryenabled": True,
}


def tmpdir(testcase: unittest.TestCase) -> Path:
    """A fresh absolute path (the daemon runs from the repository root, not _trial_temp)."""
    return Path(testcase.mktemp()).resolve()


async def get_json(daemon: Daemon, path: str, **kwargs: Any) -> Any:
    response = await daemon.get(path, **kwargs)
    assert response.code == 200, (path, response)
    return response.json


class _E2E(unittest.TestCase):
    timeout = 120

    async def start_fresh(self, **kwargs: Any) -> tuple[Daemon, tuple[str, str]]:
        """A daemon on a new data dir, and its admin credentials (the generated key)."""
        daemon = await start_daemon(self, tmpdir(self), **kwargs)
        keys = daemon.generated_keys()
        self.assertEqual(len(keys), 1, daemon.output)
        return daemon, ("admin", keys[0])

    def assertBasicError(self, response: Any, code: int) -> None:
        self.assertEqual(response.code, code, response)
        self.assertTrue(response.header("content-type").startswith("application/json"))
        body = response.json
        self.assertIs(body["success"], False, body)
        self.assertIsInstance(body["message"], str)
        self.assertTrue(body["message"], body)

    def assertOk(self, response: Any) -> None:
        self.assertEqual(response.code, 200, response)
        self.assertIs(response.json["success"], True, response)

    async def assertAdmin(self, daemon: Daemon, password: str, code: int) -> None:
        response = await daemon.get("/api/admin/status", auth=("admin", password))
        self.assertEqual(response.code, code, response)
        if code == 401:
            self.assertTrue(response.header("www-authenticate").startswith("Basic realm="))


# -- 1 -----------------------------------------------------------------------------------
class GeneratedStreamKeyTests(_E2E):
    async def test_first_start_generates_logs_once_and_keeps_the_key(self):
        datadir = tmpdir(self)
        daemon = await start_daemon(self, datadir)
        other = await start_daemon(self, tmpdir(self))

        keys = daemon.generated_keys()
        self.assertEqual(len(keys), 1, daemon.output)
        key = keys[0]
        # Strong: long, url-safe, not a default; and random (another data dir, another key).
        self.assertRegex(key, r"^[A-Za-z0-9_-]{22,}$")
        self.assertGreaterEqual(len(set(key)), 10)
        self.assertEqual(daemon.output.count(key), 1, "the key must be logged exactly once")
        self.assertEqual(len(other.generated_keys()), 1, other.output)
        self.assertNotEqual(other.generated_keys()[0], key)
        await other.stop()

        status = await get_json(daemon, "/api/admin/status", auth=("admin", key))
        self.assertIn("online", status)
        self.assertIs(status["online"], False)
        await self.assertAdmin(daemon, key + "x", 401)
        no_auth = await daemon.get("/api/admin/status")
        self.assertEqual(no_auth.code, 401)
        self.assertTrue(no_auth.header("www-authenticate").startswith("Basic realm="))
        wrong_user = await daemon.get("/api/admin/status", auth=("root", key))
        self.assertEqual(wrong_user.code, 401)
        await self.assertAdmin(daemon, key, 200)

        await daemon.stop()
        self.assertFalse(daemon.running)
        await daemon.start()
        self.assertEqual(daemon.generated_keys(), [], daemon.output)
        self.assertNotIn(key, daemon.output)
        self.assertNotIn("Generated a stream key", daemon.output)
        await self.assertAdmin(daemon, key, 200)
        config = await get_json(daemon, "/api/admin/serverconfig", auth=("admin", key))
        self.assertEqual(config["streamKey"], key)


# -- 2 -----------------------------------------------------------------------------------
class PersistenceTests(_E2E):
    async def test_everything_survives_kill_9_and_a_clean_restart(self):
        daemon, auth = await self.start_fresh()

        for name, value in SETTINGS.items():
            response = await daemon.post(f"/api/admin/config/{name}", {"value": value}, auth=auth)
            self.assertOk(response)

        # The stream key is the admin password: the change takes effect at once.
        old_key, new_key = auth[1], "e2e-new-stream-key-4f9c2a71d0"
        self.assertOk(await daemon.post("/api/admin/config/key", {"value": new_key}, auth=auth))
        await self.assertAdmin(daemon, old_key, 401)
        await self.assertAdmin(daemon, new_key, 200)
        auth = ("admin", new_key)

        system_token = await self.create_token(daemon, auth, "e2e bot", [CAN_SEND_SYSTEM_MESSAGES])
        admin_token = await self.create_token(
            daemon, auth, "e2e admin", [HAS_ADMIN_ACCESS, CAN_SEND_MESSAGES]
        )
        hooks = []
        for url, names in (
            ("https://hooks.example.com/stream", ["STREAM_STARTED", "STREAM_STOPPED"]),
            ("http://127.0.0.1:9/joined", ["USER_JOINED", "NAME_CHANGE"]),
        ):
            response = await daemon.post(
                "/api/admin/webhooks/create", {"url": url, "events": names}, auth=auth
            )
            self.assertEqual(response.code, 200, response)
            hook = response.json
            self.assertEqual((hook["url"], hook["events"]), (url, names))
            self.assertTrue(hook["id"])
            hooks.append(hook)

        response = await daemon.post(
            "/api/integrations/chat/system",
            {"body": "Hello from **the** integrations API"},
            bearer=system_token["token"],
        )
        self.assertOk(response)
        chat = await get_json(daemon, "/api/chat")
        # The title change above told connected clients only (0.0.7: ephemeral).
        self.assertEqual([m["type"] for m in chat], ["SYSTEM"], chat)
        message = chat[-1]
        self.assertIn("<strong>the</strong>", message["body"])
        self.assertEqual(message["author"], SETTINGS["name"])
        self.assertIs(message["visible"], True)

        tokens = [system_token, admin_token]
        await self.check_state(daemon, auth, old_key, tokens, hooks, message)

        # kill -9: no clean shutdown, then the same data dir again.
        await daemon.kill()
        self.assertFalse(daemon.running)
        self.assertEqual(daemon.exit_signal, signal.SIGKILL)
        self.assertNotIn("Server Shut Down", daemon.outputs[-1])
        await daemon.start()
        self.assertEqual(daemon.generated_keys(), [], daemon.output)
        await self.check_state(daemon, auth, old_key, tokens, hooks, message)

        # A clean SIGTERM restart.
        await daemon.stop()
        self.assertIn("Server Shut Down", daemon.outputs[-1])
        await daemon.start()
        await self.check_state(daemon, auth, old_key, tokens, hooks, message)

    async def create_token(self, daemon, auth, name, scopes) -> dict:
        response = await daemon.post(
            "/api/admin/accesstokens/create", {"name": name, "scopes": scopes}, auth=auth
        )
        self.assertEqual(response.code, 200, response)
        token = response.json
        self.assertEqual((token["name"], token["scopes"]), (name, scopes))
        self.assertGreaterEqual(len(token["token"]), 32)
        return token

    async def check_state(self, daemon, auth, old_key, tokens, hooks, message) -> None:
        await self.assertAdmin(daemon, old_key, 401)
        await self.assertAdmin(daemon, auth[1], 200)

        server = await get_json(daemon, "/api/admin/serverconfig", auth=auth)
        details = server["instanceDetails"]
        self.assertEqual(details["name"], SETTINGS["name"])
        self.assertEqual(details["summary"], SETTINGS["serversummary"])
        self.assertEqual(details["tags"], SETTINGS["tags"])
        self.assertEqual(details["socialHandles"], SETTINGS["socialhandles"])
        self.assertEqual(details["extraPageContent"], SETTINGS["pagecontent"])
        self.assertEqual(details["streamTitle"], SETTINGS["streamtitle"])
        self.assertIs(details["nsfw"], True)
        self.assertEqual(details["customStyles"], SETTINGS["customstyles"])
        self.assertEqual(server["streamKey"], auth[1])
        self.assertEqual(server["s3"], {k: v for k, v in SETTINGS["s3"].items() if v != ""})
        video = server["videoSettings"]
        self.assertEqual(video["latencyLevel"], SETTINGS["video/streamlatencylevel"])
        self.assertEqual(
            [{k: v for k, v in q.items() if k != "name"} for q in video["videoQualityVariants"]],
            SETTINGS["video/streamoutputvariants"],
        )
        self.assertEqual(server["yp"], {"enabled": True, "instanceUrl": SETTINGS["serverurl"]})
        self.assertEqual(server["webServerPort"], daemon.web_port)
        self.assertEqual(server["rtmpServerPort"], daemon.rtmp_port)

        public = await get_json(daemon, "/api/config")
        self.assertEqual(public["name"], SETTINGS["name"])
        self.assertEqual(public["summary"], SETTINGS["serversummary"])
        self.assertEqual(public["tags"], SETTINGS["tags"])
        self.assertEqual(
            [{"platform": h["platform"], "url": h["url"]} for h in public["socialHandles"]],
            SETTINGS["socialhandles"],
        )
        page = public["extraPageContent"]
        self.assertIn("<h1>About this stream</h1>", page)
        self.assertIn("<strong>very</strong>", page)
        self.assertIn('href="https://owncast.online"', page)
        self.assertNotIn("**", page)
        yp = await get_json(daemon, "/api/yp")
        self.assertIs(yp["nsfw"], True)
        self.assertEqual(yp["description"], SETTINGS["serversummary"])
        status = await get_json(daemon, "/api/status")
        self.assertEqual(status["streamTitle"], SETTINGS["streamtitle"])
        css = await daemon.get("/customstyles.css")
        self.assertEqual(css.code, 200)
        self.assertEqual(css.content.decode("utf-8"), SETTINGS["customstyles"])

        listed = await get_json(daemon, "/api/admin/accesstokens", auth=auth)
        self.assertEqual(
            sorted((t["token"], t["name"], t["scopes"], t["timestamp"]) for t in listed),
            sorted((t["token"], t["name"], t["scopes"], t["timestamp"]) for t in tokens),
        )
        system_token, admin_token = tokens
        # The tokens still authorize what their scopes allow, and only that.
        backlog = await get_json(daemon, "/api/integrations/chat", bearer=admin_token["token"])
        self.assertIn(message["id"], [m["id"] for m in backlog])
        refused = await daemon.get("/api/integrations/chat", bearer=system_token["token"])
        self.assertEqual(refused.code, 403, refused)
        self.assertOk(
            await daemon.post(
                "/api/integrations/chat/action",
                {"body": "checks in after a restart"},
                bearer=system_token["token"],
            )
        )

        listed_hooks = await get_json(daemon, "/api/admin/webhooks", auth=auth)
        self.assertEqual(listed_hooks, hooks)

        chat = await get_json(daemon, "/api/chat")
        kept = [m for m in chat if m["id"] == message["id"]]
        self.assertEqual(kept, [message])
        # Moderators see users' CHAT messages (0.0.7), not the server's own.
        everything = await get_json(daemon, "/api/admin/chat/messages", auth=auth)
        self.assertNotIn(message["id"], [m["id"] for m in everything])


# -- 3 -----------------------------------------------------------------------------------
class CommandLineAndConfigFileTests(_E2E):
    async def test_streamkey_option_wins_for_one_run(self):
        datadir = tmpdir(self)
        daemon = await start_daemon(self, datadir)
        stored = daemon.generated_keys()[0]
        await daemon.stop()

        override = "cli-stream-key-8e1d55"
        daemon.args = ["--streamkey", override]
        await daemon.start()
        self.assertEqual(daemon.generated_keys(), [])
        await self.assertAdmin(daemon, stored, 401)
        await self.assertAdmin(daemon, override, 200)
        await daemon.stop()

        # Without the option the stored key is back: the override was for that run only.
        daemon.args = []
        await daemon.start()
        self.assertEqual(daemon.generated_keys(), [])
        await self.assertAdmin(daemon, override, 401)
        await self.assertAdmin(daemon, stored, 200)

    async def test_config_file_is_read_and_the_command_line_beats_it(self):
        datadir = tmpdir(self)
        file_port, file_key = free_port(), "file-stream-key-2b7c90"
        ini = datadir.parent / "owncast-e2e.ini"
        ini.parent.mkdir(parents=True, exist_ok=True)
        ini.write_text(
            f"[owncast]\nwebserverport = {file_port}\nstreamkey = {file_key}\n",
            encoding="utf-8",
        )

        # The file's port and key, with no --webserverport / --streamkey given.
        daemon = await start_daemon(
            self, datadir, web_port=0, http_port=file_port, args=["--config", str(ini)]
        )
        self.assertEqual(daemon.generated_keys(), [], "the file's key is used, none generated")
        await self.assertAdmin(daemon, file_key, 200)
        server = await get_json(daemon, "/api/admin/serverconfig", auth=("admin", file_key))
        self.assertEqual(server["webServerPort"], file_port)
        self.assertEqual(server["rtmpServerPort"], daemon.rtmp_port)
        await daemon.stop()

        # The command line wins over the file, option by option.
        cli_port, cli_key = free_port(), "cli-stream-key-77aa01"
        daemon = await start_daemon(
            self,
            datadir,
            web_port=cli_port,
            args=["--config", str(ini), "--streamkey", cli_key],
        )
        await self.assertAdmin(daemon, cli_key, 200)
        await self.assertAdmin(daemon, file_key, 401)
        server = await get_json(daemon, "/api/admin/serverconfig", auth=("admin", cli_key))
        self.assertEqual(server["webServerPort"], cli_port)
        with self.assertRaises(ConnectError):
            await http("GET", f"http://127.0.0.1:{file_port}/api/status", timeout=5)

    async def test_listen_endpoints(self):
        """--listen and --rtmplisten take endpoint descriptions and win over the ports."""
        web, rtmp = free_port(), free_port()
        daemon = await start_daemon(
            self,
            tmpdir(self),
            web_port=0,
            rtmp_port=0,
            http_port=web,
            args=["--listen", f"tcp:{web}:interface=127.0.0.1", "--rtmplisten", f"tcp:{rtmp}"],
        )
        status = await get_json(daemon, "/api/status")
        self.assertIn("online", status)
        self.assertIn(f"(port {rtmp})", daemon.output)
        await daemon.stop()

    async def test_systemd_socket_activation(self):
        """--listen systemd:domain=INET:index=0 serves on a socket the daemon was handed,
        as systemd hands it (fd 3, LISTEN_FDS, LISTEN_PID), not one it opened."""
        port = free_port()
        daemon = SocketActivatedDaemon(
            tmpdir(self), port, web_port=0, args=["--listen", "systemd:domain=INET:index=0"]
        )
        self.addCleanup(daemon.stop)
        await daemon.start()
        self.assertEqual(daemon.http_port, port)
        status = await get_json(daemon, "/api/status")
        self.assertIn("online", status)
        self.assertIn("systemd:domain=INET:index=0", daemon.output)

    async def test_a_port_in_use_stops_the_daemon_with_a_message(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        daemon = Daemon(tmpdir(self), args=["--listen", f"tcp:{port}:interface=127.0.0.1"])
        self.addCleanup(daemon.stop)
        with self.assertRaises(DaemonExitedError):
            await daemon.start()
        self.assertIn("owncast could not start", daemon.output)
        self.assertIn("Address already in use", daemon.output)

    async def test_bad_config_file_stops_the_daemon_with_a_message(self):
        ini = tmpdir(self)
        ini.parent.mkdir(parents=True, exist_ok=True)
        ini.write_text("[owncast]\nwebserverport = 70000\n", encoding="utf-8")
        daemon = Daemon(tmpdir(self), web_port=0, args=["--config", str(ini)])
        self.addCleanup(daemon.stop)
        with self.assertRaises(DaemonExitedError):
            await daemon.start()
        self.assertNotEqual(daemon.exit_code, 0)
        self.assertIn("port out of range", daemon.output)


# -- 4 -----------------------------------------------------------------------------------
class BadInputTests(_E2E):
    async def test_bad_values_are_400_and_change_nothing(self):
        daemon, auth = await self.start_fresh()
        before = await get_json(daemon, "/api/admin/serverconfig", auth=auth)

        for raw in (b'{"value": ', b"not json at all", b"\xff\xfe\x00", b""):
            response = await daemon.post("/api/admin/config/name", raw=raw, auth=auth)
            self.assertBasicError(response, 400)
        for path, body in (
            ("name", {"value": 42}),
            ("name", {"nothing": "here"}),
            ("name", ["value", "x"]),
            ("webserverport", {"value": 70000}),
            ("rtmpserverport", {"value": 70000}),
            ("webserverport", {"value": -1}),
            ("webserverport", {"value": "8080"}),
            ("video/streamlatencylevel", {"value": -1}),
            ("tags", {"value": "not-a-list"}),
            ("key", {"value": ""}),
            ("serverurl", {"value": "javascript:alert(1)"}),
            ("s3", {"value": {"enabled": True}}),
        ):
            response = await daemon.post(f"/api/admin/config/{path}", body, auth=auth)
            self.assertBasicError(response, 400)

        after = await get_json(daemon, "/api/admin/serverconfig", auth=auth)
        self.assertEqual(after, before)
        self.assertEqual(after["webServerPort"], daemon.web_port)
        self.assertEqual(after["rtmpServerPort"], daemon.rtmp_port)
        await self.assertAdmin(daemon, auth[1], 200)
        # The server still listens where it did, and answers.
        self.assertEqual((await daemon.get("/api/status")).code, 200)

    async def test_deeply_nested_json_is_a_client_error(self):
        # Valid JSON syntax, but nested deeper than any parser should follow: a 400
        # like other unusable bodies, not a 500 with a traceback in the error log.
        daemon, auth = await self.start_fresh()
        response = await daemon.post("/api/admin/config/name", raw=b"[" * 100_000, auth=auth)
        self.assertBasicError(response, 400)


# -- 5 -----------------------------------------------------------------------------------
class AuthThrottleTests(_E2E):
    async def test_repeated_wrong_passwords_get_429_even_with_the_right_one(self):
        daemon, auth = await self.start_fresh()
        await self.assertAdmin(daemon, auth[1], 200)

        codes = []
        for attempt in range(20):
            response = await daemon.get("/api/admin/status", auth=("admin", f"guess-{attempt}"))
            codes.append(response.code)
            if response.code == 429:
                break
        self.assertEqual(codes[-1], 429, codes)
        self.assertTrue(set(codes[:-1]) <= {401}, codes)
        self.assertGreaterEqual(len(codes), 3, "a few mistakes must be allowed")

        right = await daemon.get("/api/admin/status", auth=auth)
        self.assertBasicError(right, 429)
        retry_after = right.header("retry-after")
        self.assertIsNotNone(retry_after, right.headers)
        self.assertGreaterEqual(int(retry_after), 1)


# -- 6 -----------------------------------------------------------------------------------
class FfmpegSetterTests(_E2E):
    async def test_ffmpeg_path_and_codec_against_the_real_binary(self):
        import imageio_ffmpeg

        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        out, _err, code = await getProcessOutputAndValue(
            ffmpeg, ["-hide_banner", "-encoders"], env=dict(os.environ), reactor=reactor
        )
        self.assertEqual(code, 0)
        encoders = {
            fields[1]
            for fields in (line.split() for line in out.decode("utf-8", "replace").splitlines())
            if len(fields) >= 2 and re.fullmatch(r"[VAS][.A-Z]{5}", fields[0])
        }
        self.assertIn("libx264", encoders)

        daemon, auth = await self.start_fresh()

        async def set_value(path: str, value: Any) -> Any:
            return await daemon.post(f"/api/admin/config/{path}", {"value": value}, auth=auth)

        self.assertOk(await set_value("ffmpegpath", ffmpeg))
        missing = str(tmpdir(self) / "no-such-ffmpeg")
        not_executable = tmpdir(self)
        not_executable.parent.mkdir(parents=True, exist_ok=True)
        not_executable.write_text("#!/bin/sh\necho ffmpeg version 9\n", encoding="utf-8")
        for bad in ("/bin/true", missing, str(not_executable), "ffmpeg", ""):
            self.assertBasicError(await set_value("ffmpegpath", bad), 400)
        server = await get_json(daemon, "/api/admin/serverconfig", auth=auth)
        self.assertEqual(server["ffmpegPath"], ffmpeg)

        self.assertOk(await set_value("video/codec", "libx264"))
        nvenc = await set_value("video/codec", "h264_nvenc")
        if "h264_nvenc" in encoders:
            self.assertOk(nvenc)
        else:
            self.assertBasicError(nvenc, 400)
        # Hardware codecs this binary does not list are refused.
        for absent in ("h264_videotoolbox", "h264_omx"):
            if absent not in encoders:
                self.assertBasicError(await set_value("video/codec", absent), 400)
        for nonsense in ("nonsense", "", 264, None):
            self.assertBasicError(await set_value("video/codec", nonsense), 400)

        self.assertOk(await set_value("video/codec", "libx264"))
        server = await get_json(daemon, "/api/admin/serverconfig", auth=auth)
        self.assertEqual(server["videoCodec"], "libx264")
        self.assertIn("libx264", server["supportedCodecs"])


# -- 7 -----------------------------------------------------------------------------------
class LogTests(_E2E):
    async def test_logs_and_warnings(self):
        daemon, auth = await self.start_fresh()

        # Make one request fail inside the server: the logo folder became a plain file.
        logo_dir = daemon.datadir / "logo"
        logo_dir.rmdir()
        logo_dir.write_bytes(b"not a folder")
        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
        upload = "data:image/png;base64," + base64.b64encode(png).decode()
        response = await daemon.post("/api/admin/config/logo", {"value": upload}, auth=auth)
        self.assertBasicError(response, 500)
        self.assertEqual(response.json["message"], "internal server error")

        logs = await get_json(daemon, "/api/admin/logs", auth=auth)
        self.assertIsInstance(logs, list)
        self.assertTrue(logs)
        for entry in logs:
            self.assertEqual(set(entry), {"time", "level", "message"}, entry)
            self.assertRegex(entry["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
            self.assertIn(entry["level"], {"info", "warning", "error"}, entry)
            self.assertIsInstance(entry["message"], str)
        self.assertIn("info", {e["level"] for e in logs})
        self.assertTrue(any("ready" in e["message"] for e in logs), logs)

        warnings = await get_json(daemon, "/api/admin/logs/warnings", auth=auth)
        self.assertTrue(warnings, "the failed upload must be logged as an error")
        for entry in warnings:
            self.assertEqual(set(entry), {"time", "level", "message"}, entry)
            self.assertIn(entry["level"], {"warning", "error"}, entry)
        failed = [e for e in warnings if "/api/admin/config/logo" in e["message"]]
        self.assertTrue(failed, warnings)
        self.assertIn(failed[0], logs)
        self.assertEqual([e for e in logs if e["level"] in ("warning", "error")], warnings)

        self.assertEqual((await daemon.get("/api/admin/logs")).code, 401)
        self.assertEqual((await daemon.get("/api/admin/logs/warnings")).code, 401)


#: Binds the port given, puts the socket at fd 3 and sets systemd's variables, then
#: becomes the daemon (exec keeps the pid, which LISTEN_PID must name).
_SOCKET_ACTIVATE = """
import os, socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen(64)
if sock.fileno() != 3:
    os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="web")
os.execv(sys.argv[2], sys.argv[2:])
"""


class SocketActivatedDaemon(Daemon):
    """The daemon started the way systemd starts a socket-activated service."""

    def __init__(self, datadir: Path, port: int, **kwargs: Any):
        super().__init__(datadir, http_port=port, **kwargs)
        self.activated_port = port

    def argv(self) -> list[str]:
        return [sys.executable, "-c", _SOCKET_ACTIVATE, str(self.activated_port), *super().argv()]
