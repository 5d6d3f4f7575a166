"""What an outside attacker tried, in memory (StubTreq on a fake clock): guessing past the
throttle, locking the owner out, cross-site requests against the admin and integrations
APIs. (RTMP key guessing and admission: ``tests.test_rtmp_session``; outbound requests:
``tests.test_outbound``; the forgery in a real browser: ``tests.test_browser``.)"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial import unittest

from owncast.core.throttle import AuthThrottle, TrustedProxies, address_key
from owncast.tap import Options, makeService
from tests.helpers import ADMIN, STREAM_KEY, Client, make_context

WRONG = ("admin", "a-guess")


class ThrottleTests(unittest.TestCase):
    """Nothing but time forgives a wrong guess: not a success of another credential, not
    a 403, not the right password."""

    def setUp(self):
        self.ctx = make_context(Path(self.mktemp()))
        self.client = Client(self.ctx)

    def token(self, *scopes: str) -> str:
        code, body = self.client.admin_post(
            "/api/admin/accesstokens/create", {"name": "bot", "scopes": list(scopes)}
        )
        self.assertEqual(code, 200, body)
        return body["token"]

    def bearer(self, path: str, token: str) -> int:
        return self.client.get(path, headers={"Authorization": [f"Bearer {token}"]})[0]

    def guesses_checked(self, rounds: int, between: Any) -> int:
        """``rounds`` of 5 wrong admin passwords and one ``between()``; how many of the
        guesses were checked (401) rather than refused (429)."""
        checked = 0
        for _ in range(rounds):
            for _ in range(5):
                code = self.client.get("/api/admin/status", auth=WRONG)[0]
                self.assertIn(code, (401, 429))
                checked += code == 401
            between()
        return checked

    def test_a_token_refused_for_its_scope_clears_nothing(self):
        low = self.token("CAN_SEND_MESSAGES")
        codes: list[int] = []
        checked = self.guesses_checked(
            40, lambda: codes.append(self.bearer("/api/integrations/clients", low))
        )
        self.assertEqual(checked, 6)  # 5 free, the 6th starts the penalty
        self.assertEqual(set(codes[1:]), {429})

    def test_a_good_token_clears_no_password_failures(self):
        good = self.token("HAS_ADMIN_ACCESS")
        self.assertEqual(self.bearer("/api/integrations/clients", good), 200)
        checked = self.guesses_checked(40, lambda: self.bearer("/api/integrations/clients", good))
        self.assertEqual(checked, 6)

    def test_the_right_password_clears_no_failures(self):
        for _ in range(5):
            self.assertEqual(self.client.get("/api/admin/status", auth=WRONG)[0], 401)
        self.assertEqual(self.client.get("/api/admin/status", auth=ADMIN)[0], 200)
        self.assertEqual(self.client.get("/api/admin/status", auth=WRONG)[0], 401)
        self.assertEqual(self.client.get("/api/admin/status", auth=ADMIN)[0], 429)

    def test_failures_are_forgotten_with_time(self):
        for _ in range(6):
            self.client.get("/api/admin/status", auth=WRONG)
        self.assertEqual(self.client.get("/api/admin/status", auth=ADMIN)[0], 429)
        self.ctx.reactor.advance(901)
        for _ in range(5):
            self.assertEqual(self.client.get("/api/admin/status", auth=WRONG)[0], 401)

    def test_the_penalty_stops_doubling_at_its_cap(self):
        throttle = AuthThrottle(self.ctx.now)
        for _ in range(5000):  # far beyond where 2**n overflows a float
            throttle.failed("10.0.0.1")
        self.assertEqual(throttle.retry_after("10.0.0.1"), 300.0)


class AddressTests(unittest.TestCase):
    def test_an_ipv6_64_is_one_address(self):
        self.assertEqual(address_key("2001:db8:1:2::1"), address_key("2001:db8:1:2:ffff::9"))
        self.assertNotEqual(address_key("2001:db8:1:2::1"), address_key("2001:db8:1:3::1"))
        self.assertEqual(address_key("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertEqual(address_key("192.0.2.1"), "192.0.2.1")
        throttle = AuthThrottle(lambda: 1000.0)
        for n in range(6):
            throttle.failed(f"2001:db8:1:2::{n + 1:x}")  # a new address for each guess
        self.assertGreater(throttle.retry_after("2001:db8:1:2::abcd"), 0)
        self.assertEqual(throttle.retry_after("2001:db8:1:3::1"), 0)

    def test_whom_a_trusted_proxy_names(self):
        proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8, fd00::/8"])
        client = proxies.client
        # Not from a proxy: the headers are the peer's own words, ignored.
        self.assertEqual(client("192.0.2.7", "203.0.113.1", None), "192.0.2.7")
        self.assertEqual(client("127.0.0.1", None, None), "127.0.0.1")
        # The nearest untrusted hop, from the right: what the client wrote is left of it.
        self.assertEqual(client("127.0.0.1", "1.2.3.4, 203.0.113.9", None), "203.0.113.9")
        self.assertEqual(client("127.0.0.1", "203.0.113.9, 10.1.1.1", None), "203.0.113.9")
        self.assertEqual(client("127.0.0.1", "10.2.2.2, 10.1.1.1", None), "10.2.2.2")
        # A hop that is not an address: the proxy that reported it is as far as we know.
        self.assertEqual(client("127.0.0.1", "203.0.113.9, unknown", None), "127.0.0.1")
        self.assertEqual(client("127.0.0.1", "203.0.113.9, 10.1.1.1, junk", None), "127.0.0.1")
        self.assertEqual(client("127.0.0.1", "junk, 10.1.1.1", None), "10.1.1.1")
        # RFC 7239, quoted IPv6 with a port; X-Forwarded-For wins when both are there.
        forwarded = 'for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711";by=10.0.0.1'
        self.assertEqual(client("fd00::1", None, forwarded), "2001:db8:cafe::17")
        self.assertEqual(client("127.0.0.1", "203.0.113.9", forwarded), "203.0.113.9")
        self.assertEqual(client("127.0.0.1", "198.51.100.1:5555", None), "198.51.100.1")

    def test_bad_proxy_networks_are_refused(self):
        with self.assertRaises(ValueError):
            TrustedProxies(["10.0.0.0/33"])
        with self.assertRaises(ValueError):
            TrustedProxies(["proxy.example"])


class TrustedProxyTests(unittest.TestCase):
    """Behind a reverse proxy every request comes from the proxy's address (StubTreq's
    peer is 127.0.0.1 here)."""

    def client(self, *proxies: str) -> Client:
        ctx = make_context(Path(self.mktemp()))
        ctx.throttle = AuthThrottle(ctx.now, proxies=TrustedProxies(proxies))
        return Client(ctx)

    def login(self, client: Client, forwarded_for: str, auth: Any = ADMIN) -> int:
        headers = {"X-Forwarded-For": [forwarded_for]}
        return client.get("/api/admin/status", auth=auth, headers=headers)[0]

    def test_a_stranger_cannot_lock_the_owner_out(self):
        client = self.client("127.0.0.1/32")
        codes = [self.login(client, "203.0.113.9", WRONG) for _ in range(20)]
        self.assertEqual(codes, [401] * 6 + [429] * 14)
        self.assertEqual(self.login(client, "198.51.100.7"), 200)

    def test_the_stranger_cannot_pick_its_address_through_the_proxy(self):
        # nginx appends the address it heard from to whatever the client sent.
        client = self.client("127.0.0.1/32")
        codes = [self.login(client, f"192.0.2.{n}, 203.0.113.9", WRONG) for n in range(20)]
        self.assertEqual(codes, [401] * 6 + [429] * 14)

    def test_viewers_behind_the_proxy_are_told_apart(self):
        """Every viewer's ping comes from the proxy: the clients it names are the viewers."""
        for proxies, expected in (((), 1), (("127.0.0.1/32",), 3)):
            client = self.client(*proxies)
            client.ctx.viewers.stream_started()
            for n in range(3):
                headers = {"X-Forwarded-For": [f"198.51.100.{n}"], "User-Agent": ["player"]}
                self.assertEqual(client.get("/api/ping", headers=headers)[0], 200)
            self.assertEqual(client.ctx.viewers.count(), expected, proxies)

    def test_forwarding_headers_from_others_are_ignored(self):
        client = self.client()  # no trusted proxy: the header is the client's own word
        codes = [self.login(client, f"192.0.2.{n}", WRONG) for n in range(20)]
        self.assertEqual(codes, [401] * 6 + [429] * 14)
        self.assertEqual(self.login(client, "198.51.100.7"), 429)


