"""The compacted ``connections`` topic holds sealed state when payload keys are set."""

from __future__ import annotations

import base64
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from platform_runners.persistent_state import KafkaStateStore
from schemas.topics import TopicLayout
from sockethub.runtime.kafka_clients import client_kwargs, ensure_topics
from sockethub.runtime.settings import CommonSettings

pytestmark = pytest.mark.kafka

KEYS = "k1:" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


async def _raw_values(settings: CommonSettings, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            values += [m.value for m in batch.get(tp, []) if m.value is not None]
        return values
    finally:
        await consumer.stop()


async def test_connection_state_is_sealed_and_unsealed_records_are_ignored(
    kafka_bootstrap: str,
) -> None:
    prefix = f"it{uuid.uuid4().hex[:10]}"
    plain = CommonSettings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, request_partitions=1
    )
    keyed = CommonSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=prefix,
        request_partitions=1,
        log_keys=KEYS,  # type: ignore[arg-type]  # pydantic turns it into a SecretStr
    )
    await ensure_topics(plain, TopicLayout(plain).specs(["irc"], []))
    state = {"partition": 0, "sessions": ["sess-1"], "nick": "hidden-nick-7"}

    sealed_store = KafkaStateStore(keyed, "irc")
    plain_store = KafkaStateStore(plain, "irc")
    await sealed_store.start()
    await plain_store.start()
    try:
        await sealed_store.put(0, b"irc:alice", state)
        # A record written without the keys (or by anyone who can write the topic).
        await plain_store.put(0, b"irc:mallory", {**state, "nick": "forged"})
        raw = await _raw_values(plain, sealed_store.topic)
        assert len(raw) == 2
        assert b"hidden-nick-7" not in raw[0] and b"sess-1" not in raw[0]
        loaded = await sealed_store.load({0})
        assert loaded == {b"irc:alice": {**state, "v": 1}}
    finally:
        await sealed_store.stop()
        await plain_store.stop()
