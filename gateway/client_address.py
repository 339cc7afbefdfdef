"""The client's address behind trusted proxies, and the key limits count it under.

A proxy appends the address it received a request from to ``X-Forwarded-For`` (or to
RFC 7239 ``Forwarded``); whatever stands left of its entry came from the client and may
be forged. So the header is believed only when the TCP peer is a trusted proxy, and it is
read from the right: the first entry that is not itself a trusted proxy is the client.
Only one header is read (a setting): a proxy that appends to one passes the other on
untouched, so reading it would believe the client's own text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, Literal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]

IPV6_PREFIX = 64
"""IPv6 clients are counted per /64: one subscriber usually holds a whole /64."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); ValueError on a bad one."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: bare, ``a.b.c.d:port``, ``[v6]`` or ``[v6]:port``,
    optionally quoted; None for ``unknown``, obfuscated names and anything else."""
    value = text.strip().strip('"').strip()
    if value.startswith("["):
        end = value.find("]")
        value = value[1:end] if end > 0 else ""
    elif value.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` parameters of RFC 7239 ``Forwarded`` header values, left to right
    (an element without one yields "", which names no address)."""
    found = []
    for value in values:
        for element in value.split(","):
            node = ""
            for pair in element.split(";"):
                name, _, text = pair.partition("=")
                if name.strip().lower() == "for":
                    node = text
            found.append(node)
    return found


def address_key(address: str) -> str:
    """The key the per-address cap and rate blocks count ``address`` under: itself for
    IPv4, its /64 network for IPv6."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return address if parsed is None else str(parsed)


class ClientAddress:
    """Finds the client's address from the TCP peer and the forwarding header."""

    def __init__(
        self, trusted: Iterable[Network], header: ForwardedHeader = "x-forwarded-for"
    ) -> None:
        self._trusted = tuple(trusted)
        self._header = header.encode()

    def trusts(self, address: Address) -> bool:
        return any(address.version == n.version and address in n for n in self._trusted)

    def resolve(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The client's address: ``peer`` unless it is a trusted proxy; then the rightmost
        entry of the header that is not a trusted proxy. An entry that is no address
        (``unknown``, an obfuscated name, garbage) ends the walk at the last trusted hop,
        so such clients share that hop's count rather than escape the limits."""
        hop = parse_address(peer)
        if hop is None or not self._trusted or not self.trusts(hop):
            return peer
        values = [v.decode("latin-1") for k, v in headers if k.lower() == self._header]
        if self._header == b"forwarded":
            entries = forwarded_for(values)
        else:
            entries = [e for value in values for e in value.split(",")]
        for entry in reversed(entries):
            address = parse_address(entry)
            if address is None:
                break
            hop = address
            if not self.trusts(address):
                break
        return str(hop)

    def from_environ(self, environ: dict[str, Any]) -> str:
        """The client's address for an engine.io/ASGI request environ."""
        scope = environ.get("asgi.scope") or {}
        client = scope.get("client")
        peer = str(client[0]) if client else str(environ.get("REMOTE_ADDR", "unknown"))
        return self.resolve(peer, scope.get("headers") or ())
