"""The per-address connection cap across the deployment, counted in Redis.

Layout (``<prefix>`` is the topic prefix):

- ``<prefix>:conns:<address>``: a hash, one field per gateway process (its
  *incarnation*: gateway id plus a random suffix, so a restarted pod with a stable id
  never inherits its predecessor's counts) holding how many connections of that
  address it has. Expires an hour after it was last touched.
- ``<prefix>:alive:<incarnation>``: a key each gateway sets every
  :data:`HEARTBEAT_S` seconds with a :data:`ALIVE_TTL_S` expiry.

Admission is one script: sum the fields whose gateway is alive (deleting the others),
refuse at the limit, else count one more. A gateway killed without goodbye stops
beating; within :data:`ALIVE_TTL_S` its connections no longer count, and the next
admission for each address removes its field. (The script reads keys it was not handed,
so this layout needs a single Redis, not Redis Cluster.)

Redis errors (and waits over :data:`REDIS_WAIT_S`) fail open: the connection is admitted
if this process's own count for the address is under the limit. A Redis blip must not
refuse every user of every gateway; during it an address gets at most the limit per
gateway, and the heartbeat writes this process's true counts back for every address
whose update failed, so the shared count heals once Redis answers. A heartbeat that
finds its own key gone (Redis lost its data) writes back all of this process's counts.

A rate block is shared the same way: ``<prefix>:rate-block:<address>`` with the
block's remaining time, read by the admission script, so a block outlives a reconnect,
even one that lands on another gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("gateway.address_cap")

HEARTBEAT_S = 10.0
ALIVE_TTL_S = 30
"""A silent gateway's connections stop counting this long after its last heartbeat."""
REDIS_WAIT_S = 2.0
"""A handshake waits this long for Redis at most, then is admitted as on an error: a
hung Redis must not hold every handshake."""
COUNT_TTL_S = 3600
"""An address hash nobody touched for this long is gone (the heartbeat touches those
with live connections)."""

_ACQUIRE = """
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local field = fields[i]
  if field == ARGV[1] or redis.call('EXISTS', ARGV[3] .. field) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], field)
  end
end
local block = redis.call('PTTL', KEYS[2])
if total >= tonumber(ARGV[2]) then
  return {0, block}
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, block}
"""

_RELEASE = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return n
"""


@dataclass(frozen=True)
class Admission:
    allowed: bool
    blocked_for: float = 0.0
    """Seconds left of a rate block on the address (0 when none)."""


class AddressCap:
    """At most ``limit`` connections per address: counted in Redis across gateways when
    ``redis`` is given, otherwise (and as the fail-open fallback) in this process."""

    def __init__(
        self,
        limit: int,
        redis: Redis | None = None,
        *,
        prefix: str = "sockethub",
        gateway_id: str = "gateway",
    ) -> None:
        self._limit = limit
        self._redis = redis
        self._prefix = prefix
        self.incarnation = f"{gateway_id}:{uuid.uuid4().hex[:8]}"
        self._counts: dict[str, int] = {}
        """This process's admitted connections per address (Redis's field mirrors it)."""
        self._stale: set[str] = set()
        """Addresses whose Redis update failed: the heartbeat rewrites their field."""
        self._beat: asyncio.Task[None] | None = None
        self._acquire: Any = redis.register_script(_ACQUIRE) if redis is not None else None
        self._release: Any = redis.register_script(_RELEASE) if redis is not None else None

    def _key(self, kind: str, address: str) -> str:
        return f"{self._prefix}:{kind}:{address}"

    @property
    def _alive_prefix(self) -> str:
        return f"{self._prefix}:alive:"

    def count(self, address: str) -> int:
        """This process's connections from ``address``."""
        return self._counts.get(address, 0)

    async def acquire(self, address: str) -> Admission:
        """Count one more connection from ``address``, or refuse it (uncounted)."""
        held = self._counts.get(address, 0)
        if held >= self._limit:
            return Admission(False)
        if self._acquire is None:
            self._counts[address] = held + 1
            return Admission(True)
        self._counts[address] = held + 1  # held while Redis is asked: no local overshoot
        try:
            async with asyncio.timeout(REDIS_WAIT_S):
                allowed, block_ms = await self._acquire(
                    keys=[self._key("conns", address), self._key("rate-block", address)],
                    args=[self.incarnation, self._limit, self._alive_prefix, COUNT_TTL_S],
                )
        except Exception as exc:  # the script may have run: the heartbeat rewrites the count
            log.warning("address_cap_redis_failed", address=address, error=type(exc).__name__)
            self._stale.add(address)
            return Admission(True)
        blocked_for = max(int(block_ms), 0) / 1000
        if not allowed:
            self._forget(address)
        return Admission(bool(allowed), blocked_for)

    async def release(self, address: str) -> None:
        if address not in self._counts:
            return
        self._forget(address)
        if self._release is None:
            return
        try:
            async with asyncio.timeout(REDIS_WAIT_S):
                await self._release(keys=[self._key("conns", address)], args=[self.incarnation])
        except Exception as exc:
            log.warning("address_cap_redis_failed", address=address, error=type(exc).__name__)
            self._stale.add(address)

    def _forget(self, address: str) -> None:
        held = self._counts.get(address, 0)
        if held <= 1:
            self._counts.pop(address, None)
        else:
            self._counts[address] = held - 1

    async def share_block(self, address: str, seconds: float) -> None:
        """Tell the other gateways that ``address`` is rate-blocked for ``seconds``."""
        if self._redis is None or seconds <= 0:
            return
        try:
            await self._redis.set(self._key("rate-block", address), 1, px=int(seconds * 1000))
        except Exception as exc:
            log.warning("rate_block_not_shared", address=address, error=type(exc).__name__)

    # -- heartbeat -------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Say this process is alive, keep its addresses' hashes, and rewrite the counts
        whose update failed (all of them when Redis had forgotten this process)."""
        if self._redis is None:
            return
        stale, self._stale = self._stale, set()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._alive_prefix + self.incarnation, 1, ex=ALIVE_TTL_S, get=True)
                for address in stale:
                    held = self._counts.get(address, 0)
                    if held:
                        pipe.hset(self._key("conns", address), self.incarnation, held)
                    else:
                        pipe.hdel(self._key("conns", address), self.incarnation)
                for address in self._counts:
                    pipe.expire(self._key("conns", address), COUNT_TTL_S)
                previous = (await pipe.execute())[0]
        except Exception as exc:
            self._stale |= stale
            log.warning("address_cap_heartbeat_failed", error=type(exc).__name__)
            return
        if previous is None and self._counts and not stale.issuperset(self._counts):
            # Our key was gone: Redis lost its data (a restart without persistence, a
            # failover) or we were silent too long. Write all our counts back.
            log.warning("address_cap_counts_restored", addresses=len(self._counts))
            self._stale |= set(self._counts)
            await self.heartbeat()

    async def start(self) -> None:
        """Beat once (so this process counts as alive), then every :data:`HEARTBEAT_S`."""
        await self.heartbeat()
        if self._redis is not None and self._beat is None:
            self._beat = asyncio.create_task(self._beating())

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self.heartbeat()

    async def close(self) -> None:
        """Stop beating and take this process's counts out of Redis (a clean shutdown;
        after a crash the expiring heartbeat does it)."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        if self._redis is None:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(self._alive_prefix + self.incarnation)
                for address in self._counts:
                    pipe.hdel(self._key("conns", address), self.incarnation)
                await pipe.execute()
        except Exception as exc:
            log.warning("address_cap_cleanup_failed", error=type(exc).__name__)
        self._counts.clear()
