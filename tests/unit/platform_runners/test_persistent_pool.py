"""The connection pool: keys, attach/detach, fan-out routes, grace, desired state."""

from __future__ import annotations

import asyncio

from platform_runners.persistent import ConnectionKey, ConnectionPool, Slot, connection_key
from platform_runners.persistent_state import MemoryStateStore
from schemas.envelopes import JSONDict
from tests.fixtures.persistent import RecordingEmitter

SECRET = "x" * 32


def creds(**obj: object) -> JSONDict:
    return {"type": "credentials", "object": {"type": "credentials", "nick": "n", **obj}}


def test_keys_share_only_secret_bearing_credentials() -> None:
    a = connection_key(SECRET, "irc", "n@s", creds(password="p"), "s1")
    b = connection_key(SECRET, "irc", "n@s", creds(password="p"), "s2")
    c = connection_key(SECRET, "irc", "n@s", creds(password="other"), "s2")
    d = connection_key(SECRET, "irc", "n@s", creds(), "s1")
    assert a == b and a != c
    assert d == ConnectionKey("n@s", "session:s1")
    assert a.scope.startswith("shared:") and len(a.scope) == len("shared:") + 64
    assert ConnectionKey.decode(a.encode()) == a


def pool(
    store: MemoryStateStore, sink: RecordingEmitter, closed: list[str], grace: float = 0.2
) -> ConnectionPool[str]:
    async def close(slot: Slot[str]) -> None:
        closed.append(slot.actor_id)

    return ConnectionPool(
        "irc", sink, store=store, grace=grace, partitions=3, secret=SECRET, close=close
    )


async def test_attach_broadcast_detach_grace_and_tombstone() -> None:
    store, sink = MemoryStateStore(), RecordingEmitter()
    closed: list[str] = []
    p = pool(store, sink, closed)
    key = ConnectionKey("n@s", "shared:abc")
    slot: Slot[str] = Slot(key, 1, {"id": "n@s", "type": "person"}, "s1", connection="conn")
    p.add(slot)
    p.attach(slot, "s1", "route-1")
    p.attach(slot, "s2", "route-2")
    await p.save(slot)
    state = store.records[1][key.encode()]
    assert state["sessions"] == {"s1": "route-1", "s2": "route-2"}
    assert state["credentials_session"] == "s1" and "password" not in str(state)
    assert p.broadcast(slot, {"type": "send"}) == 2
    assert {(e.session_id, e.reply_route) for e in sink.events} == {
        ("s1", "route-1"),
        ("s2", "route-2"),
    }
    p.detach(slot, "s1")
    assert slot.credentials_session == "s2" and p.find("s1", "n@s") is None
    p.detach(slot, "s2")
    p.attach(slot, "s3", "route-3")  # reclaimed within the grace period
    await asyncio.sleep(0.4)
    assert not closed and p.find("s3", "n@s") is slot
    p.detach(slot, "s3")
    async with asyncio.timeout(5):
        while not closed:  # noqa: ASYNC110 - a plain list filled by a callback
            await asyncio.sleep(0.02)
    assert closed == ["n@s"] and key not in p.slots
    assert key.encode() not in store.records[1]  # tombstoned


async def test_close_all_keeps_desired_state() -> None:
    store, sink = MemoryStateStore(), RecordingEmitter()
    closed: list[str] = []
    p = pool(store, sink, closed)
    for partition in (0, 1):
        slot: Slot[str] = Slot(
            ConnectionKey(f"a{partition}", "session:x"), partition, {}, "x", connection="c"
        )
        p.add(slot)
        p.attach(slot, "x", "r")
        await p.save(slot)
    await p.close_all({1})
    assert closed == ["a1"] and len(p.slots) == 1
    assert await store.load({0, 1}) == {
        k: v for part in store.records.values() for k, v in part.items()
    }
    assert len(await store.load({1})) == 1  # still there for the next owner
    restored: Slot[str] = Slot.from_state(
        ConnectionKey("a1", "session:x"),
        1,
        (await store.load({1}))[ConnectionKey("a1", "session:x").encode()],
    )
    assert restored.sessions == {"x": "r"} and restored.partition == 1


async def test_moving_a_session_to_new_credentials() -> None:
    p = pool(MemoryStateStore(), RecordingEmitter(), [])
    old: Slot[str] = Slot(ConnectionKey("n@s", "shared:1"), 0, {}, "s1", connection="c")
    new: Slot[str] = Slot(ConnectionKey("n@s", "shared:2"), 0, {}, "s1", connection="d")
    p.add(old)
    p.add(new)
    p.attach(old, "s1", "r")
    p.attach(new, "s1", "r")
    assert p.find("s1", "n@s") is new and not old.sessions and old.grace is not None
    await p.close_all()
