"""With payload keys set, a real runner dead-letters what it must not act on: an unsealed
request, and a request whose reply route is not a reply topic of the deployment."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas.codec import Codec
from schemas.logcrypt import KeyRing
from sockethub.runtime.kafka_clients import client_kwargs
from tests.fixtures.runners import FakeGateway, RunnerStack, echo_request

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

KEYS = "k1:" + base64.b64encode(bytes(range(32))).decode()


async def dead_letter_errors(stack: RunnerStack, count: int) -> list[bytes]:
    """The ``sockethub-error`` headers of the first ``count`` dead letters."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(stack.settings),
        group_id=None,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    errors: list[bytes] = []
    try:
        topic = stack.layout.dead_letters("dummy")
        consumer.assign(
            [TopicPartition(topic, p) for p in range(stack.settings.request_partitions)]
        )
        deadline = time.monotonic() + 60
        while len(errors) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            errors += [dict(m.headers)["sockethub-error"] for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    return errors


async def test_unsealed_and_foreign_routed_requests_are_dead_lettered(
    runner_stack: RunnerStack, fake_gateway: FakeGateway
) -> None:
    route = runner_stack.reply_topic
    live_requests = runner_stack.layout.requests("dummy")
    runner = runner_stack.runner(log_keys=KEYS)
    await asyncio.to_thread(runner.wait_for_log, "runner.partitions.assigned")
    sealing = Codec(KeyRing.parse(KEYS))
    fake_gateway.codec = Codec()  # an unsealed record, as anyone able to write could forge
    await fake_gateway.send([echo_request("plain", 1, reply_route=route)])
    fake_gateway.codec = sealing
    await fake_gateway.send(
        [
            echo_request("loop", 1, reply_route=live_requests),
            echo_request("ok", 1, reply_route=route),
        ]
    )
    await fake_gateway.wait_for(
        lambda g: any(r.correlation_id == "ok-1" for r in g.results), what="the sealed echo"
    )
    errors = sorted(await dead_letter_errors(runner_stack, 2))
    assert errors == [
        b"reply route " + repr(live_requests).encode()
        + b" is not a reply topic of this deployment",
        b"undecodable request: unsealed request record refused: payload keys are set, "
        b"so every record must be sealed",
    ]  # fmt: skip
    await fake_gateway.settle(1.0)
    assert [r.correlation_id for r in fake_gateway.results] == ["ok-1"]
    assert runner.alive()
