"""Outbound HTTP: every request the server makes on its own (webhooks, S3, directory pings).

Admins choose the targets (a webhook URL, the S3 endpoint), so by default a request may
reach only public addresses: loopback, private, link-local (cloud metadata at
169.254.169.254), shared (CGNAT), multicast and other special-purpose ranges are refused,
in whatever spelling (``localhost``, ``127.1``, ``2130706433``, ``[::ffff:127.0.0.1]``).
The check is on the address actually connected to: the name is resolved once, the answers
are filtered, and the connection goes to an allowed address itself, so a name that
resolves differently the next time (DNS rebinding) gains nothing. ``allow_private``
(``--allowprivate``) lifts it, e.g. for a bot on the same host. Redirects are never
followed, and answers are read up to ``MAX_ANSWER`` bytes.

The domain takes plain callables (``post(url, body) -> Deferred``); ``JsonClient`` makes
them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.interfaces import IResolutionReceiver, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    PotentialDataLoss,
    ResponseDone,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

_log = Logger()

#: Seconds to wait for a TCP connection to a receiver.
CONNECT_TIMEOUT = 10.0
#: Largest answer body read (a directory's JSON, an S3 error document).
MAX_ANSWER = 1024 * 1024
_JSON = {"content-type": "application/json"}
#: NAT64 addresses carry an IPv4 address in their last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Special-purpose (IETF protocol assignments) beyond what ``ipaddress`` calls private.
_SPECIAL = ipaddress.ip_network("192.0.0.0/24")

_Ip = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddressError(Exception):
    """The target is (or resolves only to) addresses outbound requests may not reach."""

    def __init__(self, host: str, addresses: list[str]):
        shown = ", ".join(addresses) if addresses != [host] else "a private address"
        super().__init__(
            f"{host} is not a public address ({shown}); private targets need --allowprivate"
        )


class AnswerTooLargeError(Exception):
    """The answer's body was longer than ``MAX_ANSWER``."""


