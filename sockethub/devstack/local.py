"""Kafka and Redis for a tool run (a benchmark): the given ones, or fresh ones of our own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sockethub.devstack.kafka import KafkaBroker
from sockethub.devstack.processes import free_port
from sockethub.devstack.redis import RedisServer


@dataclass
class Services:
    bootstrap: str
    redis_url: str | None
    broker: KafkaBroker | None = None
    """The broker started for this run (None when an existing one was given)."""
    started: list[KafkaBroker | RedisServer] = field(default_factory=list)


@contextlib.contextmanager
def local_services(
    work: Path,
    *,
    bootstrap: str | None = None,
    redis_url: str | None = None,
    with_redis: bool = True,
    kafka_heap: str = "512m",
) -> Iterator[Services]:
    """Start on free loopback ports whatever is not given; stop it all on exit."""
    services = Services(bootstrap or "", redis_url)
    try:
        if not bootstrap:
            broker = KafkaBroker(work / "kafka", port=free_port(), controller_port=free_port(),
                                 heap=kafka_heap, quick_start=False)  # fmt: skip
            broker.start()
            services.started.append(broker)
            services.broker, services.bootstrap = broker, broker.bootstrap
        if with_redis and not redis_url:
            redis = RedisServer(work / "redis", port=free_port())
            redis.start()
            services.started.append(redis)
            services.redis_url = redis.url
        yield services
    finally:
        for service in reversed(services.started):
            service.stop()
