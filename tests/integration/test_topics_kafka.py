"""ensure_topics against a real broker, and one encoded Request through Kafka."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas.codec import Codec
from schemas.envelopes import Request
from schemas.logcrypt import KeyRing
from schemas.topics import TopicLayout, TopicSpec
from sockethub.runtime.kafka_clients import TopicSetupError, client_kwargs, ensure_topics
from sockethub.runtime.settings import CommonSettings

pytestmark = pytest.mark.kafka


def settings_for(bootstrap: str) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"it{uuid.uuid4().hex[:10]}",
        request_partitions=2,
        audit_retention_ms=3_600_000,
    )


async def test_ensure_topics_is_idempotent(kafka_bootstrap: str) -> None:
    settings = settings_for(kafka_bootstrap)
    specs = TopicLayout(settings).specs(["dummy", "irc"], ["gw_a", "gw-b"])
    first, second = await ensure_topics(settings, specs), await ensure_topics(settings, specs)
    assert sorted(first) == sorted(s.name for s in specs)
    assert second == []

    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in specs])}
        for spec in specs:
            assert len(described[spec.name]["partitions"]) == spec.partitions
        compacted = TopicLayout(settings).connections("irc")
        [config] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, compacted, {"cleanup.policy": None})]
        )
        values = {entry[0]: entry[1] for entry in config.resources[0][4]}
        assert values["cleanup.policy"] == "compact"
    finally:
        await admin.close()


async def test_ensure_topics_reports_broker_refusals(kafka_bootstrap: str) -> None:
    settings = settings_for(kafka_bootstrap)
    bad = TopicSpec(f"{settings.topic_prefix}.bad", 1, {"cleanup.policy": "shred"})
    with pytest.raises(TopicSetupError, match=r"\.bad"):
        await ensure_topics(settings, [bad])


@pytest.mark.parametrize("encrypted", [False, True])
async def test_request_through_kafka(kafka_bootstrap: str, encrypted: bool) -> None:
    settings = settings_for(kafka_bootstrap)
    layout = TopicLayout(settings)
    await ensure_topics(settings, layout.specs(["irc"]))
    topic = layout.requests("irc")
    keys = KeyRing.parse("k1:" + "A" * 43 + "=") if encrypted else None
    codec = Codec(keys)
    request = Request(
        session_id="session-42",
        reply_route=layout.replies("gw-1"),
        platform="irc",
        verb="send",
        activity={
            "type": "send",
            "actor": {"id": "nick@irc.example", "type": "person"},
            "object": {"type": "message", "content": "hello kafka", "n": [1.5, None]},
        },
        correlation_id="client-7",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    value, headers = codec.encode(request)

    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic, value, key=request.session_id.encode(), headers=headers
        )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, sent.partition)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        message = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()

    assert message.key == b"session-42"
    received_headers = list(message.headers)
    assert dict(received_headers)["sockethub-correlation-id"] == b"client-7"
    assert ("sockethub-key-id" in dict(received_headers)) is encrypted
    assert codec.decode(message.value, received_headers) == request


async def test_without_create_topics_a_missing_topic_fails_plainly(kafka_bootstrap: str) -> None:
    settings = settings_for(kafka_bootstrap).model_copy(update={"create_topics": False})
    specs = TopicLayout(settings).specs(["dummy"], ["gw-0"])
    with pytest.raises(TopicSetupError, match=r"SOCKETHUB_CREATE_TOPICS is off: .*replies"):
        await ensure_topics(settings, specs)
    # created beforehand (as `sockethub topics` does), the same check passes
    await ensure_topics(settings.model_copy(update={"create_topics": True}), specs)
    assert await ensure_topics(settings, specs) == []
