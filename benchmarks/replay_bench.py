"""``sockethub replay`` speed: records per second read, decoded, filtered and printed.

Run: ``.venv/bin/python benchmarks/replay_bench.py [--records 100000] [--json]``. Without
``--bootstrap`` it starts its own Kafka broker on free loopback ports. The log is filled
first (requests on the dummy request topic, results on a reply topic, across 500
sessions); then the replay tool reads it three ways, writing to /dev/null: the whole log as
JSON lines, the whole log as a table, and one session's history (which still reads every
record, since a session's results share partitions with other sessions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaProducer

from schemas.envelopes import Request, Result
from schemas.platform_registry import canonical_context
from schemas.topics import TopicLayout
from sockethub.devstack.local import local_services
from sockethub.replay import Filters, replay
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.kafka_clients import client_kwargs, ensure_topics
from sockethub.runtime.settings import CommonSettings

SESSIONS = 500


def _pair(session: str, n: int, route: str) -> tuple[Request, Result]:
    activity = {
        "@context": canonical_context("dummy"),
        "type": "echo",
        "id": f"{session}-{n}",
        "actor": {"id": f"{session}@example.org", "type": "person", "name": "Someone"},
        "object": {"type": "message", "content": f"hello number {n}"},
    }
    request = Request(session, route, "dummy", "echo", activity, correlation_id=activity["id"])
    answer = {**activity, "actor": {"id": "dummy", "type": "platform"}, "target": activity["actor"]}
    result = Result(
        request.activity_id, session, route, "dummy", "echo", answer,
        correlation_id=request.correlation_id, created_at=request.created_at,
    )  # fmt: skip
    return request, result


async def fill(settings: CommonSettings, count: int) -> None:
    layout = TopicLayout(settings)
    await ensure_topics(settings, layout.specs(["dummy"], ["bench-gw"]))
    route = layout.replies("bench-gw")
    codec = codec_from_settings(settings)
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", linger_ms=20,
                                max_batch_size=512 * 1024)  # fmt: skip
    await producer.start()
    try:
        pending = []
        for n in range(count // 2):
            session = f"s{n % SESSIONS:04d}"
            for topic, record in zip(
                (layout.requests("dummy"), route), _pair(session, n, route), strict=True
            ):
                value, headers = codec.encode(record)
                pending.append(await producer.send(topic, value, key=session.encode(),
                                                   headers=headers))  # fmt: skip
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def measure(
    settings: CommonSettings, filters: Filters, fmt: Literal["table", "json"]
) -> dict[str, Any]:
    with open(os.devnull, "w") as sink:  # noqa: ASYNC230 - /dev/null never blocks
        started = time.perf_counter()
        await replay(settings, filters, fmt=fmt, out=sink, err=sink)
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2)}


async def run(bootstrap: str, count: int) -> list[dict[str, Any]]:
    settings = CommonSettings(kafka_bootstrap=bootstrap, topic_prefix=f"rb{uuid.uuid4().hex[:6]}",
                              request_partitions=6)  # fmt: skip
    started = time.perf_counter()
    await fill(settings, count)
    fill_s = time.perf_counter() - started
    rows = [{"case": "fill the log", "records": count, "seconds": round(fill_s, 2)}]
    cases: list[tuple[str, Filters, Literal["table", "json"]]] = [
        ("whole log, JSON lines", Filters(), "json"),
        ("whole log, table", Filters(), "table"),
        ("one session (of 500), JSON", Filters(session="s0007"), "json"),
    ]
    for name, filters, fmt in cases:
        result = await measure(settings, filters, fmt)
        rows.append({"case": name, "records": count, **result})
    for row in rows:
        row["records_per_s"] = round(row["records"] / row["seconds"]) if row["seconds"] else None
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--bootstrap", help="an existing Kafka (host:port)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    with local_services(work, bootstrap=args.bootstrap, with_redis=False, kafka_heap="1g") as svc:
        rows = asyncio.run(run(svc.bootstrap, args.records))
    if args.json:
        print(json.dumps({"benchmark": "replay", "machine_cpus": os.cpu_count(), "rows": rows}))
        return
    print(f"{'case':34} {'records':>8} {'seconds':>8} {'records/s':>10}")
    for row in rows:
        print(
            f"{row['case']:34} {row['records']:>8} {row['seconds']:>8} {row['records_per_s']:>10}"
        )


if __name__ == "__main__":
    main()
