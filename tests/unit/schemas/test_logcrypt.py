from __future__ import annotations

import base64
import io
import os
from typing import Any

import orjson
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from pydantic import SecretStr

from schemas.codec import Codec, load_schema, schema_fingerprint
from schemas.envelopes import PlatformEvent, Record, Request, RequestKind, Result
from schemas.logcrypt import (
    DecryptionError,
    KeyRing,
    KeyRingError,
    MissingKeyError,
    UnsealedRecordError,
    associated_data,
)
from tests.unit.schemas.codec_fixtures import KEY_A, KEY_B

ACTIVITY = {
    "type": "send",
    "actor": {"id": "carol@xmpp.example", "type": "person", "name": "Carol Clearname"},
    "object": {"type": "message", "content": "top-secret-words"},
}


def request(**overrides: Any) -> Request:
    fields: dict[str, Any] = {
        "session_id": "s1",
        "reply_route": "r",
        "platform": "xmpp",
        "verb": "send",
    }
    fields.update(overrides)
    return Request(activity=ACTIVITY, **fields)


def test_last_key_encrypts_and_all_decrypt() -> None:
    ring = KeyRing.parse(f"old:{KEY_A}, new:{KEY_B}")
    assert ring.key_ids == ("old", "new")
    assert ring.current_key_id == "new"
    key_id, sealed = ring.encrypt(b"payload", b"aad")
    assert key_id == "new"
    assert ring.decrypt("new", sealed, b"aad") == b"payload"
    old_key_id, old_sealed = KeyRing.parse(f"old:{KEY_A}").encrypt(b"earlier", b"aad")
    assert ring.decrypt(old_key_id, old_sealed, b"aad") == b"earlier"


def test_rotation_through_the_codec() -> None:
    before = Codec(KeyRing.parse(f"old:{KEY_A}"))
    after = Codec(KeyRing.parse(f"old:{KEY_A},new:{KEY_B}"))
    old_value, old_headers = before.encode(request())
    assert ("sockethub-key-id", b"old") in old_headers
    assert after.decode(old_value) == before.decode(old_value)
    new_value, new_headers = after.encode(request())
    assert ("sockethub-key-id", b"new") in new_headers
    with pytest.raises(MissingKeyError) as caught:
        before.decode(new_value)
    assert caught.value.key_id == "new"
    assert "'new'" in str(caught.value)
    assert KEY_A not in str(caught.value) and KEY_B not in str(caught.value)


def test_missing_key_names_the_id() -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    with pytest.raises(MissingKeyError, match="'k9'"):
        ring.decrypt("k9", b"\x00" * 40, b"")


def test_nonces_are_random() -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    first, second = ring.encrypt(b"same", b"a")[1], ring.encrypt(b"same", b"a")[1]
    assert first[:12] != second[:12]
    assert first != second


def test_associated_data_binds() -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    _, sealed = ring.encrypt(b"x", associated_data("s1", "a1", "irc"))
    with pytest.raises(DecryptionError):
        ring.decrypt("k1", sealed, associated_data("s2", "a1", "irc"))
    with pytest.raises(DecryptionError):
        ring.decrypt(
            "k1", sealed[:-1] + bytes([sealed[-1] ^ 1]), associated_data("s1", "a1", "irc")
        )
    with pytest.raises(DecryptionError):
        ring.decrypt("k1", sealed[:20], associated_data("s1", "a1", "irc"))
    assert associated_data("a,b", "c") != associated_data("a", "b,c")


def _tamper(value: bytes, record_type: str, **changes: Any) -> bytes:
    schema = parse_schema(load_schema(record_type), named_schemas={})
    datum = schemaless_reader(io.BytesIO(value[10:]), schema)
    datum.update(changes)
    out = io.BytesIO()
    schemaless_writer(out, schema, datum)
    return b"\xc3\x01" + schema_fingerprint(load_schema(record_type)) + out.getvalue()


@pytest.mark.parametrize(
    "field",
    [
        ("session_id", "other"),
        ("platform", "irc"),
        ("activity_id", "x"),
        ("verb", "join"),
        ("reply_route", "t.replies.elsewhere"),
        ("kind", "session_closed"),
    ],
)
def test_tampered_routing_field_fails(field: tuple[str, str]) -> None:
    codec = Codec(KeyRing.parse(f"k1:{KEY_A}"))
    value = codec.encode(request())[0]
    assert codec.decode(_tamper(value, "request")) is not None
    with pytest.raises(DecryptionError):
        codec.decode(_tamper(value, "request", **dict([field])))


