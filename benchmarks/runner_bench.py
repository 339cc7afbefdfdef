"""One runner process's throughput: dummy echoes per second, with and without transactions.

Run: ``.venv/bin/python benchmarks/runner_bench.py [--requests 20000] [--json]``. Without
``--bootstrap``/``--redis-url`` it starts its own Kafka broker and Redis on free loopback
ports. For each mode the request topic is filled first, then one runner process
(``sockethub runner --platform dummy``) is started; the rate is measured from its first
answer to its last, as a ``read_committed`` reader sees them (so startup and the consumer
group join are excluded, and transactional answers count only once committed).

``--rate R`` measures a fixed load instead: the runner is started first, then requests are
produced at R per second for ``--duration`` seconds; the table gives the runner's CPU per
request and the latency from each request's scheduled send to its committed answer.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from benchmarks.measure import cpu_seconds, percentile
from platform_runners.settings import RunnerSettings
from schemas.envelopes import Request
from schemas.platform_registry import canonical_context
from schemas.topics import REPLY_PARTITIONS, TopicLayout
from sockethub.devstack.local import local_services
from sockethub.devstack.processes import spawn, stop
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.kafka_clients import client_kwargs, ensure_topics

GATEWAY = "bench-gw"


def _request(session: str, n: int, route: str) -> Request:
    activity = {
        "@context": canonical_context("dummy"),
        "type": "echo",
        "id": f"{session}-{n}",
        "actor": {"id": f"{session}@example.org", "type": "person"},
        "object": {"type": "message", "content": f"hello {n}"},
    }
    return Request(session, route, "dummy", "echo", activity, correlation_id=f"{session}-{n}")


async def _fill(settings: RunnerSettings, layout: TopicLayout, count: int, sessions: int) -> None:
    codec = codec_from_settings(settings)
    producer = AIOKafkaProducer(
        **client_kwargs(settings), acks="all", linger_ms=10, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        route = layout.replies(GATEWAY)
        futures = []
        for n in range(count):
            request = _request(f"s{n % sessions}", n // sessions, route)
            value, headers = codec.encode(request)
            futures.append(
                await producer.send(
                    layout.requests("dummy"),
                    value,
                    key=request.session_id.encode(),
                    headers=headers,
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _reply_reader(settings: RunnerSettings, layout: TopicLayout) -> AIOKafkaConsumer:
    """A started ``read_committed`` reader of every partition of the bench's reply topic."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        group_id=None,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    topic = layout.replies(GATEWAY)
    consumer.assign([TopicPartition(topic, p) for p in range(REPLY_PARTITIONS)])
    return consumer


async def _measure(
    settings: RunnerSettings, layout: TopicLayout, count: int, within: float
) -> tuple[float, float]:
    """(seconds from the first answer to the last, seconds from start to the last)."""
    consumer = await _reply_reader(settings, layout)
    started = time.perf_counter()
    first: float | None = None
    seen = 0
    try:
        while seen < count:
            if time.perf_counter() - started > within:
                raise TimeoutError(f"only {seen} of {count} answers within {within}s")
            batch = await consumer.getmany(timeout_ms=200, max_records=10000)
            got = sum(len(m) for m in batch.values())
            if got and first is None:
                first = time.perf_counter()
            seen += got
    finally:
        await consumer.stop()
    end = time.perf_counter()
    assert first is not None
    return end - first, end - started


