"""The fault tests' services (a private broker and Redis) and per-test stack."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from redis import Redis

from sockethub.devstack.kafka import KafkaBroker
from sockethub.devstack.processes import free_port, spawn
from sockethub.devstack.redis import RedisServer
from tests.fixtures.gateway import REPO, GatewayProcess, wait_ready
from tests.fixtures.runners import RunnerStack

GATEWAY_REQUEST_TIMEOUT = 60
"""The gateway answers an unanswered request with an error after this many seconds:
longer than a broker restart normally takes on a loaded machine, shorter than the
clients' own deadline, so a request is never silently lost."""


@dataclass
class FaultServices:
    broker: KafkaBroker
    redis: RedisServer

    def restart_broker(self) -> None:
        """``kill -9`` the broker and start it again on the same ports and data."""
        self.broker.kill()
        self.broker.start(timeout=120)

    def broker_healthy(self, within: float = 120.0) -> None:
        """Wait until the broker answers metadata requests (not just accepts TCP)."""

        async def probe() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
            await admin.start()
            try:
                await admin.list_topics()
            finally:
                await admin.close()

        deadline = time.monotonic() + within
        while True:
            try:
                asyncio.run(asyncio.wait_for(probe(), 20))
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def redis_healthy(self, within: float = 30.0) -> None:
        client = Redis.from_url(self.redis.url, socket_timeout=2)
        deadline = time.monotonic() + within
        try:
            while True:
                try:
                    client.ping()
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            client.close()


@dataclass
class FaultStack:
    services: FaultServices
    logs: Path
    prefix: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:8]}")
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    gateways: list[GatewayProcess] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    """More settings for every gateway and runner of this stack."""
    runners: RunnerStack = field(init=False)

    def __post_init__(self) -> None:
        self.runners = RunnerStack(
            self.services.broker.bootstrap,
            self.services.redis.url,
            self.prefix,
            self.logs,
            settings_env={
                "SOCKETHUB_SECRET": self.secret,
                "SOCKETHUB_REQUEST_PARTITIONS": "3",
                **self.extra_env,
            },
        )

    def gateway(self, *, wait: bool = True) -> GatewayProcess:
        port = free_port()
        internal_port = free_port()
        gateway_id = f"gw-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "SOCKETHUB_KAFKA_BOOTSTRAP": self.services.broker.bootstrap,
            "SOCKETHUB_REDIS_URL": self.services.redis.url,
            "SOCKETHUB_SECRET": self.secret,
            "SOCKETHUB_TOPIC_PREFIX": self.prefix,
            "SOCKETHUB_REQUEST_PARTITIONS": "3",
            "SOCKETHUB_PLATFORMS": "dummy",
            "SOCKETHUB_HOST": "127.0.0.1",
            "SOCKETHUB_PORT": str(port),
            "SOCKETHUB_INTERNAL_PORT": str(internal_port),
            "SOCKETHUB_GATEWAY_ID": gateway_id,
            "SOCKETHUB_REQUEST_TIMEOUT": str(GATEWAY_REQUEST_TIMEOUT),
            "SOCKETHUB_MAX_CONNECTIONS_PER_IP": "1000",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        log_path = self.logs / f"{gateway_id}.log"
        proc = spawn(
            [sys.executable, "-m", "sockethub.cli", "gateway"], log_path=log_path, env=env, cwd=REPO
        )
        gateway = GatewayProcess(port, gateway_id, self.prefix, env, log_path, proc, internal_port)
        self.gateways.append(gateway)
        if wait:
            wait_ready(gateway, timeout=120)
        return gateway

    @staticmethod
    def kill_gateway(gateway: GatewayProcess) -> None:
        """``kill -9``: no goodbye to clients or Kafka."""
        os.killpg(gateway.proc.pid, signal.SIGKILL)
        gateway.proc.wait(10)

    def close(self) -> None:
        for gateway in self.gateways:
            gateway.stop()
        self.runners.stop_all()