@pytest.mark.parametrize("kind", ["result", "event"])
def test_a_reply_whose_route_was_altered_fails(kind: str) -> None:
    codec = Codec(KeyRing.parse(f"k1:{KEY_A}"))
    reply: Record = (
        Result("a1", "s1", "t.replies.gw", "xmpp", "send", ACTIVITY, error="boom")
        if kind == "result"
        else PlatformEvent("s1", "t.replies.gw", "xmpp", "send", ACTIVITY, error="boom")
    )
    value = codec.encode(reply)[0]
    assert codec.decode(_tamper(value, kind)) == codec.decode(value)
    with pytest.raises(DecryptionError):
        codec.decode(_tamper(value, kind, reply_route="t.replies.other"))


@pytest.mark.parametrize(
    "record",
    [
        request(),
        Result("a1", "s1", "r", "xmpp", "send", ACTIVITY),
        PlatformEvent("s1", "r", "xmpp", "send", ACTIVITY),
    ],
    ids=["request", "result", "event"],
)
def test_unsealed_records_are_refused_when_keys_are_set(record: Record) -> None:
    plain = Codec().encode(record)[0]
    assert Codec().decode(plain) == record
    with pytest.raises(UnsealedRecordError, match=r"unsealed .* refused: payload keys are set"):
        Codec(KeyRing.parse(f"k1:{KEY_A}")).decode(plain)


def _seal_v1(record: Request | Result, kind: str, name: str, record_id: str) -> bytes:
    """``record`` as a codec before binding revision 2 sealed it (no kind, no reply route)."""
    ring = KeyRing.parse(f"k1:{KEY_A}")
    aad = (name, record.session_id, record_id, record.platform, record.verb)
    _, body = ring.encrypt(orjson.dumps(record.activity), associated_data(*aad, "activity"))
    sealed: dict[str, object] = {"key_id": "k1", "activity": body}
    if isinstance(record, Result):
        error = record.error or ""
        sealed["error"] = ring.encrypt(error.encode(), associated_data(*aad, "error"))[1]
    return _tamper(Codec().encode(record)[0], kind, activity=None, sealed=sealed)


def test_records_sealed_with_binding_revision_1_still_open() -> None:
    codec = Codec(KeyRing.parse(f"k1:{KEY_A}"))
    old_request = request(kind=RequestKind.CREDENTIALS)
    value = _seal_v1(old_request, "request", "org.sockethub.v1.Request", old_request.activity_id)
    assert codec.decode(value) == old_request
    old_result = Result("a1", "s1", "r", "xmpp", "send", ACTIVITY, error="Error: boom")
    value = _seal_v1(old_result, "result", "org.sockethub.v1.Result", "a1")
    assert codec.decode(value) == old_result
    with pytest.raises(DecryptionError):
        codec.decode(_tamper(value, "result", session_id="other"))


def test_sealed_payload_cannot_move_to_another_record() -> None:
    codec = Codec(KeyRing.parse(f"k1:{KEY_A}"))
    schema = parse_schema(load_schema("request"), named_schemas={})
    first = schemaless_reader(io.BytesIO(codec.encode(request(session_id="a"))[0][10:]), schema)
    second_value = codec.encode(request(session_id="b"))[0]
    second = schemaless_reader(io.BytesIO(second_value[10:]), schema)
    moved = _tamper(second_value, "request", sealed=first["sealed"])
    assert second["sealed"] != first["sealed"]
    with pytest.raises(DecryptionError):
        codec.decode(moved)


def test_ciphertext_contains_no_clear_content() -> None:
    codec = Codec(KeyRing.parse(f"k1:{KEY_A}"))
    value = codec.encode(request())[0]
    for clear in (b"top-secret-words", b"Carol Clearname", b'"content"'):
        assert clear not in value
    assert b"carol@xmpp.example" in value
    plain = Codec().encode(request())[0]
    assert b"top-secret-words" in plain
    result = Result("a", "s", "r", "dummy", "fail", ACTIVITY, error="Error: top-secret-words")
    assert b"top-secret-words" not in codec.encode(result)[0]


@pytest.mark.parametrize(
    "spec",
    [
        "",
        " , ",
        "nokeyhere",
        ":" + KEY_A,
        "k1:not*base64!",
        "k1:" + base64.b64encode(os.urandom(10)).decode(),
        f"k1:{KEY_A},k1:{KEY_B}",
        "bad id:" + KEY_A,
    ],
)
def test_malformed_key_rings(spec: str) -> None:
    with pytest.raises(KeyRingError) as caught:
        KeyRing.parse(spec)
    message = str(caught.value)
    assert KEY_A not in message and KEY_B not in message
    for item in spec.split(","):
        secret = item.partition(":")[2].strip()
        if len(secret) > 4:
            assert secret not in message


def test_key_material_is_not_in_repr() -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    assert "k1" in repr(ring)
    assert KEY_A not in repr(ring)


def test_from_secret() -> None:
    assert KeyRing.from_secret(None) is None
    assert KeyRing.from_secret(SecretStr("  ")) is None
    ring = KeyRing.from_secret(SecretStr(f"a:{KEY_A},b:{KEY_B}"))
    assert ring is not None and ring.current_key_id == "b"
