"""The generated Avro encoders and decoders agree with fastavro, byte for byte and value
for value, on every schema in schemas/avro (current and history revisions)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.avro_fast import compile_reader, compile_writer
from schemas.codec import (
    KINDS,
    Codec,
    CodecError,
    _millis,
    history_revisions,
    load_schema,
    schema_fingerprint,
)

SCHEMAS = [(kind, None) for kind in KINDS] + [
    (kind, revision) for kind in KINDS for revision in history_revisions(kind)
]
LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# fastavro writes an Avro int from any 64-bit value (no 32-bit check), and so do we.
TEXT = st.text(max_size=80) | st.text(alphabet="abc\u00e9\u4e2d\U0001f600", max_size=200)
RAW = st.binary(max_size=200)
DECODE_ERRORS = (EOFError, ValueError, TypeError, KeyError, IndexError, OverflowError)


def _values(schema: Any) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of(*(_values(branch) for branch in schema))
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind in ("int", "long"):
        if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
            # within datetime's range, so that fastavro can read it back
            return st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999)
        return LONG
    if kind == "string":
        return TEXT
    if kind == "bytes":
        return RAW
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    assert kind == "record", kind
    return st.fixed_dictionaries({f["name"]: _values(f["type"]) for f in schema["fields"]})


def _sample(schema: dict[str, Any]) -> dict[str, Any]:
    """A fixed valid record: the first symbol, zero, an empty text, the union's null."""
    plain = {"boolean": False, "int": 0, "long": 0, "string": "", "bytes": b""}
    datum: dict[str, Any] = {}
    for field in schema["fields"]:
        kind = field["type"]
        if isinstance(kind, dict):
            datum[field["name"]] = kind["symbols"][0] if kind["type"] == "enum" else 0
        else:
            datum[field["name"]] = None if isinstance(kind, list) else plain[kind]
    return datum


def _fastavro_write(schema: Any, datum: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema, named_schemas={}), datum)
    return out.getvalue()


def _fastavro_read(writer: Any, reader: Any, data: bytes) -> dict[str, Any]:
    parsed_reader = None if reader is None else parse_schema(reader, named_schemas={})
    value: dict[str, Any] = schemaless_reader(
        io.BytesIO(data), parse_schema(writer, named_schemas={}), parsed_reader
    )
    return value


@pytest.mark.parametrize(("kind", "revision"), SCHEMAS)
def test_every_schema_is_compiled(kind: str, revision: int | None) -> None:
    schema = load_schema(kind, revision)
    assert compile_writer(schema) is not None
    assert compile_reader(schema) is not None
    assert compile_reader(schema, load_schema(kind)) is not None


@pytest.mark.parametrize(("kind", "revision"), SCHEMAS)
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_same_bytes_and_values_as_fastavro(
    kind: str, revision: int | None, data: st.DataObject
) -> None:
    schema = load_schema(kind, revision)
    datum = data.draw(_values(schema))
    write, read = compile_writer(schema), compile_reader(schema)
    assert write is not None and read is not None
    expected = _fastavro_write(schema, datum)

    assert write(datum, b"\xc3\x01") == b"\xc3\x01" + expected
    decoded = read(b"xyz" + expected + b"trailing", 3)
    assert decoded == _fastavro_read(schema, None, expected)
    assert list(decoded) == [f["name"] for f in schema["fields"]]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_history_revisions_read_like_fastavro_resolution(kind: str, data: st.DataObject) -> None:
    current = load_schema(kind)
    for revision in history_revisions(kind):
        old = load_schema(kind, revision)
        datum = data.draw(_values(old))
        written = _fastavro_write(old, datum)
        read = compile_reader(old, current)
        assert read is not None
        assert read(written, 0) == _fastavro_read(old, current, written)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_malformed_input_is_never_read_differently(kind: str, data: st.DataObject) -> None:
    """Truncated or corrupted bodies: an error of the kinds the codec catches, or, when
    the generated reader accepts them, exactly what fastavro reads."""
    schema = load_schema(kind)
    written = _fastavro_write(schema, data.draw(_values(schema)))
    mutated = bytearray(written)
    for _ in range(data.draw(st.integers(1, 4))):
        if not mutated:
            break
        at = data.draw(st.integers(0, len(mutated) - 1))
        action = data.draw(st.sampled_from(["set", "cut", "insert"]))
        if action == "set":
            mutated[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del mutated[at:]
        else:
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    read = compile_reader(schema)
    assert read is not None
    try:
        ours = read(bytes(mutated), 0)
    except DECODE_ERRORS:
        return
    assert ours == _fastavro_read(schema, None, bytes(mutated))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"\x03", IndexError),  # union index -2: fastavro wraps it round to "null"
        (b"\x80\x00", IndexError),  # a non-canonical varint of index 0
        (b"\x04", IndexError),
        (b"\x02\x01", EOFError),  # negative string length
        (b"\x02\x08abc", EOFError),
        (b"", IndexError),
    ],
)
def test_a_malformed_union_of_string_is_refused(body: bytes, error: type[Exception]) -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "s", "type": ["null", "string"]}],
    }
    read = compile_reader(schema)
    assert read is not None
    with pytest.raises(error):
        read(body, 0)


