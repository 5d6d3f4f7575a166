"""owncast/openapi.yaml against the server: every route documented, every answer as documented.

The document is read once. Its schemas are OpenAPI 3.0 schemas, which differ a little from
JSON Schema, so ``to_json_schema`` resolves ``$ref`` and turns ``nullable`` into a type union
before ``jsonschema`` checks real response bodies. Response bodies are checked strictly: an
object schema with ``properties`` gets ``additionalProperties: false`` (and ``allOf`` parts
are merged first), so a field the server returns but the document does not name fails.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from treq.testing import StubTreq
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial import unittest

from owncast.api.admin import AdminApi
from owncast.api.integrations import IntegrationsApi
from owncast.api.public import PublicApi
from owncast.api.recordings import RecordingsAdminApi, RecordingsApi, RecordingsIntegrationsApi
from owncast.core.events import WEBHOOK_EVENTS
from owncast.core.settings import SETTERS
from owncast.core.throttle import AuthThrottle
from owncast.core.tokens import SCOPES
from owncast.http.site import WEB_ROOT, build_root
from owncast.recordings import files
from owncast.recordings.library import Library
from owncast.recordings.vod import Entry, Meta
from owncast.rtmp.details import details_from_metadata, empty_details
from owncast.transcode.probe import FfmpegProbe
from tests.fakes import inline
from tests.helpers import ADMIN, STREAM_KEY, Client, make_context, result_of, run

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "owncast" / "api" / "openapi.yaml"
DOC: dict = yaml.safe_load(DOCUMENT_PATH.read_text("utf-8"))

#: Where each Klein app is mounted.
MOUNTS = (
    (PublicApi, "/api"),
    (AdminApi, "/api/admin"),
    (IntegrationsApi, "/api/integrations"),
    (RecordingsApi, "/api/recordings"),
    (RecordingsAdminApi, "/api/admin/recordings"),
    (RecordingsIntegrationsApi, "/api/integrations/recordings"),
)
#: ``/api/admin/config/<path:name>`` serves these names; the rest are a 404.
CONFIG_NAMES = sorted(SETTERS) + ["video/codec", "ffmpegpath", "logo"]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_BODY = 4 * 1024 * 1024

_OPENAPI_ONLY = {
    "nullable",
    "example",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "xml",
    "externalDocs",
    "discriminator",
}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


# -- the OpenAPI document as JSON Schema ---------------------------------------------------
def resolve(ref: str, doc: dict = DOC) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def deref(node: Any, doc: dict = DOC) -> Any:
    """Follow ``$ref`` until a node is not a reference."""
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(node["$ref"], doc)
    return node


def _types(schema: dict) -> set:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind}


def _merge_all_of(parts: list) -> dict | None:
    """One object schema from ``allOf`` parts that are all plain object schemas, else None."""
    if not all(isinstance(p, dict) and p.get("type") == "object" for p in parts):
        return None
    allowed = {"type", "properties", "required", "description", "additionalProperties"}
    if any(set(p) - allowed for p in parts):
        return None
    merged: dict = {"type": "object", "properties": {}, "required": []}
    for part in parts:
        for name, sub in part.get("properties", {}).items():
            old = merged["properties"].get(name)
            merged["properties"][name] = sub if old is None else {"allOf": [old, sub]}
        merged["required"] += [r for r in part.get("required", []) if r not in merged["required"]]
    return merged


def to_json_schema(node: Any, strict: bool = False, doc: dict = DOC) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: ``$ref`` inlined, ``nullable`` as a union.

    ``strict`` also forbids properties an object schema does not name.
    """
    if isinstance(node, list):
        return [to_json_schema(n, strict, doc) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return to_json_schema(resolve(node["$ref"], doc), strict, doc)
    out: dict = {}
    for key, value in node.items():
        if key in _OPENAPI_ONLY or key.startswith("x-"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub, strict, doc) for name, sub in value.items()}
        elif key in ("anyOf", "oneOf") and "properties" in node:
            # conditions on an object's own properties: those say what it may hold
            out[key] = to_json_schema(value, False, doc)
        else:
            out[key] = to_json_schema(value, strict, doc)
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = sorted(_types(out) | {"null"})
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    if strict and "allOf" in out:
        merged = _merge_all_of(out["allOf"])
        if merged is not None:
            rest = {k: v for k, v in out.items() if k != "allOf"}
            out = {**merged, **{k: v for k, v in rest.items() if k not in merged}}
    if strict and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def validator(schema: Any, strict: bool) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(to_json_schema(schema, strict), format_checker=FORMATS)


def operations(doc: dict = DOC) -> list[tuple[str, str, dict]]:
    """Every (method, path, operation) the document describes."""
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def operation(method: str, path: str) -> dict:
    return DOC["paths"][path][method]


def json_body_schema(spec: dict) -> Any:
    """The schema of a request body or response spec's JSON content, or None."""
    content = deref(spec).get("content", {})
    media = content.get("application/json")
    return None if media is None else media.get("schema")


def request_schema(method: str, path: str) -> Any:
    body = operation(method, path).get("requestBody")
    return None if body is None else json_body_schema(body)


