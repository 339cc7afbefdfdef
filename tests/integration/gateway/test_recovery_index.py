"""The recovery index on a real Redis: one taker per pid, epochs, expiry."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.recovery import Entry, RecoveryIndex
from sockethub.runtime.redis_client import redis_client

pytestmark = [pytest.mark.redis]


def entry() -> Entry:
    return Entry("sid-1", [("p.replies.a", {0: 5, 1: 0, 2: 7})], [("irc", "alice")], "g2")


async def test_an_entry_is_taken_once(redis_url: str) -> None:
    redis = redis_client(redis_url)
    index = RecoveryIndex(redis, f"t{uuid.uuid4().hex[:8]}", window=30)
    try:
        put = entry()
        await index.put("pid", put)
        taken = await asyncio.gather(index.take("pid"), index.take("pid"))
        won = [t for t in taken if t is not None]
        assert len(won) == 1
        assert won == [put]
        assert await index.take("pid") is None
    finally:
        await redis.aclose()


async def test_a_claimed_entry_is_not_taken_under_its_old_epoch(redis_url: str) -> None:
    redis = redis_client(redis_url)
    index = RecoveryIndex(redis, f"t{uuid.uuid4().hex[:8]}", window=30)
    try:
        first = entry()
        await index.put("pid", first)
        claimed = Entry(first.sid, first.segments, first.used, first.dialect)
        assert claimed.epoch != first.epoch
        await index.put("pid", claimed)
        assert await index.take("pid", first.epoch) is None  # the old holder's timer
        taken = await index.take("pid", claimed.epoch)
        assert taken == claimed
    finally:
        await redis.aclose()


async def test_entries_expire(redis_url: str) -> None:
    redis = redis_client(redis_url)
    index = RecoveryIndex(redis, f"t{uuid.uuid4().hex[:8]}", window=1)
    try:
        await index.put("pid", entry())
        assert await redis.ttl(index.key("pid")) <= index.live_ttl
        await index.put("pid", entry(), ttl=1)
        await asyncio.sleep(2.5)
        assert await index.take("pid") is None
    finally:
        await redis.aclose()


async def test_a_parked_entry_outlives_a_late_window_timer(redis_url: str) -> None:
    """A disconnected session's entry is still there for its holder's timer even when the
    timer runs late (a busy loop): otherwise the session would never end."""
    redis = redis_client(redis_url)
    index = RecoveryIndex(redis, f"t{uuid.uuid4().hex[:8]}", window=1)
    try:
        parked = entry()
        await index.put("pid", parked, index.parked_ttl)
        await asyncio.sleep(index.window + 1.0)
        taken = await index.take("pid", parked.epoch)
        assert taken == parked
    finally:
        await redis.aclose()
