"""The dummy platform through a real runner process: every verb's answer."""

from __future__ import annotations

import asyncio
import json

import pytest

from benchmarks.measure import histogram_totals
from schemas.platform_registry import canonical_context
from sockethub.devstack.processes import free_port
from tests.fixtures.gateway import fetch
from tests.fixtures.runners import FakeGateway, RunnerStack, echo_request

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


async def test_verbs_answer_as_the_spec_says(
    runner_stack: RunnerStack, fake_gateway: FakeGateway
) -> None:
    route = runner_stack.reply_topic
    metrics_port = free_port()
    runner = runner_stack.runner(greeting="Howdy", shutdown_grace=1, metrics_port=metrics_port)
    requests = [
        echo_request("s1", 1, verb="echo", reply_route=route),
        echo_request("s1", 2, verb="greet", content="there", reply_route=route),
        echo_request("s1", 3, verb="fail", content="boom", reply_route=route),
        echo_request("s2", 1, verb="throw", content="bang", reply_route=route),
        echo_request("s2", 2, verb="hang", reply_route=route),
        echo_request("s3", 1, verb="echo", reply_route=route),
    ]
    await fake_gateway.send(requests)
    await fake_gateway.wait_for(lambda g: len(g.results) >= 5, what="five answers")
    by_id = {r.activity_id: r for r in fake_gateway.results}
    echo, greet, fail, throw, _hang, echo3 = (by_id.get(r.activity_id) for r in requests)
    assert echo is not None and greet is not None and fail is not None and throw is not None
    assert echo3 is not None
    assert echo.activity == {
        "@context": canonical_context("dummy"),
        "type": "echo",
        "id": "s1-1",
        "actor": {"id": "dummy", "type": "platform"},
        "target": {"id": "s1@example", "type": "person"},
        "object": {"type": "message", "content": "1"},
    }
    assert echo.error is None and echo.correlation_id == "s1-1"
    assert greet.activity["object"]["content"] == "Howdy there"
    assert fail.error == "Error: boom" and fail.activity["error"] == "Error: boom"
    assert fail.activity["actor"] == {"id": "s1@example", "type": "person"}
    assert throw.error == "Error: bang"
    await fake_gateway.settle(1.0)
    assert requests[4].activity_id not in {r.activity_id for r in fake_gateway.results}
    assert runner.alive()
    # Every request read, with its age since the fake gateway produced it.
    status, body = await fetch(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200
    read, seconds = histogram_totals(body.decode())["sockethub_runner_queue_seconds"]
    assert read == len(requests)
    assert 0 < seconds / len(requests) < 30
    # The same listener answers the orchestrator's probes.
    assert await fetch(f"http://127.0.0.1:{metrics_port}/healthz") == (200, b"ok")
    status, body = await fetch(f"http://127.0.0.1:{metrics_port}/readyz")
    assert status == 200 and json.loads(body)["joined"] is True
    assert runner.terminate() == 0  # SIGTERM with the hang in flight: gives it back, exits 0

    # The hang was given back, not crashed on: its next runner gets no crash notice.
    again = runner_stack.runner(shutdown_grace=1)
    await asyncio.to_thread(again.wait_for_log, "runner.partitions.assigned")
    await fake_gateway.send([echo_request("s3", 2, verb="echo", reply_route=route)])
    await fake_gateway.wait_for(lambda g: len(g.results) >= 6, what="the echo after restart")
    assert fake_gateway.events == []
    assert len(fake_gateway.results) == 6