def served_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the Klein apps serve, config names expanded."""
    routes = set()
    for api, prefix in MOUNTS:
        for rule in api.app.url_map.iter_rules():
            methods = {m.lower() for m in rule.methods} - {"head", "options"}
            if (api, rule.rule) == (AdminApi, "/config/<path:name>"):
                paths = [f"/config/{name}" for name in CONFIG_NAMES]
            else:
                # a recording's or clip's id in the path is the document's {id}
                assert "<" not in rule.rule or api is RecordingsApi, rule.rule
                paths = [re.sub(r"<[^>]*>", "{id}", rule.rule)]
            # an app's root rule is its bare prefix
            routes |= {(m, prefix + p.rstrip("/")) for m in methods for p in paths}
    return routes


def kind_of(path: str) -> str:
    if path.startswith("/api/admin/"):
        return "admin"
    if path.startswith("/api/integrations/"):
        return "integrations"
    return "public"


# -- the document on its own -----------------------------------------------------------------
class DocumentTests(unittest.TestCase):
    def test_is_an_openapi_3_document(self):
        self.assertRegex(str(DOC["openapi"]), r"^3\.0\.\d+$")
        self.assertTrue(DOC["info"]["title"])
        self.assertTrue(DOC["info"]["version"])
        schemes = DOC["components"]["securitySchemes"]
        self.assertEqual(
            schemes["AdminBasicAuth"],
            {**schemes["AdminBasicAuth"], "type": "http", "scheme": "basic"},
        )
        self.assertEqual(
            schemes["AccessToken"], {**schemes["AccessToken"], "type": "http", "scheme": "bearer"}
        )
        for schema in DOC["components"]["schemas"].values():
            jsonschema.Draft7Validator.check_schema(to_json_schema(schema))

    def test_documents_exactly_the_served_routes(self):
        documented = {(method, path) for method, path, _ in operations()}
        served = served_routes()
        self.assertEqual(sorted(served - documented), [], "served but not documented")
        self.assertEqual(sorted(documented - served), [], "documented but not served")
        self.assertGreaterEqual(len(served), 53)

    def test_every_reference_resolves(self):
        refs: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if "$ref" in node:
                    refs.append(node["$ref"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(DOC)
        self.assertGreater(len(refs), 100)
        for ref in refs:
            self.assertIsNotNone(resolve(ref), ref)

    def test_operations_declare_security_and_errors(self):
        scopes = DOC["components"]["schemas"]["AccessScope"]["enum"]
        self.assertEqual(sorted(scopes), sorted(SCOPES))
        error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
        ids = set()
        for method, path, op in operations():
            where = f"{method} {path}"
            ids.add(op["operationId"])
            codes = set(op["responses"])
            self.assertIn("200", codes, where)
            kind = kind_of(path)
            if kind == "admin":
                self.assertEqual(op.get("security"), [{"AdminBasicAuth": []}], where)
                self.assertLessEqual({"401", "429"}, codes, where)
                self.assertNotIn("403", codes, where)
            elif kind == "integrations":
                self.assertEqual(op.get("security"), [{"AccessToken": []}], where)
                self.assertLessEqual({"401", "403", "429"}, codes, where)
                self.assertIn(op["x-required-scope"], scopes, where)
                self.assertIn(op["x-required-scope"], op["description"], where)
            else:
                self.assertNotIn("security", op, where)
            if "requestBody" in op:
                self.assertLessEqual({"400", "413"}, codes, where)
                self.assertIsNotNone(request_schema(method, path), where)
            if path.startswith("/api/admin/config/") or path.endswith("/delete"):
                self.assertIn("404", codes, where)
            if path != "/api/openapi.yaml":
                self.assertIn("default", codes, where)
            challenge = {"admin": "Basic", "integrations": "Bearer"}.get(kind)
            if challenge:
                unauthorized = deref(op["responses"]["401"])
                self.assertIn(
                    challenge,
                    deref(unauthorized["headers"]["WWW-Authenticate"])["description"],
                    where,
                )
                self.assertIn("Retry-After", deref(op["responses"]["429"])["headers"], where)
            for code, spec in op["responses"].items():
                if code[0] in "45" or code == "default":
                    self.assertEqual(json_body_schema(spec), error_schema, (where, code))
        self.assertEqual(len(ids), len(operations()), "operationIds must be unique")
        webhook_events = DOC["components"]["schemas"]["WebhookEvent"]["enum"]
        self.assertEqual(webhook_events, list(WEBHOOK_EVENTS))

    def test_converter_handles_nullable_refs_and_strictness(self):
        status = DOC["components"]["schemas"]["Status"]
        good = {
            "online": False,
            "viewerCount": 0,
            "lastConnectTime": None,
            "lastDisconnectTime": "2023-11-14T22:13:20+00:00",
            "versionNumber": "v",
            "streamTitle": "",
        }
        self.assertEqual(list(validator(status, True).iter_errors(good)), [])
        for bad in (
            {**good, "extra": 1},
            {**good, "lastConnectTime": "yesterday"},
            {**good, "online": None},
            {k: v for k, v in good.items() if k != "online"},
        ):
            self.assertTrue(list(validator(status, True).iter_errors(bad)), bad)
        self.assertEqual(list(validator(status, False).iter_errors({**good, "extra": 1})), [])
        # allOf parts are merged before strictness, so each part's fields are allowed.
        setter = request_schema("post", "/api/admin/config/nsfw")
        merged = to_json_schema(setter, strict=True)
        self.assertEqual(list(merged["properties"]), ["value"])
        self.assertIs(merged["additionalProperties"], False)


# -- real requests ---------------------------------------------------------------------------
class _Base(unittest.TestCase):
    def setUp(self):
        self.datadir = Path(self.mktemp())
        self.clock = Clock()
        self.ctx = make_context(self.datadir, clock=self.clock)
        self.client = Client(self.ctx)
        # Tests below fail authentication on purpose many times; only the throttle
        # test keeps the server's real limit.
        self.ctx.throttle = AuthThrottle(self.clock.seconds, free=1_000_000)
        self.checked: list[tuple[str, str, int]] = []
        self.tokens = {
            scope: self.call(
                "post",
                "/api/admin/accesstokens/create",
                body={"name": f"only {scope}", "scopes": [scope]},
            )[1]["token"]
            for scope in SCOPES
        }

    # -- requests, checked against the document
    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        auth: Any = "auto",
        bearer: str | None = None,
        expect: int | None = 200,
        spec: dict | None = None,
        headers: dict | None = None,
    ) -> tuple[int, Any, Any]:
        """Send a request; check its answer against the document; return (code, body, resp).

        ``auth="auto"`` sends what the endpoint needs (admin basic auth or a token with the
        documented scope); ``spec`` is the response spec to check against when the
        request is not one the document describes (unknown setting, wrong method).
        """
        headers = dict(headers or {})
        if auth == "auto":
            auth = None
            kind = kind_of(path)
            if kind == "admin":
                auth = ADMIN
            elif kind == "integrations" and bearer is None:
                bearer = self.tokens[operation(method, path)["x-required-scope"]]
        if bearer is not None:
            headers["Authorization"] = [f"Bearer {bearer}"]
        code, parsed, response = self.client.request(
            method.upper(), self.fill(path), body=body, raw=raw, auth=auth, headers=headers
        )
        if expect is not None:
            self.assertEqual(code, expect, (method, path, parsed))
        if spec is None:
            responses = operation(method, path)["responses"]
            key = str(code) if str(code) in responses or code < 500 else "default"
            self.assertIn(key, responses, f"{method} {path} answered {code}, not documented")
            spec = responses[key]
        self.check_response(spec, code, parsed, response, f"{method} {path} -> {code}")
        self.checked.append((method, path, code))
        return code, parsed, response

    def check_response(self, spec: dict, code: int, parsed: Any, response: Any, where: str) -> None:
        spec = deref(spec)
        content_type = response.headers.getRawHeaders("content-type", [""])[0]
        ((media, media_spec),) = spec["content"].items()
        self.assertTrue(content_type.startswith(media), (where, content_type))
        for name in spec.get("headers", {}):
            self.assertTrue(response.headers.getRawHeaders(name), (where, f"no {name} header"))
        if media != "application/json":
            return
        self.assertFalse(isinstance(parsed, bytes), (where, "body is not JSON"))
        errors = sorted(
            validator(media_spec["schema"], strict=True).iter_errors(parsed),
            key=lambda e: str(list(e.absolute_path)),
        )
        self.assertEqual(
            [f"{list(e.absolute_path)}: {e.message}" for e in errors], [], (where, parsed)
        )
        if code >= 400:
            self.assertIs(parsed["success"], False, where)

    def assert_request_documented(self, method: str, path: str, body: Any) -> None:
        """A body the server accepts must also satisfy the documented request schema."""
        schema = request_schema(method, path)
        self.assertIsNotNone(schema, f"{method} {path} has no documented body")
        errors = [e.message for e in validator(schema, strict=False).iter_errors(body)]
        self.assertEqual(errors, [], (method, path, body))

    def document_rejects(self, method: str, path: str, body: Any) -> bool:
        schema = request_schema(method, path)
        return not validator(schema, strict=False).is_valid(body)

    def fill(self, path: str) -> str:
        """A documented path with its ``{id}`` filled: the clip's or the recording's, once
        ``populate`` made them (before, the template itself is requested)."""
        if "{id}" not in path or not hasattr(self, "recording"):
            return path
        return path.replace("{id}", CLIP_ID if "/clips/" in path else RECORDING_ID)

    # -- state
    def chat(self, kind: str, *args: Any) -> dict:
        return run(getattr(self.ctx.chat, f"send_{kind}")(*args))

    def populate(self) -> None:
        """Something in every list: messages of each type, logs, samples, a client."""
        self.messages = [
            self.chat("user", "alice", "hello **there**"),
            self.chat("system", "welcome, everyone"),
            self.chat("action", "waves", None),
            self.chat("action", "rolled a 6", "dicebot"),
        ]
        hidden = self.chat("user", "troll", "spam")
        run(self.ctx.chat.set_visibility([hidden["id"]], False))
        now = self.clock.seconds()
        for level, text in (
            (LogLevel.info, "server up"),
            (LogLevel.warn, "disk filling"),
            (LogLevel.error, "encoder crashed"),
        ):
            self.ctx.logs({"log_level": level, "log_format": text, "log_time": now})
        for kind, value in (("viewers", 3), ("cpu", 12.4), ("memory", 40.6), ("disk", 71)):
            result_of(self.ctx.store.add_sample(kind, now - 120, value))
            result_of(self.ctx.store.add_sample(kind, now - 60, value + 1))
        # Two chat clients as the websocket registers them: one has chatted, one has not.
        self.ctx.chat.connect("client-1", "192.0.2.7", "Mozilla/5.0 (X11; Linux x86_64)")
        self.ctx.chat.connect("client-2", "2001:db8::1", "curl/8.5.0")
        run(self.ctx.chat.receive_chat("client-1", "carol", "hi all"))
        self.webhook = self.call(
            "post",
            "/api/admin/webhooks/create",
            body={"url": "https://bot.example.com/hook", "events": ["CHAT", "STREAM_STARTED"]},
        )[1]
        # Live and listed in the directory, so that every operation can succeed
        # (disconnect needs a broadcaster, /api/yp a listing).
        run(self.ctx.save({"directoryEnabled": True}))
        self.ctx.stream.start("192.0.2.10", empty_details(), lambda: None)
        self.recording = self.make_recording()

    def make_recording(self) -> Meta:
        """A finished recording (one kept segment) with one clip, as the recorder and
        ``Library.make_clip`` leave them on disk; the chat above falls in its span."""
        root = self.datadir / "recordings"
        meta = Meta(RECORDING_ID, "Friday stream", float(RECORDING_ID), variants=["0"])
        session = files.open_session(str(root), meta)
        segment = f"stream-{RECORDING_ID}.ts"
        (root / RECORDING_ID / "0" / segment).write_bytes(b"\x47" * 188)
        session.tracks["0"].entries.append(Entry(segment, 4.0))
        meta = files.close_session(None, session, self.clock.seconds())
        clips = root / RECORDING_ID / "clips"
        clips.mkdir()
        (clips / "1.mp4").write_bytes(b"\0" * 64)
        clip = {
            "id": CLIP_ID,
            "recordingId": RECORDING_ID,
            "title": "Best bit",
            "start": 1.0,
            "end": 3.0,
            "duration": 2.0,
            "createdAt": self.clock.seconds(),
            "size": 64,
        }
        (clips / "1.json").write_text(json.dumps(clip), "utf-8")
        self.ctx.recordings = Library(root, inline, self.clock, lambda: None)
        return meta


#: The recording and the clip ``populate`` makes (a recording's id is its start time).
RECORDING_ID = "1699999700"
CLIP_ID = f"{RECORDING_ID}-1"
#: An S3 configuration to test (the in-memory server has no storage client: it says so).
S3_TEST = {
    "enabled": False,
    "endpoint": "https://s3.example.com",
    "accessKey": "AK",
    "secret": "shh",
    "bucket": "video",
}


# Success cases: (method, path) -> request body (a callable gets the test case); ``{id}`` in
# a path is the recording or clip ``populate`` made. The operations that must run ffmpeg
# have none: the in-memory client has no process reactor.
SUCCESS: dict[tuple[str, str], Any] = {
    ("get", "/api/config"): None,
    ("get", "/api/status"): None,
    ("get", "/api/ping"): None,
    ("post", "/api/ping"): None,
    ("get", "/api/chat"): None,
    ("get", "/api/yp"): None,
    ("get", "/api/emoji"): None,
    ("get", "/api/socialplatforms"): None,
    ("get", "/api/video/variants"): None,
    ("get", "/api/openapi.yaml"): None,
    ("get", "/api/recordings"): None,
    ("get", "/api/recordings/{id}"): None,
    ("get", "/api/recordings/{id}/chat"): None,
    ("get", "/api/recordings/clips/{id}"): None,
    ("get", "/api/admin/status"): None,
    ("post", "/api/admin/disconnect"): None,
    ("post", "/api/admin/yp/reset"): None,
    ("get", "/api/admin/clients"): None,
    ("get", "/api/admin/logs"): None,
    ("get", "/api/admin/logs/warnings"): None,
    ("get", "/api/admin/serverconfig"): None,
    ("get", "/api/admin/chat/messages"): None,
    ("post", "/api/admin/chat/updatemessagevisibility"): lambda t: {
        "visible": False,
        "idArray": [t.messages[0]["id"], t.messages[2]["id"]],
    },
    ("post", "/api/admin/config/key"): {"value": "a-brand-new-key-42"},
    ("post", "/api/admin/config/pagecontent"): {"value": "# Hi\n\nSee *you* soon."},
    ("post", "/api/admin/config/streamtitle"): {"value": "Tuesday night games"},
    ("post", "/api/admin/config/name"): {"value": "  Casey's stream "},
    ("post", "/api/admin/config/serversummary"): {"value": "Games and music."},
    ("post", "/api/admin/config/logo"): {"value": "/img/logo.svg"},
    ("post", "/api/admin/config/tags"): {"value": ["games", " music ", ""]},
    ("post", "/api/admin/config/webserverport"): {"value": 8081},
    ("post", "/api/admin/config/rtmpserverport"): {"value": 1936},
    ("post", "/api/admin/config/nsfw"): {"value": True},
    ("post", "/api/admin/config/directoryenabled"): {"value": True},
    ("post", "/api/admin/config/serverurl"): {"value": "https://live.example.com"},
    ("post", "/api/admin/config/video/streamlatencylevel"): {"value": 3},
    ("post", "/api/admin/config/video/streamoutputvariants"): {
        "value": [
            {"videoBitrate": 2500, "framerate": 30},
            {
                "videoPassthrough": False,
                "audioPassthrough": False,
                "videoBitrate": 800,
                "audioBitrate": 96,
                "scaledWidth": 640,
                "scaledHeight": 360,
                "framerate": 24,
                "cpuUsageLevel": 1,
            },
        ]
    },
    ("post", "/api/admin/config/s3"): {
        "value": {
            "enabled": True,
            "endpoint": "https://s3.example.com",
            "accessKey": "AK",
            "secret": "shh",
            "bucket": "video",
            "region": "eu-1",
        }
    },
    ("post", "/api/admin/config/socialhandles"): {
        "value": [{"platform": "github", "url": "https://github.com/owncast/owncast"}]
    },
    ("post", "/api/admin/config/customstyles"): {"value": "body { color: orange; }"},
    ("post", "/api/admin/config/welcomemessage"): {"value": " Welcome, be *kind* "},
    ("post", "/api/admin/config/chat/disable"): {"value": True},
    ("post", "/api/admin/config/externalactions"): {
        "value": [
            {
                "url": "https://shop.example.com",
                "title": "Merch",
                "description": "Shirts",
                "icon": "/img/logo.svg",
                "color": "#ff8800",
                "openExternally": True,
            }
        ]
    },
    ("post", "/api/admin/config/chat/allowedorigins"): {"value": ["https://embed.example.com"]},
    ("post", "/api/admin/config/offlinemessage"): {"value": " Back on Friday "},
    ("post", "/api/admin/config/video/lowlatency"): {"value": True},
    ("post", "/api/admin/config/s3/test"): {"value": S3_TEST},
    ("post", "/api/admin/config/recordings"): {
        "value": {
            "enabled": True,
            "variants": "highest",
            "maxDays": 30,
            "maxGiB": 50.5,
            "minFreeGiB": 2,
        }
    },
    ("get", "/api/admin/recordings"): None,
    ("post", "/api/admin/recordings/title"): {"id": RECORDING_ID, "title": " Friday, again "},
    ("post", "/api/admin/recordings/delete"): {"id": RECORDING_ID},
    ("get", "/api/admin/viewersOverTime"): None,
    ("get", "/api/admin/hardwarestats"): None,
    ("get", "/api/admin/accesstokens"): None,
    ("post", "/api/admin/accesstokens/create"): {
        "name": "chat bot",
        "scopes": ["CAN_SEND_MESSAGES", "CAN_SEND_MESSAGES"],
    },
    ("post", "/api/admin/accesstokens/delete"): lambda t: {"token": t.tokens["CAN_SEND_MESSAGES"]},
    ("get", "/api/admin/webhooks"): None,
    ("post", "/api/admin/webhooks/create"): {
        "url": "https://example.com/events",
        "events": ["STREAM_STARTED", "VISIBILITY-UPDATE"],
    },
    ("post", "/api/admin/webhooks/delete"): lambda t: {"id": t.webhook["id"]},
    ("post", "/api/integrations/streamtitle"): {"value": "Set by a bot"},
    ("post", "/api/integrations/chat/user"): {"user": "quizbot", "body": "Question *one*"},
    ("post", "/api/integrations/chat/send"): {"author": "oldbot", "body": "still here"},
    ("post", "/api/integrations/chat/system"): {"body": "Back in 5 minutes"},
    ("post", "/api/integrations/chat/action"): {"body": "does a little dance"},
    ("get", "/api/integrations/clients"): None,
    ("get", "/api/integrations/chat"): None,
    ("post", "/api/integrations/chat/updatemessagevisibility"): lambda t: {
        "visible": False,
        "idArray": [t.messages[1]["id"]],
    },
    ("post", "/api/integrations/chat/messagevisibility"): lambda t: {
        "visible": True,
        "idArray": [t.messages[1]["id"], "no-such-id"],
    },
}
NEEDS_FFMPEG = {
    ("post", "/api/admin/config/video/codec"),
    ("post", "/api/admin/config/ffmpegpath"),
    # clips are cut by ffmpeg (tests/test_recordings_e2e.py makes them for real)
    ("post", "/api/admin/recordings/clip"),
    ("post", "/api/integrations/recordings/clip"),
    ("post", "/api/recordings/clip"),
}


class SuccessTests(_Base):
    """One documented success per operation (methods added below, one per SUCCESS entry)."""

    def setUp(self):
        super().setUp()
        self.populate()

    def test_success_cases_cover_every_operation(self):
        documented = {(method, path) for method, path, _ in operations()}
        self.assertEqual(set(SUCCESS) | NEEDS_FFMPEG, documented)
        self.assertEqual(set(SUCCESS) & NEEDS_FFMPEG, set())
        generated = [
            name
            for name in dir(self)
            if name.startswith("test_success_")
            and name != "test_success_cases_cover_every_operation"
        ]
        self.assertEqual(len(generated), len(SUCCESS))

    def run_success(self, method: str, path: str) -> None:
        body = SUCCESS[(method, path)]
        if callable(body):
            body = body(self)
        if body is not None:
            self.assert_request_documented(method, path, body)
        _, parsed, _ = self.call(method, path, body=body)
        self.assertEqual(self.checked[-1], (method, path, 200))
        if path.startswith("/api/admin/config/"):
            # What was stored must still read back in the documented shape.
            auth = ("admin", body["value"]) if path.endswith("/key") else ADMIN
            self.call("get", "/api/admin/serverconfig", auth=auth)
        if path == "/api/openapi.yaml":
            self.assertEqual(yaml.safe_load(parsed), DOC)
        elif isinstance(parsed, list):
            self.assertTrue(parsed, f"{path}: an empty list checks no item schema")


def _add_success_test(method: str, path: str) -> None:
    def test(self):
        self.run_success(method, path)

    slug = re.sub(r"[^a-zA-Z0-9]+", "_", path[len("/api/") :]).strip("_")
    test.__name__ = f"test_success_{method}_{slug}"
    test.__doc__ = f"{method.upper()} {path} succeeds as documented."
    setattr(SuccessTests, test.__name__, test)


for _method, _path in SUCCESS:
    _add_success_test(_method, _path)


class BehaviourTests(_Base):
    """Particular answers: fields that appear with state, both id forms, the key change."""

    def test_every_message_type_and_an_absent_author_validate(self):
        self.populate()
        _, public, _ = self.call("get", "/api/chat")
        self.assertEqual({m["type"] for m in public}, {"CHAT", "SYSTEM", "CHAT_ACTION"})
        self.assertIn(False, ["author" in m for m in public])
        self.assertTrue(all(m["visible"] for m in public))
        # Moderators see users' messages (0.0.7's moderation history), hidden ones too.
        _, body, _ = self.call("get", "/api/admin/chat/messages")
        self.assertEqual({m["type"] for m in body}, {"CHAT"})
        self.assertIn(False, [m["visible"] for m in body])

    def test_clients_carry_connection_time_and_a_nullable_username(self):
        self.populate()
        for path in ("/api/admin/clients", "/api/integrations/clients"):
            _, clients, _ = self.call("get", path)
            by_id = {c["clientID"]: c for c in clients}
            self.assertEqual(set(by_id), {"client-1", "client-2"})
            self.assertEqual(
                (by_id["client-1"]["username"], by_id["client-1"]["messageCount"]), ("carol", 1)
            )
            self.assertIsNone(by_id["client-2"]["username"])
            self.assertTrue(_RFC3339.match(by_id["client-2"]["connectedAt"]))

    def test_pings_count_viewers_while_live(self):
        self.ctx.stream.start("192.0.2.10", empty_details(), lambda: None)
        self.ctx.viewers.stream_started()
        for agent in ("Firefox", "Chrome", "Chrome"):
            self.call("post", "/api/ping", headers={"User-Agent": [agent]})
        _, status, _ = self.call("get", "/api/status")
        self.assertEqual(status["viewerCount"], 2)
        _, admin, _ = self.call("get", "/api/admin/status")
        self.assertEqual(admin["sessionPeakViewerCount"], 2)

    def test_live_broadcast_fills_status_fields(self):
        _, before, _ = self.call("get", "/api/admin/status")
        self.assertIsNone(before["broadcaster"])
        # Details as the RTMP session keeps them: empty at first, then filled in place
        # from the encoder's onMetaData.
        details = empty_details()
        self.ctx.stream.start("192.0.2.10", details, lambda: None)
        _, admin, _ = self.call("get", "/api/admin/status")
        self.assertEqual(admin["broadcaster"]["streamDetails"]["videoCodec"], "")
        details_from_metadata(
            {
                "width": 1280.0,
                "height": 720.0,
                "framerate": 30.0,
                "videodatarate": 2500.0,
                "videocodecid": 7.0,
                "audiodatarate": 160.0,
                "audiocodecid": "mp4a",
                "encoder": "obs-output module (libobs version 27.2.4)",
            },
            details,
        )
        _, admin, _ = self.call("get", "/api/admin/status")
        self.assertEqual(admin["broadcaster"]["streamDetails"], details)
        self.assertEqual((details["videoCodec"], details["width"]), ("H.264", 1280))
        self.assertTrue(admin["online"])
        _, status, _ = self.call("get", "/api/status")
        self.assertIsNotNone(status["lastConnectTime"])
        self.assertIsNone(status["lastDisconnectTime"])
        self.call("get", "/api/yp", expect=404)
        run(self.ctx.save({"directoryEnabled": True}))
        _, yp, _ = self.call("get", "/api/yp")
        self.assertTrue(yp["online"])
        _, dropped, _ = self.call("post", "/api/admin/disconnect")
        self.assertIs(dropped["success"], True)
        _, idle, _ = self.call("post", "/api/admin/disconnect", expect=400)
        self.assertIs(idle["success"], False)
        _, status, _ = self.call("get", "/api/status")
        self.assertIsNotNone(status["lastDisconnectTime"])

    def test_token_records_creation_and_use(self):
        _, made, _ = self.call(
            "post",
            "/api/admin/accesstokens/create",
            body={"name": " bot ", "scopes": ["HAS_ADMIN_ACCESS"]},
        )
        self.assertEqual(
            (made["name"], made["scopes"], made["lastUsed"]), ("bot", ["HAS_ADMIN_ACCESS"], None)
        )
        self.clock.advance(30)
        self.call("get", "/api/integrations/chat", bearer=made["token"])
        _, listed, _ = self.call("get", "/api/admin/accesstokens")
        mine = [t for t in listed if t["token"] == made["token"]]
        self.assertEqual(len(mine), 1)
        self.assertIsNotNone(mine[0]["lastUsed"])
        self.assertNotEqual(mine[0]["lastUsed"], mine[0]["timestamp"])

    def test_webhook_ids_are_numbers_and_delete_takes_either_form(self):
        made = [
            self.call(
                "post",
                "/api/admin/webhooks/create",
                body={"url": "https://example.com/h", "events": ["CHAT"]},
            )[1]
            for _ in range(2)
        ]
        self.assertTrue(all(type(w["id"]) is int for w in made))
        _, listed, _ = self.call("get", "/api/admin/webhooks")
        self.assertEqual([w["id"] for w in listed], [w["id"] for w in made])
        for body in ({"id": made[0]["id"]}, {"id": str(made[1]["id"])}):
            self.assert_request_documented("post", "/api/admin/webhooks/delete", body)
            self.call("post", "/api/admin/webhooks/delete", body=body)
        self.assertEqual(self.call("get", "/api/admin/webhooks")[1], [])

    def test_new_stream_key_is_the_new_admin_password(self):
        self.call("post", "/api/admin/config/key", body={"value": "fresh-key-1"})
        self.call("get", "/api/admin/status", expect=401)
        _, config, _ = self.call("get", "/api/admin/serverconfig", auth=("admin", "fresh-key-1"))
        self.assertEqual(config["streamKey"], "fresh-key-1")

    def test_uploaded_logo_is_stored_and_served_as_a_path(self):
        png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(24)).decode()
        self.call("post", "/api/admin/config/logo", body={"value": "data:image/png;base64," + png})
        _, config, _ = self.call("get", "/api/admin/serverconfig")
        self.assertRegex(config["instanceDetails"]["logo"], r"^/logo/logo-[0-9a-f]{16}\.png$")
        self.assertEqual(self.call("get", "/api/config")[1]["logo"], "/logo")

    def test_offline_message_reads_back_trimmed_in_both_configs(self):
        self.call("post", "/api/admin/config/offlinemessage", body={"value": " Back on *Friday* "})
        self.assertEqual(self.call("get", "/api/config")[1]["offlineMessage"], "Back on *Friday*")
        _, config, _ = self.call("get", "/api/admin/serverconfig")
        self.assertEqual(config["offlineMessage"], "Back on *Friday*")

    def test_s3_test_answers_success_as_documented_either_way(self):
        """Given a storage client (the daemon gives S3's), the test uploads a probe and
        deletes it; a storage error is a 200 with ``success: false`` naming the step."""
        seen: list[tuple] = []

        class Storage:
            def __init__(self, config: dict, fail: str | None) -> None:
                seen.append(("config", config["endpoint"], config["bucket"]))
                self.fail = fail

            def put(self, key, data, content_type, cache_control):
                seen.append(("put", key))
                return fail(OSError("refused")) if self.fail == "put" else succeed(None)

            def delete(self, key):
                seen.append(("delete", key))
                return fail(OSError("denied")) if self.fail == "delete" else succeed(None)

        path = "/api/admin/config/s3/test"
        for failing, success in ((None, True), ("put", False), ("delete", False)):
            del seen[:]
            root = build_root(self.ctx, WEB_ROOT, s3_storage=lambda c, f=failing: Storage(c, f))
            self.client.stub = StubTreq(root)
            _, body, _ = self.call("post", path, body={"value": S3_TEST})
            self.assertIs(body["success"], success, body)
            key = seen[1][1]
            self.assertEqual(seen[0], ("config", S3_TEST["endpoint"], S3_TEST["bucket"]))
            steps = [("put", key)] + ([] if failing == "put" else [("delete", key)])
            self.assertEqual(seen[1:], steps)
            if failing:
                self.assertIn(
                    f"{'upload' if failing == 'put' else 'delete'} of {key}", body["message"]
                )
        self.assertEqual(self.ctx.settings["s3"]["enabled"], False, "a test saves nothing")

    def test_served_document_is_this_file(self):
        _, content, _ = self.call("get", "/api/openapi.yaml")
        self.assertEqual(content, DOCUMENT_PATH.read_bytes())


class ErrorTests(_Base):
    """Each documented failure, on every operation it applies to."""

    def other_scopes_token(self, scope: str) -> str:
        others = [s for s in SCOPES if s != scope]
        return self.call(
            "post",
            "/api/admin/accesstokens/create",
            body={"name": f"all but {scope}", "scopes": others},
        )[1]["token"]

    def test_admin_operations_refuse_missing_or_wrong_credentials(self):
        count = 0
        for method, path, _ in operations():
            if kind_of(path) != "admin":
                continue
            for auth in (None, ("admin", "wrong"), ("root", STREAM_KEY), ("admin", "")):
                _, body, response = self.call(
                    method, path, body={"value": 1}, auth=auth, expect=401
                )
                challenge = response.headers.getRawHeaders("www-authenticate")[0]
                self.assertTrue(challenge.startswith("Basic "), challenge)
            # A bearer token is no admin credential, even with every scope.
            token = self.tokens["HAS_ADMIN_ACCESS"]
            self.call(method, path, auth=None, bearer=token, expect=401)
            count += 1
        self.assertEqual(count, 48)

    def test_integration_operations_refuse_missing_or_unknown_tokens(self):
        count = 0
        for method, path, _ in operations():
            if kind_of(path) != "integrations":
                continue
            for auth, bearer in ((None, None), (None, "not-a-token"), (ADMIN, None)):
                _, _, response = self.call(
                    method, path, body={"body": "x"}, auth=auth, bearer=bearer, expect=401
                )
                challenge = response.headers.getRawHeaders("www-authenticate")[0]
                self.assertTrue(challenge.startswith("Bearer "), challenge)
            deleted = self.call(
                "post",
                "/api/admin/accesstokens/create",
                body={"name": "gone", "scopes": list(SCOPES)},
            )[1]["token"]
            self.call("post", "/api/admin/accesstokens/delete", body={"token": deleted})
            self.call(method, path, auth=None, bearer=deleted, expect=401)
            count += 1
        self.assertEqual(count, 10)

    def test_integration_operations_need_the_documented_scope(self):
        count = 0
        for method, path, op in operations():
            if kind_of(path) != "integrations":
                continue
            scope = op["x-required-scope"]
            _, body, _ = self.call(
                method, path, body={"body": "x"}, bearer=self.other_scopes_token(scope), expect=403
            )
            self.assertIn(scope, body["message"])
            count += 1
        self.assertEqual(count, 10)

    def test_repeated_failures_are_throttled_with_429(self):
        self.ctx.throttle = AuthThrottle(self.clock.seconds)
        for _ in range(6):
            self.call("get", "/api/admin/status", auth=("admin", "guess"), expect=401)
        # Refused while the penalty lasts, whatever the credentials, on both kinds of API.
        _, body, response = self.call("get", "/api/admin/status", expect=429)
        wait = int(response.headers.getRawHeaders("retry-after")[0])
        self.assertGreaterEqual(wait, 1)
        self.call("post", "/api/integrations/chat/system", body={"body": "hi"}, expect=429)
        self.call("get", "/api/integrations/clients", bearer="guess", expect=429)
        self.clock.advance(wait)
        self.call("get", "/api/admin/status")
        # Only time forgives (a success clears nothing): after that, tokens count alike.
        self.clock.advance(901)
        for _ in range(6):
            self.call("get", "/api/integrations/chat", bearer="guess", expect=401)
        self.call("get", "/api/integrations/chat", expect=429)
        self.call("post", "/api/admin/config/name", body={"value": "x"}, expect=429)

    def body_operations(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, op in operations() if "requestBody" in op]

    def test_malformed_bodies_are_400(self):
        ops = self.body_operations()
        self.assertEqual(len(ops), 44)
        for method, path in ops:
            for raw in (b"", b"   ", b"{nope", b"\xff\xfe{}", b"[1, 2]", b'"text"', b"null"):
                _, body, _ = self.call(method, path, raw=raw, expect=400)
                self.assertTrue(body["message"])

    def test_missing_fields_are_400(self):
        for method, path in self.body_operations():
            self.assertTrue(self.document_rejects(method, path, {}), path)
            self.call(method, path, body={}, expect=400)
        # Each field of a good body that the document requires is also required by the server.
        self.populate()
        dropped = 0
        for (method, path), good in SUCCESS.items():
            good = good(self) if callable(good) else good
            if not isinstance(good, dict):
                continue
            for field in good:
                partial = {k: v for k, v in good.items() if k != field}
                if self.document_rejects(method, path, partial):
                    self.call(method, path, body=partial, expect=400)
                    dropped += 1
        self.assertGreaterEqual(dropped, 30)

    def test_invalid_values_are_400(self):
        self.populate()
        for path, body, in_schema in INVALID:
            method = "post"
            self.assertEqual(self.document_rejects(method, path, body), in_schema, (path, body))
            _, answer, _ = self.call(method, path, body=body, expect=400)
            self.assertTrue(answer["message"], (path, body))

    def test_ffmpeg_settings_refuse_invalid_values_before_running_ffmpeg(self):
        # No process may start here: a probe on the fake clock fails the values below in
        # its own checks, before it would run ffmpeg.
        self.ctx.probe = FfmpegProbe(self.clock)
        codec, path = "/api/admin/config/video/codec", "/api/admin/config/ffmpegpath"
        self.ctx.ffmpeg_default = lambda: None
        self.call("post", codec, body={"value": "libx264"}, expect=400)
        self.ctx.ffmpeg_default = lambda: "/usr/bin/ffmpeg-that-is-never-run"
        for value in ("h265_magic", 264, None):
            self.assertTrue(self.document_rejects("post", codec, {"value": value}))
            self.call("post", codec, body={"value": value}, expect=400)
        for value in ("ffmpeg", "", 7, str(self.datadir / "missing")):
            self.call("post", path, body={"value": value}, expect=400)
        self.assertEqual(self.ctx.settings["ffmpegPath"], "")

    def test_unknown_setting_token_or_webhook_is_404(self):
        not_found = DOC["components"]["responses"]["NotFound"]
        for name in ("nosuchsetting", "video", "video/bitrate", "KEY"):
            self.call(
                "post", f"/api/admin/config/{name}", body={"value": 1}, expect=404, spec=not_found
            )
        self.call("post", "/api/admin/accesstokens/delete", body={"token": "nope"}, expect=404)
        for webhook_id in ("999", 999):
            self.call("post", "/api/admin/webhooks/delete", body={"id": webhook_id}, expect=404)

    def test_unknown_recording_or_clip_is_404(self):
        self.populate()
        not_found = DOC["components"]["responses"]["NotFound"]
        for path in (
            "/api/recordings/999",
            "/api/recordings/999/chat",
            "/api/recordings/clips/999-1",
            f"/api/recordings/clips/{RECORDING_ID}-2",
            "/api/recordings/clips/nope",
        ):
            self.call("get", path, expect=404, spec=not_found)
        for path, body in (
            ("/api/admin/recordings/title", {"id": "999", "title": "x"}),
            ("/api/admin/recordings/delete", {"id": "999"}),
            ("/api/admin/recordings/clip", {"id": "999", "start": 0, "end": 1}),
            ("/api/integrations/recordings/clip", {"id": "999", "start": 0, "end": 1}),
        ):
            self.call("post", path, body=body, expect=404)
        # Once deleted, a recording and its clip are gone for every route.
        self.call("post", "/api/admin/recordings/delete", body={"id": RECORDING_ID})
        for path in (
            "/api/recordings/{id}",
            "/api/recordings/{id}/chat",
            "/api/recordings/clips/{id}",
        ):
            self.call("get", path, expect=404)
        self.call("post", "/api/admin/recordings/delete", body={"id": RECORDING_ID}, expect=404)
        # With none left, a clip without an id has nothing to cut.
        self.call("post", "/api/admin/recordings/clip", body={"start": 0, "end": 1}, expect=404)

    def test_bodies_over_4_mib_are_413(self):
        raw = b'{"value": "' + b"x" * MAX_BODY + b'"}'
        for method, path in self.body_operations():
            self.call(method, path, raw=raw, expect=413)

    def test_wrong_method_is_405_before_credentials(self):
        refused = DOC["components"]["responses"]["MethodNotAllowed"]
        count = 0
        expected = sum(
            len({"get", "post", "put", "delete"} - set(item)) for item in DOC["paths"].values()
        )
        for path, item in DOC["paths"].items():
            for method in ("get", "post", "put", "delete"):
                if method in item:
                    continue
                self.call(method, path, auth=None, expect=405, spec=refused)
                count += 1
        self.assertEqual(count, expected)
        self.assertGreater(count, 150)


# (path, body, whether the document's request schema already rejects it). The rest are
# refused for reasons a schema cannot see (a missing file, fields that depend on others).
INVALID: list[tuple[str, Any, bool]] = [
    ("/api/admin/config/key", {"value": ""}, True),
    ("/api/admin/config/key", {"value": "has space"}, True),
    ("/api/admin/config/key", {"value": "a/b"}, True),
    ("/api/admin/config/key", {"value": 1234}, True),
    ("/api/admin/config/pagecontent", {"value": ["# hi"]}, True),
    ("/api/admin/config/pagecontent", {"value": "x" * 100_001}, True),
    ("/api/admin/config/streamtitle", {"value": 5}, True),
    ("/api/admin/config/streamtitle", {"value": "t" * 301}, True),
    ("/api/admin/config/name", {"value": "   "}, True),
    ("/api/admin/config/name", {"value": None}, True),
    ("/api/admin/config/serversummary", {"value": False}, True),
    ("/api/admin/config/logo", {"value": 3}, True),
    ("/api/admin/config/logo", {"value": "/img/missing.png"}, False),
    ("/api/admin/config/logo", {"value": "/../etc/passwd"}, False),
    ("/api/admin/config/logo", {"value": "data:image/svg+xml;base64,PHN2Zz4="}, False),
    ("/api/admin/config/tags", {"value": "games"}, True),
    ("/api/admin/config/tags", {"value": ["ok", 5]}, True),
    ("/api/admin/config/webserverport", {"value": -1}, True),
    ("/api/admin/config/webserverport", {"value": "8080"}, True),
    ("/api/admin/config/webserverport", {"value": 65536}, True),
    ("/api/admin/config/webserverport", {"value": 80.5}, True),
    ("/api/admin/config/rtmpserverport", {"value": 70000}, True),
    ("/api/admin/config/rtmpserverport", {"value": True}, True),
    ("/api/admin/config/nsfw", {"value": "yes"}, True),
    ("/api/admin/config/directoryenabled", {"value": 1}, True),
    ("/api/admin/config/serverurl", {"value": "ftp://example.com"}, True),
    ("/api/admin/config/serverurl", {"value": "example.com"}, True),
    ("/api/admin/config/video/streamlatencylevel", {"value": 1_000_001}, True),
    ("/api/admin/config/video/streamlatencylevel", {"value": -1}, True),
    ("/api/admin/config/video/streamlatencylevel", {"value": "low"}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": {"framerate": 24}}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{"bogus": 1}]}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{"scaledWidth": 641}]}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{"framerate": -1}]}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{"framerate": 121}]}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{"videoBitrate": -1}]}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{"name": 5}]}, True),
    ("/api/admin/config/welcomemessage", {"value": 5}, True),
    ("/api/admin/config/chat/disable", {"value": "yes"}, True),
    ("/api/admin/config/externalactions", {"value": [{"title": "no url"}]}, True),
    (
        "/api/admin/config/externalactions",
        {"value": [{"url": "javascript:alert(1)", "title": "x"}]},
        True,
    ),
    ("/api/admin/config/chat/allowedorigins", {"value": ["https://x.example/path"]}, True),
    ("/api/admin/config/chat/allowedorigins", {"value": "https://x.example"}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{"audioBitrate": 1025}]}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{"cpuUsageLevel": 5}]}, True),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{"scaledHeight": 4322}]}, True),
    (
        "/api/admin/config/video/streamoutputvariants",
        {"value": [{"videoPassthrough": "yes"}]},
        True,
    ),
    ("/api/admin/config/video/streamoutputvariants", {"value": [{}] * 11}, True),
    ("/api/admin/config/s3", {"value": {}}, True),
    ("/api/admin/config/s3", {"value": {"enabled": True, "unknown": "x"}}, True),
    ("/api/admin/config/s3", {"value": {"enabled": "yes"}}, True),
    ("/api/admin/config/s3", {"value": {"enabled": True, "bucket": "b"}}, True),
    (
        "/api/admin/config/s3",
        {
            "value": {
                "enabled": True,
                "endpoint": "http://s3",
                "accessKey": "k",
                "secret": " ",
                "bucket": "b",
            }
        },
        True,
    ),
    ("/api/admin/config/s3", {"value": {"enabled": False, "endpoint": "s3.example.com"}}, True),
    ("/api/admin/config/serverurl", {"value": "http://"}, True),
    ("/api/admin/config/key", {"value": "a\x1db"}, True),
    ("/api/admin/webhooks/create", {"url": "   https://", "events": ["CHAT"]}, True),
    ("/api/integrations/chat/send", {"user": "b" * 101, "body": "hi"}, True),
    ("/api/admin/config/socialhandles", {"value": {"platform": "x"}}, True),
    ("/api/admin/config/socialhandles", {"value": [{"platform": "x", "url": "nope"}]}, True),
    ("/api/admin/config/socialhandles", {"value": [{"url": "https://x.example"}]}, True),
    ("/api/admin/config/customstyles", {"value": "</style><script>x</script>"}, False),
    ("/api/admin/config/customstyles", {"value": 42}, True),
    ("/api/admin/chat/updatemessagevisibility", {"visible": "no", "idArray": ["a"]}, True),
    ("/api/admin/chat/updatemessagevisibility", {"visible": True, "idArray": "a"}, True),
    ("/api/admin/chat/updatemessagevisibility", {"visible": True, "idArray": [""]}, True),
    ("/api/admin/chat/updatemessagevisibility", {"visible": True, "idArray": ["a"] * 1001}, True),
    ("/api/admin/accesstokens/create", {"name": "bot", "scopes": ["CAN_DO_ANYTHING"]}, True),
    ("/api/admin/accesstokens/create", {"name": "bot", "scopes": []}, True),
    ("/api/admin/accesstokens/create", {"name": "", "scopes": ["HAS_ADMIN_ACCESS"]}, True),
    ("/api/admin/accesstokens/create", {"name": "bot", "scopes": "HAS_ADMIN_ACCESS"}, True),
    ("/api/admin/accesstokens/delete", {"token": ""}, True),
    ("/api/admin/accesstokens/delete", {"token": 5}, True),
    ("/api/admin/webhooks/create", {"url": "https://x.example", "events": ["BOGUS"]}, True),
    ("/api/admin/webhooks/create", {"url": "https://x.example", "events": []}, True),
    ("/api/admin/webhooks/create", {"url": "mailto:me@x.example", "events": ["CHAT"]}, True),
    ("/api/admin/webhooks/delete", {"id": "abc"}, True),
    ("/api/admin/webhooks/delete", {"id": True}, True),
    ("/api/admin/webhooks/delete", {"id": -1}, True),
    ("/api/admin/webhooks/delete", {"id": [1]}, True),
    ("/api/integrations/streamtitle", {"value": 5}, True),
    ("/api/integrations/chat/user", {"user": "bot", "body": "  "}, True),
    ("/api/integrations/chat/user", {"user": "", "body": "hi"}, True),
    ("/api/integrations/chat/send", {"body": "hi"}, True),
    ("/api/integrations/chat/send", {"user": "bot", "body": 5}, True),
    ("/api/integrations/chat/send", {"user": "bot", "body": "é" * 1025}, False),
    ("/api/integrations/chat/system", {"body": ""}, True),
    ("/api/integrations/chat/system", {"body": ["hi"]}, True),
    ("/api/integrations/chat/action", {"body": "hi", "author": ""}, True),
    ("/api/integrations/chat/action", {"body": None}, True),
    ("/api/integrations/chat/updatemessagevisibility", {"visible": 0, "idArray": []}, True),
    ("/api/integrations/chat/messagevisibility", {"visible": True, "idArray": [1]}, True),
    ("/api/admin/config/offlinemessage", {"value": 5}, True),
    ("/api/admin/config/offlinemessage", {"value": "x" * 2001}, True),
    ("/api/admin/config/video/lowlatency", {"value": "yes"}, True),
    ("/api/admin/config/video/lowlatency", {"value": 1}, True),
    ("/api/admin/config/s3/test", {"value": {"enabled": False}}, True),
    ("/api/admin/config/s3/test", {"value": {**S3_TEST, "accessKey": " "}}, True),
    ("/api/admin/config/s3/test", {"value": {**S3_TEST, "endpoint": "s3.example.com"}}, True),
    ("/api/admin/config/s3/test", {"value": {**S3_TEST, "unknown": "x"}}, True),
    ("/api/admin/config/recordings", {"value": []}, True),
    ("/api/admin/config/recordings", {"value": {"bogus": 1}}, True),
    ("/api/admin/config/recordings", {"value": {"enabled": "yes"}}, True),
    ("/api/admin/config/recordings", {"value": {"variants": "some"}}, True),
    ("/api/admin/config/recordings", {"value": {"maxDays": -1}}, True),
    ("/api/admin/config/recordings", {"value": {"maxDays": True}}, True),
    ("/api/admin/config/recordings", {"value": {"minFreeGiB": 1_000_001}}, True),
    ("/api/admin/recordings/title", {"id": RECORDING_ID, "title": ""}, True),
    ("/api/admin/recordings/title", {"id": RECORDING_ID, "title": " "}, False),
    ("/api/admin/recordings/title", {"id": RECORDING_ID, "title": "t" * 301}, True),
    ("/api/admin/recordings/title", {"id": RECORDING_ID, "title": 5}, True),
    ("/api/admin/recordings/title", {"id": "abc", "title": "x"}, True),
    ("/api/admin/recordings/title", {"id": 5, "title": "x"}, True),
    ("/api/admin/recordings/delete", {"id": ["1"]}, True),
    ("/api/admin/recordings/delete", {"id": ""}, True),
    ("/api/admin/recordings/clip", {"id": "1/..", "start": 0, "end": 1}, True),
    ("/api/integrations/recordings/clip", {"id": "1/..", "start": 0, "end": 1}, True),
    # A clip is refused before ffmpeg would run, on both routes.
    *[
        (path, body, in_schema)
        for path in ("/api/admin/recordings/clip", "/api/integrations/recordings/clip")
        for body, in_schema in (
            ({"id": RECORDING_ID, "start": 1, "end": 0}, False),
            ({"id": RECORDING_ID, "start": 0, "end": 181}, False),
            ({"id": RECORDING_ID, "start": 5, "end": 6}, False),
            ({"start": 5, "end": 6}, False),
            ({"id": RECORDING_ID, "start": "0", "end": 1}, True),
            ({"id": RECORDING_ID, "start": -1, "end": 1}, True),
            ({"id": RECORDING_ID, "start": 0, "end": 1, "title": ""}, True),
            ({"id": RECORDING_ID, "start": 0, "end": 1, "title": "  "}, False),
        )
    ],
]
