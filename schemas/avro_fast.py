"""Avro binary encoders and decoders generated from our own ``.avsc`` files.

fastavro interprets the schema on every call, so every record pays for walking it
again; the functions built here are straight-line Python for one schema, and
write the same bytes and read the same values as fastavro's
``schemaless_writer``/``schemaless_reader`` (``tests/unit/schemas/test_avro_fast.py``
checks that with generated records, against the current and the history
schemas). They cover the types our records use: null, boolean, int, long
(``timestamp-millis`` read as an aware UTC ``datetime``, written from an int),
string, bytes, enum, inline records and unions of null with one other type.
Anything else makes :func:`compile_writer`/:func:`compile_reader` return None,
and the caller keeps using fastavro.

On malformed input the decoders raise ``EOFError``, ``ValueError``,
``IndexError`` or ``OverflowError``. They are stricter than fastavro, never
more lenient: a union or enum index out of range (fastavro wraps negative ones
around), a union index not written as the single byte 0 or 2, a boolean byte other than 0
or 1, a varint beyond 64 bits or a negative length are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Reader", "Writer", "compile_reader", "compile_writer"]

Writer = Callable[[dict[str, Any], bytes], bytes]
"""``write(datum, prefix)``: ``prefix`` followed by the Avro body of ``datum``."""
Reader = Callable[[bytes, int], dict[str, Any]]
"""``read(data, offset)``: the record whose body starts at ``offset``."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "string", "bytes"})
_MAX_LONG = 1 << 63
_DEFAULT_TYPES = (type(None), bool, int, str)


class _Unsupported(Exception):
    pass


def _varint(unsigned: int) -> bytes:
    out = bytearray()
    while unsigned >= 0x80:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


def _zigzag(value: int) -> bytes:
    """The varint of a long, for the writers' multi-byte case."""
    if not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    if not -_MAX_LONG <= value < _MAX_LONG:
        raise OverflowError("integer out of the Avro long range")
    return _varint((value << 1) ^ (value >> 63))


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint starting at ``pos`` (the readers inline the one-byte case)."""
    byte = data[pos]
    pos += 1
    unsigned = byte & 0x7F
    shift = 7
    while byte & 0x80:
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
        byte = data[pos]
        pos += 1
        unsigned |= (byte & 0x7F) << shift
        shift += 7
    if unsigned >> 64:
        raise ValueError("varint beyond 64 bits")
    return (unsigned >> 1) ^ -(unsigned & 1), pos


def _millis(value: int) -> datetime:
    return _EPOCH + timedelta(0, 0, 0, value)


class _Source:
    """Lines of one generated function, with fresh local names."""

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient
        """Writers: a missing field takes its default (fastavro's ``datum.get``)."""
        self.lines: list[str] = []
        self.constants: dict[str, object] = {}
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}{self._count}"

    def constant(self, value: object) -> str:
        name = self.name("_k")
        self.constants[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict) and isinstance(schema.get("type"), str):
        return str(schema["type"])
    raise _Unsupported(f"schema {schema!r}")


def _union_branch(schema: list[Any]) -> Any:
    """The non-null branch of a ``["null", T]`` union."""
    if len(schema) != 2 or schema[0] != "null" or _type_name(schema[1]) in ("null", "union"):
        raise _Unsupported(f"union {schema!r}")
    return schema[1]


