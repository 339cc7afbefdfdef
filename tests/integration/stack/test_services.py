"""The real broker and Redis that the suite stands on."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


async def test_produce_and_consume_through_the_broker(kafka_bootstrap: str) -> None:
    topic = f"stack-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                                enable_idempotence=True)  # fmt: skip
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=b"session-a")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"g-{topic}")  # fmt: skip
    await consumer.start()
    try:
        got: list[tuple[int, bytes]] = []
        while len(got) < 10:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            for records in batch.values():
                got.extend((r.partition, r.value) for r in records)
    finally:
        await consumer.stop()
    assert [v for _, v in got] == [f"m{i}".encode() for i in range(10)]
    assert len({p for p, _ in got}) == 1, "one key must stay in one partition"


async def test_redis_round_trip(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        key = f"stack-test:{uuid.uuid4().hex}"
        await redis.set(key, b"value", ex=30)
        assert await redis.get(key) == b"value"
        assert 0 < await redis.ttl(key) <= 30
        await redis.delete(key)
        assert await redis.get(key) is None
    finally:
        await redis.aclose()
