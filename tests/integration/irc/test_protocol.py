"""The protocol layer against a real ngircd: registration, errors, commands, reconnection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from platform_runners.address_guard import OutboundGuard
from platform_runners.irc.client import IrcClient, IrcConfig, IrcError
from platform_runners.irc.connection import IrcConnection
from platform_runners.irc.message import Message
from tests.fixtures.persistent import LOOPBACK_ALLOWLIST
from tests.integration.irc.ngircd import Ngircd


def nick() -> str:
    return f"t{uuid.uuid4().hex[:7]}"


def config(server: Ngircd, name: str | None = None, **extra: object) -> IrcConfig:
    name = name or nick()
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "nick": name,
        "username": name,
        "realname": name,
        "timeout": 20.0,
        "guard": OutboundGuard.from_allowlist(LOOPBACK_ALLOWLIST),
    }
    values.update(extra)
    return IrcConfig(**values)  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling a plain list
            await asyncio.sleep(0.05)


def connection(server: Ngircd, seen: list[Message], **extra: Any) -> IrcConnection:
    return IrcConnection(
        config(server, **extra),
        on_message=seen.append,
        on_lost=lambda reason: seen.append(Message("LOST", (reason,))),
        on_back=lambda: seen.append(Message("BACK")),
        on_failed=lambda reason: seen.append(Message("FAILED", (reason,))),
        rooms=lambda: ["#rejoin"],
        reconnect_window=30.0,
    )


async def test_register_join_talk_names_topic_nick(ngircd: Ngircd) -> None:
    seen_a: list[Message] = []
    seen_b: list[Message] = []
    a, b = connection(ngircd, seen_a), connection(ngircd, seen_b)
    await a.open()
    await b.open()
    try:
        await a.join("#proto")
        await b.join("#proto")
        assert sorted(await a.names("#proto")) == sorted([a.nick, b.nick])
        await a.say("PRIVMSG", "#proto", "hello there")
        await until(lambda: any(m.command == "PRIVMSG" for m in seen_b))
        got = next(m for m in seen_b if m.command == "PRIVMSG")
        assert (got.nick, got.params) == (a.nick, ("#proto", "hello there"))
        await a.set_topic("#proto", "a new topic")
        await until(lambda: any(m.command == "TOPIC" for m in seen_b))
        new = nick()
        assert await a.change_nick(new) == new
        await until(lambda: any(m.command == "NICK" and m.param(0) == new for m in seen_b))
        await a.part("#proto")
        await until(lambda: any(m.command == "PART" for m in seen_b))
    finally:
        await a.close()
        await b.close()


async def test_nick_in_use_is_a_clear_error(ngircd: Ngircd) -> None:
    taken = nick()
    first = IrcClient(config(ngircd, taken))
    await first.connect()
    try:
        with pytest.raises(IrcError, match=f"nickname {taken} is already in use"):
            await IrcClient(config(ngircd, taken)).connect()
    finally:
        await first.close("bye")


async def test_server_password(ngircd_password: Ngircd) -> None:
    with pytest.raises(IrcError, match=r"password incorrect|Bad password"):
        await IrcClient(config(ngircd_password, password="wrong")).connect()
    good = IrcClient(config(ngircd_password, password="letmein"))
    await good.connect()
    await good.close("bye")


async def test_sasl_refused_when_the_server_has_none(ngircd: Ngircd) -> None:
    with pytest.raises(IrcError, match="does not offer SASL"):
        await IrcClient(config(ngircd, password="pw", sasl=True)).connect()


async def test_tls(ngircd: Ngircd) -> None:
    client = IrcClient(config(ngircd, port=ngircd.tls_port, secure=True, ca_file=str(ngircd.cert)))
    await client.connect()
    await client.close("bye")
    with pytest.raises(IrcError, match="TLS failed"):
        await IrcClient(config(ngircd, port=ngircd.tls_port, secure=True)).connect()


async def test_sending_to_nobody_fails(ngircd: Ngircd) -> None:
    seen: list[Message] = []
    conn = connection(ngircd, seen)
    await conn.open()
    try:
        with pytest.raises(IrcError, match="cannot send to nobody"):
            await conn.say("PRIVMSG", "nobody", "hi")
    finally:
        await conn.close()


async def test_server_restart_reconnects_and_rejoins(
    ngircd_factory: Callable[[], Ngircd],
) -> None:
    server = ngircd_factory()
    seen: list[Message] = []
    conn = connection(server, seen)
    await conn.open()
    try:
        await conn.join("#rejoin")
        server.stop()
        await until(lambda: any(m.command == "LOST" for m in seen))
        server.start()
        await until(lambda: any(m.command == "BACK" for m in seen), within=40)
        assert len(await conn.names("#rejoin")) == 1
    finally:
        await conn.close()
