from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastavro import parse_schema, schemaless_reader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import (
    CONTENT_TYPES,
    HEADER_CONTENT_TYPE,
    HEADER_CORRELATION_ID,
    HEADER_FINGERPRINT,
    HEADER_KEY_ID,
    HEADER_TRACEPARENT,
    Codec,
    CodecError,
    MissingKeyError,
    load_schema,
    schema_fingerprint,
)
from schemas.envelopes import PlatformEvent, Record, Request, RequestKind, Result
from schemas.logcrypt import KeyRing
from tests.unit.schemas.activity_strategies import PLATFORMS, activities, context, records
from tests.unit.schemas.codec_fixtures import KEYS, PRESET_IDS, codecs, preset_registry

CODECS = codecs()
KIND_OF = {Request: "request", Result: "result", PlatformEvent: "event"}


def raw_datum(value: bytes, kind: str) -> dict[str, Any]:
    offset = 10 if value[:2] == b"\xc3\x01" else 5
    buffer = io.BytesIO(value[offset:])
    datum: dict[str, Any] = schemaless_reader(
        buffer, parse_schema(load_schema(kind), named_schemas={})
    )
    return datum


def irc_request(**overrides: Any) -> Request:
    activity = {
        "@context": context("irc"),
        "type": "send",
        "actor": {"id": "alice@irc.example", "type": "person", "name": "Alice Secretname"},
        "target": {"id": "chan@irc.example", "type": "room", "name": "#hidden-room"},
        "object": {"type": "message", "content": "the-clear-content-marker"},
        "id": "client-1",
    }
    fields: dict[str, Any] = {
        "session_id": "sess-1",
        "reply_route": "sockethub.replies.gw-1",
        "platform": "irc",
        "verb": "send",
        "activity": activity,
        "correlation_id": "client-1",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    fields.update(overrides)
    return Request(**fields)


@pytest.mark.parametrize("name", list(CODECS))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(record=records())
def test_round_trip(name: str, record: Record) -> None:
    codec = CODECS[name]
    value, headers = codec.encode(record)
    assert codec.decode(value, headers) == record
    assert codec.decode(value) == record


@pytest.mark.parametrize("platform", PLATFORMS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_platform_round_trips_encrypted(platform: str, data: st.DataObject) -> None:
    codec = CODECS["single-object+encrypted"]
    activity = data.draw(activities(platform))
    record = Result("a1", "s1", "sockethub.replies.gw", platform, str(activity["type"]), activity)
    assert codec.decode(codec.encode(record)[0]) == record


@pytest.mark.parametrize(
    "activity",
    [
        {"type": "echo", "big": 2**70, "neg": -(2**65)},
        {"type": "echo", "lone": "\ud800 surrogate", "\udfff": 1},
        {"type": "echo", "floats": [0.1, -0.0, 1e300, 5e-324], "nested": [[{}], {"a": [None]}]},
    ],
)
@pytest.mark.parametrize("name", list(CODECS))
def test_json_edge_cases_round_trip(name: str, activity: dict[str, Any]) -> None:
    record = Request("s", "r", "dummy", "echo", activity)
    assert CODECS[name].decode(CODECS[name].encode(record)[0]) == record


def test_plain_records_carry_typed_audit_fields() -> None:
    record = irc_request()
    value, _ = Codec().encode(record)
    datum = raw_datum(value, "request")
    assert datum["actor_id"] == "alice@irc.example"
    assert datum["actor_type"] == "person"
    assert datum["actor_name"] == "Alice Secretname"
    assert datum["target_id"] == "chan@irc.example"
    assert datum["target_type"] == "room"
    assert datum["target_name"] == "#hidden-room"
    assert datum["object_type"] == "message"
    assert datum["object_content"] == "the-clear-content-marker"
    assert datum["kind"] == "activity"
    assert datum["created_at"] == record.created_at
    assert orjson.loads(datum["activity"]) == record.activity
    assert datum["sealed"] is None


def test_encrypted_records_keep_routing_clear_and_content_sealed() -> None:
    codec = Codec(KeyRing.parse(KEYS))
    record = irc_request()
    value, headers = codec.encode(record)
    datum = raw_datum(value, "request")
    for clear in ("session_id", "platform", "verb", "activity_id", "reply_route", "traceparent"):
        assert datum[clear] == getattr(record, clear)
    assert (datum["actor_id"], datum["actor_type"]) == ("alice@irc.example", "person")
    assert (datum["target_id"], datum["target_type"]) == ("chan@irc.example", "room")
    assert datum["actor_name"] is None
    assert datum["target_name"] is None
    assert datum["object_content"] is None
    assert datum["activity"] is None
    assert datum["sealed"]["key_id"] == "new"
    for secret in (b"Secretname", b"hidden-room", b"the-clear-content-marker"):
        assert secret not in value
    assert (HEADER_KEY_ID, b"new") in headers


def test_sealed_error_is_not_in_clear_but_failed_is() -> None:
    codec = Codec(KeyRing.parse(KEYS))
    result = Result("a", "s", "r", "dummy", "fail", {"type": "fail"}, error="Error: secret-text")
    value, _ = codec.encode(result)
    datum = raw_datum(value, "result")
    assert datum["error"] is None
    assert datum["failed"] is True
    assert b"secret-text" not in value
    assert codec.decode(value) == result


def test_headers() -> None:
    record = irc_request()
    headers = Codec().encode(record)[1]
    found = dict(headers)
    assert found[HEADER_CONTENT_TYPE] == CONTENT_TYPES["request"].encode()
    assert found[HEADER_CONTENT_TYPE] == b"application/vnd.sockethub.request.v1+avro"
    assert found[HEADER_FINGERPRINT] == schema_fingerprint(load_schema("request")).hex().encode()
    assert found[HEADER_CORRELATION_ID] == b"client-1"
    assert found[HEADER_TRACEPARENT] == record.traceparent.encode()  # type: ignore[union-attr]
    assert HEADER_KEY_ID not in found
    bare = Codec().encode(PlatformEvent("s", "r", "irc", "join", {"type": "join"}))[1]
    assert [name for name, _ in bare] == [HEADER_CONTENT_TYPE, HEADER_FINGERPRINT]
    assert dict(bare)[HEADER_CONTENT_TYPE] == b"application/vnd.sockethub.event.v1+avro"


def test_framings() -> None:
    record = irc_request()
    single = CODECS["single-object"].encode(record)[0]
    assert single[:2] == b"\xc3\x01"
    assert single[2:10] == schema_fingerprint(load_schema("request"))
    confluent = CODECS["confluent"].encode(record)[0]
    assert confluent[0] == 0
    assert int.from_bytes(confluent[1:5], "big") == PRESET_IDS["request"]
    assert single[10:] == confluent[5:]
    with pytest.raises(CodecError, match="unknown schema id"):
        CODECS["single-object"].decode(confluent)
    assert CODECS["confluent"].decode(single) == record


def test_registry_codec_must_be_started() -> None:
    with pytest.raises(CodecError, match="start"):
        Codec(registry=preset_registry()).encode(irc_request())


async def test_decode_async_fetches_unknown_schema_ids() -> None:
    writer = Codec(registry=preset_registry())
    await writer.start()
    record = irc_request()
    value = writer.encode(record)[0]
    reader = Codec(registry=preset_registry())
    with pytest.raises(CodecError, match="unknown schema id 11"):
        reader.decode(value)
    assert await reader.decode_async(value) == record
    assert reader.decode(value) == record


def test_sealed_record_without_key_ring_names_the_key() -> None:
    value = Codec(KeyRing.parse(KEYS)).encode(irc_request())[0]
    with pytest.raises(MissingKeyError, match="'new'"):
        Codec().decode(value)


@pytest.mark.parametrize(
    "value",
    [b"", b"{}", b"\xc3\x01" + b"\x00" * 8 + b"\x02", b"\x00\x00\x00\x00\x09\x02"],
)
def test_garbage_is_a_codec_error(value: bytes) -> None:
    with pytest.raises(CodecError):
        Codec().decode(value)


def test_truncated_body_is_a_codec_error() -> None:
    value = Codec().encode(irc_request())[0]
    with pytest.raises(CodecError):
        Codec().decode(value[:30])


def test_foreign_content_type_is_rejected() -> None:
    value = Codec().encode(irc_request())[0]
    with pytest.raises(CodecError, match="content-type"):
        Codec().decode(value, [("content-type", b"application/json")])


def test_kinds_and_timestamps_survive() -> None:
    moment = datetime(2030, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    for kind in RequestKind:
        record = Request("s", "r", "irc", "credentials", {"type": "credentials"}, kind=kind)
        record = Request(**{**_fields(record), "created_at": moment})
        decoded = Codec().decode(Codec().encode(record)[0])
        assert isinstance(decoded, Request)
        assert decoded.kind is kind
        assert decoded.created_at == moment


def _fields(record: Request) -> dict[str, Any]:
    return {name: getattr(record, name) for name in Request.__slots__}  # type: ignore[attr-defined]