def is_public(ip: _Ip) -> bool:
    """Whether ``ip`` is a public unicast address (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None and not is_public(ip.sixtofour):
            return False
        elif ip.is_site_local:
            return False
    return ip.is_global and not ip.is_multicast and ip not in _SPECIAL


@implementer(IResolutionReceiver)
class _Resolution:
    """Collects what a name resolves to (an ``IResolutionReceiver``) into ``done``."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.done: Deferred = Deferred()

    def resolutionBegan(self, resolution: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        if not self.done.called:  # it may have been cancelled meanwhile
            self.done.callback(self.addresses)


def _literal(host: str) -> list[str]:
    """``[host]`` normalized when it is an IP address, else ``[]`` (a name to resolve)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return []


@implementer(IStreamClientEndpoint)
class _CheckedEndpoint:
    """Resolves ``host`` once and connects to the first allowed address it resolved to."""

    def __init__(self, factory: _CheckedEndpoints, host: str, port: int):
        self._endpoints = factory
        self._host = host
        self._port = port

    def connect(self, protocol_factory: Any) -> Deferred:
        return Deferred.fromCoroutine(self._connect(protocol_factory))

    async def _connect(self, protocol_factory: Any) -> Any:
        endpoints = self._endpoints
        reactor = endpoints.reactor
        hosts = _literal(self._host)
        if not hosts:
            resolution = _Resolution()
            reactor.nameResolver.resolveHostName(
                resolution, self._host, self._port, [IPv4Address, IPv6Address]
            )
            hosts = await resolution.done
            if not hosts:
                raise DNSLookupError(self._host)
        allowed = [h for h in hosts if endpoints.permits(h)]
        if not allowed:
            endpoints.refused(self._host, hosts)
            raise RefusedAddressError(self._host, hosts)
        error: Exception = ConnectError()
        for host in allowed:
            kind = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
            endpoint = kind(reactor, host, self._port, timeout=endpoints.timeout)
            try:
                return await endpoint.connect(protocol_factory)
            except ConnectError as e:
                error = e
        raise error


@implementer(IAgentEndpointFactory)
class _CheckedEndpoints:
    """The ``Agent``'s endpoints: plain TCP or TLS over a ``_CheckedEndpoint``."""

    def __init__(self, reactor: Any, allow_private: bool, timeout: float):
        self.reactor = reactor
        self.allow_private = allow_private
        self.timeout = timeout
        self._tls = BrowserLikePolicyForHTTPS()
        self._logged: set[str] = set()

    def permits(self, host: str) -> bool:
        if self.allow_private:
            return True
        try:
            return is_public(ipaddress.ip_address(host.partition("%")[0]))
        except ValueError:
            return False

    def refused(self, host: str, addresses: list[str]) -> None:
        """Log a refused target once (retries and every later event would repeat it)."""
        if host not in self._logged and len(self._logged) < 1000:
            self._logged.add(host)
            _log.warn(
                "Outbound request refused: {error}", error=RefusedAddressError(host, addresses)
            )

    def endpointForURI(self, uri: URI) -> Any:
        host = uri.host.decode("ascii")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        endpoint = _CheckedEndpoint(self, host, uri.port)
        if uri.scheme == b"http":
            return endpoint
        if uri.scheme == b"https":
            return wrapClientTLS(self._tls.creatorForNetloc(host.encode(), uri.port), endpoint)
        raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")


@implementer(IBodyProducer)
class _Body:
    def __init__(self, data: bytes):
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Collect(Protocol):
    """Reads an answer's body into ``done``, at most ``limit`` bytes of it."""

    def __init__(self, limit: int):
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self.done: Deferred = Deferred(lambda _: self._stop())

    def _stop(self) -> None:
        body: Any = self.transport  # the response body's IPushProducer
        if body is not None:
            body.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self.done.errback(AnswerTooLargeError(f"answer longer than {self._limit} bytes"))
            self._stop()
            return
        self._parts.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        if self.done.called:
            return
        if isinstance(reason, Failure) and not reason.check(ResponseDone, PotentialDataLoss):
            self.done.errback(reason)
        else:
            self.done.callback(b"".join(self._parts))


def _uri(url: str) -> bytes:
    """``url`` as the ASCII bytes ``Agent`` takes: an IDN host in IDNA, an IPv6 literal in
    brackets, other characters percent-encoded (escapes already there are kept)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host.encode("idna").decode("ascii")
    port = f":{parts.port}" if parts.port is not None else ""
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = f"?{quote(parts.query, safe='/%:@!$&()*+,;=?-._~')}" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{path}{query}".encode("ascii")


class OutboundClient:
    """Requests to checked addresses (see the module docstring); no redirects followed."""

    def __init__(
        self, reactor: Any, allow_private: bool = False, connect_timeout: float = CONNECT_TIMEOUT
    ):
        self._reactor = reactor
        self._agent = Agent.usingEndpointFactory(
            reactor, _CheckedEndpoints(reactor, allow_private, connect_timeout)
        )

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        timeout: float | None = None,
    ) -> Deferred:
        """Fire with ``(status code, body bytes)``; cancelled after ``timeout`` s if given."""
        d = Deferred.fromCoroutine(self._request(method, url, headers or {}, body))
        if timeout is not None:
            d.addTimeout(timeout, self._reactor)
        return d

    async def _request(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        response = await self._agent.request(
            method.encode("ascii"),
            _uri(url),
            Headers({name: [value] for name, value in headers.items()}),
            _Body(body) if body else None,
        )
        collect = _Collect(MAX_ANSWER)
        response.deliverBody(collect)
        return response.code, await collect.done


class JsonClient(OutboundClient):
    """POSTs JSON bodies; each answer is ``(status code, body bytes)``."""

    def post(self, url: str, body: bytes, timeout: float | None = None) -> Deferred:
        """Fire with ``(code, body)``; cancelled after ``timeout`` seconds when given."""
        return self.request("POST", url, _JSON, body, timeout)

    def status_poster(self) -> Callable[[str, bytes], Deferred]:
        """``post(url, body)`` firing with the status code alone (webhook deliveries)."""
        return lambda url, body: self.post(url, body).addCallback(lambda answer: answer[0])

    def timed_poster(self) -> Callable[[str, bytes, float], Deferred]:
        """``post(url, body, timeout)`` firing with ``(code, body)`` (directory pings)."""
        return self.post
