"""The outbound guard that HTTP, IRC and XMPP share: vetted before any dial, pinned after.

No network here: resolvers are fakes, and the dial functions fail the test if reached.
Only loopback addresses appear, allowed or refused.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from platform_runners.address_guard import (
    BlockedAddressError,
    OutboundGuard,
    ResolveError,
)
from platform_runners.irc.client import ConnectionLost, IrcClient, IrcConfig
from platform_runners.irc.platform import IrcPlatform
from platform_runners.irc.platform import config_from as irc_config_from
from platform_runners.persistent_state import MemoryStateStore
from platform_runners.settings import IrcSettings
from platform_runners.xmpp.client import XmppClient, XmppError
from platform_runners.xmpp.config import XmppSettings, plaintext_allowed
from platform_runners.xmpp.config import config_from as xmpp_config_from
from platform_runners.xmpp.platform import XmppPlatform
from tests.fixtures.persistent import RecordingEmitter, runner_parts


class CountingResolver:
    """Answers every name with ``addresses`` and counts the questions."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.addresses)


async def test_a_loopback_literal_is_refused_without_asking_the_resolver() -> None:
    resolver = CountingResolver("127.0.0.1")
    guard = OutboundGuard.from_allowlist("", resolver)
    with pytest.raises(BlockedAddressError, match=r"^blocked non-public address 127\.0\.0\.1$"):
        await guard.vet("127.0.0.1", 6667)
    with pytest.raises(BlockedAddressError, match=r"^blocked non-public address ::1$"):
        await guard.vet("[::1]", 5222)
    assert resolver.calls == []


async def test_a_name_is_resolved_once_and_every_address_checked() -> None:
    resolver = CountingResolver("127.0.0.2", "127.0.0.3")
    only_two = OutboundGuard.from_allowlist("127.0.0.2/32", resolver)
    # One allowed address does not carry a refused one: which one a client reaches is not ours.
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.3$"):
        await only_two.vet("chat.example.test", 6697)
    both = OutboundGuard.from_allowlist("127.0.0.0/29", resolver)
    assert await both.vet("chat.example.test", 6697) == ["127.0.0.2", "127.0.0.3"]
    assert resolver.calls == [("chat.example.test", 6697)] * 2


async def test_duplicates_and_zones_are_folded_and_no_answer_is_an_error() -> None:
    guard = OutboundGuard.from_allowlist("::1/128", CountingResolver("::1", "::1%lo"))
    assert await guard.vet("chat.example.test", 5222) == ["::1"]
    with pytest.raises(ResolveError, match=r"could not resolve host chat\.example\.test"):
        await OutboundGuard.from_allowlist("", CountingResolver()).vet("chat.example.test", 1)

    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(ResolveError, match="could not resolve host"):
        await OutboundGuard(resolver=nxdomain).vet("chat.example.test", 1)


async def test_irc_refuses_before_dialling(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_dial(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("dialled a refused address")

    monkeypatch.setattr(asyncio, "open_connection", no_dial)
    for port in (6667, 6697):
        config = IrcConfig(host="127.0.0.1", port=port, nick="n", username="n", realname="n")
        with pytest.raises(ConnectionLost) as caught:
            await IrcClient(config).connect()
        assert str(caught.value) == "blocked non-public address 127.0.0.1"


async def test_irc_dials_the_vetted_address_with_the_name_for_tls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dialled: list[tuple[Any, ...]] = []

    async def record(host: str, port: int, **kwargs: Any) -> Any:
        dialled.append((host, port, kwargs.get("server_hostname")))
        raise ConnectionRefusedError

    monkeypatch.setattr(asyncio, "open_connection", record)
    guard = OutboundGuard.from_allowlist("127.0.0.0/8", CountingResolver("127.0.0.2", "127.0.0.3"))
    config = IrcConfig(
        host="irc.example.test", port=6697, nick="n", username="n", realname="n", secure=True
    )
    config.guard = guard
    with pytest.raises(ConnectionLost, match=r"irc\.example\.test:6697: connection refused"):
        await IrcClient(config).connect()
    assert dialled == [
        ("127.0.0.2", 6697, "irc.example.test"),
        ("127.0.0.3", 6697, "irc.example.test"),
    ]


async def test_xmpp_refuses_before_building_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_stream(self: XmppClient) -> Any:
        raise AssertionError("dialled a refused address")

    monkeypatch.setattr(XmppClient, "_stream", no_stream)
    creds = {"userAddress": "a@localhost", "password": "pw", "server": "xmpp://127.0.0.1:5222"}
    config = xmpp_config_from(creds, XmppSettings.model_validate({}))
    client = XmppClient(config, on_stanza=lambda _: None, on_lost=lambda _: None)
    with pytest.raises(XmppError, match=r"^blocked non-public address 127\.0\.0\.1$"):
        await client.open()


def test_plaintext_allowlist_names_hosts_or_host_ports() -> None:
    assert not plaintext_allowed("127.0.0.1", 5222, "")
    assert plaintext_allowed("LocalHost", 5222, " other.test , localhost")
    assert plaintext_allowed("127.0.0.1", 5222, "127.0.0.1:5222")
    assert not plaintext_allowed("127.0.0.1", 5223, "127.0.0.1:5222")
    creds = {"userAddress": "a@localhost", "password": "pw", "server": "127.0.0.1:5222"}
    assert not xmpp_config_from(creds, XmppSettings.model_validate({})).allow_plaintext
    allowing = XmppSettings.model_validate({"allow_plaintext": "127.0.0.1"})
    assert xmpp_config_from(creds, allowing).allow_plaintext


def test_the_platforms_guard_with_the_runner_allowlist() -> None:
    settings, irc_descriptor = runner_parts("irc", "127.0.0.1/32")
    irc = IrcPlatform(settings, irc_descriptor, RecordingEmitter(), store=MemoryStateStore())
    _, xmpp_descriptor = runner_parts("xmpp")
    xmpp = XmppPlatform(settings, xmpp_descriptor, RecordingEmitter(), store=MemoryStateStore())
    assert [str(n) for n in irc.guard.allowlist] == ["127.0.0.1/32"]
    assert xmpp.guard.allowlist == irc.guard.allowlist
    creds = {"object": {"nick": "n", "server": "127.0.0.1"}}
    assert irc_config_from(creds, {}, IrcSettings.model_validate({}), irc.guard).guard is irc.guard
    assert irc_config_from(creds, {}, IrcSettings.model_validate({})).guard.allowlist == ()
