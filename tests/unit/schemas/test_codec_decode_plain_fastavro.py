"""A consumer with nothing but fastavro and the .avsc files can read what Codec writes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import to_parsing_canonical_form

from schemas.codec import Codec
from schemas.envelopes import PlatformEvent, Request, Result

AVRO = Path(__file__).resolve().parents[3] / "schemas" / "avro"
ACTIVITY = {
    "@context": ["https://www.w3.org/ns/activitystreams"],
    "type": "send",
    "actor": {"id": "bob@irc.example", "type": "person", "name": "Bob"},
    "object": {"type": "message", "content": "hello", "n": [1, 2.5, None, True]},
}
RECORDS = {
    "request": Request("s1", "t.replies.gw", "irc", "send", ACTIVITY, correlation_id="c"),
    "result": Result("a1", "s1", "t.replies.gw", "irc", "send", ACTIVITY, error="Error: x"),
    "event": PlatformEvent("s1", "t.replies.gw", "irc", "send", ACTIVITY, traceparent="00-ab"),
}


def crc64_avro(data: bytes) -> int:
    """The Avro spec's reference fingerprint, written out independently of the codec."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize("kind", list(RECORDS))
def test_plain_fastavro_reads_codec_output(kind: str) -> None:
    schema = parse_schema(json.loads((AVRO / f"{kind}.avsc").read_text()), named_schemas={})
    record = RECORDS[kind]
    value, _ = Codec().encode(record)

    assert value[:2] == b"\xc3\x01"
    canonical = to_parsing_canonical_form(schema).encode()
    assert int.from_bytes(value[2:10], "little") == crc64_avro(canonical)

    datum: dict[str, Any] = schemaless_reader(io.BytesIO(value[10:]), schema)
    assert json.loads(datum["activity"]) == ACTIVITY
    assert datum["session_id"] == "s1"
    assert datum["platform"] == "irc"
    assert datum["verb"] == "send"
    assert datum["actor_name"] == "Bob"
    assert datum["object_content"] == "hello"
    assert datum["created_at"] == record.created_at
    assert datum["traceparent"] == record.traceparent
    if kind == "result":
        assert (datum["error"], datum["failed"]) == ("Error: x", True)
    if kind == "request":
        assert (datum["correlation_id"], datum["kind"]) == ("c", "activity")