def test_booleans_and_varints_are_read_strictly() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "b", "type": "boolean"}, {"name": "n", "type": "long"}],
    }
    read = compile_reader(schema)
    assert read is not None
    assert read(b"\x01\x01", 0) == {"b": True, "n": -1}
    with pytest.raises(ValueError, match="neither 0 nor 1"):
        read(b"\x02\x00", 0)
    with pytest.raises(ValueError, match="longer than 10 bytes"):
        read(b"\x00" + b"\xff" * 11 + b"\x01", 0)
    with pytest.raises(ValueError, match="beyond 64 bits"):
        read(b"\x00" + b"\xff" * 9 + b"\x7f", 0)


def test_timestamps_read_as_aware_utc_datetimes() -> None:
    schema = load_schema("result")
    read = compile_reader(schema)
    datum = _sample(schema)
    datum["created_at"] = 1_764_400_000_123
    value = read(_fastavro_write(schema, datum), 0) if read is not None else {}
    assert value["created_at"] == datetime(2025, 11, 29, 7, 6, 40, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("session_id", None, TypeError),
        ("session_id", 5, TypeError),
        ("actor_id", 5, TypeError),
        ("kind", "bogus", ValueError),
        ("created_at", 2**63, OverflowError),
        ("created_at", "now", TypeError),
        ("attempt", -(2**63) - 1, OverflowError),
        ("session_id", "\ud800", UnicodeEncodeError),
        ("sealed", "text", TypeError),
    ],
)
def test_values_fastavro_refuses_are_refused(field: str, value: object, error: type) -> None:
    schema = load_schema("request")
    datum = _sample(schema)
    datum[field] = value
    write = compile_writer(schema)
    assert write is not None
    with pytest.raises(error):
        write(datum, b"")
    with pytest.raises((TypeError, ValueError, OverflowError, AttributeError)):
        _fastavro_write(schema, datum)


def test_a_missing_field_takes_its_default_like_fastavro() -> None:
    schema = load_schema("result")
    datum = _sample(schema)
    del datum["traceparent"], datum["failed"]
    write = compile_writer(schema)
    assert write is not None
    assert write(datum, b"") == _fastavro_write(schema, datum)
    del datum["session_id"]
    with pytest.raises(TypeError):
        write(datum, b"")


def test_types_not_covered_fall_back() -> None:
    for field_type in ("double", {"type": "array", "items": "string"}, ["string", "long"]):
        schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": field_type}]}
        assert compile_writer(schema) is None
        assert compile_reader(schema) is None
    changed = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]}
    widened = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]}
    assert compile_reader(changed, widened) is None


def test_a_timestamp_beyond_datetime_is_a_codec_error() -> None:
    schema = load_schema("result")
    datum = _sample(schema)
    datum["created_at"] = 2**62
    value = b"\xc3\x01" + schema_fingerprint(schema) + _fastavro_write(schema, datum)
    with pytest.raises(CodecError, match="malformed result record: OverflowError"):
        Codec().decode(value)


@given(st.datetimes(timezones=st.just(UTC)) | st.datetimes())
def test_codec_millis_floors_like_timedelta_division(moment: datetime) -> None:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    expected = (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert _millis(moment) == expected