class CrossSiteTests(unittest.TestCase):
    """A page on another site can make the admin's browser (holding cached basic
    credentials) send requests; state-changing ones are refused unless they come from this
    server's own pages or carry what a form cannot send."""

    def setUp(self):
        self.ctx = make_context(Path(self.mktemp()))
        self.client = Client(self.ctx)

    def post(self, path: str, headers: dict, body: bytes = b'{"value": "Forged"}') -> int:
        code, reply, _ = self.client.post(path, raw=body, auth=ADMIN, headers=headers)
        self.assertIsInstance(reply, dict)
        if code != 200:
            self.assertIs(reply["success"], False)
        return code

    def test_foreign_origins_are_refused_and_change_nothing(self):
        json_type = {"Content-Type": ["application/json"]}
        for headers in (
            {"Origin": ["https://evil.example"]},
            {"Origin": ["http://owncast.test.evil.example"]},
            {"Origin": ["http://owncast.test:8081"]},
            {"Origin": ["null"]},
            {"Referer": ["https://evil.example/forge.html"]},
        ):
            for path in ("config/name", "config/key", "config/streamtitle"):
                code = self.post(f"/api/admin/{path}", {**json_type, **headers})
                self.assertEqual(code, 403, (path, headers))
            hook = b'{"url": "https://evil.example/x", "events": ["CHAT"]}'
            code = self.post("/api/admin/webhooks/create", {**json_type, **headers}, hook)
            self.assertEqual(code, 403, headers)
        self.assertNotEqual(self.ctx.settings["name"], "Forged")
        self.assertEqual(self.ctx.settings["streamKey"], STREAM_KEY)
        self.assertEqual(self.client.admin_get("/api/admin/webhooks"), [])

    def test_form_content_types_are_refused(self):
        multipart = (
            b'--x\r\nContent-Disposition: form-data; name="{\\"value\\": \\"Forged\\"}"'
            b"\r\n\r\n\r\n--x--\r\n"
        )
        for kind, body in (
            ("text/plain", None),
            ("text/plain;charset=UTF-8", None),
            ("application/x-www-form-urlencoded", None),
            ("multipart/form-data; boundary=x", multipart),
        ):
            headers = {"Content-Type": [kind]}
            code = self.post("/api/admin/config/name", headers, *([body] if body else []))
            self.assertEqual(code, 415, kind)
        self.assertNotEqual(self.ctx.settings["name"], "Forged")

    def test_own_pages_and_plain_clients_still_work(self):
        for headers in (
            {"Content-Type": ["application/json"], "Origin": ["http://owncast.test"]},
            {"Content-Type": ["application/json"], "Referer": ["http://owncast.test/admin/"]},
            {"Content-Type": ["application/json; charset=utf-8"]},
            {},  # curl --data-binary without a type
        ):
            self.assertEqual(self.post("/api/admin/config/name", headers), 200, headers)
        self.assertEqual(self.ctx.settings["name"], "Forged")
        # Reading is not refused: another site cannot read the answer anyway.
        code, _, _ = self.client.get(
            "/api/admin/status", auth=ADMIN, headers={"Origin": ["https://evil.example"]}
        )
        self.assertEqual(code, 200)

    def test_the_public_server_url_is_this_server_too(self):
        # Behind a proxy that rewrites Host, the admin page's origin is the server URL.
        self.ctx.settings.update({"serverUrl": "https://live.example.org"})
        headers = {"Content-Type": ["application/json"], "Origin": ["https://live.example.org"]}
        self.assertEqual(self.post("/api/admin/config/name", headers), 200)
        headers["Origin"] = ["http://live.example.org"]  # the default port differs
        self.assertEqual(self.post("/api/admin/config/name", headers), 403)

    def test_a_trusted_proxy_says_which_host_was_asked_for(self):
        headers = {
            "Content-Type": ["application/json"],
            "Origin": ["https://live.example.org"],
            "X-Forwarded-Host": ["live.example.org"],
        }
        self.assertEqual(self.post("/api/admin/config/name", headers), 403)  # not trusted
        self.ctx.throttle = AuthThrottle(self.ctx.now, proxies=TrustedProxies(["127.0.0.1"]))
        self.assertEqual(self.post("/api/admin/config/name", headers), 200)

    def test_integrations_refuse_foreign_origins_but_take_any_body_type_with_a_token(self):
        code, body = self.client.admin_post(
            "/api/admin/accesstokens/create",
            {"name": "bot", "scopes": ["CAN_SEND_SYSTEM_MESSAGES"]},
        )
        bearer = f"Bearer {body['token']}"

        def send(headers: dict) -> int:
            headers = {"Authorization": [bearer], **headers}
            return self.client.post(
                "/api/integrations/chat/system", raw=b'{"body": "hi"}', headers=headers
            )[0]

        self.assertEqual(send({"Origin": ["https://evil.example"]}), 403)
        # `curl -d` sends a form's content type; a bearer token is no form's doing.
        self.assertEqual(send({"Content-Type": ["application/x-www-form-urlencoded"]}), 200)
        self.assertEqual(send({"Origin": ["http://owncast.test"]}), 200)