async def _fixed_rate(
    settings: RunnerSettings, layout: TopicLayout, args: argparse.Namespace, pid: int
) -> dict[str, Any]:
    """Produce at ``args.rate``/s for ``args.duration`` s; runner CPU and answer latencies."""
    codec = codec_from_settings(settings)
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", linger_ms=1)
    await producer.start()
    consumer = await _reply_reader(settings, layout)
    route = layout.replies(GATEWAY)
    scheduled: dict[str, float] = {}
    latencies: list[float] = []

    async def send(n: int, at: float) -> None:
        request = _request(f"s{n % args.sessions}", n // args.sessions, route)
        value, headers = codec.encode(request)
        scheduled[request.activity_id] = at
        await producer.send(
            layout.requests("dummy"), value, key=request.session_id.encode(), headers=headers
        )

    async def collect(until: int) -> None:
        while len(latencies) < until:
            batch = await consumer.getmany(timeout_ms=200, max_records=10000)
            now = time.perf_counter()
            for messages in batch.values():
                for message in messages:
                    answer = codec.decode(message.value or b"")
                    sent_at = scheduled.pop(getattr(answer, "activity_id", ""), None)
                    if sent_at is not None:
                        latencies.append((now - sent_at) * 1000)

    try:
        await send(0, time.perf_counter())  # the runner has joined once this is answered
        await asyncio.wait_for(collect(1), args.timeout)
        latencies.clear()
        total = int(args.rate * args.duration)
        collector = asyncio.create_task(collect(total))
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        for n in range(1, total + 1):
            at = t0 + (n - 1) / args.rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(n, at)
        await asyncio.wait_for(collector, args.timeout)
        spent, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    finally:
        await consumer.stop()
        await producer.stop()
    return {
        "rate": args.rate,
        "answered": len(latencies),
        "runner_cores": round(cpu / spent, 3),
        "runner_cpu_ms_per_request": round(cpu / len(latencies) * 1000, 3),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def _run_mode(
    base: dict[str, str], transactions: bool, args: argparse.Namespace, logs: Path
) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        **base,
        "SOCKETHUB_TOPIC_PREFIX": prefix,
        "SOCKETHUB_TRANSACTIONS": "true" if transactions else "false",
        "SOCKETHUB_CONCURRENCY": str(args.concurrency),
        "SOCKETHUB_LOG_LEVEL": "WARNING",
    }
    settings = RunnerSettings(
        kafka_bootstrap=base["SOCKETHUB_KAFKA_BOOTSTRAP"],
        redis_url=base["SOCKETHUB_REDIS_URL"],
        topic_prefix=prefix,
    )
    layout = TopicLayout(settings)
    asyncio.run(ensure_topics(settings, layout.specs(["dummy"], [GATEWAY])))
    cmd = [sys.executable, "-m", "sockethub.cli", "runner", "--platform", "dummy"]
    if args.rate:
        proc = spawn(cmd, log_path=logs / f"runner-{prefix}.log", env=env)
        try:
            fixed = asyncio.run(_fixed_rate(settings, layout, args, proc.pid))
        finally:
            code = stop(proc)
        mode = "transactions" if transactions else "at-least-once"
        return {"mode": mode, **fixed, "runner_exit": code}
    asyncio.run(_fill(settings, layout, args.requests, args.sessions))
    proc = spawn(cmd, log_path=logs / f"runner-{prefix}.log", env=env)
    try:
        busy, total = asyncio.run(_measure(settings, layout, args.requests, args.timeout))
    finally:
        code = stop(proc)
    return {
        "mode": "transactions" if transactions else "at-least-once",
        "requests": args.requests,
        "sessions": args.sessions,
        "concurrency": args.concurrency,
        "requests_per_s": round((args.requests - 1) / busy, 1) if busy > 0 else None,
        "seconds": round(busy, 2),
        "seconds_incl_startup": round(total, 2),
        "runner_exit": code,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="Kafka to use (default: start one)")
    parser.add_argument("--redis-url", help="Redis to use (default: start one)")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--modes", default="transactions,at-least-once")
    parser.add_argument("--rate", type=float, help="fixed load, requests/s (see above)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of --rate")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="runner-bench-"))
    with local_services(work, bootstrap=args.bootstrap, redis_url=args.redis_url) as services:
        base = {
            "SOCKETHUB_KAFKA_BOOTSTRAP": services.bootstrap,
            "SOCKETHUB_REDIS_URL": services.redis_url or "",
        }
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        rows = [_run_mode(base, mode == "transactions", args, work) for mode in modes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if args.rate:
        print(f"{'mode':<15} {'rate':>7} {'answered':>9} {'cores':>6} {'ms CPU/req':>11} "
              f"{'p50 ms':>8} {'p99 ms':>8}")  # fmt: skip
        for row in rows:
            print(
                f"{row['mode']:<15} {row['rate']:>7g} {row['answered']:>9} "
                f"{row['runner_cores']:>6} {row['runner_cpu_ms_per_request']:>11} "
                f"{row['p50_ms']:>8} {row['p99_ms']:>8}"
            )
        return 0
    head = ("mode", "requests", "sessions", "req/s", "seconds", "w/ startup")
    print(f"{head[0]:<15} {head[1]:>9} {head[2]:>9} {head[3]:>10} {head[4]:>8} {head[5]:>11}")
    for row in rows:
        print(
            f"{row['mode']:<15} {row['requests']:>9} {row['sessions']:>9} "
            f"{row['requests_per_s']:>10} {row['seconds']:>8} {row['seconds_incl_startup']:>11}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
