"""The one outbound address guard for every connection a runner opens (HTTP, IRC, XMPP).

A client names the host a runner dials, so without a guard a runner would be
a way into the deployment's own network (internal chat servers, metadata
services) and, through its error texts, a port scanner. The guard:

* resolves a host name once and classifies every address
  (:func:`classify_address`); one non-public address refuses the connection
  unless it lies in the allow-list (``SOCKETHUB_FETCH_ALLOWLIST``);
* refuses before any connection is attempted, with the same text
  (``blocked non-public address <ip>``) whatever state the port is in;
* returns the vetted addresses, which are what the caller connects to
  (pinning: nothing resolves the name again, so DNS rebinding cannot swap
  them), while TLS keeps the original name for SNI and the certificate check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
_BLOCKED_V4: tuple[tuple[str, ipaddress.IPv4Network], ...] = (
    ("unspecified", _V4("0.0.0.0/8")),
    ("private", _V4("10.0.0.0/8")),
    ("carrier-grade NAT", _V4("100.64.0.0/10")),
    ("loopback", _V4("127.0.0.0/8")),
    ("link-local", _V4("169.254.0.0/16")),
    ("private", _V4("172.16.0.0/12")),
    ("IETF protocol assignments", _V4("192.0.0.0/24")),
    ("documentation", _V4("192.0.2.0/24")),
    ("6to4 relay anycast", _V4("192.88.99.0/24")),
    ("private", _V4("192.168.0.0/16")),
    ("benchmarking", _V4("198.18.0.0/15")),
    ("documentation", _V4("198.51.100.0/24")),
    ("documentation", _V4("203.0.113.0/24")),
    ("multicast", _V4("224.0.0.0/4")),
    ("reserved", _V4("240.0.0.0/4")),  # includes broadcast 255.255.255.255
)
_BLOCKED_V6: tuple[tuple[str, ipaddress.IPv6Network], ...] = (
    ("unspecified", _V6("::/128")),
    ("loopback", _V6("::1/128")),
    ("IPv4-compatible (deprecated)", _V6("::/96")),
    ("discard-only", _V6("100::/64")),
    ("local-use NAT64", _V6("64:ff9b:1::/48")),
    ("IETF protocol assignments", _V6("2001::/23")),  # includes Teredo 2001::/32
    ("documentation", _V6("2001:db8::/32")),
    ("unique local (private)", _V6("fc00::/7")),
    ("link-local", _V6("fe80::/10")),
    ("site-local (deprecated)", _V6("fec0::/10")),
    ("multicast", _V6("ff00::/8")),
)
_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")


def classify_address(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None when it is.

    IPv4-mapped (``::ffff:a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``) and 6to4
    (``2002:AABB:CCDD::``) addresses are judged by the IPv4 address they embed.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            reason = classify_address(embedded)
            return None if reason is None else f"{reason} (embedded in IPv6)"
        for reason, net in _BLOCKED_V6:
            if ip in net:
                return reason
        return None if ip.is_global else "non-global"
    for reason, net4 in _BLOCKED_V4:
        if ip in net4:
            return reason
    return None if ip.is_global else "non-global"


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def format_address(ip: IPAddress) -> str:
    """``str(ip)``, but IPv4-mapped addresses keep their dotted form on every Python."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def parse_allowlist(value: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """``"127.0.0.2/32, 10.0.0.0/8"`` (or a list of CIDRs) as networks; bare IPs are /32 or /128."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in items if s.strip())


def is_allowed(ip: IPAddress, allowlist: Sequence[IPNetwork] = ()) -> bool:
    """True when ``ip`` may be fetched from: public, or in the allow-list."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            candidates.append(embedded)
    if any(c in net for c in candidates for net in allowlist if c.version == net.version):
        return True
    return classify_address(ip) is None


class GuardError(Exception):
    """An outbound connection was refused; ``str(exc)`` is the client-facing text."""


class BlockedAddressError(GuardError):
    def __init__(self, ip: str) -> None:
        super().__init__(f"blocked non-public address {ip}")
        self.ip = ip


class ResolveError(GuardError):
    """The host name did not resolve to any address."""


Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses``; the default asks the system resolver once."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class OutboundGuard:
    """The allow-list and resolver one runner vets its outbound connections with."""

    allowlist: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    @classmethod
    def from_allowlist(
        cls, allowlist: str | Iterable[str], resolver: Resolver = system_resolver
    ) -> OutboundGuard:
        """A guard from ``SOCKETHUB_FETCH_ALLOWLIST``-style CIDRs."""
        return cls(parse_allowlist(allowlist), resolver)

    async def vet(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once and check every address; connect only to the list returned.

        Raises :class:`BlockedAddressError` when any address is non-public and
        not allowed (a name that resolves to one good and one bad address is
        refused: which one a client would reach is not ours to guess), and
        :class:`ResolveError` when the name does not resolve.
        """
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                resolved = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise ResolveError(f"could not resolve host {host}: {exc}") from None
            addresses = []
            for text in resolved:
                ip = ipaddress.ip_address(text.split("%", 1)[0])
                if ip not in addresses:
                    addresses.append(ip)
        if not addresses:
            raise ResolveError(f"could not resolve host {host}")
        for ip in addresses:
            if not is_allowed(ip, self.allowlist):
                raise BlockedAddressError(format_address(ip))
        return [str(ip) for ip in addresses]
