"""``sockethub replay`` against a real broker: filters, order, formats, keys, re-drive."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr

from schemas.envelopes import PlatformEvent, Record, Request, RequestKind, Result
from schemas.topics import TopicLayout
from sockethub.devstack.errors import StackError
from sockethub.replay import Filters, replay
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.kafka_clients import ensure_topics
from sockethub.runtime.settings import CommonSettings

pytestmark = pytest.mark.kafka

CTX = [
    "https://www.w3.org/ns/activitystreams",
    "https://sockethub.org/ns/context/v1.jsonld",
    "https://sockethub.org/ns/context/platform/dummy/v1.jsonld",
]
KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()


def _activity(verb: str, actor: str, content: str) -> dict[str, object]:
    return {
        "@context": CTX,
        "type": verb,
        "actor": {"id": actor, "type": "person"},
        "object": {"type": "message", "content": content},
    }


def _history(session: str, actor: str, base: datetime, route: str) -> list[Record]:
    records: list[Record] = []
    for i in range(3):
        req = Request(session_id=session, reply_route=route, platform="dummy", verb="echo",
                      activity=_activity("echo", actor, f"hello {i}"), correlation_id=f"c{i}",
                      created_at=base + timedelta(seconds=2 * i))  # fmt: skip
        records.append(req)
        records.append(
            Result(
                activity_id=req.activity_id,
                session_id=session,
                reply_route=route,
                platform="dummy",
                verb="echo",
                activity=_activity("echo", "dummy", f"hello {i}"),
                correlation_id=f"c{i}",
                created_at=req.created_at,
                completed_at=base + timedelta(seconds=2 * i + 1),
            )
        )
    return records


async def _produce(settings: CommonSettings, records: list[tuple[str, Record]]) -> None:
    codec = codec_from_settings(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for topic, record in records:
            value, headers = codec.encode(record)
            await producer.send_and_wait(topic, value, key=record.session_id.encode(),
                                         headers=headers)  # fmt: skip
    finally:
        await producer.stop()


@pytest.fixture
async def deployment(kafka_bootstrap: str) -> tuple[CommonSettings, dict[str, object]]:
    prefix = f"replay{uuid.uuid4().hex[:8]}"
    settings = CommonSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix,
                              request_partitions=3, log_keys=f"k1:{KEY_A}")  # fmt: skip
    layout = TopicLayout(settings)
    await ensure_topics(settings, layout.specs(["dummy", "feeds"], ["gw-1", "gw-2"]))
    base = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    route1, route2 = layout.replies("gw-1"), layout.replies("gw-2")
    alice = _history("session-alice", "alice@example.org", base, route1)
    bob = _history("session-bob", "bob@example.org", base + timedelta(milliseconds=500), route2)
    event = PlatformEvent(session_id="session-alice", reply_route=route1, platform="dummy",
                          verb="send", activity=_activity("send", "carol", "unsolicited"),
                          created_at=base + timedelta(seconds=10))  # fmt: skip
    creds = Request(session_id="session-alice", reply_route=route1, platform="dummy",
                    verb="credentials", kind=RequestKind.CREDENTIALS,
                    activity={"@context": CTX, "type": "credentials",
                              "actor": {"id": "alice@example.org", "type": "person"}},
                    created_at=base - timedelta(seconds=1))  # fmt: skip
    placed: list[tuple[str, Record]] = [(layout.audit(), creds)]
    for rec in alice + bob:
        topic = layout.requests("dummy") if isinstance(rec, Request) else rec.reply_route
        placed.append((topic, rec))
    placed.append((route1, event))
    await _produce(settings, placed)
    return settings, {"alice": alice, "bob": bob, "event": event, "base": base}


async def _run(settings: CommonSettings, filters: Filters, **kw: object) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await replay(settings, filters, out=out, err=err, **kw)  # type: ignore[arg-type]
    assert code == 0
    return out.getvalue(), err.getvalue()


async def test_session_history_in_time_order(deployment: tuple[CommonSettings, dict]) -> None:
    settings, data = deployment
    out, err = await _run(settings, Filters(session="session-alice"), fmt="json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["type"] for r in rows] == ["credentials"] + ["request", "result"] * 3 + ["event"]
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert {r["session_id"] for r in rows} == {"session-alice"}
    requests = [r for r in rows if r["type"] == "request"]
    assert [r["activity"]["object"]["content"] for r in requests] == [
        f"hello {i}" for i in range(3)
    ]
    assert [r["id"] for r in requests] == [rec.activity_id for rec in data["alice"][::2]]
    assert "8 records" in err


async def test_filters_actor_type_and_time(deployment: tuple[CommonSettings, dict]) -> None:
    settings, data = deployment
    base: datetime = data["base"]
    out, _ = await _run(settings, Filters(actor="bob@example.org", types=frozenset({"request"})),
                        fmt="json")  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3 and {r["session_id"] for r in rows} == {"session-bob"}
    window = Filters(since=base + timedelta(seconds=2), until=base + timedelta(seconds=3))
    out, _ = await _run(settings, window, fmt="json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["session_id"], r["type"]) for r in rows) == [
        ("session-alice", "request"), ("session-alice", "result"), ("session-bob", "request"),
    ]  # fmt: skip
    out, _ = await _run(settings, Filters(platform="feeds"), fmt="json")
    assert all(json.loads(line)["platform"] == "feeds" for line in out.splitlines())


async def test_missing_key_is_said_clearly(deployment: tuple[CommonSettings, dict]) -> None:
    settings, _ = deployment
    other = settings.model_copy(update={"log_keys": None})
    out, err = await _run(other, Filters(session=None), fmt="table")
    assert "payload sealed with key 'k1', not in the key ring" in out
    assert "some payloads are sealed with keys not in SOCKETHUB_LOG_KEYS: k1" in err
    assert "hello" not in out
    rotated = settings.model_copy(update={"log_keys": SecretStr(f"k1:{KEY_A},k2:{KEY_B}")})
    out, err = await _run(rotated, Filters(session="session-bob"), fmt="table")
    assert out.count("hello") == 6 and "not in the key ring" not in err


async def test_redrive_into_another_topic(deployment: tuple[CommonSettings, dict]) -> None:
    settings, data = deployment
    target = f"{settings.topic_prefix}.dryrun"
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(target, 1, 1)])
    await admin.close()
    _, err = await _run(settings, Filters(session="session-bob"), to_topic=target)
    assert "3 requests re-driven" in err
    consumer = AIOKafkaConsumer(target, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    got: list[Record] = []
    codec = codec_from_settings(settings)
    try:
        while len(got) < 3:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            got += [codec.decode(m.value, m.headers) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    assert [r.activity_id for r in got if isinstance(r, Request)] == [
        r.activity_id for r in data["bob"][::2]
    ]


async def test_redrive_into_a_live_request_topic_needs_force(
    deployment: tuple[CommonSettings, dict],
) -> None:
    settings, _ = deployment
    live = TopicLayout(settings).requests("dummy")
    before = await _end_offsets(settings, live)
    with pytest.raises(StackError, match="live request topic"):
        await _run(settings, Filters(session="session-bob"), to_topic=live)
    assert await _end_offsets(settings, live) == before
    _, err = await _run(settings, Filters(session="session-bob"), to_topic=live, force=True)
    assert "3 requests re-driven" in err
    assert sum((await _end_offsets(settings, live)).values()) == sum(before.values()) + 3


async def _end_offsets(settings: CommonSettings, topic: str) -> dict[int, int]:
    """End offsets of a request topic (it has ``request_partitions`` partitions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.request_partitions)]
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


def test_cli_table_output(deployment: tuple[CommonSettings, dict]) -> None:
    settings, _ = deployment
    env = {**os.environ, "SOCKETHUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "SOCKETHUB_TOPIC_PREFIX": settings.topic_prefix,
           "SOCKETHUB_LOG_KEYS": settings.log_keys.get_secret_value()}  # type: ignore[union-attr]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "sockethub.cli", "replay", "--session", "session-alice",
         "--type", "request", "--type", "result"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "type", "session"]
    assert len(lines) == 7
    assert all("session-alice" in line for line in lines[1:])
    assert KEY_A not in proc.stdout + proc.stderr
