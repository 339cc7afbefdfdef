"""The xmpp platform against a real Prosody: chat, rooms, presence, friends, queries, errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from sockethub.devstack.processes import free_port
from tests.fixtures.persistent import said
from tests.integration.xmpp.conftest import PASSWORD, Accounts
from tests.integration.xmpp.harness import Harness
from tests.integration.xmpp.prosody import MUC, Prosody

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def harness(prosody: Prosody) -> AsyncIterator[Harness]:
    h = Harness(prosody)
    await h.platform.start()
    yield h
    await h.close()


def room_name() -> str:
    return f"r{uuid.uuid4().hex[:8]}"


async def test_one_to_one_chat_with_a_correction(harness: Harness, accounts: Accounts) -> None:
    alice, bob = accounts.new("alice"), accounts.new("bob")
    await harness.login("s1", alice, PASSWORD)
    await harness.login("s2", bob, PASSWORD)
    to_bob = {"id": bob, "type": "person"}
    sent = await harness.call(
        "s1", "send", alice, target=to_bob, object={"type": "message", "content": "helo"}
    )
    assert sent is not None
    first_id = sent["object"]["id"]
    got = await harness.sink.wait_for("s2", said("helo"))
    assert got["actor"] == {"type": "person", "id": f"{alice}/test"}
    assert got["target"] == {"type": "person", "id": bob}
    assert got["object"]["id"] == first_id
    fixed = {"type": "message", "content": "hello", "xmpp:replace": {"id": first_id}}
    await harness.call("s1", "send", alice, target=to_bob, object=fixed)
    correction = await harness.sink.wait_for("s2", said("hello"))
    assert correction["object"]["xmpp:replace"] == {"id": first_id}
    await harness.call(
        "s2", "send", bob, target={"id": alice, "type": "person"}, object={"content": "hi!"}
    )
    await harness.sink.wait_for("s1", said("hi!"))


async def test_two_accounts_in_a_room(harness: Harness, accounts: Accounts) -> None:
    alice, bob = accounts.new("alice"), accounts.new("bob")
    room = harness.room(room_name())
    await harness.login("s1", alice, PASSWORD)
    await harness.login("s2", bob, PASSWORD)
    await harness.call("s1", "join", alice, target=room)
    await harness.call("s2", "join", bob, target=room)
    nick_b = bob.split("@")[0]
    joined = await harness.sink.wait_for(
        "s1", lambda e: e.get("type") == "update" and e["actor"]["id"] == f"{room['id']}/{nick_b}"
    )
    assert joined["actor"]["type"] == "room" and joined["object"]["presence"] == "online"
    msg = {"type": "message", "content": "hello room"}
    await harness.call("s1", "send", alice, target=room, object=msg)
    seen = await harness.sink.wait_for("s2", said("hello room"))
    nick_a = alice.split("@")[0]
    assert seen["actor"] == {"type": "person", "id": f"{room['id']}/{nick_a}", "name": nick_a}
    assert seen["target"] == {"type": "room", "id": room["id"]}
    await harness.call("s2", "send", bob, target=room, object={"type": "message", "content": "yo"})
    await harness.sink.wait_for("s1", said("yo"))

    members = await harness.call("s1", "query", alice, target=room, object={"type": "attendance"})
    assert members is not None
    assert members["object"] == {"type": "attendance", "members": sorted([nick_a, nick_b])}
    assert members["actor"] == {"id": room["id"], "type": "room"}
    info = await harness.call("s1", "query", alice, target=room, object={"type": "room-info"})
    assert info is not None
    assert info["object"]["type"] == "room-info"
    assert "http://jabber.org/protocol/muc" in info["object"]["features"]
    assert info["object"]["identities"][0]["category"] == "conference"
    assert info["object"]["roominfo"]["occupants"]["value"] == 2

    await harness.call("s2", "leave", bob, target=room)
    left = await harness.sink.wait_for(
        "s1",
        lambda e: (
            e.get("type") == "update"
            and e["actor"]["id"] == f"{room['id']}/{nick_b}"
            and e["object"]["presence"] == "offline"
        ),
    )
    assert left["actor"]["type"] == "room"
    error = await harness.error_of("s2", "send", bob, target=room, object={"content": "x"})
    assert error == f"cannot send to {room['id']}: join the room first"


async def test_friends_and_presence(harness: Harness, accounts: Accounts) -> None:
    alice, bob = accounts.new("alice"), accounts.new("bob")
    await harness.login("s1", alice, PASSWORD)
    await harness.login("s2", bob, PASSWORD)
    a_person, b_person = {"id": alice, "type": "person"}, {"id": bob, "type": "person"}

    await harness.call("s1", "request-friend", alice, target=b_person)
    asked = await harness.sink.wait_for("s2", lambda e: e.get("type") == "request-friend")
    assert asked["actor"] == {"id": alice, "type": "person"}
    assert asked["target"]["id"] == bob
    await harness.call("s2", "make-friend", bob, target=a_person)
    accepted = await harness.sink.wait_for("s1", lambda e: e.get("type") == "make-friend")
    assert accepted["actor"] == {"id": bob, "type": "person"}
    # make-friend also asks back; accepting that makes the subscription mutual
    await harness.sink.wait_for("s1", lambda e: e.get("type") == "request-friend")
    await harness.call("s1", "make-friend", alice, target=b_person)
    await harness.sink.wait_for("s2", lambda e: e.get("type") == "make-friend")

    away = {"type": "presence", "presence": "away", "content": "at lunch"}
    await harness.call("s1", "update", alice, object=away)
    update = await harness.sink.wait_for(
        "s2",
        lambda e: e.get("type") == "update" and e["object"].get("presence") == "away",
    )
    assert update["actor"]["id"] == f"{alice}/test"
    assert update["object"] == {"type": "presence", "content": "at lunch", "presence": "away"}
    await harness.call("s1", "update", alice, object={"type": "presence", "presence": "offline"})
    await harness.sink.wait_for(
        "s2",
        lambda e: (
            e.get("type") == "update"
            and e["actor"]["id"] == f"{alice}/test"
            and e["object"].get("presence") == "offline"
        ),
    )
    await harness.call("s1", "update", alice, object={"type": "presence", "presence": "online"})

    await harness.call("s1", "remove-friend", alice, target=b_person)
    removed = await harness.sink.wait_for("s2", lambda e: e.get("type") == "remove-friend")
    assert removed["actor"] == {"id": alice, "type": "person"}


async def test_shared_connection_reaches_every_session(
    harness: Harness, accounts: Accounts
) -> None:
    alice, bob = accounts.new("alice"), accounts.new("bob")
    await harness.login("tab1", alice, PASSWORD)
    await harness.login("tab2", alice, PASSWORD)
    assert len(harness.platform.pool.slots) == 1
    await harness.login("s3", bob, PASSWORD)
    await harness.call(
        "s3", "send", bob, target={"id": alice, "type": "person"}, object={"content": "both?"}
    )
    await harness.sink.wait_for("tab1", said("both?"))
    await harness.sink.wait_for("tab2", said("both?"))
    await harness.call("tab1", "disconnect", alice)
    assert len(harness.platform.pool.slots) == 2  # tab2 keeps it open
    await harness.call("tab2", "disconnect", alice)
    error = await harness.error_of("tab2", "send", alice, target={"id": bob, "type": "person"})
    assert error == "send called on uninitialized platform"


async def test_errors_are_clear(harness: Harness, accounts: Accounts, prosody: Prosody) -> None:
    alice = accounts.new("alice")
    secret = "not-the-password-42"
    harness.credentials_for("bad", alice, secret)
    wrong = await harness.error_of("bad", "connect", alice)
    assert wrong.startswith("authentication failed for ")
    assert secret not in wrong
    early = await harness.error_of("bad", "join", alice, target=harness.room("x"))
    assert early == "join called on uninitialized platform"

    nowhere = free_port()
    harness.credentials_for("far", alice, PASSWORD, server=f"xmpp://127.0.0.1:{nowhere}")
    unreachable = await harness.error_of("far", "connect", alice)
    assert unreachable.startswith(f"could not connect to 127.0.0.1:{nowhere}")

    await harness.login("ok", alice, PASSWORD)
    ghost = {"id": "ghost@nosuch.localhost", "type": "room"}
    unknown_host = await harness.error_of("ok", "join", alice, target=ghost)
    # s2s is off in the test server: it refuses at once (with s2s: remote-server-not-found)
    assert unknown_host.startswith("cannot join ghost@nosuch.localhost: not-allowed")
    nothing = {"id": f"{room_name()}@{MUC}", "type": "room"}
    info = await harness.error_of(
        "ok", "query", alice, target=nothing, object={"type": "room-info"}
    )
    assert info == f"room {nothing['id']} not found (item-not-found)"


async def test_server_going_away_and_coming_back(
    prosody_factory: Callable[[], Prosody],
) -> None:
    server = prosody_factory()
    alice, bob = server.register("alice", PASSWORD), server.register("bob", PASSWORD)
    server.start()
    harness = Harness(server, window=60.0)
    await harness.platform.start()
    try:
        room = harness.room("comeback")
        await harness.login("s1", alice, PASSWORD)
        await harness.call("s1", "join", alice, target=room)
        server.stop()
        lost = await harness.sink.wait_for("s1", lambda e: e.get("type") == "error")
        assert "lost" in lost["error"] and "reconnecting" in lost["error"]
        server.start()
        back = await harness.sink.wait_for("s1", lambda e: e.get("type") == "connect", within=60.0)
        assert back["object"]["content"] == f"reconnected to {server.server[7:]}"
        members = await harness.call(
            "s1", "query", alice, target=room, object={"type": "attendance"}
        )
        assert members is not None and members["object"]["members"] == ["alice"]
        await harness.login("s2", bob, PASSWORD)
        await harness.call("s2", "join", bob, target=room)
        await harness.call("s2", "send", bob, target=room, object={"content": "welcome back"})
        await harness.sink.wait_for("s1", said("welcome back"))
    finally:
        await harness.close()