def _is_timestamp(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis"


# -- writers -----------------------------------------------------------------


def _checked_kind(schema: Any) -> str:
    """The schema's type name; a logical type other than timestamp-millis is not ours."""
    kind = _type_name(schema)
    if isinstance(schema, dict) and kind in _PRIMITIVES:
        logical = schema.get("logicalType")
        if logical is not None and not (logical == "timestamp-millis" and kind == "long"):
            raise _Unsupported(f"logical type {logical}")
    return kind


def _write_value(src: _Source, schema: Any, var: str, indent: int) -> None:
    kind = _checked_kind(schema)
    emit = src.emit
    if kind == "null":
        emit(indent, f"if {var} is not None:")
        emit(indent + 1, "raise ValueError('expected null')")
    elif kind == "boolean":
        emit(indent, f"out.append(1 if {var} else 0)")
    elif kind in ("int", "long"):
        emit(indent, f"if type({var}) is int and -64 <= {var} < 64:")
        emit(indent + 1, f"out.append((({var} << 1) ^ ({var} >> 63)) & 0xFF)")
        emit(indent, "else:")
        emit(indent + 1, f"out += _zigzag({var})")
    elif kind in ("string", "bytes"):
        raw = src.name("b")
        if kind == "string":
            emit(indent, f"if not isinstance({var}, str):")
            emit(indent + 1, f"raise TypeError('expected a string, got ' + type({var}).__name__)")
            emit(indent, f"{raw} = {var}.encode()")
        else:
            emit(indent, f"if not isinstance({var}, (bytes, bytearray)):")
            emit(indent + 1, f"raise TypeError('expected bytes, got ' + type({var}).__name__)")
            emit(indent, f"{raw} = {var}")
        size = src.name("n")
        emit(indent, f"{size} = len({raw})")
        emit(indent, f"if {size} < 64:")
        emit(indent + 1, f"out.append({size} << 1)")
        emit(indent, "else:")
        emit(indent + 1, f"out += _varint({size} << 1)")
        emit(indent, f"out += {raw}")
    elif kind == "enum":
        symbols = src.constant({s: _zigzag(i) for i, s in enumerate(schema["symbols"])})
        index = src.name("e")
        emit(indent, f"{index} = {symbols}.get({var}) if isinstance({var}, str) else None")
        emit(indent, f"if {index} is None:")
        emit(indent + 1, f"raise ValueError(f'{{{var}!r}} is not a symbol of the enum')")
        emit(indent, f"out += {index}")
    elif kind == "record":
        emit(indent, f"if not isinstance({var}, dict):")
        emit(indent + 1, f"raise TypeError('expected a record, got ' + type({var}).__name__)")
        for field in schema["fields"]:
            value = src.name("v")
            name = field["name"]
            default = field.get("default")
            if not isinstance(default, _DEFAULT_TYPES):
                raise _Unsupported(f"default {default!r}")
            if src.lenient:
                emit(indent, f"{value} = {var}.get({name!r}, {default!r})")
            else:
                emit(indent, f"{value} = {var}[{name!r}]")
            _write_value(src, field["type"], value, indent)
    elif kind == "union":
        branch = _union_branch(schema)
        emit(indent, f"if {var} is None:")
        emit(indent + 1, "out.append(0)")
        emit(indent, "else:")
        emit(indent + 1, "out.append(2)")
        _write_value(src, branch, var, indent + 1)
    else:
        raise _Unsupported(f"type {kind}")


def compile_writer(schema: dict[str, Any]) -> Writer | None:
    """The encoder of a record schema, or None if it uses a type not covered here.

    It looks fields up by subscript; a record missing a field is written again by
    a twin that takes defaults (None where there is none, which then fails the
    field's type check) as fastavro does.
    """
    namespace: dict[str, Any] = {"_zigzag": _zigzag, "_varint": _varint}
    lines: list[str] = []
    for lenient, name in ((True, "write_lenient"), (False, "write")):
        src = _Source(lenient)
        src.emit(0, f"def {name}(datum, prefix):")
        body = 1 if lenient else 2
        if not lenient:
            src.emit(1, "try:")
        src.emit(body, "out = bytearray(prefix)")
        try:
            if _type_name(schema) != "record":
                raise _Unsupported("not a record")
            _write_value(src, schema, "datum", body)
        except _Unsupported:
            return None
        src.emit(body, "return bytes(out)")
        if not lenient:
            src.emit(1, "except KeyError:")
            src.emit(2, "return write_lenient(datum, prefix)")
        lines += src.lines
        namespace.update(src.constants)
    exec(compile("\n".join(lines), f"<avro writer {schema.get('name')}>", "exec"), namespace)
    writer: Writer = namespace["write"]
    return writer


# -- readers -----------------------------------------------------------------


def _read_long(src: _Source, var: str, indent: int) -> None:
    byte = src.name("c")
    src.emit(indent, f"{byte} = data[pos]")
    src.emit(indent, f"if {byte} < 0x80:")
    src.emit(indent + 1, f"{var} = ({byte} >> 1) ^ -({byte} & 1)")
    src.emit(indent + 1, "pos += 1")
    src.emit(indent, "else:")
    src.emit(indent + 1, f"{var}, pos = _long(data, pos)")


def _read_value(src: _Source, schema: Any, var: str, indent: int) -> None:
    """Code that reads one value of ``schema`` into ``var`` (None: read and drop it)."""
    kind = _checked_kind(schema)
    emit = src.emit
    if kind == "null":
        emit(indent, f"{var} = None")
    elif kind == "boolean":
        byte = src.name("c")
        emit(indent, f"{byte} = data[pos]")
        emit(indent, "pos += 1")
        emit(indent, f"if {byte} > 1:")
        emit(indent + 1, "raise ValueError('boolean byte is neither 0 nor 1')")
        emit(indent, f"{var} = {byte} == 1")
    elif kind in ("int", "long"):
        if _is_timestamp(schema):
            raw = src.name("t")
            _read_long(src, raw, indent)
            emit(indent, f"{var} = _millis({raw})")
        else:
            _read_long(src, var, indent)
    elif kind in ("string", "bytes"):
        size = src.name("n")
        _read_long(src, size, indent)
        end = src.name("z")
        emit(indent, f"{end} = pos + {size}")
        emit(indent, f"if {size} < 0 or {end} > size:")
        emit(indent + 1, "raise EOFError('string or bytes beyond the end of the record')")
        decode = ".decode()" if kind == "string" else ""
        emit(indent, f"{var} = data[pos:{end}]{decode}")
        emit(indent, f"pos = {end}")
    elif kind == "enum":
        symbols = src.constant(tuple(schema["symbols"]))
        index = src.name("i")
        _read_long(src, index, indent)
        emit(indent, f"if {index} < 0:")
        emit(indent + 1, "raise IndexError('negative enum index')")
        emit(indent, f"{var} = {symbols}[{index}]")
    elif kind == "union":
        # The index is 0 or 1: its canonical varint is the single byte 0 or 2.
        branch = _union_branch(schema)
        index = src.name("i")
        emit(indent, f"{index} = data[pos]")
        emit(indent, "pos += 1")
        emit(indent, f"if {index} == 0:")
        emit(indent + 1, f"{var} = None")
        emit(indent, f"elif {index} == 2:")
        _read_value(src, branch, var, indent + 1)
        emit(indent, "else:")
        emit(indent + 1, "raise IndexError('union index out of range or not a canonical varint')")
    elif kind == "record":
        _read_record(src, schema, schema, var, indent)
    else:
        raise _Unsupported(f"type {kind}")


def _same_type(writer: Any, reader: Any) -> bool:
    return bool(writer == reader)


def _read_record(
    src: _Source, writer: dict[str, Any], reader: dict[str, Any], var: str, indent: int
) -> None:
    """Read ``writer``'s fields in order; build the dict of ``reader``'s fields."""
    wanted = {field["name"]: field for field in reader["fields"]}
    values: dict[str, str] = {}
    for field in writer["fields"]:
        name = field["name"]
        target = wanted.get(name)
        if target is not None and not _same_type(field["type"], target["type"]):
            raise _Unsupported(f"field {name} changed type")
        value = src.name("f")
        _read_value(src, field["type"], value, indent)
        if target is not None:
            values[name] = value
    for name, field in wanted.items():
        if name in values:
            continue
        if "default" not in field or not isinstance(field["default"], _DEFAULT_TYPES):
            raise _Unsupported(f"field {name} has no usable default")
        values[name] = repr(field["default"])
    items = ", ".join(f"{name!r}: {values[name]}" for name in wanted)
    src.emit(indent, f"{var} = {{{items}}}")


def compile_reader(writer: dict[str, Any], reader: dict[str, Any] | None = None) -> Reader | None:
    """The decoder of records written with ``writer``, read as ``reader`` (default: the
    same schema), or None if the pair needs anything not covered here.

    Resolution covers fields added with a default and fields removed; a field whose
    type changed, or a renamed record, is left to fastavro.
    """
    reader = writer if reader is None else reader
    src = _Source()
    src.emit(0, "def read(data, pos):")
    src.emit(1, "size = len(data)")
    try:
        if _type_name(writer) != "record" or _type_name(reader) != "record":
            raise _Unsupported("not a record")
        if writer.get("name") != reader.get("name"):
            raise _Unsupported("record renamed")
        _read_record(src, writer, reader, "record", 1)
    except _Unsupported:
        return None
    src.emit(1, "return record")
    namespace: dict[str, Any] = {"_long": _long, "_millis": _millis, **src.constants}
    exec(compile("\n".join(src.lines), f"<avro reader {reader.get('name')}>", "exec"), namespace)
    read: Reader = namespace["read"]
    return read
