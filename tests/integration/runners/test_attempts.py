"""Attempt counters against the real Redis: one script call per batch of requests."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from platform_runners.attempts import COUNTER_TTL_S, Attempts

pytestmark = [pytest.mark.redis]


async def _script_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


async def test_counts_batches_and_done(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    attempts = Attempts(client, prefix, "dummy")
    try:
        ids = [f"a{n}" for n in range(50)]
        await attempts.begin("warm")  # loads the script
        calls = await _script_calls(client)
        first = await asyncio.gather(*(attempts.begin(i) for i in ids))
        assert first == [1] * 50
        assert await _script_calls(client) - calls == 1, "one round trip for the batch"
        again = await asyncio.gather(*(attempts.begin(i) for i in ids[:10]))
        assert again == [2] * 10

        key = f"{prefix}:runner:dummy:attempts:a0"
        ttl = await client.ttl(key)
        assert 0 < ttl <= COUNTER_TTL_S

        await attempts.done(ids[:5])
        assert all(n < 0 for n in await asyncio.gather(*(attempts.begin(i) for i in ids[:5])))

        await attempts.abandon(["a7"])
        assert await attempts.begin("a7") == 2  # 2 after the second begin, 1 after abandon
    finally:
        await client.aclose()


async def test_a_redis_error_reaches_every_caller_of_the_batch() -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    attempts = Attempts(broken, "x", "dummy")
    results = await asyncio.gather(
        *(attempts.begin(f"b{n}") for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, Exception) for r in results)
    await broken.aclose()
