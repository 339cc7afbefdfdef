"""What a running gateway leaves in the log: readable with plain fastavro and the .avsc
files, and shown back by ``sockethub replay`` as the session's history."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

from tests.fixtures.gateway import Client, GatewayProcess, dummy

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

AVRO = Path(__file__).resolve().parents[3] / "schemas" / "avro"
SECRET_WORD = "hunter2-do-not-log"


def _reader(name: str) -> tuple[bytes, Any]:
    schema = json.loads((AVRO / f"{name}.avsc").read_text())
    parsed = parse_schema(schema)
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
    return fp, parsed


async def _raw_records(bootstrap: str, topic: str, key: bytes, want: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                isolation_level="read_committed")  # fmt: skip
    await consumer.start()
    found: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < want:
                batch = await consumer.getmany(timeout_ms=500)
                found += [m.value for ms in batch.values() for m in ms if m.key == key]
    finally:
        await consumer.stop()
    return found


async def _session(gateway: GatewayProcess) -> tuple[str, list[Any]]:
    client = await Client(gateway.url).connect()
    try:
        creds = dummy("credentials")
        creds["object"] = {"type": "credentials", "password": SECRET_WORD}
        answers = [await client.call("credentials", creds)]
        for i in range(3):
            answers.append(await client.call("message", dummy("echo", f"audit {i}", id=f"c{i}")))
        answers.append(await client.call("message", dummy("fail", "audit boom", id="c3")))
        return client.sid, answers
    finally:
        await client.close()


async def test_requests_decode_with_plain_fastavro(
    served_gateway: GatewayProcess, kafka_bootstrap: str
) -> None:
    sid, answers = await _session(served_gateway)
    assert answers[-1]["error"] == "Error: audit boom"
    prefix = served_gateway.topic_prefix
    values = await _raw_records(kafka_bootstrap, f"{prefix}.requests.dummy", sid.encode(), 4)
    fp, schema = _reader("request")
    decoded = []
    for value in values:
        assert value[:2] == b"\xc3\x01", "Avro single-object encoding"
        assert value[2:10] == fp
        decoded.append(schemaless_reader(io.BytesIO(value[10:]), schema, None))
    mine = [d for d in decoded if d["kind"] == "activity"]
    assert [d["verb"] for d in mine] == ["echo", "echo", "echo", "fail"]
    assert [d["correlation_id"] for d in mine] == ["c0", "c1", "c2", "c3"]
    for d in mine:
        assert d["session_id"] == sid and d["platform"] == "dummy"
        assert d["actor_id"] == "jimmy@dummy" and d["actor_type"] == "person"
        assert d["reply_route"] == f"{prefix}.replies.{served_gateway.gateway_id}"
        activity = json.loads(d["activity"])
        assert activity["object"]["content"] == d["object_content"]
        assert activity["@context"][-1].endswith("/platform/dummy/v1.jsonld")

    audit = await _raw_records(kafka_bootstrap, f"{prefix}.audit", sid.encode(), 1)
    assert all(SECRET_WORD.encode() not in v for v in audit + values)
    record = schemaless_reader(io.BytesIO(audit[0][10:]), schema, None)
    assert record["kind"] == "credentials" and record["actor_id"] == "jimmy@dummy"


async def test_replay_shows_the_sessions_requests_and_results(
    served_gateway: GatewayProcess, stack_env: dict[str, str]
) -> None:
    sid, answers = await _session(served_gateway)
    env = {**os.environ, **stack_env, "SOCKETHUB_TOPIC_PREFIX": served_gateway.topic_prefix}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sockethub.cli", "replay", f"--session={sid}", "--format", "json",
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    rows = [json.loads(line) for line in out.decode().splitlines()]
    kinds = [(r["type"], r["verb"]) for r in rows]
    assert kinds[0] == ("credentials", "credentials")
    assert [k for k in kinds if k[0] == "request"][:4] == [("request", "echo")] * 3 + [
        ("request", "fail")
    ]
    results = [r for r in rows if r["type"] == "result"]
    assert [r["activity"] for r in results[:3]] == answers[1:4]
    assert results[3]["error"] == "Error: audit boom"
    for request in (r for r in rows if r["type"] == "request" and r["verb"] != "session_closed"):
        answer = next(r for r in results if r["id"] == request["id"])
        assert answer["time"] >= request["time"]
    assert SECRET_WORD not in out.decode() + err.decode()
