"""The integrations API in memory: bearer tokens, scopes per endpoint, both path spellings."""

from __future__ import annotations

from pathlib import Path

from twisted.trial import unittest

from owncast.core.throttle import AuthThrottle
from owncast.core.tokens import TOUCH_INTERVAL
from tests.helpers import Client, make_context, result_of

ALL_SCOPES = ["CAN_SEND_MESSAGES", "CAN_SEND_SYSTEM_MESSAGES", "HAS_ADMIN_ACCESS"]

#: (method, path, body, scope it needs)
ENDPOINTS = [
    ("POST", "/api/integrations/streamtitle", {"value": "t"}, "HAS_ADMIN_ACCESS"),
    ("POST", "/api/integrations/chat/user", {"user": "bot", "body": "hi"}, "CAN_SEND_MESSAGES"),
    ("POST", "/api/integrations/chat/send", {"user": "bot", "body": "hi"}, "CAN_SEND_MESSAGES"),
    ("POST", "/api/integrations/chat/system", {"body": "hi"}, "CAN_SEND_SYSTEM_MESSAGES"),
    ("POST", "/api/integrations/chat/action", {"body": "waves"}, "CAN_SEND_SYSTEM_MESSAGES"),
    ("GET", "/api/integrations/clients", None, "HAS_ADMIN_ACCESS"),
    ("GET", "/api/integrations/chat", None, "HAS_ADMIN_ACCESS"),
    (
        "POST",
        "/api/integrations/chat/updatemessagevisibility",
        {"visible": False, "idArray": ["x"]},
        "HAS_ADMIN_ACCESS",
    ),
    (
        "POST",
        "/api/integrations/chat/messagevisibility",
        {"visible": False, "idArray": ["x"]},
        "HAS_ADMIN_ACCESS",
    ),
]


