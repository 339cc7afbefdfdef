"""The proxy topology: two real gateway processes behind HAProxy, one Kafka, one Redis,
a real dummy runner. The gateways trust only HAProxy's own loopback address."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.proxy.topology import PROXY_ADDRESS
from tests.fixtures.gateway import GatewayProcess, running_gateway
from tests.fixtures.runners import RunnerStack, started_runners

CAP = 20


@dataclass
class Topology:
    gateways: list[GatewayProcess]
    workdir: Path


@pytest.fixture(scope="module")
def topology(
    stack_env: dict[str, str],
    kafka_bootstrap: str,
    redis_url: str,
    sockethub_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Topology]:
    workdir = tmp_path_factory.mktemp("proxy")
    prefix = f"px{uuid.uuid4().hex[:8]}"
    runners = RunnerStack(
        kafka_bootstrap,
        redis_url,
        prefix,
        workdir / "runners",
        settings_env={"SOCKETHUB_SECRET": sockethub_secret, "SOCKETHUB_REQUEST_PARTITIONS": "3"},
    )
    settings = {
        "topic_prefix": prefix,
        "trusted_proxies": f"{PROXY_ADDRESS}/32",
        "max_connections_per_ip": CAP,
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(started_runners(runners, "dummy"))
        gateways = [
            stack.enter_context(running_gateway(stack_env, workdir, **settings))  # type: ignore[arg-type]
            for _ in range(2)
        ]
        yield Topology(gateways, workdir)
