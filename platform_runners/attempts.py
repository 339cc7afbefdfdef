"""Per-request attempt counters and the last crash's exit code, kept in Redis.

The counter is incremented *before* a request is handled, so a request that
kills the process is seen again with a count above one: a *suspect*. A crash
while many requests run names no culprit, so suspects are re-run one at a time;
only a crash while a request ran alone is *charged* to it (a second counter),
and only charged crashes count towards ``max_attempts`` and the dead-letter
topic. A request given up gracefully (shutdown, rebalance) has its count taken
back; a request whose answer is committed is marked done, so a late redelivery
is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import redis
from redis.asyncio import Redis

DONE = -(10**9)
"""A done request's counter: any increment of it stays negative."""
COUNTER_TTL_S = 24 * 3600
EXIT_TTL_S = 3600


def exit_key(prefix: str, platform: str) -> str:
    return f"{prefix}:runner:{platform}:last-exit"


_BEGIN = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[1])
end
return counts
"""
_DONE = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
end
return #KEYS
"""


class Attempts:
    """Counters for many requests cost one Redis command (a script) per batch, not two
    commands per request: the client's work is per command, not per key."""

    def __init__(self, client: Redis, prefix: str, platform: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}:runner:{platform}:attempts:"
        self._charged_prefix = f"{prefix}:runner:{platform}:charged:"
        self._exit_key = exit_key(prefix, platform)
        self._begin_script = client.register_script(_BEGIN)
        self._done_script = client.register_script(_DONE)
        self._batch: list[tuple[str, asyncio.Future[int]]] = []
        self._tasks: set[asyncio.Future[None]] = set()

    def _key(self, activity_id: str) -> str:
        return self._prefix + activity_id

    async def begin(self, activity_id: str) -> int:
        """Count one more attempt; a negative result means the request was answered already.

        Calls made in the same event-loop turn share one round trip."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._batch.append((self._key(activity_id), future))
        if len(self._batch) == 1:
            task = asyncio.ensure_future(self._begin_batch())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _begin_batch(self) -> None:
        await asyncio.sleep(0)  # let the other lanes of this turn join the batch
        batch, self._batch = self._batch, []
        try:
            counts = await self._begin_script(keys=[key for key, _ in batch], args=[COUNTER_TTL_S])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), count in zip(batch, counts, strict=True):
            if not future.done():
                future.set_result(int(count))

    async def abandon(self, activity_ids: Iterable[str]) -> None:
        """Take back attempts that ended without a crash (shutdown, rebalance, timeout)."""
        keys = [self._key(a) for a in activity_ids]
        if not keys:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.decr(key)
            await pipe.execute()

    async def done(self, activity_ids: Iterable[str]) -> None:
        keys = [self._key(a) for a in activity_ids]
        if keys:
            await self._done_script(keys=keys, args=[DONE, COUNTER_TTL_S])

    async def forget(self, activity_ids: Iterable[str]) -> None:
        """Drop the counters of requests about to be re-driven (``sockethub dlq redrive``):
        otherwise the runner would see a suspect already charged ``max_attempts`` times, or a
        request marked done, and dead-letter or skip it again without running it."""
        keys = [k for a in activity_ids for k in (self._key(a), self._charged_prefix + a)]
        if keys:
            await self._redis.delete(*keys)

    async def charged(self, activity_id: str) -> int:
        """Crashes this request caused while it ran alone."""
        value = await self._redis.get(self._charged_prefix + activity_id)
        return int(value) if value is not None else 0

    async def charge(self, activity_id: str, delta: int = 1) -> int:
        """Charge (before it runs alone) or take back (``delta=-1``: it is no longer alone)."""
        key = self._charged_prefix + activity_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(key, delta)
            pipe.expire(key, COUNTER_TTL_S)
            count, _ = await pipe.execute()
        return int(count)

    async def last_exit_code(self) -> str:
        """The exit code the supervisor recorded for this platform's last crash."""
        value = await self._redis.get(self._exit_key)
        if value is None:
            return "unknown"
        return value.decode() if isinstance(value, bytes) else str(value)


def record_exit(redis_url: str, prefix: str, platform: str, code: int) -> None:
    """Called by the supervisor (synchronous) when a runner process exits."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.set(exit_key(prefix, platform), str(code), ex=EXIT_TTL_S)
    finally:
        client.close()
