"""Who is asking, and how long they must wait after failing to authenticate.

Every credential the server checks (the admin password and the RTMP stream key, which are
one secret, and access tokens) counts a wrong guess against the client's address. After
``free`` failures the address is refused (HTTP 429 with ``Retry-After``, or an RTMP
refusal) for a penalty that doubles with each further failure, up to ``max_penalty``,
whatever it offers meanwhile: refusing without checking, rather than sleeping, keeps
parallel guesses from slipping through. Nothing but time forgives: a success does not
clear failures (an owner logged in from a shared address would otherwise reset a guesser
there), and failures are forgotten ``forget_after`` seconds after the last one.

The penalty is per address, so a stranger elsewhere cannot lock the owner out; an IPv6
/64 counts as one address, since one subscriber holds the whole of it. Behind a reverse
proxy, ``TrustedProxies`` names the proxies whose ``X-Forwarded-For``/``Forwarded`` say
who the client is; from anyone else those headers are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(text: str) -> _Address | None:
    """An address from a peer or a header (``[v6]``, a port or a zone may follow)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_key(host: str) -> str:
    """What a penalty or a connection share applies to: an IPv4 address or an IPv6 /64."""
    ip = parse_ip(host)
    if ip is None:
        return host
    if ip.version == 6:
        return f"{ipaddress.IPv6Network((ip, 64), strict=False).network_address}/64"
    return str(ip)


def parse_networks(values: Iterable[str]) -> tuple[_Network, ...]:
    """``--trustedproxy`` values (CIDR or single addresses); ValueError names a bad one."""
    networks = []
    for value in values:
        for item in value.replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as e:
                raise ValueError(f"not an address or network: {item!r}") from e
    return tuple(networks)


def _forwarded_for(value: str) -> list[str]:
    """The ``for=`` of each element of an RFC 7239 ``Forwarded`` header, in order."""
    hops = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, found = pair.partition("=")
            if name.strip().lower() == "for":
                hops.append(found)
    return hops


class TrustedProxies:
    """The reverse proxies whose word about the client's address is taken."""

    def __init__(self, networks: Iterable[str] = ()):
        self.networks = parse_networks(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, ip: _Address) -> bool:
        return any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str | None, forwarded: str | None) -> str:
        """The client's address: ``peer`` itself unless it is a trusted proxy; then the
        nearest hop that is not one, read from the right of ``X-Forwarded-For`` (each
        proxy appends who it heard from), else of ``Forwarded``. A hop that is not an
        address (``unknown``, obfuscated, garbage) stops the walk at the proxy that
        reported it."""
        ip = parse_ip(peer)
        if ip is None or not self.networks or not self.trusts(ip):
            return peer
        if forwarded_for is not None:
            hops = forwarded_for.split(",")
        elif forwarded is not None:
            hops = _forwarded_for(forwarded)
        else:
            return peer
        for hop in reversed(hops):
            hop_ip = parse_ip(hop)
            if hop_ip is None:
                break
            ip = hop_ip
            if not self.trusts(ip):
                break
        return str(ip)


class AuthThrottle:
    def __init__(
        self,
        now: Callable[[], float],
        free: int = 5,
        base_penalty: float = 1.0,
        max_penalty: float = 300.0,
        forget_after: float = 900.0,
        max_tracked: int = 100_000,
        proxies: TrustedProxies | None = None,
    ):
        self._now = now
        self._free = free
        self._base = base_penalty
        self._max = max_penalty
        self._forget = forget_after
        self._max_tracked = max_tracked
        #: whose forwarding headers name the client (``--trustedproxy``)
        self.proxies = proxies if proxies is not None else TrustedProxies()
        # address key -> (failures, last failure time, blocked until)
        self._state: dict[str, tuple[int, float, float]] = {}
        #: every failure counted since start (for metrics)
        self.failures = 0

    def retry_after(self, address: str) -> float:
        """Seconds this address must still wait; 0 when it may try."""
        key = address_key(address)
        entry = self._state.get(key)
        if entry is None:
            return 0.0
        failures, last, blocked_until = entry
        now = self._now()
        if now - last > self._forget:
            del self._state[key]
            return 0.0
        return max(0.0, blocked_until - now)

    def failed(self, address: str) -> None:
        """A wrong credential from ``address`` (any kind: they share one count)."""
        self.failures += 1
        key = address_key(address)
        now = self._now()
        failures, last, _ = self._state.get(key, (0, now, now))
        if now - last > self._forget:
            failures = 0
        failures += 1
        blocked_until = now
        if failures > self._free:
            doublings = min(failures - self._free - 1, 30)
            blocked_until = now + min(self._max, self._base * 2**doublings)
        if key not in self._state and len(self._state) >= self._max_tracked:
            self._evict(now)
        self._state[key] = (failures, now, blocked_until)

    def _evict(self, now: float) -> None:
        stale = [a for a, (_, last, _) in self._state.items() if now - last > self._forget]
        for address in stale or list(self._state)[: len(self._state) // 10 + 1]:
            del self._state[address]
