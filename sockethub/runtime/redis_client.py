"""The Redis client every process uses."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

MAX_CONNECTIONS = 64
WAIT_FOR_CONNECTION_S = 20.0


def redis_client(
    url: str, *, max_connections: int = MAX_CONNECTIONS, wait_s: float = WAIT_FOR_CONNECTION_S
) -> Redis:
    """A client whose pool makes callers wait for a free connection instead of failing.

    redis-py's default pool raises "Too many connections" beyond 100 at once: a burst
    of thousands of sessions closing together then lost their credential clean-up."""
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=wait_s)
    return Redis.from_pool(pool)
