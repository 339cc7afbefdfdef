"""Records written with each history schema revision are read by the current codec."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas import compat
from schemas.codec import AVRO_DIR, Codec, history_revisions, load_schema, schema_fingerprint
from schemas.envelopes import PlatformEvent, Record, Request, Result
from schemas.logcrypt import KeyRing
from tests.unit.schemas.codec_fixtures import KEYS, PRESET_V1_IDS, preset_registry

ACTIVITY = {"type": "join", "actor": {"id": "a@irc.example", "type": "person"}, "x": [1, {"y": 2}]}
RECORDS: dict[str, Record] = {
    "request": Request("s", "p.replies.gw", "irc", "join", ACTIVITY, traceparent="00-tp"),
    "result": Result(
        "i", "s", "p.replies.gw", "irc", "join", ACTIVITY, error="boom", traceparent="t"
    ),
    "event": PlatformEvent("s", "p.replies.gw", "irc", "join", ACTIVITY, traceparent="00-tp"),
}


def rewrite_with(value: bytes, kind: str, revision: int) -> bytes:
    """Re-encode a current-revision body with a history schema (as an old producer would)."""
    datum = schemaless_reader(
        io.BytesIO(value[10:]), parse_schema(load_schema(kind), named_schemas={})
    )
    old = load_schema(kind, revision)
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(old, named_schemas={}), datum)
    return out.getvalue()


def without_traceparent(record: Record) -> Record:
    fields = {name: getattr(record, name) for name in type(record).__slots__}
    fields["traceparent"] = None
    return type(record)(**fields)


def test_every_schema_has_history() -> None:
    for kind in ("request", "result", "event"):
        assert history_revisions(kind) == [1]
        assert schema_fingerprint(load_schema(kind, 1)) != schema_fingerprint(load_schema(kind))


@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize("kind", list(RECORDS))
def test_v1_single_object_records_decode(kind: str, encrypted: bool) -> None:
    codec = Codec(KeyRing.parse(KEYS) if encrypted else None)
    value = codec.encode(RECORDS[kind])[0]
    old_value = (
        b"\xc3\x01" + schema_fingerprint(load_schema(kind, 1)) + rewrite_with(value, kind, 1)
    )
    assert codec.decode(old_value) == without_traceparent(RECORDS[kind])


@pytest.mark.parametrize("kind", list(RECORDS))
async def test_v1_confluent_records_decode(kind: str) -> None:
    codec = Codec(registry=preset_registry())
    await codec.start()
    body = rewrite_with(Codec().encode(RECORDS[kind])[0], kind, 1)
    old_value = b"\x00" + PRESET_V1_IDS[kind].to_bytes(4, "big") + body
    assert codec.decode(old_value) == without_traceparent(RECORDS[kind])


def test_compat_passes_on_the_shipped_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert compat.main([]) == 0
    out = capsys.readouterr().out
    assert "ok request.avsc <- history/request.v1.avsc" in out


def _schema_dir(tmp_path: Path, current: dict[str, Any]) -> Path:
    (tmp_path / "history").mkdir()
    (tmp_path / "request.avsc").write_text(json.dumps(current))
    (tmp_path / "history" / "request.v1.avsc").write_text(
        (AVRO_DIR / "history" / "request.v1.avsc").read_text()
    )
    return tmp_path


def test_compat_fails_on_a_field_added_without_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = load_schema("request")
    broken["fields"].append({"name": "priority", "type": "int"})
    assert compat.main(["--avro-dir", str(_schema_dir(tmp_path, broken))]) == 1
    err = capsys.readouterr().err
    assert "request.avsc" in err
    assert "Request.priority: field added without a default" in err


def test_compat_fails_on_narrowing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = load_schema("request")
    for field in broken["fields"]:
        if field["name"] == "created_at":
            field["type"] = "int"
    assert compat.main(["--avro-dir", str(_schema_dir(tmp_path, broken))]) == 1
    assert "Request.created_at: type changed from long to int" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda s: s["fields"].pop(2),
            "Request.platform: field removed although it had no default",
        ),
        (
            lambda s: s["fields"][4]["type"].update(symbols=["activity"]),
            "Request.kind: enum RequestKind lost symbols",
        ),
        (
            lambda s: s["fields"][-1]["type"][1]["fields"][1].update(type="string"),
            "",
        ),
        (
            lambda s: s["fields"][-1]["type"][1]["fields"][1].update(type="int"),
            "Request.sealed.activity: type changed from bytes to int",
        ),
        (
            lambda s: s.update(name="Req"),
            "Req: record renamed from Request to Req without an alias",
        ),
    ],
)
def test_structural_rules(mutate: Any, expected: str) -> None:
    new = copy.deepcopy(load_schema("request"))
    mutate(new)
    problems = compat.structural_problems(load_schema("request", 1), new)
    if expected:
        assert any(p.startswith(expected) for p in problems), problems
    else:
        assert problems == []


def test_resolution_check_catches_what_fastavro_refuses() -> None:
    broken = load_schema("request")
    broken["fields"].append({"name": "priority", "type": "int"})
    problems = compat.resolution_problems(load_schema("request", 1), broken, samples=5)
    assert problems and "priority" in problems[0]
    assert compat.resolution_problems(load_schema("request", 1), load_schema("request")) == []
