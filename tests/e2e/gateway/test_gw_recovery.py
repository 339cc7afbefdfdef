"""Connection state recovery through a ``kill -9`` of the gateway, with Node's
socket.io-client (which implements the client side of Socket.IO v4's recovery)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from gateway.settings import GatewaySettings
from schemas.envelopes import Request
from schemas.topics import TopicLayout
from sockethub.runtime.codecs import codec_from_settings
from tests.fixtures.gateway import GatewayFactory, dummy
from tests.fixtures.recovery import NodeClient, kill9, replacement
from tests.fixtures.runners import RunnerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


async def produced_ids(kafka_bootstrap: str, prefix: str, session_id: str) -> set[str]:
    """The correlation ids of the session's requests that reached the log."""
    settings = GatewaySettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix)
    layout, codec = TopicLayout(settings), codec_from_settings(settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None,
                                isolation_level="read_committed")  # fmt: skip
    await consumer.start()
    try:
        topic = layout.requests("dummy")
        tps = [TopicPartition(topic, p) for p in range(settings.request_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        ids: set[str] = set()
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                for message in messages:
                    record = codec.decode(message.value, message.headers)
                    if isinstance(record, Request) and record.session_id == session_id:
                        ids.add(str(record.correlation_id))
        return ids
    finally:
        await consumer.stop()


async def test_a_session_resumes_on_another_gateway_after_kill_9(
    gateway_factory: GatewayFactory,
    dummy_runner: RunnerProcess,
    shared_gateway_prefix: str,
    kafka_bootstrap: str,
) -> None:
    a = gateway_factory(topic_prefix=shared_gateway_prefix)
    client = await NodeClient.start(a)
    try:
        first = await client.next("connect")
        assert first["recovered"] is False
        client.send(dummy("echo", "warm", id="warm"))
        assert (await client.next("ack"))["id"] == "warm"

        ids = [f"e{n}" for n in range(40)]
        for n in ids:
            client.send(dummy("echo", n, id=n))
        acks = [await client.next("ack")]  # the batch is under way: some answered, some not
        kill9(a)
        killed_at = time.monotonic()
        await client.next("disconnect")

        b = replacement(gateway_factory, a)
        again = await client.next("connect")
        recovered_in = time.monotonic() - killed_at
        assert again == {"id": first["id"], "recovered": True}
        client.send(dummy("echo", "after", id="after"))
        while True:
            ack = await client.next("ack")
            acks.append(ack)
            if ack["id"] == "after":
                break
        await asyncio.sleep(2)  # anything else would come now
        acks += client.drain("ack")
        messages = client.drain("message")
        produced = await produced_ids(kafka_bootstrap, shared_gateway_prefix, first["id"])
    finally:
        await client.close()

    acked = Counter(ack["id"] for ack in acks if ack["id"] in ids)
    pushed = Counter(m["object"]["content"] for m in messages)
    answered = acked + pushed
    print(
        f"\nrecovered in {recovered_in:.1f} s; of {len(ids)} sent at the kill: "
        f"{len(produced & set(ids))} reached the log, {sum(acked.values())} acknowledged before "
        f"the kill, {sum(pushed.values())} delivered as missed messages"
    )
    assert all(n == 1 for n in answered.values()), answered  # none twice
    assert set(answered) == produced & set(ids)  # every request in the log is answered
    assert all("error" not in m for m in messages)
    assert all(isinstance(o, str) and o for o in client.offsets)
    assert [a["id"] for a in acks if a["id"] == "after"] == ["after"]
    assert b.gateway_id != a.gateway_id


async def test_a_reconnect_after_the_window_gets_a_fresh_session(
    gateway_factory: GatewayFactory,
    dummy_runner: RunnerProcess,
    shared_gateway_prefix: str,
) -> None:
    window = 2
    a = gateway_factory(topic_prefix=shared_gateway_prefix, recovery_window=window)
    client = await NodeClient.start(a)
    try:
        first = await client.next("connect")
        client.send(dummy("echo", "before", id="before"))
        assert (await client.next("ack"))["id"] == "before"
        kill9(a)
        await client.next("disconnect")
        # The entry outlives the last refresh by window + window // 4 at most.
        await asyncio.sleep(window * 2 + 3)
        replacement(gateway_factory, a, recovery_window=window)
        again = await client.next("connect")
        assert again["recovered"] is False
        assert again["id"] != first["id"]
        client.send(dummy("echo", "fresh", id="fresh"))
        ack = await client.next("ack")
        assert ack["id"] == "fresh" and "error" not in ack
        assert client.drain("message") == []
    finally:
        await client.close()
