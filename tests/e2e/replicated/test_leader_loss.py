"""Leader loss on a replicated cluster: ``kill -9`` the node leading the request
partitions while ten clients send. Nothing accepted is lost or answered twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.e2e.faults.stack import FaultStack
from tests.e2e.faults.test_faults import (
    assert_exactly_once,
    log_duplicates,
    run_with_fault,
    show,
    wait_assigned,
)
from tests.e2e.replicated.conftest import Cluster

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(420)]


async def leaders(cluster: Cluster, topic: str) -> dict[int, int]:
    """Partition -> the port of the node that leads it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        ports = {b["node_id"]: b["port"] for b in (await admin.describe_cluster())["brokers"]}
        return {p["partition"]: ports[p["leader"]] for p in described["partitions"]}
    finally:
        await admin.close()


async def test_leader_of_the_request_partitions_killed_while_clients_send(
    cluster: Cluster, replicated_stack: FaultStack, capsys: pytest.CaptureFixture[str]
) -> None:
    runners = replicated_stack.runners.supervised("dummy")
    replicated_stack.gateway()
    await wait_assigned(runners)
    topic = replicated_stack.runners.layout.requests("dummy")
    killed: list[int] = []

    async def kill_leader() -> None:
        led = Counter((await leaders(cluster, topic)).values())
        port, _ = led.most_common(1)[0]
        killed.append(port)
        await asyncio.to_thread(cluster.node_on(port).kill)

    started = time.monotonic()
    load, counts = await run_with_fault(
        replicated_stack, "leader kill -9", kill_leader, tag="r", rate=50.0
    )
    after = await leaders(cluster, topic)
    show(
        capsys,
        counts.line("replicated leader kill -9")
        + f" (3 nodes, RF 3, min ISR 2; run {time.monotonic() - started:.0f}s)",
    )
    assert killed and killed[0] not in after.values()  # leadership moved
    assert_exactly_once(counts)
    assert await log_duplicates(replicated_stack, load.sids_seen) == 0
