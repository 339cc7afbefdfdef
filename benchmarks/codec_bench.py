"""Records per CPU second: Codec (plain and encrypted) beside stdlib json on the same records.

Run: ``.venv/bin/python benchmarks/codec_bench.py [--seconds 0.5] [--json]``. The json
baseline does what a schemaless JSON wire format would: one document with the record's
fields (ISO timestamps) and the activity, and back to the same dataclass. It carries no
schema, framing or typed audit fields.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.codec import Codec
from schemas.envelopes import Record, Request, RequestKind, Result
from schemas.logcrypt import KeyRing


def _context(platform: str) -> list[str]:
    return [
        "https://www.w3.org/ns/activitystreams",
        "https://sockethub.org/ns/context/v1.jsonld",
        f"https://sockethub.org/ns/context/platform/{platform}/v1.jsonld",
    ]


def sample_records() -> dict[str, Record]:
    echo = {
        "@context": _context("dummy"),
        "type": "echo",
        "id": "client-1",
        "actor": {"id": "dummy", "type": "platform"},
        "target": {"id": "jimmy", "type": "person"},
        "object": {"type": "message", "content": "hello world"},
    }
    irc = {
        "@context": _context("irc"),
        "type": "send",
        "id": "client-2",
        "actor": {"id": "jimmy@irc.libera.chat", "type": "person", "name": "jimmy"},
        "target": {"id": "sockethub@irc.libera.chat", "type": "room", "name": "#sockethub"},
        "object": {"type": "message", "content": "anyone around to review the kafka branch?"},
    }
    feed_url = "https://blog.example.org/feed.xml"
    items = [
        {
            "type": "post",
            "actor": {"id": feed_url, "type": "feed", "name": "Example Blog", "link": feed_url},
            "object": {
                "type": "article",
                "title": f"Post number {i}",
                "id": f"https://blog.example.org/posts/{i}",
                "content": "<p>" + "Lorem ipsum dolor sit amet, consectetur. " * 8 + "</p>",
                "contentType": "html",
                "url": f"https://blog.example.org/posts/{i}",
                "datenum": 1_750_000_000_000 + i * 86_400_000,
                "published": "2025-06-15T12:00:00Z",
            },
        }
        for i in range(20)
    ]
    feeds = {
        "@context": _context("feeds"),
        "type": "collection",
        "summary": "Example Blog",
        "totalItems": 20,
        "items": items,
        "id": None,
    }
    return {
        "dummy echo (result)": Result("a1", "s1", "sockethub.replies.gw-1", "dummy", "echo", echo),
        "irc send (request)": Request(
            "s1", "sockethub.replies.gw-1", "irc", "send", irc, correlation_id="client-2"
        ),
        "feeds 20 items (result)": Result(
            "a2", "s1", "sockethub.replies.gw-1", "feeds", "fetch", feeds
        ),
    }


def _json_encode(record: Record) -> bytes:
    doc = {f.name: getattr(record, f.name) for f in fields(record)}
    doc["record_type"] = type(record).__name__
    return json.dumps(doc, default=datetime.isoformat, separators=(",", ":")).encode()


_TYPES: dict[str, type[Request] | type[Result]] = {"Request": Request, "Result": Result}


def _json_decode(value: bytes) -> Record:
    doc = json.loads(value)
    record_type = _TYPES[doc.pop("record_type")]
    for name in ("created_at", "completed_at"):
        if name in doc:
            doc[name] = datetime.fromisoformat(doc[name])
    if "kind" in doc:
        doc["kind"] = RequestKind(doc["kind"])
    return record_type(**doc)


def _rate(fn: Callable[[], object], seconds: float) -> float:
    count, batch = 0, 50
    start = time.process_time()  # CPU time: the machine is shared, wall time is not ours
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        count += batch
        now = time.process_time()
        if now >= deadline:
            return count / (now - start)


Variant = tuple[Callable[[], object], Callable[[], object], int]


def _codec_variant(codec: Codec, record: Record) -> Variant:
    value = codec.encode(record)[0]
    assert codec.decode(value) == record
    return (lambda: codec.encode(record), lambda: codec.decode(value), len(value))


def run(seconds: float) -> list[dict[str, Any]]:
    keys = KeyRing.parse("bench:" + base64.b64encode(bytes(32)).decode())
    codecs = {"codec": Codec(), "codec+aes-gcm": Codec(keys)}
    rows: list[dict[str, Any]] = []
    for name, record in sample_records().items():
        variants = {label: _codec_variant(codec, record) for label, codec in codecs.items()}
        doc = _json_encode(record)
        assert _json_decode(doc) == record
        variants["stdlib json"] = (
            lambda r=record: _json_encode(r),  # type: ignore[misc]
            lambda d=doc: _json_decode(d),  # type: ignore[misc]
            len(doc),
        )
        for label, (encode, decode, size) in variants.items():
            rows.append(
                {
                    "record": name,
                    "codec": label,
                    "bytes": size,
                    "encode_per_s": round(_rate(encode, seconds)),
                    "decode_per_s": round(_rate(decode, seconds)),
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    rows = run(args.seconds)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'record':<26}{'codec':<16}{'bytes':>8}{'encode/s':>12}{'decode/s':>12}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['record']:<26}{row['codec']:<16}{row['bytes']:>8}"
            f"{row['encode_per_s']:>12,}{row['decode_per_s']:>12,}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
