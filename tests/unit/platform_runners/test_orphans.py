"""Orphaned sessions: the decision (no I/O), a persistent platform acting on it, and the
gateway's liveness key."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from platform_runners.orphans import OrphanJudge
from platform_runners.persistent import ConnectionKey, Slot
from platform_runners.persistent_platform import PersistentPlatform
from platform_runners.persistent_state import MemoryStateStore
from platform_runners.platform import Handler
from platform_runners.settings import PersistentSettings, RunnerSettings
from schemas.envelopes import JSONDict
from schemas.platform_registry import PlatformRegistry
from sockethub.runtime.liveness import GatewayHeartbeat, heartbeat_key, read_heartbeats
from tests.fixtures.persistent import RecordingEmitter

# -- the decision -------------------------------------------------------------------------


def test_a_missing_key_orphans_its_sessions_only_after_the_confirmation() -> None:
    judge = OrphanJudge(confirm=4.0)
    held = {("s1", "gw-a"), ("s2", "gw-a"), ("s3", "gw-b")}
    assert judge.judge(held, {"gw-a": None, "gw-b": "i1"}, now=100.0) == set()
    assert judge.judge(held, {"gw-a": None, "gw-b": "i1"}, now=103.9) == set()
    assert judge.judge(held, {"gw-a": None, "gw-b": "i1"}, now=104.0) == {
        ("s1", "gw-a"),
        ("s2", "gw-a"),
    }


def test_a_key_that_comes_back_restarts_the_clock() -> None:
    """Redis lost its data and the gateway wrote its key again: nothing is released."""
    judge = OrphanJudge(confirm=4.0)
    held = {("s1", "gw-a")}
    assert not judge.judge(held, {"gw-a": None}, now=0.0)
    assert not judge.judge(held, {"gw-a": "i1"}, now=2.0)
    assert not judge.judge(held, {"gw-a": None}, now=5.0)
    assert not judge.judge(held, {"gw-a": None}, now=8.9)
    assert judge.judge(held, {"gw-a": None}, now=9.0) == held


def test_a_failed_read_decides_nothing_and_restarts_the_clock() -> None:
    judge = OrphanJudge(confirm=4.0)
    held = {("s1", "gw-a")}
    assert not judge.judge(held, {"gw-a": None}, now=0.0)
    judge.read_failed()
    assert not judge.judge(held, {"gw-a": None}, now=5.0)
    assert judge.judge(held, {"gw-a": None}, now=9.0) == held


def test_routes_not_read_are_not_judged() -> None:
    judge = OrphanJudge(confirm=0.0)
    assert judge.judge({("s1", "gw-a")}, {}, now=0.0) == set()


def test_a_gateway_restarted_under_its_id_orphans_the_sessions_of_its_previous_life() -> None:
    judge = OrphanJudge(confirm=4.0)
    old = ("old", "gw-a")
    assert not judge.judge({old}, {"gw-a": "first"}, now=0.0)
    new = ("new", "gw-a")
    assert judge.judge({old, new}, {"gw-a": "second"}, now=1.0) == {old}
    assert not judge.judge({new}, {"gw-a": "second"}, now=2.0)


def test_a_session_back_after_release_is_judged_afresh() -> None:
    judge = OrphanJudge(confirm=0.0)
    pair = ("s1", "gw-a")
    assert judge.judge({pair}, {"gw-a": "first"}, now=0.0) == set()
    assert judge.judge({pair}, {"gw-a": "second"}, now=1.0) == {pair}
    assert judge.judge({pair}, {"gw-a": "second"}, now=2.0) == set()


# -- a persistent platform acting on it -----------------------------------------------------


class Beats:
    """The Redis read, scripted: ``value`` per route, or ``fail`` to raise."""

    def __init__(self) -> None:
        self.value: dict[str, str | None] = {}
        self.fail = False
        self.reads: list[list[str]] = []

    async def __call__(self, routes: Sequence[str]) -> Mapping[str, str | None]:
        self.reads.append(list(routes))
        if self.fail:
            raise ConnectionError("redis is down")
        return {r: self.value.get(r) for r in routes}


class Fake(PersistentPlatform[str]):
    closed: list[str]

    async def open_connection(self, slot: Slot[str], credentials: JSONDict) -> str:
        return "conn"

    async def close_connection(self, slot: Slot[str], connection: str) -> None:
        self.closed.append(slot.actor_id)

    def verb_handlers(self) -> Mapping[str, Handler]:
        return {}


def platform(beats: Beats, window: int = 0, grace: float = 0.1) -> Fake:
    descriptor = PlatformRegistry(["irc"]).get("irc")
    assert descriptor is not None
    fake = Fake(
        RunnerSettings(heartbeat_interval=0.5, heartbeat_ttl=1.0, recovery_window=window),
        descriptor,
        RecordingEmitter(),
        store=MemoryStateStore(),
        options=PersistentSettings(connection_grace=grace, orphan_check_interval=0),
        heartbeats=beats,
    )
    fake.closed = []
    return fake


def held(fake: Fake, actor: str, sessions: dict[str, str]) -> Slot[str]:
    slot: Slot[str] = Slot(ConnectionKey(actor, "shared:x"), 0, {"id": actor}, "", connection="c")
    fake.pool.add(slot)
    for session_id, route in sessions.items():
        fake.pool.attach(slot, session_id, route)
    return slot


async def until_closed(fake: Fake, actor: str) -> None:
    async with asyncio.timeout(5):
        while actor not in fake.closed:  # noqa: ASYNC110 - a list filled by a callback
            await asyncio.sleep(0.02)


async def test_with_recovery_orphans_wait_for_the_window_then_close_without_grace() -> None:
    beats = Beats()
    fake = platform(beats, window=1, grace=3600)
    dead = held(fake, "a@h", {"s1": "gw-dead"})
    assert await fake.release_orphans() == 0  # first sight of the missing key
    await asyncio.sleep(1.05)  # two heartbeat intervals: without recovery, released now
    assert await fake.release_orphans() == 0
    assert dead.sessions == {"s1": "gw-dead"}
    await asyncio.sleep(1.0)  # and the recovery window
    assert await fake.release_orphans() == 1
    await until_closed(fake, "a@h")  # at once: the window was the grace


async def test_orphans_are_detached_and_their_connection_closes_after_the_grace() -> None:
    beats = Beats()
    fake = platform(beats)
    dead = held(fake, "a@h", {"s1": "gw-dead"})
    shared = held(fake, "b@h", {"s2": "gw-dead", "s3": "gw-live"})
    beats.value = {"gw-live": "i1"}
    assert await fake.release_orphans() == 0  # first sight of the missing key
    assert beats.reads == [["gw-dead", "gw-live"]]  # one read for all the sessions
    await asyncio.sleep(1.05)  # the confirmation: two heartbeat intervals
    assert await fake.release_orphans() == 2
    assert dead.sessions == {} and shared.sessions == {"s3": "gw-live"}
    await until_closed(fake, "a@h")
    assert "b@h" not in fake.closed
    state = await fake.store.load({0})
    assert state[shared.key.encode()]["sessions"] == {"s3": "gw-live"}
    await fake.stop()


async def test_redis_down_releases_nothing() -> None:
    beats = Beats()
    fake = platform(beats)
    slot = held(fake, "a@h", {"s1": "gw-a"})
    assert await fake.release_orphans() == 0
    beats.fail = True
    await asyncio.sleep(1.05)
    for _ in range(3):
        assert await fake.release_orphans() == 0
    assert slot.sessions == {"s1": "gw-a"}
    beats.fail = False
    assert await fake.release_orphans() == 0  # the clock started again
    await fake.stop()


async def test_a_session_that_moved_to_a_live_gateway_keeps_its_connection() -> None:
    beats = Beats()
    fake = platform(beats)
    slot = held(fake, "a@h", {"s1": "gw-dead"})
    assert await fake.release_orphans() == 0
    fake.pool.attach(slot, "s1", "gw-new")  # the session resumed through another gateway
    beats.value = {"gw-new": "i1"}
    await asyncio.sleep(1.05)
    assert await fake.release_orphans() == 0
    assert slot.sessions == {"s1": "gw-new"} and not fake.closed
    await fake.stop()


# -- the gateway's liveness key ---------------------------------------------------------------


class FakeRedis:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.expiry_ms: dict[str, int] = {}

    async def set(self, key: str, value: str, px: int) -> None:
        self.data[key] = value.encode()
        self.expiry_ms[key] = px

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        return [self.data.get(k) for k in keys]

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self.data.pop(key, None)


async def test_heartbeat_writes_its_incarnation_with_an_expiry_and_is_read_back() -> None:
    redis: Any = FakeRedis()
    beat = GatewayHeartbeat(redis, "pfx", "pfx.replies.gw-1", interval=0.05, ttl=0.5)
    await beat.start()
    key = heartbeat_key("pfx", "pfx.replies.gw-1")
    assert redis.data[key] == beat.incarnation.encode() and redis.expiry_ms[key] == 500
    redis.data.clear()
    async with asyncio.timeout(5):
        while key not in redis.data:  # noqa: ASYNC110 - refreshed by the heartbeat's task
            await asyncio.sleep(0.02)
    found = await read_heartbeats(redis, "pfx", ["pfx.replies.gw-1", "pfx.replies.gone"])
    assert found == {"pfx.replies.gw-1": beat.incarnation, "pfx.replies.gone": None}
    await beat.stop()
    # A gateway that stops says so at once: runners need not wait for the key to expire.
    assert await read_heartbeats(redis, "pfx", ["pfx.replies.gw-1"]) == {"pfx.replies.gw-1": None}
    again = GatewayHeartbeat(redis, "pfx", "pfx.replies.gw-1", interval=0.05, ttl=0.5)
    assert again.incarnation != beat.incarnation  # a restart under the same id is told apart


def test_the_liveness_key_must_outlive_two_intervals() -> None:
    with pytest.raises(ValueError, match="SOCKETHUB_HEARTBEAT_TTL"):
        RunnerSettings(heartbeat_interval=2, heartbeat_ttl=3)
    assert RunnerSettings().heartbeat_ttl >= 2 * RunnerSettings().heartbeat_interval