class OptionsTests(unittest.TestCase):
    """``--trustedproxy`` and ``--allowprivate`` reach the service tree; bad values stop
    the daemon before it starts."""

    def parse(self, *argv: str) -> Any:
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_command_line(self):
        options = self.parse("--trustedproxy", "127.0.0.1", "--trustedproxy", "10.0.0.0/8")
        self.assertEqual(options["trustedproxy"], ["127.0.0.1", "10.0.0.0/8"])
        self.assertFalse(options["allowprivate"])
        self.assertTrue(self.parse("--allowprivate")["allowprivate"])

    def test_config_file(self):
        path = Path(self.mktemp())
        path.write_text("[owncast]\ntrustedproxy = 127.0.0.1, ::1\nallowprivate = yes\n")
        options = self.parse("--config", str(path))
        self.assertEqual(
            (options["trustedproxy"], options["allowprivate"]), (["127.0.0.1", "::1"], True)
        )
        # The command line wins.
        options = self.parse("--config", str(path), "--trustedproxy", "10.0.0.1")
        self.assertEqual(options["trustedproxy"], ["10.0.0.1"])

    def test_bad_values(self):
        with self.assertRaises(usage.UsageError):
            self.parse("--trustedproxy", "not-a-network")
        path = Path(self.mktemp())
        path.write_text("[owncast]\nallowprivate = perhaps\n")
        with self.assertRaises(usage.UsageError):
            self.parse("--config", str(path))

    def test_the_tree_gets_them(self):
        options = self.parse(
            "--datadir", self.mktemp(), "--trustedproxy", "127.0.0.1", "--allowprivate"
        )
        service = makeService(options, MemoryReactorClock())
        proxies = service.ctx.throttle.proxies
        self.assertTrue(proxies.trusts(ipaddress.ip_address("127.0.0.1")))
        self.assertEqual(proxies.client("127.0.0.1", "203.0.113.9", None), "203.0.113.9")
