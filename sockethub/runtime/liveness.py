"""Gateway liveness in Redis: how runners learn that a gateway died without a goodbye.

A gateway that exits normally ends its sessions with a ``session_closed`` record each, or,
with connection state recovery on, parks them for another gateway to recover, and deletes
its key; one killed with ``kill -9`` (or by the OOM killer) sends nothing and its key
expires. So each gateway keeps one
Redis key alive, named after its reply topic (which every request carries as its
``reply_route``, so a runner knows it without asking), set every ``heartbeat_interval``
seconds with an expiry of ``heartbeat_ttl``. The value is an incarnation token, random per
process: a gateway restarted under the same id (a container restarted in its pod) writes a
new one, and the sessions of its previous life are as dead as if the key had vanished.

Runners of persistent platforms read these keys (one ``MGET`` per check, whatever the number
of sessions) and release the connections of sessions whose gateway is gone, see
:mod:`platform_runners.orphans`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("sockethub.runtime.liveness")


def heartbeat_key(prefix: str, reply_route: str) -> str:
    return f"{prefix}:alive:{reply_route}"


def sessions_key(prefix: str, reply_route: str) -> str:
    """The gateway's count of connected sessions, written with each beat (admin page)."""
    return f"{prefix}:sessions:{reply_route}"


class GatewayHeartbeat:
    """The gateway's side: refresh the key until stopped. A failed refresh is only logged:
    the key lives ``ttl`` seconds, several intervals, so one slow or failed write is harmless."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        reply_route: str,
        *,
        interval: float,
        ttl: float,
        sessions: Callable[[], int] | None = None,
    ) -> None:
        self._redis = redis
        self.key = heartbeat_key(prefix, reply_route)
        self.sessions_key = sessions_key(prefix, reply_route)
        self._sessions = sessions
        self.incarnation = secrets.token_hex(8)
        self._interval = interval
        self._ttl_ms = max(1, int(ttl * 1000))
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        if self._sessions is None:
            await self._redis.set(self.key, self.incarnation, px=self._ttl_ms)
            return
        # One round trip for both keys; the count expires with the liveness key.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key, self.incarnation, px=self._ttl_ms)
            pipe.set(self.sessions_key, str(self._sessions()), px=self._ttl_ms)
            await pipe.execute()

    async def start(self) -> None:
        """Write the key once (a failure is logged), then keep refreshing it."""
        await self._beat_logged()
        self._task = asyncio.create_task(self._run(), name="gateway-heartbeat")

    async def _beat_logged(self) -> None:
        try:
            async with asyncio.timeout(self._interval):
                await self.beat()
        except Exception as exc:
            log.warning("heartbeat.failed", error=type(exc).__name__)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._beat_logged()

    async def stop(self) -> None:
        """Stop beating and delete the keys: runners learn at their next check, not a
        ``ttl`` later, that this gateway holds nothing any more (its sessions were ended,
        or parked for another gateway to recover)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            async with asyncio.timeout(self._interval):
                await self._redis.delete(self.key, self.sessions_key)
        except Exception as exc:  # the key expires on its own
            log.warning("heartbeat.delete_failed", error=type(exc).__name__)


async def read_heartbeats(
    redis: Redis, prefix: str, reply_routes: Sequence[str]
) -> dict[str, str | None]:
    """Each route's current incarnation, None where its key is missing. Raises on a Redis
    error: the caller must then decide nothing."""
    if not reply_routes:
        return {}
    values = await redis.mget([heartbeat_key(prefix, r) for r in reply_routes])
    return {
        route: (v.decode() if isinstance(v, bytes) else None if v is None else str(v))
        for route, v in zip(reply_routes, values, strict=True)
    }


async def read_gateway_sessions(redis: Redis, prefix: str, *, limit: int = 1000) -> dict[str, int]:
    """Connected sessions by live gateway (its reply topic), from the keys the heartbeats
    write. SCAN, not KEYS: the session keys share the database."""
    start = len(sessions_key(prefix, ""))
    keys: list[bytes | str] = []
    async for key in redis.scan_iter(match=sessions_key(prefix, "*"), count=500):
        keys.append(key)
        if len(keys) >= limit:
            break
    if not keys:
        return {}
    found: dict[str, int] = {}
    for key, value in zip(keys, await redis.mget(keys), strict=True):
        name = key.decode() if isinstance(key, bytes) else key
        text = value.decode() if isinstance(value, bytes) else value
        if isinstance(text, str) and text.isdigit():
            found[name[start:]] = int(text)
    return dict(sorted(found.items()))
