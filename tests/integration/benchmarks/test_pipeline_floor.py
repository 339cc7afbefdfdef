"""The pipeline floor through a real broker and a real dummy runner."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from benchmarks.measure import histogram_totals
from benchmarks.pipeline_floor import pipeline_floor
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from tests.fixtures.runners import RunnerStack, started_runners

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


async def test_every_echo_is_answered_and_timed(runner_stack: RunnerStack) -> None:
    settings = GatewaySettings(
        kafka_bootstrap=runner_stack.bootstrap,
        redis_url=runner_stack.redis_url,
        topic_prefix=runner_stack.prefix,
        platforms="dummy",
    )
    metrics = GatewayMetrics()
    marks: list[str] = []

    async def mark(when: str) -> None:
        marks.append(when)

    await runner_stack.create_topics()
    with started_runners(runner_stack, "dummy"):
        row = await pipeline_floor(settings, 40.0, 2.0, metrics=metrics, warmup=1.0, mark=mark)
    # 40 warm-up echoes answered but not counted, then 80 measured between the marks.
    assert (row["sent"], row["answered"], row["wrong"], row["unanswered"]) == (80, 80, 0, 0)
    assert marks == ["start", "end"]
    assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
    # The hops read as a gateway's: every answer's way back timed by the bridge's reply
    # reader, each measured one's whole latency in the accept-to-ack histogram.
    totals = histogram_totals(generate_latest(metrics.registry).decode())
    answers, back = totals["sockethub_gateway_reply_seconds"]
    measured, whole = totals["sockethub_gateway_request_seconds"]
    assert (answers, measured) == (120, 80)
    assert 0 < back / answers * 1000 <= row["max_ms"]
    assert 0 < whole / measured * 1000 <= row["max_ms"]
