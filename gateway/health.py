"""Liveness and readiness: ``/readyz`` is 200 only while Kafka and Redis answer
and the reply consumer is in place."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaClient
from redis.asyncio import Redis

from sockethub.runtime.kafka_clients import client_kwargs
from sockethub.runtime.settings import CommonSettings


class _Startable(Protocol):
    @property
    def ready(self) -> bool: ...


class Readiness:
    def __init__(
        self, settings: CommonSettings, redis: Redis, *, bridge: _Startable | None = None
    ) -> None:
        self._settings = settings
        self._redis = redis
        self._bridge = bridge
        self._kafka: AIOKafkaClient | None = None
        self.serving: Callable[[], bool] = lambda: True
        """Whether the public listener accepts connections: set by the server, since the
        internal listener answers while the public one is still starting (its lifespan
        runs before it binds) or already stopping."""

    async def _kafka_ok(self) -> bool:
        if self._kafka is None:
            client = AIOKafkaClient(**client_kwargs(self._settings), request_timeout_ms=3000)
            try:
                await asyncio.wait_for(client.bootstrap(), 3)
            except Exception:
                await client.close()
                return False
            self._kafka = client
        try:
            return bool(await asyncio.wait_for(self._kafka.fetch_all_metadata(), 3) is not None)
        except Exception:
            return False

    async def _redis_ok(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), 3))
        except Exception:
            return False

    async def check(self) -> dict[str, Any]:
        kafka, redis = await asyncio.gather(self._kafka_ok(), self._redis_ok())
        replies = self._bridge is None or self._bridge.ready
        serving = self.serving()
        return {"ready": kafka and redis and replies and serving, "kafka": kafka,
                "redis": redis, "replies": replies, "serving": serving}  # fmt: skip

    async def close(self) -> None:
        if self._kafka is not None:
            with contextlib.suppress(Exception):
                await self._kafka.close()
