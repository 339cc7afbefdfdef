"""From Sockethub's XMPP credentials object to where and how to connect.

``server`` may be ``xmpp://host:port``, ``xmpps://host:port`` (direct TLS),
``host:port`` or ``host``; an explicit ``port`` wins over the one in ``server``.
Without ``server`` the JID's domain is dialled directly on 5222: no DNS SRV
lookup, so a deployment decides exactly where credentials are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from platform_runners.address_guard import OutboundGuard
from platform_runners.settings import XmppSettings as XmppSettings  # re-exported

DEFAULT_PORT = 5222
DEFAULT_TLS_PORT = 5223


class ConfigError(ValueError):
    """Credentials that cannot name a server or an account (the text is client-facing)."""


@dataclass(frozen=True)
class XmppConfig:
    jid: str
    """The bare account address, ``user@domain``."""
    password: str = field(repr=False)
    resource: str
    host: str
    port: int
    direct_tls: bool = False
    tls_verify: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    allow_plaintext: bool = False
    """The password may go to this server without TLS (``SOCKETHUB_XMPP_ALLOW_PLAINTEXT``)."""
    guard: OutboundGuard = field(default_factory=OutboundGuard, repr=False, compare=False)
    """Vets the server's addresses before any connection (the runner's allow-list)."""

    @property
    def domain(self) -> str:
        return self.jid.rsplit("@", 1)[1]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _server(server: str) -> tuple[str, int | None, bool]:
    """(host, port or None, direct TLS) from the ``server`` credential."""
    text = server.strip()
    if "://" not in text:
        text = f"xmpp://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("xmpp", "xmpps") or not parts.hostname:
        raise ConfigError(f"cannot use XMPP server {server!r}: expected xmpp://host:port")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"cannot use XMPP server {server!r}: bad port") from None
    return parts.hostname, port, parts.scheme == "xmpps"


def plaintext_allowed(host: str, port: int, allowed: str) -> bool:
    """Whether ``allowed`` (``host`` or ``host:port`` items, comma-separated) names this server."""
    names = {item.strip().lower() for item in allowed.split(",") if item.strip()}
    return host.lower() in names or f"{host.lower()}:{port}" in names


def config_from(
    credentials: dict[str, Any], options: XmppSettings, guard: OutboundGuard | None = None
) -> XmppConfig:
    """The connection settings of a credentials activity (or its bare ``object``)."""
    obj = credentials.get("object", credentials)
    if not isinstance(obj, dict):
        raise ConfigError("credentials have no object")
    address = str(obj.get("userAddress") or "")
    local, _, domain = address.partition("@")
    if not local or not domain or "/" in domain:
        raise ConfigError("userAddress must be a JID of the form user@server")
    host, port, direct_tls = domain, None, False
    if obj.get("server"):
        host, port, direct_tls = _server(str(obj["server"]))
    if obj.get("port"):
        port = int(obj["port"])
    if port is None:
        port = DEFAULT_TLS_PORT if direct_tls else DEFAULT_PORT
    return XmppConfig(
        jid=f"{local}@{domain}",
        password=str(obj.get("password") or ""),
        resource=str(obj.get("resource") or "sockethub"),
        host=host,
        port=port,
        direct_tls=direct_tls,
        tls_verify=options.tls_verify,
        ca_file=options.ca_file,
        timeout=options.timeout,
        allow_plaintext=plaintext_allowed(host, port, options.allow_plaintext),
        guard=guard or OutboundGuard(),
    )
