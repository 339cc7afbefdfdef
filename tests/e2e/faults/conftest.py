"""Fault-injection fixtures: a private Kafka broker and Redis for the fault tests.

The tests here kill and restart services; doing that to the session-wide
broker would break whatever else runs against it, so this package starts its
own (free loopback ports, data under a temporary directory; a restart keeps the
data directory and ports). Each test gets its own topic prefix, server secret,
gateways and runner processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sockethub.devstack.kafka import KafkaBroker
from sockethub.devstack.processes import free_port
from sockethub.devstack.redis import RedisServer
from tests.e2e.faults.stack import FaultServices, FaultStack


@pytest.fixture(scope="module")
def fault_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultServices]:
    root = tmp_path_factory.mktemp("faults")
    broker = KafkaBroker(root / "kafka", port=free_port(), controller_port=free_port())
    redis = RedisServer(root / "redis", port=free_port())
    broker.start(timeout=120)
    try:
        redis.start()
        services = FaultServices(broker, redis)
        services.broker_healthy()
        yield services
    finally:
        redis.stop()
        broker.stop()


@pytest.fixture
def fault_stack(fault_services: FaultServices, tmp_path: Path) -> Iterator[FaultStack]:
    logs = tmp_path / "logs"
    logs.mkdir()
    stack = FaultStack(fault_services, logs)
    try:
        yield stack
    finally:
        stack.close()
        # Leave the services as the next test expects them, whatever happened here.
        if not fault_services.broker.running():
            fault_services.broker.start(timeout=120)
        fault_services.broker_healthy()
        if not fault_services.redis.running():
            fault_services.redis.start()
        fault_services.redis_healthy()
