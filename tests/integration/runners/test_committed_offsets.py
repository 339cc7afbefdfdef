"""The runner's view of committed offsets against the real broker: the metadata that carries
the offsets finished above the commit point must come back with the offset."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from platform_runners.offsets import PartitionTracker
from sockethub.runtime.kafka_clients import client_kwargs, committed_offsets
from sockethub.runtime.settings import CommonSettings

pytestmark = pytest.mark.kafka


async def test_transactional_commit_metadata_comes_back(kafka_bootstrap: str) -> None:
    settings = CommonSettings(kafka_bootstrap=kafka_bootstrap)
    kwargs = client_kwargs(settings)
    tag = uuid.uuid4().hex[:10]
    topic, group = f"co{tag}.requests", f"co{tag}.runners"
    first, second = TopicPartition(topic, 0), TopicPartition(topic, 1)
    admin = AIOKafkaAdminClient(**kwargs)
    producer = AIOKafkaProducer(**kwargs, transactional_id=f"co{tag}.tx")
    await admin.start()
    await producer.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        assert await committed_offsets(admin, group, [first, second], retry_backoff_s=0.1) == {}

        async with producer.transaction():
            await producer.send_offsets_to_transaction(
                {first: OffsetAndMetadata(5, "sh1:2,4-6")}, group
            )
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({first: OffsetAndMetadata(9, "sh1:1")}, group)
        await producer.abort_transaction()

        found = await committed_offsets(admin, group, [first, second], retry_backoff_s=0.1)
        assert found == {first: OffsetAndMetadata(5, "sh1:2,4-6")}

        tracker = PartitionTracker(found[first].offset, found[first].metadata)
        fresh = [offset for offset in range(5, 13) if tracker.received(offset)]
        assert fresh == [5, 6, 8, 12]
    finally:
        await producer.stop()
        await admin.close()
