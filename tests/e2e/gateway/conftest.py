"""Fixtures of the gateway's end-to-end tests: one real dummy runner for the run.

The session-wide gateway (``shared_gateway``) and this runner share a topic
prefix and the server secret, so any gateway started with
``topic_prefix=shared_gateway_prefix`` is served by the same runner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fixtures.gateway import Client, GatewayProcess
from tests.fixtures.runners import RunnerProcess, RunnerStack


@pytest.fixture(scope="session")
def dummy_runner(
    kafka_bootstrap: str,
    redis_url: str,
    shared_gateway_prefix: str,
    sockethub_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunnerProcess]:
    """A real ``sockethub runner --platform dummy`` process on the shared prefix."""
    stack = RunnerStack(
        kafka_bootstrap,
        redis_url,
        shared_gateway_prefix,
        tmp_path_factory.mktemp("runner-logs"),
        settings_env={"SOCKETHUB_SECRET": sockethub_secret},
    )
    process = stack.runner("dummy", job_timeout=6)
    try:
        process.wait_for_log("runner.partitions.assigned", timeout=120)
        yield process
    finally:
        stack.stop_all()


@pytest.fixture
async def served_gateway(
    shared_gateway: GatewayProcess, dummy_runner: RunnerProcess
) -> GatewayProcess:
    """The shared gateway, with the dummy runner behind it."""
    return shared_gateway


@pytest.fixture(params=["websocket", "polling"])
async def client(
    served_gateway: GatewayProcess, request: pytest.FixtureRequest
) -> AsyncIterator[Client]:
    c = await Client(served_gateway.url, transport=request.param).connect()
    yield c
    await c.close()


@pytest.fixture
async def ws_client(served_gateway: GatewayProcess) -> AsyncIterator[Client]:
    c = await Client(served_gateway.url).connect()
    yield c
    await c.close()
