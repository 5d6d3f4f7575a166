"""Outbound requests (webhooks, S3, directory pings) over real loopback sockets: private
targets are refused by default in every spelling, on the address actually connected to
after resolving the name; allowed explicitly they work, IPv6 literals included; redirects
are not followed; answers are bounded."""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from owncast.http.client import (
    MAX_ANSWER,
    AnswerTooLargeError,
    JsonClient,
    RefusedAddressError,
    is_public,
)
from owncast.segments.s3 import S3SegmentStorage

WAIT = 10.0


class _Receiver(Resource):
    """Answers every request with ``code`` (and ``location``, ``body``); keeps them."""

    isLeaf = True

    def __init__(self, code: int = 200, location: str = "", body: bytes = b"ok"):
        super().__init__()
        self.code = code
        self.location = location
        self.body = body
        self.requests: list[dict] = []

    def render(self, request: Any) -> bytes:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "host": request.getHeader(b"host"),
                "body": request.content.read(),
            }
        )
        request.setResponseCode(self.code)
        if self.location:
            request.setHeader(b"location", self.location.encode())
        return self.body


def serve(testcase: unittest.TestCase, resource: Resource, interface: str = "127.0.0.1") -> int:
    port = reactor.listenTCP(0, Site(resource), interface=interface)
    testcase.addCleanup(port.stopListening)
    return port.getHost().port


class PublicAddressTests(unittest.TestCase):
    def test_private_and_special_addresses_are_not_public(self):
        for text in (
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",  # cloud metadata
            "100.64.0.1",  # shared address space (CGNAT)
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",  # AWS metadata over IPv6
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
            "2002:7f00:1::",  # 6to4 of 127.0.0.1
            "2001:db8::1",
        ):
            self.assertFalse(is_public(ipaddress.ip_address(text)), text)

    def test_public_addresses_are(self):
        for text in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
            self.assertTrue(is_public(ipaddress.ip_address(text)), text)


class _OneName:
    """A reactor whose resolver answers ``name`` with ``address`` (and counts lookups);
    everything else is the real reactor's."""

    def __init__(self, name: str, address: str):
        self.name = name
        self.address = address
        self.lookups = 0
        self.nameResolver = self

    def resolveHostName(
        self, receiver: Any, host: str, port: int = 0, types: Any = None, semantics: str = "TCP"
    ) -> None:
        self.lookups += 1
        receiver.resolutionBegan(None)
        if host == self.name:
            receiver.addressResolved(IPv4Address("TCP", self.address, port))
        receiver.resolutionComplete()

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


class RefusedByDefaultTests(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.receiver = _Receiver()
        self.port = serve(self, self.receiver)

    async def assertRefused(self, client: JsonClient, url: str) -> None:
        with self.assertRaises(RefusedAddressError, msg=url) as caught:
            await client.post(url, b"{}", timeout=WAIT)
        self.assertIn("--allowprivate", str(caught.exception))

    async def test_every_spelling_of_loopback_is_refused(self):
        client = JsonClient(reactor)
        for host in (
            "127.0.0.1",
            "localhost",
            "127.1",
            "2130706433",
            "0x7f000001",
            "0.0.0.0",
            "[::ffff:127.0.0.1]",
            "[::1]",
        ):
            await self.assertRefused(client, f"http://{host}:{self.port}/hook")
        self.assertEqual(self.receiver.requests, [])

    async def test_metadata_and_private_networks_are_refused_before_any_connection(self):
        # Refused on the address itself: no packet leaves for these.
        client = JsonClient(reactor)
        for url in (
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://10.0.0.1/hook",
            "https://192.168.0.1/hook",
        ):
            await self.assertRefused(client, url)

    async def test_the_resolved_address_is_checked_and_connected_to(self):
        """A public-looking name that resolves to loopback is refused; allowed, the
        connection goes to the address that was checked, resolved once."""
        rebinding = _OneName("hooks.example.com", "127.0.0.1")
        url = f"http://hooks.example.com:{self.port}/hook"
        await self.assertRefused(JsonClient(rebinding), url)
        self.assertEqual((rebinding.lookups, self.receiver.requests), (1, []))
        code, _ = await JsonClient(rebinding, allow_private=True).post(url, b"{}", WAIT)
        self.assertEqual(code, 200)
        self.assertEqual(rebinding.lookups, 2)
        self.assertEqual(
            self.receiver.requests[0]["host"], f"hooks.example.com:{self.port}".encode()
        )


class AllowedTests(unittest.TestCase):
    timeout = 30

    async def test_loopback_and_ipv6_literals_work_when_allowed(self):
        receiver = _Receiver()
        v4 = serve(self, receiver)
        v6 = serve(self, receiver, interface="::1")
        client = JsonClient(reactor, allow_private=True)
        for url in (
            f"http://127.0.0.1:{v4}/a",
            f"http://localhost:{v4}/b",
            f"http://[::1]:{v6}/c",
            f"http://[0:0:0:0:0:0:0:1]:{v6}/d?x=1",
        ):
            code, body = await client.post(url, b'{"n": 1}', WAIT)
            self.assertEqual((code, body), (200, b"ok"), url)
        self.assertEqual([r["path"] for r in receiver.requests], [b"/a", b"/b", b"/c", b"/d"])
        self.assertEqual(receiver.requests[2]["host"], f"[::1]:{v6}".encode())
        self.assertEqual({r["body"] for r in receiver.requests}, {b'{"n": 1}'})

    async def test_redirects_are_not_followed(self):
        elsewhere = _Receiver()
        target = f"http://127.0.0.1:{serve(self, elsewhere)}/internal"
        client = JsonClient(reactor, allow_private=True)
        for code in (301, 302, 303, 307, 308):
            redirect = _Receiver(code, location=target)
            answer, _ = await client.post(f"http://127.0.0.1:{serve(self, redirect)}/", b"{}", WAIT)
            self.assertEqual(answer, code)
        self.assertEqual(elsewhere.requests, [])

    async def test_answers_are_bounded(self):
        huge = _Receiver(body=b"x" * (MAX_ANSWER + 1))
        client = JsonClient(reactor, allow_private=True)
        with self.assertRaises(AnswerTooLargeError):
            await client.post(f"http://127.0.0.1:{serve(self, huge)}/", b"{}", WAIT)

    async def test_s3_at_an_ipv6_literal_endpoint(self):
        """S3 requests go through the same client: an endpoint at ``[::1]`` is refused by
        default and works when allowed, signed for the host it is sent to."""
        bucket = _Receiver()
        port = serve(self, bucket, interface="::1")
        config = {
            "endpoint": f"http://[::1]:{port}",
            "bucket": "b",
            "accessKey": "AKIDEXAMPLE",
            "secret": "secret",
            "region": "",
            "servingEndpoint": "",
            "acl": "",
        }
        with self.assertRaises(RefusedAddressError):
            await S3SegmentStorage(config, reactor).put("hls/0/s.ts", b"ts", "video/mp2t", "")
        self.assertEqual(bucket.requests, [])
        storage = S3SegmentStorage(config, reactor, allow_private=True)
        await storage.put("hls/0/s.ts", b"ts", "video/mp2t", "no-cache")
        [put] = bucket.requests
        self.assertEqual(
            (put["method"], put["path"], put["host"], put["body"]),
            (b"PUT", b"/b/hls/0/s.ts", f"[::1]:{port}".encode(), b"ts"),
        )
        self.assertEqual(storage.url("hls/0/s.ts"), f"http://[::1]:{port}/b/hls/0/s.ts")
