"""Three KRaft nodes (each broker and controller) on loopback, and a Redis.

The cluster is the production shape in miniature: request, reply and internal
topics with replication factor 3 and ``min.insync.replicas`` 2, unclean leader
election off. The tests here kill a node, so the cluster is private to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sockethub.devstack.kafka import KafkaBroker, new_cluster_id
from sockethub.devstack.processes import free_port
from sockethub.devstack.redis import RedisServer
from tests.e2e.faults.stack import FaultServices, FaultStack

NODES = 3


@dataclass
class Cluster:
    nodes: list[KafkaBroker]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def node_on(self, port: int) -> KafkaBroker:
        return next(node for node in self.nodes if node.port == port)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicated")
    ports = [(free_port(), free_port()) for _ in range(NODES)]
    voters = ",".join(f"{n + 1}@127.0.0.1:{c}" for n, (_, c) in enumerate(ports))
    cluster_id = new_cluster_id()
    nodes = [
        KafkaBroker(
            root / f"kafka-{n + 1}",
            port=port,
            controller_port=controller,
            node_id=n + 1,
            voters=voters,
            cluster_id=cluster_id,
            internal_replication=NODES,
            heap="384m",
        )
        for n, (port, controller) in enumerate(ports)
    ]
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_ready(timeout=180)
        yield Cluster(nodes)
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="module")
def redis_for_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis = RedisServer(tmp_path_factory.mktemp("replicated-redis"), port=free_port())
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def replicated_stack(
    cluster: Cluster, redis_for_cluster: RedisServer, tmp_path: Path
) -> Iterator[FaultStack]:
    logs = tmp_path / "logs"
    logs.mkdir()
    # FaultStack needs only the bootstrap list of its "broker" and the Redis URL.
    services = FaultServices(cluster, redis_for_cluster)  # type: ignore[arg-type]
    stack = FaultStack(services, logs, extra_env={"SOCKETHUB_REPLICATION_FACTOR": str(NODES)})
    try:
        yield stack
    finally:
        stack.close()
