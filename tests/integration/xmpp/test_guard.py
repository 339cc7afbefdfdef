"""The outbound guard and the no-TLS refusal against real Prosody servers on loopback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sockethub.devstack.processes import free_port
from tests.integration.xmpp.conftest import PASSWORD, Accounts
from tests.integration.xmpp.harness import Harness
from tests.integration.xmpp.prosody import Prosody

pytestmark = pytest.mark.timeout(120)

REFUSED = "blocked non-public address 127.0.0.1"


async def test_without_the_allowlist_every_loopback_port_reads_the_same(
    prosody: Prosody, accounts: Accounts, listener: tuple[int, list[int]]
) -> None:
    open_port, accepted = listener
    alice = accounts.new("alice")
    h = Harness(prosody, allowlist="")
    await h.platform.start()
    errors: list[str] = []
    try:
        for port in (prosody.port, open_port, free_port()):
            session = f"s{port}"
            h.credentials_for(session, alice, PASSWORD, server=f"xmpp://127.0.0.1:{port}")
            errors.append(await h.error_of(session, "connect", alice))
    finally:
        await h.close()
    assert errors == [REFUSED] * 3
    assert accepted == []  # refused before dialling


async def test_with_the_allowlist_the_same_server_works(
    prosody: Prosody, accounts: Accounts
) -> None:
    alice = accounts.new("alice")
    h = Harness(prosody)  # allows 127.0.0.1/32
    await h.platform.start()
    try:
        await h.login("s1", alice, PASSWORD)
        assert h.platform.pool.slots
    finally:
        await h.close()


async def test_a_server_without_tls_never_gets_the_password_unless_listed(
    prosody_factory: Callable[[], Prosody],
) -> None:
    server = prosody_factory()
    server.plaintext = True
    server.write_config()
    server.start()
    alice = server.register("alice", PASSWORD)
    h = Harness(server)
    await h.platform.start()
    try:
        h.credentials_for("s1", alice, PASSWORD)
        error = await h.error_of("s1", "connect", alice)
    finally:
        await h.close()
    assert error == (
        f"127.0.0.1:{server.port} offers no TLS: refusing to send the password unencrypted"
    )
    listed = Harness(server, allow_plaintext=f"127.0.0.1:{server.port}")
    await listed.platform.start()
    try:
        await listed.login("s2", alice, PASSWORD)
        assert listed.platform.pool.slots
    finally:
        await listed.close()
