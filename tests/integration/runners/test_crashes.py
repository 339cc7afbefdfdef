"""Crash probes under the supervisor (``sockethub runners``): the crashing runner comes back,
its sessions are told, a request that keeps crashing is dead-lettered, and another
platform's runner (a third-party one, installed through entry points) keeps answering."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas.platform_registry import canonical_context
from sockethub.runtime.kafka_clients import client_kwargs
from tests.fixtures.runners import FakeGateway, RunnerStack, echo_request
from tests.integration.runners.probe_platform import install

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[3]


def notices(gateway: FakeGateway, session: str) -> list[str]:
    return [e.error or "" for e in gateway.events if e.session_id == session]


async def read_dead_letters(stack: RunnerStack) -> list[dict[str, bytes]]:
    consumer = AIOKafkaConsumer(
        **client_kwargs(stack.settings),
        group_id=None,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        topic = stack.layout.dead_letters("dummy")
        consumer.assign(
            [TopicPartition(topic, p) for p in range(stack.settings.request_partitions)]
        )
        batch = await consumer.getmany(timeout_ms=5000)
        return [dict(m.headers) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()


async def test_crash_probes_under_the_supervisor(runner_stack: RunnerStack, tmp_path: Path) -> None:
    site = install(tmp_path / "site")
    runner_stack.settings_env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    await runner_stack.create_topics(["dummy", "probe"])
    gateway = FakeGateway(runner_stack)
    await gateway.start()
    route = runner_stack.reply_topic
    try:
        supervisor = runner_stack.supervised("dummy,probe", max_attempts=2)
        await asyncio.to_thread(supervisor.wait_for_log, "runner.partitions.assigned", count=2)

        exit1 = echo_request("c1", 1, verb="exit1", reply_route=route)
        await gateway.send([exit1])
        await gateway.wait_for(lambda g: bool(notices(g, "c1")), what="the crash notice")
        assert notices(gateway, "c1")[0] == "Error: session thread closed unexpectedly: 1"
        crash = next(e for e in gateway.events if e.session_id == "c1")
        assert crash.activity["type"] == "error"
        assert crash.activity["@context"] == canonical_context("dummy")

        # While dummy crashes and restarts, the probe platform answers.
        pings = [
            echo_request("p1", n, verb="ping", platform="probe", reply_route=route)
            for n in range(10)
        ]
        flaky = echo_request("p2", 1, verb="flaky", platform="probe", reply_route=route)
        await gateway.send([*pings, flaky], platform="probe")
        ids = {r.activity_id for r in [*pings, flaky]}
        await gateway.wait_for(lambda g: ids <= {r.activity_id for r in g.results}, what="probe")
        assert not any(r.activity_id == exit1.activity_id for r in gateway.results)
        probe_results = [r for r in gateway.results if r.activity_id in ids]
        assert all(r.error is None for r in probe_results)
        assert next(r for r in probe_results if r.verb == "flaky").activity["object"] == {
            "type": "message",
            "content": "tries=2",
        }
        pongs = [e for e in gateway.events if e.session_id == "p1" and e.verb == "pong"]
        assert len(pongs) == 10 and pongs[0].activity["@context"] == canonical_context("probe")

        # The second crash exhausts max_attempts: dead letter, and an error answer.
        await gateway.wait_for(
            lambda g: any(r.activity_id == exit1.activity_id for r in g.results),
            within=120,
            what="the exit1 error answer",
        )
        answer = next(r for r in gateway.results if r.activity_id == exit1.activity_id)
        assert answer.error == (
            "Error: request abandoned after 2 attempts: session thread closed unexpectedly: 1"
        )
        assert answer.activity["error"] == answer.error
        assert notices(gateway, "c1") == ["Error: session thread closed unexpectedly: 1"] * 2
        dead = await read_dead_letters(runner_stack)
        assert len(dead) == 1 and dead[0]["sockethub-attempts"] == b"2"
        assert dead[0]["sockethub-exit-code"] == b"1"

        # SIGKILL: reported with the signal's code; the runner comes back and answers.
        await gateway.send([echo_request("c2", 1, verb="sigkill", reply_route=route)])
        await gateway.wait_for(lambda g: bool(notices(g, "c2")), within=120, what="sigkill notice")
        assert notices(gateway, "c2")[0] == "Error: session thread closed unexpectedly: -9"
        assert supervisor.alive()
        assert supervisor.terminate() == 0
    finally:
        await gateway.close()
