"""Faults while clients send: Kafka broker restart, Redis restart, runner kill, gateway kill.

Each test drives a bounded open-loop load (a few hundred dummy echoes over ten
Socket.IO clients), injects one fault part-way, and prints its counts: sent,
answered, lost, duplicated and the time to recover (from the fault until the
backlog it caused is answered and a fresh request is answered without error).

What "accepted" means here: a request is accepted once the gateway has it
(the client's emit reached a live gateway). The gateway answers every accepted
request through its ack exactly once: with the result, or with an error (it
could not queue the request, or it timed out after ``GATEWAY_REQUEST_TIMEOUT``
seconds). An error ack is an answer, not a loss. With the broker down the
idempotent producer holds the request and delivers it when the broker is back;
the error ack is the fallback for outages longer than the gateway's timeout.
When the gateway itself dies, its clients cannot learn the fate of what was in
flight; then the durable log is the record: every request that reached the log
must have its result there too (``sockethub.replay``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from schemas.topics import TopicLayout
from sockethub.replay import Entry, Filters, Replayer
from sockethub.runtime.settings import CommonSettings
from tests.e2e.faults.load import Counts, Load
from tests.e2e.faults.stack import FaultStack
from tests.fixtures.gateway import wait_ready
from tests.fixtures.runners import RunnerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

CLIENTS = 10
REQUESTS = 300
RATE = 25.0  # per second, over all clients: about 12 s of sending
FAULT_AFTER = 80
"""Requests sent before the fault is injected."""
DELAYED = 1.0
"""A request answered later than this (seconds) was held up by the fault: the time to
recover runs from the fault to the last such answer, or to the first good answer to a
request sent after the repair, whichever is later."""


async def wait_assigned(*runners: RunnerProcess) -> None:
    for runner in runners:
        await asyncio.to_thread(runner.wait_for_log, "runner.partitions.assigned", timeout=120)


async def wait_sent(load: Load, count: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while len(load.outcomes) < count:
        assert time.monotonic() < deadline, f"only {len(load.outcomes)} requests sent"
        await asyncio.sleep(0.05)


async def run_with_fault(
    stack: FaultStack,
    name: str,
    inject: Callable[[], Awaitable[None]],
    *,
    tag: str,
    rate: float = RATE,
) -> tuple[Load, Counts]:
    """Connect clients, send, call ``inject()`` (an async callable returning when the
    fault is repaired) after ``FAULT_AFTER`` requests, and collect the counts."""
    gateway = stack.gateways[0]
    load = Load(gateway.url, clients=CLIENTS, tag=tag)
    await load.connect()
    try:
        await load.probe_until_ok(within=120)  # the stack works before the fault
        sending = asyncio.create_task(load.send(REQUESTS, rate))
        await wait_sent(load, FAULT_AFTER)
        fault_at = time.monotonic()
        await inject()
        probe_ok = await load.probe_until_ok(within=180)
        await sending
        await load.drain()
        delayed = [
            o.answered_at
            for o in load.outcomes.values()
            if o.answered_at is not None
            and o.answered_at >= fault_at
            and o.answered_at - o.sent_at > DELAYED
        ]
        recovered = max([probe_ok, *delayed])
        counts = load.counts(recovered, fault_at)
    finally:
        await load.close()
    return load, counts


async def log_entries(stack: FaultStack) -> list[Entry]:
    settings = CommonSettings.model_validate(
        {"kafka_bootstrap": stack.services.broker.bootstrap, "topic_prefix": stack.prefix}
    )
    return [entry async for entry in Replayer(settings, Filters()).entries()]


async def log_duplicates(stack: FaultStack, sids: set[str]) -> int:
    """Results beyond the first per request in the log (read_committed, as the gateway
    reads it): the runners' transactions should make this 0 whatever the fault."""
    entries = await log_entries(stack)
    results = Counter(e.record_id for e in entries if e.type == "result" and e.session_id in sids)
    return sum(n - 1 for n in results.values())


