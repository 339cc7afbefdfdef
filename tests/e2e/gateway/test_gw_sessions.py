"""Credentials and session lifecycle, observed from Kafka and Redis.

These tests start their own gateway on a fresh topic prefix with no runner:
the test itself reads the request and audit topics, so it can look at Redis
at the very moment a request reaches a runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from gateway.settings import GatewaySettings
from schemas.envelopes import Request, RequestKind
from schemas.platform_registry import canonical_context
from schemas.topics import TopicLayout
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.credentials import CredentialStore
from tests.fixtures.gateway import Client, GatewayFactory, GatewayProcess, dummy

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

PASSWORD = "hunter2-must-never-leak"


class TopicReader:
    """Reads the request and audit topics of a gateway's prefix from the beginning."""

    def __init__(self, gateway: GatewayProcess, kafka_bootstrap: str) -> None:
        self.settings = GatewaySettings(
            kafka_bootstrap=kafka_bootstrap, topic_prefix=gateway.topic_prefix
        )
        self.layout = TopicLayout(self.settings)
        self.codec = codec_from_settings(self.settings)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.raw: list[bytes] = []

    async def start(self, topics: list[str]) -> None:
        await self.consumer.start()
        partitions = []
        for topic in topics:
            for _ in range(50):
                found = self.consumer.partitions_for_topic(topic)
                if found:
                    break
                await self.consumer.topics()
                self.consumer._client.add_topic(topic)
                await asyncio.sleep(0.2)
            assert found, topic
            partitions += [TopicPartition(topic, p) for p in found]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)

    async def records(self, wait: float = 1.0) -> list[tuple[str, Any]]:
        batch = await self.consumer.getmany(timeout_ms=int(wait * 1000))
        out = []
        for tp, messages in batch.items():
            for message in messages:
                self.raw.append(message.value)
                out.append((tp.topic, self.codec.decode(message.value, message.headers)))
        return out

    async def stop(self) -> None:
        await self.consumer.stop()


@pytest.fixture
async def lonely_gateway(gateway_factory: GatewayFactory) -> GatewayProcess:
    """A gateway with no runner behind it, whose sessions' credentials last 5 s after they end.

    A session whose transport drops (python-socketio's client may abort before its DISCONNECT
    packet leaves) ends only after the recovery window: 2 s here."""
    return gateway_factory(session_grace=5, request_timeout=30, recovery_window=2)


@pytest.fixture
async def reader(
    lonely_gateway: GatewayProcess, kafka_bootstrap: str
) -> AsyncIterator[TopicReader]:
    r = TopicReader(lonely_gateway, kafka_bootstrap)
    await r.start([r.layout.requests("dummy"), r.layout.audit()])
    yield r
    await r.stop()


@pytest.fixture
async def store(
    lonely_gateway: GatewayProcess, redis_url: str, sockethub_secret: str
) -> AsyncIterator[CredentialStore]:
    redis = Redis.from_url(redis_url)
    yield CredentialStore(redis, sockethub_secret, prefix=lonely_gateway.topic_prefix)
    await redis.aclose()


def _creds(actor: str, **obj: Any) -> dict[str, Any]:
    return {
        "@context": canonical_context("dummy"),
        "type": "credentials",
        "actor": {"id": actor, "type": "person"},
        "object": {"type": "credentials", "password": PASSWORD, **obj},
    }


async def test_a_message_right_after_credentials_sees_them(
    lonely_gateway: GatewayProcess, reader: TopicReader, store: CredentialStore
) -> None:
    """Playing the runner: when each message's request arrives on Kafka, its credentials
    (sent just before it, without waiting for their ack) are already readable."""
    client = await Client(lonely_gateway.url).connect()
    rounds = 20
    try:
        for i in range(rounds):
            actor = f"actor-{i}@dummy"
            await client.emit("credentials", _creds(actor, round=i))
            await client.emit(
                "message", dummy("echo", id=f"m{i}", actor={"id": actor, "type": "person"})
            )
        seen: dict[str, dict[str, Any] | None] = {}
        deadline = asyncio.get_running_loop().time() + 60
        while len(seen) < rounds:
            assert asyncio.get_running_loop().time() < deadline, seen
            for _topic, record in await reader.records():
                if isinstance(record, Request) and record.kind is RequestKind.ACTIVITY:
                    actor_id = record.activity["actor"]["id"]
                    seen[record.correlation_id or ""] = await store.get(
                        record.session_id, "dummy", actor_id
                    )
        for i in range(rounds):
            stored = seen[f"m{i}"]
            assert stored is not None, f"message {i} reached Kafka before its credentials"
            assert stored["object"]["round"] == i
    finally:
        await client.close()


async def test_session_end_audit_and_no_secret_anywhere(
    lonely_gateway: GatewayProcess, reader: TopicReader, store: CredentialStore
) -> None:
    client = await Client(lonely_gateway.url).connect()
    sid = client.sid
    irc_creds = {
        "@context": canonical_context("irc"),
        "type": "credentials",
        "actor": {"id": "nick@irc.example", "type": "person"},
        "object": {"type": "credentials", "nick": "nick", "server": "irc.example",
                   "password": PASSWORD},
    }  # fmt: skip
    assert "error" not in await client.call("credentials", _creds("jimmy@dummy"))
    assert "error" not in await client.call("credentials", irc_creds)
    sent = asyncio.create_task(client.call("message", dummy("echo", id="before-close")))
    records: list[tuple[str, Any]] = []
    while not any(
        isinstance(r, Request) and r.correlation_id == "before-close" for _, r in records
    ):
        records += await reader.records()
    assert await store.get(sid, "dummy", "jimmy@dummy") is not None
    await client.close()
    sent.cancel()

    deadline = asyncio.get_running_loop().time() + 60
    while not any(
        isinstance(r, Request) and r.kind is RequestKind.SESSION_CLOSED for _, r in records
    ):
        assert asyncio.get_running_loop().time() < deadline
        records += await reader.records()
    closed = [r for _, r in records if r.kind is RequestKind.SESSION_CLOSED]
    assert [(r.session_id, r.platform) for r in closed] == [(sid, "dummy")]

    audit = [r for topic, r in records if topic == reader.layout.audit()]
    assert {(r.kind, r.session_id, r.platform) for r in audit} == {
        (RequestKind.CREDENTIALS, sid, "dummy"),
        (RequestKind.CREDENTIALS, sid, "irc"),
    }
    for record in audit:
        assert record.activity["object"] == {"type": "credentials"}
    assert all(PASSWORD.encode() not in raw for raw in reader.raw)
    assert PASSWORD not in lonely_gateway.log_text()

    # dummy is not persistent: gone at once; irc is: kept for the 5 s grace period, then gone.
    while await store.get(sid, "dummy", "jimmy@dummy") is not None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    irc_deadline = asyncio.get_running_loop().time() + 30
    kept = await store.get(sid, "irc", "nick@irc.example")
    assert kept is not None and kept["object"]["password"] == PASSWORD
    while await store.get(sid, "irc", "nick@irc.example") is not None:
        assert asyncio.get_running_loop().time() < irc_deadline
        await asyncio.sleep(0.2)
