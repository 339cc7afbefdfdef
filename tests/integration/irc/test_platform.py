"""The irc platform (verbs, fan-out, sharing, grace, restoration) against a real ngircd."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from platform_runners.platform import PlatformError
from tests.integration.irc.harness import Harness, new_nick
from tests.integration.irc.ngircd import Ngircd


async def until(predicate: Callable[[], bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling plain lists
            await asyncio.sleep(0.05)


def sent_to(h: Harness, session: str) -> bool:
    return any(a["type"] == "send" for a in h.sink.of(session))


def message(content: str) -> dict[str, str]:
    return {"type": "message", "content": content}


async def test_two_identities_talk_in_a_channel(ngircd: Ngircd) -> None:
    h = Harness(ngircd)
    alice, bob = new_nick(), new_nick()
    h.credentials_for("s1", alice)
    h.credentials_for("s2", bob)
    try:
        with pytest.raises(PlatformError, match="join called on uninitialized platform"):
            await h.call("s1", "join", alice, target=h.room("#plat"))
        await h.call("s1", "connect", alice)
        await h.call("s2", "connect", bob)
        await h.call("s1", "join", alice, target=h.room("#plat"))
        await h.call("s2", "join", bob, target=h.room("#plat"))
        await h.call("s1", "send", alice, target=h.room("#plat"), object=message("hi bob"))
        await h.call("s1", "send", alice, target=h.room("#plat"), object=message("/me waves"))
        await h.call("s1", "send", alice, target=h.room("#plat"), object=message("/notice psst"))

        def got(kind: str) -> list[dict[str, Any]]:
            return [
                a for a in h.sink.of("s2") if a["type"] == "send" and a["object"]["type"] == kind
            ]

        await until(lambda: bool(got("message") and got("me") and got("notice")))
        hi = got("message")[0]
        assert hi["actor"] == h.actor(alice)
        assert hi["target"] == h.room("#plat")
        assert hi["object"] == {"type": "message", "content": "hi bob"}
        assert got("me")[0]["object"] == {"type": "me", "content": "waves"}
        assert got("notice")[0]["object"] == {"type": "notice", "content": "psst"}

        result = await h.call("s1", "query", alice, target=h.room("#plat"),
                              object={"type": "attendance"})  # fmt: skip
        assert result is not None
        assert result["actor"]["name"] == "#plat"
        assert sorted(result["object"]["members"]) == sorted([alice, bob])

        await h.call("s1", "update", alice, target=h.room("#plat"),
                     object={"type": "topic", "content": "new topic"})  # fmt: skip
        renamed = new_nick()
        await h.call("s2", "update", bob, target=h.actor(renamed), object={"type": "address"})
        await until(
            lambda: any(
                a["type"] == "update" and a["object"] == {"type": "address"}
                for a in h.sink.of("s1")
            )
        )
        await until(
            lambda: any(
                a["object"] == {"type": "topic", "content": "new topic"}
                for a in h.sink.of("s2")
                if a["type"] == "update"
            )
        )
        await h.call("s2", "leave", bob, target=h.room("#plat"))
        await until(lambda: any(a["type"] == "leave" for a in h.sink.of("s1")))
        with pytest.raises(PlatformError, match="not first joined"):
            await h.call("s2", "send", bob, target=h.room("#plat"), object=message("x"))
        await h.call("s2", "disconnect", bob)
        with pytest.raises(PlatformError, match="send called on uninitialized platform"):
            await h.call("s2", "send", bob, target=h.room("#plat"), object=message("x"))
    finally:
        await h.platform.stop()


async def test_nick_clash_and_bad_password(ngircd: Ngircd, ngircd_password: Ngircd) -> None:
    h = Harness(ngircd)
    nick = new_nick()
    h.credentials_for("s1", nick)
    h.credentials_for("s2", nick)
    try:
        await h.call("s1", "connect", nick)
        with pytest.raises(PlatformError, match=f"nickname {nick} is already in use"):
            await h.call("s2", "connect", nick)
    finally:
        await h.platform.stop()
    p = Harness(ngircd_password)
    p.credentials_for("s3", nick, password="wrong", sasl=False)
    with pytest.raises(PlatformError, match="Bad password"):
        await p.call("s3", "connect", nick)
    assert not p.platform.pool.slots


async def test_shared_connection_fans_out_and_closes_after_grace(ngircd_password: Ngircd) -> None:
    h = Harness(ngircd_password, grace=1.0)
    nick, other = new_nick(), new_nick()
    for session in ("s1", "s2"):  # identical secret-bearing credentials: one connection
        h.credentials_for(session, nick, password="letmein", sasl=False)
    h.credentials_for("s3", other, password="letmein", sasl=False)
    try:
        await h.call("s1", "connect", nick)
        await h.call("s2", "connect", nick)
        assert len(h.platform.pool.slots) == 1
        await h.call("s1", "join", nick, target=h.room("#shared"))
        await h.call("s3", "connect", other)
        await h.call("s3", "join", other, target=h.room("#shared"))
        await h.call("s3", "send", other, target=h.room("#shared"), object=message("to both"))
        for session in ("s1", "s2"):
            await until(partial(sent_to, h, session))
        routes = {e.reply_route for e in h.sink.events if e.session_id in ("s1", "s2")}
        assert routes == {"route-s1", "route-s2"}
        await h.platform.session_closed("s1")
        await h.platform.session_closed("s2")
        assert len(h.platform.pool.slots) == 2
        await until(lambda: any(a["type"] == "leave" for a in h.sink.of("s3")), within=15)
        assert len(h.platform.pool.slots) == 1
        assert len(h.store.records.get(0, {})) == 1  # the closed one was tombstoned
    finally:
        await h.platform.stop()


async def test_another_runner_restores_connection_and_rooms(ngircd: Ngircd) -> None:
    first = Harness(ngircd)
    nick, watcher = new_nick(), new_nick()
    first.credentials_for("s1", nick)
    first.credentials_for("w", watcher)
    await first.call("s1", "connect", nick, partition=2)
    await first.call("s1", "join", nick, partition=2, target=first.room("#restore"))
    await first.call("w", "connect", watcher, partition=1)
    await first.call("w", "join", watcher, partition=1, target=first.room("#restore"))
    await first.platform.partitions_revoked({2})  # the hand-over: closed, not forgotten
    await until(lambda: any(a["type"] == "leave" for a in first.sink.of("w")))

    second = Harness(ngircd, store=first.store, credentials=first.credentials)
    try:
        await second.platform.partitions_assigned({2})
        await until(lambda: any(a["type"] == "connect" for a in second.sink.of("s1")))
        note = next(a for a in second.sink.of("s1") if a["type"] == "connect")
        assert note["object"]["type"] == "note"
        await second.call("s1", "send", nick, partition=2, target=second.room("#restore"),
                          object=message("back again"))  # fmt: skip
        await until(
            lambda: any(
                a["type"] == "send" and a["object"]["content"] == "back again"
                for a in first.sink.of("w")
            )
        )
    finally:
        await second.platform.stop()
        await first.platform.stop()


async def test_restoration_without_credentials_tells_the_session(ngircd: Ngircd) -> None:
    first = Harness(ngircd)
    nick = new_nick()
    first.credentials_for("s1", nick)
    await first.call("s1", "connect", nick, partition=1)
    await first.platform.partitions_revoked({1})
    second = Harness(ngircd, store=first.store)  # no credentials in its "Redis"
    try:
        await second.platform.partitions_assigned({1})
        await until(lambda: any(a["type"] == "error" for a in second.sink.of("s1")))
        error = next(a for a in second.sink.of("s1") if a["type"] == "error")
        assert "credentials not found for irc:" in error["error"]
        assert not first.store.records.get(1)
    finally:
        await second.platform.stop()
        await first.platform.stop()
