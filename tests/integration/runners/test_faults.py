"""Exactly-once answers through crashes and rebalances, against real Kafka and Redis.

The reply topic is read with ``read_committed`` and every answer is counted by
activity id: each request must be answered once, none twice, none never, and a
session's answers must come in the order of its requests.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict

import pytest

from schemas.envelopes import Request
from tests.fixtures.runners import FakeGateway, RunnerStack, echo_request

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

SESSIONS = 40
PER_SESSION = 25  # 1000 echoes


def workload(route: str, tag: str) -> list[Request]:
    return [
        echo_request(f"{tag}{s}", n, reply_route=route)
        for n in range(PER_SESSION)
        for s in range(SESSIONS)
    ]


async def send_slowly(gateway: FakeGateway, requests: list[Request]) -> None:
    """A steady stream (50 requests every 50 ms), so that faults hit it mid-way."""
    for start in range(0, len(requests), 50):
        await gateway.send(requests[start : start + 50])
        await asyncio.sleep(0.05)


def answered(gateway: FakeGateway) -> int:
    return len({r.activity_id for r in gateway.results})


def owned_partitions(log: str) -> list[list[int]]:
    """The partition lists of a runner's ``runner.partitions.assigned`` log lines."""
    found = []
    for line in log.splitlines():
        if '"runner.partitions.assigned"' in line:
            found.append(json.loads(line)["partitions"])
    return found


def assert_exactly_once_in_order(gateway: FakeGateway, requests: list[Request]) -> None:
    counts = Counter(r.activity_id for r in gateway.results)
    missing = [r.correlation_id for r in requests if r.activity_id not in counts]
    twice = {a: c for a, c in counts.items() if c > 1}
    assert not missing, f"{len(missing)} never answered, e.g. {missing[:5]}"
    assert not twice, f"{len(twice)} answered more than once"
    assert set(counts) == {r.activity_id for r in requests}
    order: dict[str, list[int]] = defaultdict(list)
    for result in gateway.results:
        order[result.session_id].append(int(str(result.correlation_id).rsplit("-", 1)[1]))
    for session, seen in order.items():
        assert seen == sorted(seen), f"session {session} answered out of order: {seen}"


async def test_kill_9_with_1000_echoes_in_flight(
    runner_stack: RunnerStack, fake_gateway: FakeGateway
) -> None:
    requests = workload(runner_stack.reply_topic, "k")
    first = runner_stack.runner()
    await asyncio.to_thread(first.wait_for_log, "runner.partitions.assigned")
    await fake_gateway.send(requests)  # all 1000 on the request topic before the kill
    await fake_gateway.wait_for(lambda g: answered(g) >= 1, what="the first answer")
    first.kill()
    at_kill = answered(fake_gateway)
    assert at_kill < len(requests) - 100, "the kill came too late to hit requests in flight"

    runner_stack.runner()  # same instance: its producer fences (aborts) the dead one's transaction
    await fake_gateway.wait_for(lambda g: answered(g) >= len(requests), within=150, what="1000")
    await fake_gateway.settle(3.0)
    assert_exactly_once_in_order(fake_gateway, requests)
    print(f"answered at kill: {at_kill}, crash notices: {len(fake_gateway.events)}")
    # Requests that were in flight at the kill are announced to their sessions as a crash.
    told = [event.session_id for event in fake_gateway.events]
    assert len(told) == len(set(told)), "a session was told of one crash twice"
    for event in fake_gateway.events:
        assert event.error == "Error: session thread closed unexpectedly: unknown"


async def test_second_runner_mid_stream_then_rolling_stop(
    runner_stack: RunnerStack, fake_gateway: FakeGateway
) -> None:
    requests = workload(runner_stack.reply_topic, "r")
    first = runner_stack.runner()
    await asyncio.to_thread(first.wait_for_log, "runner.partitions.assigned")
    sender = asyncio.create_task(send_slowly(fake_gateway, requests))
    await fake_gateway.wait_for(lambda g: answered(g) >= 150, what="150 answers")
    second = runner_stack.runner(instance="1")
    await asyncio.to_thread(second.wait_for_log, "runner.partitions.assigned")
    await fake_gateway.wait_for(lambda g: answered(g) >= 500, what="500 answers")
    assert first.terminate() == 0  # a rolling restart's first half: the work moves over
    await sender
    await fake_gateway.wait_for(lambda g: answered(g) >= len(requests), within=150, what="1000")
    await fake_gateway.settle(3.0)
    assert_exactly_once_in_order(fake_gateway, requests)
    assert any(owned_partitions(second.log_text())), "the second runner never got a partition"
    # Rebalances give work back gracefully: nobody is told about a crash.
    assert fake_gateway.events == []