class IntegrationsTests(unittest.TestCase):
    def setUp(self):
        self.ctx = make_context(Path(self.mktemp()))
        self.client = Client(self.ctx)

    def token(self, *scopes):
        _, body = self.client.admin_post(
            "/api/admin/accesstokens/create", {"name": "bot", "scopes": list(scopes)}
        )
        return body["token"]

    def call(self, method, path, body=None, token=None, scheme="Bearer"):
        headers = {"Authorization": [f"{scheme} {token}"]} if token else {}
        return self.client.request(method, path, body=body, headers=headers)

    def test_missing_or_unknown_token_is_401(self):
        self.ctx.throttle = AuthThrottle(self.ctx.now, free=1_000_000)  # 9 guesses here
        for method, path, body, _ in ENDPOINTS:
            for token in (None, "not-a-token"):
                code, reply, response = self.call(method, path, body, token)
                self.assertEqual(code, 401, (path, token))
                self.assertEqual(reply["success"], False)
                self.assertIn("Bearer", response.headers.getRawHeaders("www-authenticate")[0])

    def test_token_without_scope_is_403_and_with_scope_is_200(self):
        for method, path, body, scope in ENDPOINTS:
            others = [s for s in ALL_SCOPES if s != scope]
            code, reply, _ = self.call(method, path, body, self.token(*others))
            self.assertEqual(
                (code, reply["success"] if isinstance(reply, dict) else None), (403, False), path
            )
            code, reply, _ = self.call(method, path, body, self.token(scope))
            self.assertEqual(code, 200, (path, reply))

    def test_bearer_scheme_is_case_insensitive(self):
        token = self.token("HAS_ADMIN_ACCESS")
        for scheme in ("bearer", "BEARER", "Bearer"):
            code, _, _ = self.call("GET", "/api/integrations/chat", token=token, scheme=scheme)
            self.assertEqual(code, 200, scheme)
        code, _, _ = self.call("GET", "/api/integrations/chat", token=token, scheme="Basic")
        self.assertEqual(code, 401)

    def test_deleted_token_stops_working(self):
        token = self.token("HAS_ADMIN_ACCESS")
        self.client.admin_post("/api/admin/accesstokens/delete", {"token": token})
        code, _, _ = self.call("GET", "/api/integrations/chat", token=token)
        self.assertEqual(code, 401)

    def test_last_used_is_recorded(self):
        token = self.token("HAS_ADMIN_ACCESS")
        self.call("GET", "/api/integrations/chat", token=token)
        listed = self.client.admin_get("/api/admin/accesstokens")
        self.assertIsNotNone(listed[0]["lastUsed"])
        stored = result_of(self.ctx.store.list_tokens())
        self.assertEqual(stored[0]["lastUsed"], self.ctx.now())
        self.ctx.reactor.advance(TOUCH_INTERVAL + 1)
        self.call("GET", "/api/integrations/chat", token=token)
        self.assertEqual(result_of(self.ctx.store.list_tokens())[0]["lastUsed"], self.ctx.now())

    def test_messages_reach_history_as_the_seed_example_shows(self):
        system = self.token("CAN_SEND_SYSTEM_MESSAGES")
        user = self.token("CAN_SEND_MESSAGES")
        code, reply, _ = self.call(
            "POST", "/api/integrations/chat/system", {"body": "I am a system message!"}, system
        )
        self.assertEqual((code, reply), (200, {"success": True, "message": "sent"}))
        self.call("POST", "/api/integrations/chat/user", {"user": "bot", "body": "*hi*"}, user)
        # Owncast 0.0.7 read the sender from ``author``.
        self.call("POST", "/api/integrations/chat/send", {"author": "old", "body": "yo"}, user)
        self.call(
            "POST",
            "/api/integrations/chat/action",
            {"body": "rolled a 15", "author": "JohnSmith"},
            system,
        )
        history = self.client.get("/api/chat")[1]
        self.assertEqual(
            [(m["type"], m["author"], m["body"]) for m in history],
            [
                ("SYSTEM", "Owncast", "<p>I am a system message!</p>"),
                ("CHAT", "bot", "<p><em>hi</em></p>"),
                ("CHAT", "old", "<p>yo</p>"),
                # 0.0.7 wrote the author in front of an action.
                ("CHAT_ACTION", "JohnSmith", "<p>JohnSmith rolled a 15</p>"),
            ],
        )

    def test_system_and_action_bodies_are_sanitized(self):
        system = self.token("CAN_SEND_SYSTEM_MESSAGES")
        for path in ("/api/integrations/chat/system", "/api/integrations/chat/action"):
            self.call(
                "POST", path, {"body": '<script>alert(1)</script><b onclick="x()">b</b>'}, system
            )
        for message in self.client.get("/api/chat")[1]:
            self.assertNotIn("<script", message["body"])
            self.assertNotRegex(message["body"], "<[^>]*onclick")
            self.assertNotIn("alert(1)", message["body"])
            self.assertRegex(message["body"], "(^|>)b(<|$)")

    def test_bad_bodies_are_400(self):
        token = self.token(*ALL_SCOPES)
        cases = [
            ("/api/integrations/chat/user", {"body": "no user"}),
            ("/api/integrations/chat/user", {"user": "x"}),
            ("/api/integrations/chat/user", {"user": "x", "body": ""}),
            ("/api/integrations/chat/user", {"user": "x", "body": "x" * 3000}),
            ("/api/integrations/chat/system", {}),
            ("/api/integrations/chat/system", {"body": 5}),
            ("/api/integrations/chat/action", {"author": "x"}),
            ("/api/integrations/streamtitle", {"value": 5}),
            ("/api/integrations/streamtitle", {}),
            ("/api/integrations/chat/updatemessagevisibility", {"visible": 1, "idArray": []}),
        ]
        for path, body in cases:
            code, reply, _ = self.call("POST", path, body, token)
            self.assertEqual((code, reply["success"]), (400, False), (path, body))
        self.assertEqual(self.client.get("/api/chat")[1], [])

    def test_stream_title(self):
        token = self.token("HAS_ADMIN_ACCESS")
        seen = []
        self.ctx.events.subscribe(lambda kind, data: seen.append(kind))
        code, _, _ = self.call(
            "POST", "/api/integrations/streamtitle", {"value": "Desert Bus"}, token
        )
        self.assertEqual(code, 200)
        self.assertEqual(self.client.get("/api/config")[1]["streamTitle"], "Desert Bus")
        self.assertEqual(seen, ["STREAM_TITLE_UPDATED"])

    def test_integration_chat_backlog_is_the_public_history(self):
        """0.0.7 served /api/chat's history here: hidden messages are not in it."""
        token = self.token(*ALL_SCOPES)
        self.call("POST", "/api/integrations/chat/send", {"user": "a", "body": "one"}, token)
        message_id = self.client.get("/api/chat")[1][0]["id"]
        code, _, _ = self.call(
            "POST",
            "/api/integrations/chat/messagevisibility",
            {"visible": False, "idArray": [message_id]},
            token,
        )
        self.assertEqual(code, 200)
        self.assertEqual(self.client.get("/api/chat")[1], [])
        backlog = self.call("GET", "/api/integrations/chat", token=token)[1]
        self.assertEqual(backlog, [])

    def test_token_created_by_another_node_works_at_once(self):
        record = {
            "token": "made-elsewhere-0123456789",
            "name": "other node",
            "scopes": ["HAS_ADMIN_ACCESS"],
            "timestamp": self.ctx.now(),
            "lastUsed": None,
        }
        result_of(self.ctx.store.add_token(record))
        code, _, _ = self.call("GET", "/api/integrations/chat", token=record["token"])
        self.assertEqual(code, 200)
        # Unknown tokens reload the list at most once per interval.
        result_of(self.ctx.store.add_token(dict(record, token="second-0123456789abc")))
        code, _, _ = self.call("GET", "/api/integrations/chat", token="second-0123456789abc")
        self.assertEqual(code, 401)
        self.ctx.reactor.advance(3)
        code, _, _ = self.call("GET", "/api/integrations/chat", token="second-0123456789abc")
        self.assertEqual(code, 200)
