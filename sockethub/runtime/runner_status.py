"""Runner status in Redis: a small key per runner instance, for the admin page.

Each runner writes ``<prefix>:runner-status:<platform>:<instance>`` when its partitions
change and every lag interval (never per request: the page needs minutes-old freshness at most),
with an expiry of a few intervals, so a runner that died without a word disappears.
The value is a small JSON object: state, partitions, last commit time, the age of the
transaction in progress, and its lag by partition.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis


def runner_group(prefix: str, platform: str) -> str:
    """The consumer group of a platform's runners (the admin page reads its offsets)."""
    return f"{prefix}.runners.{platform}"


def status_key(prefix: str, platform: str, instance: str) -> str:
    return f"{prefix}:runner-status:{platform}:{instance}"


@dataclass
class RunnerStatus:
    platform: str
    instance: str
    state: str
    """starting (not in its group yet), running, or stopped."""
    partitions: list[int] = field(default_factory=list)
    last_commit: float | None = None
    """Unix time of the last commit, None before the first."""
    transaction_open_seconds: float = 0.0
    lag: dict[str, int] = field(default_factory=dict)
    """Requests not finished, by partition (a string: JSON object keys)."""
    updated: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__)

    @classmethod
    def from_json(cls, raw: bytes | str) -> RunnerStatus | None:
        """None for a value that is not a status (another writer's key, an old format)."""
        try:
            data: Any = orjson.loads(raw)
            return cls(**data) if isinstance(data, Mapping) else None
        except (orjson.JSONDecodeError, TypeError):
            return None


async def write_status(redis: Redis, prefix: str, status: RunnerStatus, *, ttl: float) -> None:
    status.updated = time.time()
    key = status_key(prefix, status.platform, status.instance)
    await redis.set(key, status.to_json(), px=max(1, int(ttl * 1000)))


async def read_statuses(redis: Redis, prefix: str, *, limit: int = 1000) -> list[RunnerStatus]:
    """Every runner's current status, sorted by platform and instance. SCAN, not KEYS: the
    session keys share the database."""
    keys: list[bytes | str] = []
    async for key in redis.scan_iter(match=f"{prefix}:runner-status:*", count=500):
        keys.append(key)
        if len(keys) >= limit:
            break
    if not keys:
        return []
    found = []
    for raw in await redis.mget(keys):
        status = RunnerStatus.from_json(raw) if raw is not None else None
        if status is not None:
            found.append(status)
    return sorted(found, key=lambda s: (s.platform, s.instance))
