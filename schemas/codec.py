"""Avro encoding of the records that cross Kafka.

Framing: without a schema registry, values use Avro single-object encoding
(``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint of the schema's
parsing canonical form + the Avro binary body), which any Avro reader holding
the ``.avsc`` files can decode. With a registry, values use the Confluent wire
format (``00`` + 4-byte big-endian schema id + body). ``decode`` accepts both,
and records written with an older schema revision (``avro/history``) are read
through Avro schema resolution.

The activity travels whole as JSON text (``activity``), so decoding gives
back exactly the dict that was encoded; the typed audit fields beside it are
derived from it and are not read back. With a key ring, the JSON text and the
error text are sealed (``sealed``) and the content-bearing audit fields are
left null; routing fields stay clear but are bound to the seal (see
``schemas.logcrypt`` for the binding revisions), and records that are not
sealed are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any, Literal, cast

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.avro_fast import Reader, Writer, compile_reader, compile_writer
from schemas.envelopes import JSONDict, PlatformEvent, Record, Request, RequestKind, Result
from schemas.logcrypt import (
    BINDING_V2,
    CodecError,
    DecryptionError,
    KeyRing,
    MissingKeyError,
    UnsealedRecordError,
    associated_data,
)
from schemas.registry import SchemaRegistry, SchemaRegistryError, subject_for

__all__ = [
    "AVRO_DIR",
    "CONTENT_TYPES",
    "HEADER_CONTENT_TYPE",
    "HEADER_CORRELATION_ID",
    "HEADER_FINGERPRINT",
    "HEADER_KEY_ID",
    "HEADER_TRACEPARENT",
    "Codec",
    "CodecError",
    "DecryptionError",
    "MissingKeyError",
    "UnsealedRecordError",
    "history_revisions",
    "load_schema",
    "schema_fingerprint",
]

Kind = Literal["request", "result", "event"]
KINDS: tuple[Kind, ...] = ("request", "result", "event")
AVRO_DIR = Path(__file__).resolve().parent / "avro"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"

HEADER_CONTENT_TYPE = "content-type"
HEADER_FINGERPRINT = "sockethub-schema-fingerprint"
HEADER_CORRELATION_ID = "sockethub-correlation-id"
HEADER_TRACEPARENT = "traceparent"
HEADER_KEY_ID = "sockethub-key-id"
CONTENT_TYPES: dict[Kind, str] = {
    kind: f"application/vnd.sockethub.{kind}.v1+avro" for kind in KINDS
}
_CONTENT_TYPE_BYTES = {kind: ct.encode() for kind, ct in CONTENT_TYPES.items()}
_KNOWN_CONTENT_TYPES = frozenset(_CONTENT_TYPE_BYTES.values())

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load_schema(kind: str, revision: int | None = None) -> dict[str, Any]:
    """The current schema of ``kind`` (request, result, event), or a history revision."""
    path = (
        AVRO_DIR / f"{kind}.avsc"
        if revision is None
        else AVRO_DIR / "history" / (f"{kind}.v{revision}.avsc")
    )
    schema: dict[str, Any] = orjson.loads(path.read_bytes())
    return schema


def history_revisions(kind: str) -> list[int]:
    found = (p.name.split(".")[1] for p in (AVRO_DIR / "history").glob(f"{kind}.v*.avsc"))
    return sorted(int(v[1:]) for v in found if v[1:].isdigit())


def schema_fingerprint(schema: dict[str, Any]) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, in the byte order Avro frames it."""
    canonical = to_parsing_canonical_form(parse_schema(schema, named_schemas={}))
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True, slots=True)
class _Reader:
    kind: Kind
    writer: Any
    reader: Any
    """None when the writer schema is the current one (no resolution needed)."""
    read: Reader | None
    """The generated decoder of this pair; None: fastavro reads it."""


