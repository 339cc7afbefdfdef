"""Check that each current schema can read data written with its history revisions.

Run as ``python -m schemas.compat [--avro-dir DIR]``; exits 1, naming the
schema and field, when a change is not backward compatible. Two checks:

- structural, following the Avro resolution rules: a field added to the new
  schema needs a default; a field removed from it must have had one (else
  readers of the old revision break on new data); a type may only widen by an
  Avro promotion (int -> long -> float -> double, string <-> bytes); enum
  symbols may not disappear; named types keep their names;
- empirical: records generated from the old schema are written with it and
  read back through fastavro schema resolution into the new one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from schemas.codec import AVRO_DIR

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
SAMPLES = 200


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _collect(schema: Any, namespace: str | None, names: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = _full_name(schema["name"], schema.get("namespace", namespace))
            names[full] = schema
            namespace = full.rpartition(".")[0] or None
            for f in schema.get("fields", ()):
                _collect(f["type"], namespace, names)
        elif kind == "array":
            _collect(schema["items"], namespace, names)
        elif kind == "map":
            _collect(schema["values"], namespace, names)
        elif isinstance(kind, dict | list):
            _collect(kind, namespace, names)


class _Checker:
    def __init__(self, writer: dict[str, Any], reader: dict[str, Any]) -> None:
        self.writer_names: dict[str, Any] = {}
        self.reader_names: dict[str, Any] = {}
        _collect(writer, None, self.writer_names)
        _collect(reader, None, self.reader_names)
        self.memo: dict[tuple[str, str, str], list[str]] = {}
        """Results by (reader, writer, path); pre-seeded empty to stop on recursive types."""

    @staticmethod
    def _resolve(schema: Any, names: dict[str, Any]) -> Any:
        while True:
            if isinstance(schema, str) and schema not in PRIMITIVES:
                if schema in names:
                    return names[schema]
                match = [v for k, v in names.items() if k.rpartition(".")[2] == schema]
                return match[0] if match else schema
            if isinstance(schema, dict) and isinstance(schema["type"], str | list | dict):
                inner = schema["type"]
                if isinstance(inner, list | dict) or (
                    inner not in PRIMITIVES
                    and inner not in ("record", "error", "enum", "fixed", "array", "map")
                ):
                    schema = inner
                    continue
            return schema

    @staticmethod
    def _kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, dict):
            return "record" if schema["type"] == "error" else str(schema["type"])
        return str(schema)

    def problems(self, reader: Any, writer: Any, path: str) -> list[str]:
        reader = self._resolve(reader, self.reader_names)
        writer = self._resolve(writer, self.writer_names)
        if isinstance(writer, list):
            out: list[str] = []
            for branch in writer:
                out += self.problems(reader, branch, path)
            return out
        if isinstance(reader, list):
            wk = self._kind(writer)
            if any(not self.problems(branch, writer, path) for branch in reader):
                return []
            same = [b for b in reader if self._kind(self._resolve(b, self.reader_names)) == wk]
            if same:
                return self.problems(same[0], writer, path)
            return [f"{path}: the new union cannot hold the old type {self._kind(writer)}"]
        rk, wk = self._kind(reader), self._kind(writer)
        if rk != wk:
            if rk in PROMOTIONS.get(wk, ()):
                return []
            return [f"{path}: type changed from {wk} to {rk}, which is not an Avro promotion"]
        r_logical = reader.get("logicalType") if isinstance(reader, dict) else None
        w_logical = writer.get("logicalType") if isinstance(writer, dict) else None
        if r_logical != w_logical and r_logical is not None and w_logical is not None:
            return [f"{path}: logical type changed from {w_logical} to {r_logical}"]
        if rk == "array":
            return self.problems(reader["items"], writer["items"], f"{path}[]")
        if rk == "map":
            return self.problems(reader["values"], writer["values"], f"{path}{{}}")
        if rk in ("record", "enum", "fixed"):
            return self._named(rk, reader, writer, path)
        return []

    def _named(
        self, kind: str, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> list[str]:
        r_name, w_name = reader["name"].rpartition(".")[2], writer["name"].rpartition(".")[2]
        aliases = {a.rpartition(".")[2] for a in reader.get("aliases", ())}
        if r_name != w_name and w_name not in aliases:
            return [f"{path}: {kind} renamed from {w_name} to {r_name} without an alias"]
        if kind == "fixed":
            if reader["size"] != writer["size"]:
                return [f"{path}: fixed size changed from {writer['size']} to {reader['size']}"]
            return []
        if kind == "enum":
            lost = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if lost and "default" not in reader:
                return [f"{path}: enum {r_name} lost symbols {lost} and has no default"]
            return []
        key = (r_name, w_name, path)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = []
        out: list[str] = []
        w_fields = {f["name"]: f for f in writer["fields"]}
        matched: set[str] = set()
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", ())]
            old = next((w_fields[n] for n in names if n in w_fields), None)
            where = f"{path}.{field['name']}"
            if old is None:
                if "default" not in field:
                    out.append(f"{where}: field added without a default")
                continue
            matched.add(old["name"])
            out += self.problems(field["type"], old["type"], where)
        for name, old in w_fields.items():
            if name not in matched and "default" not in old:
                out.append(
                    f"{path}.{name}: field removed although it had no default "
                    "(readers of the old revision cannot read new data)"
                )
        self.memo[key] = out
        return out


def structural_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Reasons why ``new`` cannot read data written with ``old`` (empty if it can)."""
    return _Checker(old, new).problems(new, old, new.get("name", "schema"))


def resolution_problems(
    old: dict[str, Any], new: dict[str, Any], samples: int = SAMPLES
) -> list[str]:
    """Write generated records with ``old``, read them with ``new`` by schema resolution."""
    writer = parse_schema(old, named_schemas={})
    reader = parse_schema(new, named_schemas={})
    for datum in generate_many(old, samples):
        buffer = BytesIO()
        schemaless_writer(buffer, writer, datum)
        buffer.seek(0)
        try:
            schemaless_reader(buffer, writer, reader)
        except Exception as exc:
            return [f"{new.get('name')}: reading old data failed: {type(exc).__name__}: {exc}"]
    return []


def check_directory(avro_dir: Path) -> tuple[list[str], list[str]]:
    """(problems, checked pairs) for every ``<name>.avsc`` against ``history/<name>.v*.avsc``."""
    problems: list[str] = []
    checked: list[str] = []
    for current in sorted(avro_dir.glob("*.avsc")):
        new = orjson.loads(current.read_bytes())
        stem = current.name.removesuffix(".avsc")
        for old_path in sorted((avro_dir / "history").glob(f"{stem}.v*.avsc")):
            old = orjson.loads(old_path.read_bytes())
            label = f"{current.name} <- history/{old_path.name}"
            found = structural_problems(old, new)
            if not found:
                found = resolution_problems(old, new)
            problems += [f"{label}: {p}" for p in found]
            checked.append(label)
    return problems, checked


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.compat", description=__doc__)
    parser.add_argument("--avro-dir", type=Path, default=AVRO_DIR)
    args = parser.parse_args(argv)
    try:
        problems, checked = check_directory(args.avro_dir)
    except (OSError, ValueError, KeyError) as exc:
        print(f"schemas.compat: cannot check {args.avro_dir}: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"INCOMPATIBLE {problem}", file=sys.stderr)
    if problems:
        return 1
    for label in checked:
        print(f"ok {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