def show(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print past pytest's capture, so ``make test`` shows the counts of every run."""
    with capsys.disabled():
        print(f"\n{line}")


def assert_exactly_once(counts: Counts) -> None:
    assert counts.lost == 0, counts
    assert counts.duplicated == 0, counts
    assert counts.answered == counts.sent, counts


async def test_kafka_broker_restart_while_clients_send(
    fault_stack: FaultStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # The supervisor, as in production: a runner whose transaction broke exits and is
    # restarted with backoff.
    runners = fault_stack.runners.supervised("dummy")
    fault_stack.gateway()
    await wait_assigned(runners)

    async def restart_broker() -> None:
        await asyncio.to_thread(fault_stack.services.restart_broker)

    load, counts = await run_with_fault(
        fault_stack, "kafka broker restart", restart_broker, tag="k"
    )
    show(capsys, counts.line("kafka broker restart"))
    assert_exactly_once(counts)
    assert await log_duplicates(fault_stack, load.sids_seen) == 0


async def test_redis_restart_while_clients_send(
    fault_stack: FaultStack, capsys: pytest.CaptureFixture[str]
) -> None:
    runners = fault_stack.runners.supervised("dummy")
    fault_stack.gateway()
    await wait_assigned(runners)
    redis = fault_stack.services.redis

    async def restart_redis() -> None:
        await asyncio.to_thread(redis.kill)
        await asyncio.sleep(2.0)  # the outage: requests keep coming meanwhile
        await asyncio.to_thread(redis.start)

    load, counts = await run_with_fault(fault_stack, "redis restart", restart_redis, tag="r")
    show(capsys, counts.line("redis restart"))
    assert_exactly_once(counts)
    assert await log_duplicates(fault_stack, load.sids_seen) == 0


async def test_runner_killed_while_clients_send(
    fault_stack: FaultStack, capsys: pytest.CaptureFixture[str]
) -> None:
    first = fault_stack.runners.runner("dummy", instance="0")
    second = fault_stack.runners.runner("dummy", instance="1")
    fault_stack.gateway()
    await wait_assigned(first, second)

    async def kill_runner() -> None:
        await asyncio.to_thread(first.kill)
        # The replacement takes the same instance name: its transactional id fences
        # whatever the dead process left open.
        fault_stack.runners.runner("dummy", instance="0")

    # Faster, so that the killed runner has work in flight.
    load, counts = await run_with_fault(
        fault_stack, "runner kill -9", kill_runner, tag="w", rate=100.0
    )
    show(capsys, counts.line("runner kill -9"))
    assert_exactly_once(counts)
    assert await log_duplicates(fault_stack, load.sids_seen) == 0


async def test_gateway_killed_while_clients_send(
    fault_stack: FaultStack, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = fault_stack.runners.runner("dummy", instance="0")
    first = fault_stack.gateway(wait=False)
    second = fault_stack.gateway(wait=False)
    await asyncio.to_thread(wait_ready, first, 120)
    await asyncio.to_thread(wait_ready, second, 120)
    await wait_assigned(runner)

    load = Load(first.url, clients=CLIENTS, tag="g")
    await load.connect()
    sids = load.sids_seen
    try:
        await load.probe_until_ok(within=120)
        # Faster than elsewhere, so that many requests are in flight when the gateway dies.
        sending = asyncio.create_task(load.send(300, 150.0))
        await wait_sent(load, 150)
        fault_at = time.monotonic()
        fault_stack.kill_gateway(first)
        sending.cancel()
        deadline = time.monotonic() + 30
        while any(sio.connected for sio in load.sios):
            assert time.monotonic() < deadline, "clients did not notice the dead gateway"
            await asyncio.sleep(0.05)
    finally:
        await load.close()  # what was in flight on the dead gateway gets no ack

    # The clients reconnect to the second gateway (new sessions) and carry on.
    again = Load(second.url, clients=CLIENTS, tag="h")
    await again.connect()
    try:
        await again.send(100, 40.0)
        await again.drain()
        counts_after = again.counts(None, fault_at)
        recovered_at = min(o.answered_at for o in again.outcomes.values() if o.answered_at)
    finally:
        await again.close()
    assert_exactly_once(counts_after)
    assert counts_after.ok == counts_after.sent, counts_after

    # Every request the dead gateway had put in the log gets its result in the log.
    reply_a = TopicLayout(
        CommonSettings.model_validate({"topic_prefix": fault_stack.prefix})
    ).replies(first.gateway_id)
    deadline = time.monotonic() + 120
    while True:
        entries = [e for e in await log_entries(fault_stack) if e.session_id in sids]
        accepted = {
            e.record_id: e
            for e in entries
            if e.type == "request" and e.verb == "echo" and e.record is not None
        }
        results = Counter(e.record_id for e in entries if e.type == "result")
        missing = [i for i in accepted if results[i] == 0]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    sent = len(load.outcomes)
    answered = sum(1 for o in load.outcomes.values() if o.ack is not None)
    acked_ids = {o.request_id for o in load.outcomes.values() if o.ack is not None}
    logged_ids = {e.correlation_id for e in accepted.values()}
    duplicated = sum(n - 1 for n in results.values() if n > 1)
    show(
        capsys,
        f"[fault gateway kill -9] sent={sent} answered before the kill={answered} "
        f"accepted (in the log)={len(accepted)} with a result in the log="
        f"{len(accepted) - len(missing)} lost={len(missing)} duplicated={duplicated} "
        f"unaccepted (never reached the log)={sent - len(accepted)} "
        f"time to recover={recovered_at - fault_at:.1f}s; second gateway: "
        f"sent={counts_after.sent} answered={counts_after.answered} ok={counts_after.ok}",
    )
    assert all(e.record.reply_route == reply_a for e in accepted.values())  # type: ignore[union-attr]
    assert acked_ids <= logged_ids, "an answered request is missing from the log"
    assert not missing, f"accepted requests without a result in the log: {missing[:5]}"
    assert duplicated == 0