@cache
def _current(kind: Kind) -> tuple[Any, bytes, str]:
    schema = load_schema(kind)
    return parse_schema(schema, named_schemas={}), schema_fingerprint(schema), subject_for(schema)


_KIND_BY_NAME: dict[str, Kind] = {_current(kind)[2]: kind for kind in KINDS}


@cache
def _writer(kind: Kind) -> tuple[Writer | None, bytes, bytes]:
    """The generated encoder, the single-object prefix and the fingerprint header value."""
    _, fp, _ = _current(kind)
    return compile_writer(load_schema(kind)), SINGLE_OBJECT_MAGIC + fp, fp.hex().encode()


def _reader(kind: Kind, schema: dict[str, Any]) -> _Reader:
    """How to read records written with ``schema`` (a revision of ``kind``)."""
    current = load_schema(kind)
    parsed, fp, _ = _current(kind)
    if schema_fingerprint(schema) == fp:
        return _Reader(kind, parsed, None, compile_reader(current))
    return _Reader(
        kind, parse_schema(schema, named_schemas={}), parsed, compile_reader(schema, current)
    )


def _millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    since = moment - _EPOCH  # the same floor as "// timedelta(milliseconds=1)", cheaper
    return since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000


def _dumps(activity: JSONDict) -> bytes:
    """JSON text of an activity. What orjson cannot write (integers beyond 64 bits,
    lone surrogates) is written by the stdlib with a leading space, which tells
    ``_loads`` to read it back with the stdlib too (orjson would turn big integers
    into floats). Both forms are plain JSON."""
    try:
        return orjson.dumps(activity)
    except orjson.JSONEncodeError:
        try:
            text = json.dumps(activity, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise CodecError(f"activity is not JSON-serialisable: {exc}") from None
        return b" " + text.encode()


def _loads(text: str | bytes) -> JSONDict:
    try:
        value = json.loads(text) if text[:1] in (" ", b" ") else orjson.loads(text)
    except ValueError:
        raise CodecError("activity payload is not valid JSON") from None
    if not isinstance(value, dict):
        raise CodecError("activity payload is not a JSON object")
    return value


def _text(value: object) -> str | None:
    """A string audit field, or None; lone surrogates are replaced (Avro strings are UTF-8)."""
    if not isinstance(value, str):
        return None
    if value.isascii():
        return value
    return value.encode("utf-8", "replace").decode("utf-8")


def _binding_v2(
    kind: Kind,
    session_id: str,
    record_id: str,
    platform: str,
    verb: str,
    request_kind: str | None,
    reply_route: str,
) -> tuple[str | None, ...]:
    """Revision-2 associated data: every field a consumer routes or acts on.
    ``request_kind`` is None for results and events, which have no such field."""
    name = _current(kind)[2]
    return (BINDING_V2, name, session_id, record_id, platform, verb, request_kind, reply_route)


def _audit(activity: JSONDict, sealed: bool) -> dict[str, Any]:
    actor = activity.get("actor")
    target = activity.get("target")
    obj = activity.get("object")
    fields: dict[str, Any] = {
        "actor_id": _text(actor.get("id") if isinstance(actor, dict) else actor),
        "actor_type": _text(actor.get("type")) if isinstance(actor, dict) else None,
        "target_id": _text(target.get("id") if isinstance(target, dict) else target),
        "target_type": _text(target.get("type")) if isinstance(target, dict) else None,
        "object_type": _text(obj.get("type")) if isinstance(obj, dict) else None,
    }
    if sealed:
        fields["actor_name"] = fields["target_name"] = fields["object_content"] = None
    else:
        fields["actor_name"] = _text(actor.get("name")) if isinstance(actor, dict) else None
        fields["target_name"] = _text(target.get("name")) if isinstance(target, dict) else None
        fields["object_content"] = (
            _text(obj.get("content")) if isinstance(obj, dict) else _text(obj)
        )
    return fields


class Codec:
    """Encodes records to Kafka values and headers, and back.

    ``encode``/``decode`` are synchronous and CPU-only. With a registry, call
    ``await start()`` once first; ``decode_async`` additionally fetches schema
    ids it has not seen (records written by other schema revisions).
    """

    def __init__(
        self,
        keyring: KeyRing | None = None,
        registry: SchemaRegistry | None = None,
        *,
        owns_registry: bool = False,
    ) -> None:
        self._keyring = keyring
        self._registry = registry
        self._owns_registry = owns_registry
        self._write_ids: dict[Kind, bytes] = {}
        self._by_fingerprint: dict[bytes, _Reader] = {}
        self._by_id: dict[int, _Reader] = {}
        for kind in KINDS:
            self._by_fingerprint[_current(kind)[1]] = _reader(kind, load_schema(kind))
            for revision in history_revisions(kind):
                old = load_schema(kind, revision)
                self._by_fingerprint[schema_fingerprint(old)] = _reader(kind, old)
        self._builders: dict[Kind, Callable[[dict[str, Any]], Record]] = {
            "request": self._request_from,
            "result": self._result_from,
            "event": self._event_from,
        }

    @property
    def encrypting(self) -> bool:
        return self._keyring is not None

    async def start(self) -> None:
        """Register the current schemas (and learn the ids of known history revisions)."""
        if self._registry is None:
            return
        for kind in KINDS:
            schema = load_schema(kind)
            subject = subject_for(schema)
            schema_id = await self._registry.register(subject, schema)
            self._write_ids[kind] = CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")
            self._by_id[schema_id] = self._by_fingerprint[_current(kind)[1]]
            for revision in history_revisions(kind):
                old = load_schema(kind, revision)
                old_id = await self._registry.lookup(subject, old)
                if old_id is not None and old_id not in self._by_id:
                    self._by_id[old_id] = self._by_fingerprint[schema_fingerprint(old)]

    async def close(self) -> None:
        if self._registry is not None and self._owns_registry:
            await self._registry.close()

    # -- encoding ---------------------------------------------------------

    def encode(self, record: Record) -> tuple[bytes, list[tuple[str, bytes]]]:
        """Return the Kafka value and headers for ``record``."""
        if isinstance(record, Request):
            kind: Kind = "request"
            datum = self._request_datum(record)
        elif isinstance(record, Result):
            kind = "result"
            datum = self._reply_datum(record, record.activity_id, "activity_id")
            datum["completed_at"] = _millis(record.completed_at)
            datum["correlation_id"] = record.correlation_id
        elif isinstance(record, PlatformEvent):
            kind = "event"
            datum = self._reply_datum(record, record.event_id, "event_id")
        else:
            raise CodecError(f"cannot encode {type(record).__name__}")
        write, prefix, fp_header = _writer(kind)
        if self._registry is not None:
            registered = self._write_ids.get(kind)
            if registered is None:
                raise CodecError("a schema registry is configured: await Codec.start() first")
            prefix = registered
        try:
            if write is not None:
                value = write(datum, prefix)
            else:
                out = BytesIO()
                out.write(prefix)
                schemaless_writer(out, _current(kind)[0], datum)
                value = out.getvalue()
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"cannot encode {kind} record: {type(exc).__name__}") from None
        headers = [
            (HEADER_CONTENT_TYPE, _CONTENT_TYPE_BYTES[kind]),
            (HEADER_FINGERPRINT, fp_header),
        ]
        correlation_id = datum.get("correlation_id")
        if correlation_id is not None:
            headers.append((HEADER_CORRELATION_ID, correlation_id.encode()))
        if record.traceparent is not None:
            headers.append((HEADER_TRACEPARENT, record.traceparent.encode()))
        sealed = datum["sealed"]
        if sealed is not None:
            headers.append((HEADER_KEY_ID, sealed["key_id"].encode()))
        return value, headers

    def _payload(
        self, kind: Kind, record_id: str, record: Record, error: str | None
    ) -> dict[str, Any]:
        """The ``activity``/``error``/``sealed`` fields and the typed audit fields."""
        body = _dumps(record.activity)
        fields = _audit(record.activity, self._keyring is not None)
        if self._keyring is None:
            fields["activity"] = body.decode()
            fields["sealed"] = None
            if kind != "request":
                fields["error"] = error
            return fields
        request_kind = RequestKind(record.kind).value if isinstance(record, Request) else None
        aad = _binding_v2(
            kind,
            record.session_id,
            record_id,
            record.platform,
            record.verb,
            request_kind,
            record.reply_route,
        )
        key_id, sealed_body = self._keyring.encrypt(body, associated_data(*aad, "activity"))
        sealed: dict[str, Any] = {"key_id": key_id, "activity": sealed_body}
        if kind != "request":
            fields["error"] = None
            sealed["error"] = (
                None
                if error is None
                else self._keyring.encrypt(
                    error.encode("utf-8", "surrogatepass"), associated_data(*aad, "error")
                )[1]
            )
        fields["activity"] = None
        fields["sealed"] = sealed
        return fields

    def _request_datum(self, record: Request) -> dict[str, Any]:
        datum = self._payload("request", record.activity_id, record, None)
        datum.update(
            activity_id=record.activity_id,
            session_id=record.session_id,
            platform=record.platform,
            verb=record.verb,
            kind=RequestKind(record.kind).value,
            correlation_id=record.correlation_id,
            reply_route=record.reply_route,
            created_at=_millis(record.created_at),
            attempt=record.attempt,
            traceparent=record.traceparent,
        )
        return datum

    def _reply_datum(
        self, record: Result | PlatformEvent, record_id: str, id_field: str
    ) -> dict[str, Any]:
        kind: Kind = "result" if isinstance(record, Result) else "event"
        datum = self._payload(kind, record_id, record, record.error)
        datum.update(
            session_id=record.session_id,
            platform=record.platform,
            verb=record.verb,
            reply_route=record.reply_route,
            failed=record.error is not None,
            created_at=_millis(record.created_at),
            traceparent=record.traceparent,
        )
        datum[id_field] = record_id
        return datum

    # -- decoding ---------------------------------------------------------

    def decode(self, value: bytes, headers: Sequence[tuple[str, bytes]] | None = None) -> Record:
        """Decode a Kafka value (either framing). ``headers`` are only checked for a
        foreign content type; the value itself is authoritative."""
        if headers:
            for name, header in headers:
                if name == HEADER_CONTENT_TYPE and header not in _KNOWN_CONTENT_TYPES:
                    raise CodecError(f"not a sockethub Avro record: content-type {header!r}")
        reader, offset = self._reader_for(value)
        try:
            if reader.read is not None:
                datum = reader.read(value, offset)
            else:
                buffer = BytesIO(value)
                buffer.seek(offset)
                datum = cast(
                    dict[str, Any], schemaless_reader(buffer, reader.writer, reader.reader)
                )
        except (EOFError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise CodecError(f"malformed {reader.kind} record: {type(exc).__name__}") from None
        return self._builders[reader.kind](datum)

    async def decode_async(
        self, value: bytes, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> Record:
        """Like ``decode``, fetching an unknown Confluent schema id from the registry."""
        if value[:1] == CONFLUENT_MAGIC and len(value) >= 5 and self._registry is not None:
            schema_id = int.from_bytes(value[1:5], "big")
            if schema_id not in self._by_id:
                try:
                    text = await self._registry.get_schema(schema_id)
                except SchemaRegistryError as exc:
                    raise CodecError(str(exc)) from None
                self._learn(schema_id, orjson.loads(text))
        return self.decode(value, headers)

    def _learn(self, schema_id: int, schema: dict[str, Any]) -> None:
        kind = _KIND_BY_NAME.get(subject_for(schema))
        if kind is None:
            raise CodecError(f"schema id {schema_id} is not a sockethub record schema")
        self._by_id[schema_id] = _reader(kind, schema)

    def _reader_for(self, value: bytes) -> tuple[_Reader, int]:
        if value[:2] == SINGLE_OBJECT_MAGIC and len(value) >= 10:
            reader = self._by_fingerprint.get(value[2:10])
            if reader is None:
                raise CodecError(f"unknown schema fingerprint {value[2:10].hex()}")
            return reader, 10
        if value[:1] == CONFLUENT_MAGIC and len(value) >= 5:
            schema_id = int.from_bytes(value[1:5], "big")
            by_id = self._by_id.get(schema_id)
            if by_id is None:
                raise CodecError(
                    f"unknown schema id {schema_id}: use decode_async to fetch it from the registry"
                )
            return by_id, 5
        raise CodecError("value is neither Avro single-object nor Confluent framed")

    def _open(
        self, kind: Kind, datum: dict[str, Any], record_id: str
    ) -> tuple[JSONDict, str | None]:
        sealed = datum["sealed"]
        error: str | None = datum.get("error")
        if sealed is None:
            text = datum["activity"]
            if text is None:
                raise CodecError(f"{kind} record carries neither activity nor sealed payload")
            if self._keyring is not None:
                raise UnsealedRecordError(
                    f"unsealed {kind} record refused: payload keys are set, so every record "
                    "must be sealed"
                )
            return _loads(text), error
        key_id = sealed["key_id"]
        if self._keyring is None:
            raise MissingKeyError(key_id)
        routing = (datum["session_id"], record_id, datum["platform"], datum["verb"])
        aad = _binding_v2(kind, *routing, datum.get("kind"), datum["reply_route"])
        try:
            body = self._keyring.decrypt(
                key_id, sealed["activity"], associated_data(*aad, "activity")
            )
        except DecryptionError:
            # Sealed before binding revision 2 (or tampered: then this fails too).
            aad = (_current(kind)[2], *routing)
            body = self._keyring.decrypt(
                key_id, sealed["activity"], associated_data(*aad, "activity")
            )
        activity = _loads(body)
        sealed_error = sealed.get("error")
        if sealed_error is not None:
            raw = self._keyring.decrypt(key_id, sealed_error, associated_data(*aad, "error"))
            error = raw.decode("utf-8", "surrogatepass")
        return activity, error

    def _request_from(self, datum: dict[str, Any]) -> Request:
        activity, _ = self._open("request", datum, datum["activity_id"])
        return Request(
            session_id=datum["session_id"],
            reply_route=datum["reply_route"],
            platform=datum["platform"],
            verb=datum["verb"],
            activity=activity,
            correlation_id=datum["correlation_id"],
            activity_id=datum["activity_id"],
            kind=RequestKind(datum["kind"]),
            created_at=datum["created_at"],
            attempt=datum["attempt"],
            traceparent=datum["traceparent"],
        )

    def _result_from(self, datum: dict[str, Any]) -> Result:
        activity, error = self._open("result", datum, datum["activity_id"])
        return Result(
            activity_id=datum["activity_id"],
            session_id=datum["session_id"],
            reply_route=datum["reply_route"],
            platform=datum["platform"],
            verb=datum["verb"],
            activity=activity,
            error=error,
            correlation_id=datum["correlation_id"],
            created_at=datum["created_at"],
            completed_at=datum["completed_at"],
            traceparent=datum["traceparent"],
        )

    def _event_from(self, datum: dict[str, Any]) -> PlatformEvent:
        activity, error = self._open("event", datum, datum["event_id"])
        return PlatformEvent(
            session_id=datum["session_id"],
            reply_route=datum["reply_route"],
            platform=datum["platform"],
            verb=datum["verb"],
            activity=activity,
            event_id=datum["event_id"],
            error=error,
            created_at=datum["created_at"],
            traceparent=datum["traceparent"],
        )
