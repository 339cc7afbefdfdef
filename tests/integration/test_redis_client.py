"""A burst of Redis calls larger than the pool waits for connections instead of failing."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from sockethub.runtime.redis_client import redis_client

pytestmark = [pytest.mark.redis]


async def _burst(client: Redis, prefix: str, count: int) -> list[object]:
    async def one(n: int) -> object:
        key = f"{prefix}:{n}"
        await client.set(key, n, ex=60)
        return await client.get(key)

    return await asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True)


async def test_a_burst_beyond_the_pool_queues(redis_url: str) -> None:
    client = redis_client(redis_url, max_connections=4)
    try:
        results = await _burst(client, f"burst{uuid.uuid4().hex[:6]}", 400)
    finally:
        await client.aclose()
    assert results == [str(n).encode() for n in range(400)]


async def test_the_library_default_pool_fails_such_a_burst(redis_url: str) -> None:
    """Why the blocking pool exists: the same burst on a small default pool errors."""
    client = Redis.from_url(redis_url, max_connections=4)
    try:
        results = await _burst(client, f"burst{uuid.uuid4().hex[:6]}", 400)
    finally:
        await client.aclose()
    assert any(isinstance(r, RedisConnectionError) for r in results)
