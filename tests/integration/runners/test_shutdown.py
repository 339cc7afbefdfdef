"""A runner told to stop while its broker is gone still exits, within its deadline."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockethub.devstack.kafka import KafkaBroker
from sockethub.devstack.processes import free_port
from tests.fixtures.runners import RunnerStack

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """Its own broker: this test kills it, which must not touch the suite's broker."""
    broker = KafkaBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    yield broker
    broker.stop()


async def test_stop_without_a_broker_ends_within_the_deadline(
    private_broker: KafkaBroker, redis_url: str, tmp_path: Path
) -> None:
    stack = RunnerStack(private_broker.bootstrap, redis_url, "shutdown", tmp_path / "logs")
    stack.logs.mkdir()
    await stack.create_topics()
    runner = stack.runner("dummy", shutdown_grace=1)
    try:
        runner.wait_for_log("runner.partitions.assigned", timeout=120)
        private_broker.kill()
        runner.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        # Graceful if it can, an error exit if its last commit fails, or it gives up after
        # shutdown_grace + 20 s: it never hangs on a broker that is gone.
        code = runner.proc.wait(60)
        assert time.monotonic() - started < 60
        assert code in (0, 1)
    finally:
        stack.stop_all()
