"""Two gateway instances on one Kafka and one Redis, served by one runner."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from gateway.settings import GatewaySettings
from schemas.topics import REPLY_PARTITIONS, TopicLayout
from sockethub.runtime.codecs import codec_from_settings
from tests.fixtures.gateway import Client, GatewayFactory, dummy, wait_ready
from tests.fixtures.runners import RunnerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


async def test_each_gateway_gets_only_its_own_sessions_replies(
    gateway_factory: GatewayFactory,
    dummy_runner: RunnerProcess,
    shared_gateway_prefix: str,
    kafka_bootstrap: str,
) -> None:
    a = gateway_factory(topic_prefix=shared_gateway_prefix, wait=False)
    b = gateway_factory(topic_prefix=shared_gateway_prefix, wait=False)

    wait_ready(a)
    wait_ready(b)
    clients_a = [await Client(a.url).connect() for _ in range(3)]
    clients_b = [await Client(b.url, transport="polling").connect() for _ in range(3)]
    try:
        calls = []
        for n, client in enumerate(clients_a + clients_b):
            for i in range(10):
                calls.append(client.call("message", dummy("echo", f"{n}-{i}", id=f"{n}-{i}")))
        acks = await asyncio.gather(*calls)
        assert [ack["id"] for ack in acks] == [f"{n}-{i}" for n in range(6) for i in range(10)]
        assert all("error" not in ack for ack in acks)
        sids_a = {c.sid for c in clients_a}
        sids_b = {c.sid for c in clients_b}
    finally:
        for client in clients_a + clients_b:
            await client.close()

    # On Kafka: each reply topic carries exactly its own gateway's sessions.
    settings = GatewaySettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=shared_gateway_prefix)
    layout, codec = TopicLayout(settings), codec_from_settings(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        topic_a, topic_b = layout.replies(a.gateway_id), layout.replies(b.gateway_id)
        parts = [TopicPartition(t, p) for t in (topic_a, topic_b) for p in range(REPLY_PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen: dict[str, set[str]] = {topic_a: set(), topic_b: set()}
        counts = {topic_a: 0, topic_b: 0}
        deadline = asyncio.get_running_loop().time() + 60
        while counts[topic_a] < 30 or counts[topic_b] < 30:
            assert asyncio.get_running_loop().time() < deadline, counts
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    record = codec.decode(message.value, message.headers)
                    seen[tp.topic].add(record.session_id)
                    counts[tp.topic] += 1
    finally:
        await consumer.stop()
    assert seen[topic_a] == sids_a
    assert seen[topic_b] == sids_b
    assert counts == {topic_a: 30, topic_b: 30}
