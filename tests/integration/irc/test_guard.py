"""The outbound guard against a real ngircd on loopback: refused the same whatever the port's
state (and nothing dialled), allowed by ``SOCKETHUB_FETCH_ALLOWLIST``, pinned with TLS
checking the name the client gave."""

from __future__ import annotations

import pytest

from platform_runners.address_guard import OutboundGuard
from platform_runners.irc.client import IrcClient, IrcError
from platform_runners.platform import PlatformError
from sockethub.devstack.processes import free_port
from tests.integration.irc.harness import Harness, new_nick
from tests.integration.irc.ngircd import Ngircd
from tests.integration.irc.test_protocol import config

pytestmark = pytest.mark.timeout(120)

REFUSED = "blocked non-public address 127.0.0.1"


async def test_without_the_allowlist_every_loopback_port_reads_the_same(
    ngircd: Ngircd, listener: tuple[int, list[int]]
) -> None:
    open_port, accepted = listener
    h = Harness(ngircd, allowlist="")
    errors: list[str] = []
    try:
        for port in (ngircd.port, open_port, free_port()):
            nick = new_nick()
            h.credentials_for(nick, nick, port=port)
            with pytest.raises(PlatformError) as caught:
                await h.call(nick, "connect", nick)
            errors.append(str(caught.value))
    finally:
        await h.platform.stop()
    assert errors == [REFUSED] * 3
    assert accepted == []  # refused before dialling
    assert not h.platform.pool.slots


async def test_with_the_allowlist_the_same_server_works(ngircd: Ngircd) -> None:
    h = Harness(ngircd)  # allows 127.0.0.1/32
    nick = new_nick()
    h.credentials_for("s1", nick)
    try:
        await h.call("s1", "connect", nick)
        assert h.platform.pool.slots
    finally:
        await h.platform.stop()


async def test_a_name_is_pinned_to_its_vetted_address_and_tls_checks_the_name(
    ngircd: Ngircd,
) -> None:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    guard = OutboundGuard.from_allowlist("127.0.0.1/32", resolver)
    # The name exists only in this resolver: the connection can only go to the vetted address.
    plain = config(ngircd, host="irc.example.test", guard=guard)
    client = IrcClient(plain)
    await client.connect()
    await client.close("bye")
    # The certificate names 127.0.0.1 only: TLS checking "irc.example.test" must fail.
    named = config(
        ngircd,
        host="irc.example.test",
        port=ngircd.tls_port,
        secure=True,
        ca_file=str(ngircd.cert),
        guard=guard,
    )
    with pytest.raises(IrcError, match=r"irc\.example\.test:\d+: TLS failed"):
        await IrcClient(named).connect()
    assert asked == ["irc.example.test", "irc.example.test"]
    refusing = config(ngircd, host="irc.example.test", guard=OutboundGuard(resolver=resolver))
    with pytest.raises(IrcError, match=f"^{REFUSED}$"):
        await IrcClient(refusing).connect()
