"""End to end: Socket.IO clients -> gateway -> Kafka -> dummy runners -> Kafka -> gateway -> ack.

Run: ``.venv/bin/python benchmarks/e2e_bench.py [--json]``. Without ``--bootstrap`` /
``--redis-url`` it starts its own Kafka broker and Redis on free loopback ports; it always
starts ``--gateways`` gateways (``sockethub gateway``, each its own process and reply topic;
the clients' processes are spread over them) and ``--runners`` dummy runner processes
(``sockethub runner --platform dummy``, distinct instance names, one consumer group), and
stops everything it started at the end. Phases, all in one run:

1. **Kafka only**: one Python process produces ``Request`` records, consumes them,
   produces a ``Result`` for each, and consumes those, with the same ``Codec``, producer
   settings (``acks=all``, idempotent) and ``read_committed`` reader as the stack. This is
   the ceiling the gateway is compared with.
2. **Idle memory**: gateway RSS with 1000 and then 5000 idle websocket connections held by
   several client processes; per connection = (RSS - RSS before) / connections.
3. **Latency against load** (``curve``): open loop at each of ``--rates`` echoes/s (200,
   800, 1 500 and 2 500 by default), latency from each request's scheduled time to its ack.
4. **Saturation**: ``--clients`` clients each keep W echoes outstanding (closed loop), for
   each W in ``--windows``; throughput counts good answers inside the window. Saturation is
   the best of these rows: past it, more in flight only adds latency (Little's law), so the
   rows show that the machine, not the number of requests in flight, was the limit.
5. **Pipeline floor** (``benchmarks/pipeline_floor.py``): the gateway's own Kafka side,
   in this process, sends dummy echoes at ``--floor-rate`` straight to the runners and reads
   their answers as the gateway does, with no Socket.IO front. Its latency is the part of
   the end-to-end latency no work on the gateway's front can remove.
6. **Topology**: a second stack, started once the first has stopped (same Kafka and Redis,
   its own topics), of two gateways and two runners, the topology high-volume users run:
   ``--topology-rate`` echoes/s (1 500), then the best saturation row's window in flight
   per client (4 when no saturation phase ran), with the curve's figures (each process
   kind's CPU added up over its processes).

Every load phase checks each session's order: each client numbers its echoes, and the
numbers of its good answers must rise (``order_violations``, 0 expected). A client is one
session; its requests are keyed to one request partition, its runner runs them one at a
time in that order, answers them in that order on one reply partition, and the gateway acks
them as it reads them, so the stack promises exactly this order (docs/architecture.md).

Each load phase reports the CPU of the gateway, the runners, Kafka, the clients and the
whole machine, and the time the hypervisor gave to other guests while this one had work
(``steal``, from /proc/stat): on a shared host that time shrinks the machine for every
process at once, so a phase with ``STOLEN_CORES_WARN`` or more of it is marked.

``--phases`` picks which phases run (``kafka,idle,warmup,curve,saturation,floor,topology``, all
by default), so that A/B comparisons can repeat the cheap ones; ``--jsonl FILE`` appends one
JSON line per phase as it ends, so that runs compare.

Before the load phases, an unmeasured closed-loop warm-up (``--warmup`` seconds, same
clients, the largest window) lets the broker's JIT and the Python processes warm up; its
throughput is reported but judged against nothing. A broker started cold spends its first
minutes compiling, which a long-running deployment's broker has long finished; measured
then, that CPU would be charged to the stack (docs/performance-history.md has the figures).

The clients are Node processes (``benchmarks/js/clients.mjs``, the official
``socket.io-client``, websocket transport, acks), driven over stdin/stdout with JSON lines:
they take less CPU per echo than python-socketio clients, CPU the system under test would
otherwise lack, and they still share the machine with everything else, so the figures are
what the whole machine does, not the gateway alone.
``make bench-e2e`` installs them (``npm ci`` in ``benchmarks/js``); run directly, the
benchmark needs ``npm ci --prefix benchmarks/js`` once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import subprocess
import urllib.request

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from prometheus_client import generate_latest

from benchmarks.measure import (
    cpu_seconds,
    histogram_totals,
    hop_means_ms,
    machine_times,
    percentile,
)
from benchmarks.node_clients import ClientProcs, node_binary, raise_nofile, rss_kib
from benchmarks.pipeline_floor import echo_request, pipeline_floor
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from schemas.envelopes import Request, Result
from schemas.topics import MAX_RECORD_BYTES, REPLY_PARTITIONS, TopicLayout
from sockethub.devstack.local import local_services
from sockethub.devstack.processes import free_port, spawn, stop
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.kafka_clients import client_kwargs, ensure_topics
from sockethub.runtime.observability import configure_logging
from sockethub.runtime.settings import CommonSettings

REPO = Path(__file__).resolve().parents[1]
PHASES = ("kafka", "idle", "warmup", "curve", "saturation", "floor", "topology")
STACK_PHASES = {"idle", "warmup", "curve", "saturation", "floor"}
"""The phases run on the stack of ``--gateways`` and ``--runners``; ``topology`` runs on a
stack of its own, started after that one stops."""
TOPOLOGY_GATEWAYS = 2
TOPOLOGY_RUNNERS = 2
TOPOLOGY_WINDOW = 4
"""In flight per client in the topology's closed loop, when no saturation phase ran."""
TOPOLOGY_WARMUP_S = 30.0
LATENCY_TARGETS = {200.0: (8.0, 25.0), 1500.0: (12.0, 45.0)}
"""Offered echoes/s -> (p50, p99) ms at most (issue 24: Sockethub's own figures)."""
SATURATION_TARGET = 4000.0
KAFKA_GATEWAY = "kafka-only"
STOLEN_CORES_WARN = 0.05
"""Steal of at least this (cores, averaged over a phase) marks the phase as measured on a
machine shared with other guests of the host."""


def load_average() -> float:
    return os.getloadavg()[0]


def group_cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for name, pids in groups.items():
        seconds = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):
                seconds += cpu_seconds(pid)
        total[name] = seconds
    return total


# -- phase 1: Kafka alone ---------------------------------------------------------------


async def kafka_only(settings: CommonSettings, count: int, window: int) -> dict[str, Any]:
    """Request -> consume -> Result -> consume, in one process, ``window`` in flight."""
    layout = TopicLayout(settings)
    await ensure_topics(settings, layout.specs(["dummy"], [KAFKA_GATEWAY]))
    codec = codec_from_settings(settings)
    await codec.start()
    kwargs = client_kwargs(settings)
    producer = AIOKafkaProducer(
        **kwargs,
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_RECORD_BYTES,
        linger_ms=2,
    )
    readers = [
        AIOKafkaConsumer(
            **kwargs,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="latest",
            fetch_max_wait_ms=100,
        )
        for _ in range(2)
    ]
    await producer.start()
    for reader in readers:
        await reader.start()
    requests_topic, replies_topic = layout.requests("dummy"), layout.replies(KAFKA_GATEWAY)
    req_parts = await producer.partitions_for(requests_topic)
    assignments = [
        [TopicPartition(requests_topic, p) for p in sorted(req_parts)],
        [TopicPartition(replies_topic, p) for p in range(REPLY_PARTITIONS)],
    ]
    for reader, parts in zip(readers, assignments, strict=True):
        reader.assign(parts)
        await reader.seek_to_end(*parts)
        for tp in parts:
            await reader.position(tp)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    slots = asyncio.Semaphore(window)
    done = asyncio.Event()

    async def relay() -> None:
        while not done.is_set():
            batch = await readers[0].getmany(timeout_ms=200, max_records=1000)
            for messages in batch.values():
                for message in messages:
                    request = codec.decode(message.value or b"", message.headers)
                    assert isinstance(request, Request)
                    result = Result(
                        request.activity_id,
                        request.session_id,
                        request.reply_route,
                        request.platform,
                        request.verb,
                        request.activity,
                        correlation_id=request.correlation_id,
                        created_at=request.created_at,
                    )
                    value, headers = codec.encode(result)
                    await producer.send(
                        replies_topic, value, key=message.key, headers=list(headers)
                    )

    async def sink() -> None:
        answered = 0
        while answered < count:
            batch = await readers[1].getmany(timeout_ms=200, max_records=1000)
            now = time.perf_counter()
            for messages in batch.values():
                for message in messages:
                    result = codec.decode(message.value or b"", message.headers)
                    assert isinstance(result, Result)
                    latencies.append((now - sent_at.pop(result.activity_id)) * 1000.0)
                    answered += 1
                    slots.release()
        done.set()

    relay_task = asyncio.create_task(relay())
    sink_task = asyncio.create_task(sink())
    route = layout.replies(KAFKA_GATEWAY)
    started = time.perf_counter()
    try:
        for n in range(count):
            await slots.acquire()
            request = echo_request(n, route)
            value, headers = codec.encode(request)
            sent_at[request.activity_id] = time.perf_counter()
            await producer.send(
                requests_topic, value, key=request.session_id.encode(), headers=list(headers)
            )
        await asyncio.wait_for(sink_task, 120)
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        relay_task.cancel()
        await asyncio.gather(relay_task, return_exceptions=True)
        await producer.stop()
        for reader in readers:
            await reader.stop()
        await codec.close()
    return {
        "count": count,
        "window": window,
        "echoes_per_s": round(count / elapsed, 1),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


# -- the stack ----------------------------------------------------------------------------


@dataclass
class Stack:
    """``gateways`` gateway processes (each its own reply topic) and ``runners`` dummy
    runners (one consumer group), on one Kafka and Redis, under their own topic prefix."""

    work: Path
    bootstrap: str
    redis_url: str
    runners: int
    gateways: int = 1
    prefix: str = field(default_factory=lambda: f"e2e{uuid.uuid4().hex[:8]}")
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    ports: list[int] = field(default_factory=list)
    internal_ports: list[int] = field(default_factory=list)
    gateway_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    runner_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    runner_metrics_ports: list[int] = field(default_factory=list)
    kafka_pid: int | None = None
    profile: bool = False

    @property
    def gateway(self) -> subprocess.Popen[bytes] | None:
        """The first gateway (the one the idle-memory phase measures)."""
        return self.gateway_procs[0] if self.gateway_procs else None

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def internal_urls(self) -> list[str]:
        """The gateways' ``/readyz`` and ``/metrics``."""
        return [f"http://127.0.0.1:{port}" for port in self.internal_ports]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "SOCKETHUB_KAFKA_BOOTSTRAP": self.bootstrap,
            "SOCKETHUB_REDIS_URL": self.redis_url,
            "SOCKETHUB_SECRET": self.secret,
            "SOCKETHUB_TOPIC_PREFIX": self.prefix,
            "SOCKETHUB_PLATFORMS": "dummy",
            "SOCKETHUB_REQUEST_PARTITIONS": "6",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def start(self) -> None:
        for n in range(self.gateways):
            self.ports.append(free_port())
            self.internal_ports.append(free_port())
            self.gateway_procs.append(
                spawn(
                    [sys.executable, "-m", "sockethub.cli", "gateway"],
                    log_path=self.work / f"{self.prefix}-gateway-{n}.log",
                    cwd=REPO,
                    env=self.env(
                        SOCKETHUB_HOST="127.0.0.1",
                        SOCKETHUB_PORT=str(self.ports[-1]),
                        SOCKETHUB_INTERNAL_PORT=str(self.internal_ports[-1]),
                        # Its own id, so its own reply topic.
                        SOCKETHUB_GATEWAY_ID=f"bench-{self.prefix}-{n}",
                        SOCKETHUB_ALLOWED_ORIGINS="*",
                        # Every client comes from 127.0.0.1; the per-address cap would
                        # refuse them.
                        SOCKETHUB_MAX_CONNECTIONS_PER_IP="100000",
                        # Closed-loop clients may exceed 100 events/s each; the limit is
                        # policy.
                        SOCKETHUB_RATE_LIMIT="100000",
                    ),
                )
            )
        for n in range(self.runners):
            self.runner_metrics_ports.append(free_port())
            self.runner_procs.append(
                spawn(
                    [sys.executable, "-m", "sockethub.cli", "runner", "--platform", "dummy"],
                    log_path=self.work / f"{self.prefix}-runner-{n}.log",
                    cwd=REPO,
                    env=self.env(
                        SOCKETHUB_INSTANCE=f"r{n}",
                        SOCKETHUB_METRICS_PORT=str(self.runner_metrics_ports[-1]),
                    ),
                )
            )
        self._wait_ready()

    def hop_totals(self, extra: Sequence[str] = ()) -> dict[str, tuple[float, float]]:
        """The gateway's and the runners' histograms, and those of the ``extra``
        expositions, (count, sum) added up."""
        urls = [f"{url}/metrics" for url in self.internal_urls]
        urls += [f"http://127.0.0.1:{port}/metrics" for port in self.runner_metrics_ports]
        texts = list(extra)
        for url in urls:
            with urllib.request.urlopen(url, timeout=10) as response:
                texts.append(response.read().decode())
        totals: dict[str, tuple[float, float]] = {}
        for text in texts:
            for name, (count, total) in histogram_totals(text).items():
                count0, total0 = totals.get(name, (0.0, 0.0))
                totals[name] = (count0 + count, total0 + total)
        return totals

    def _wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for n, (proc, url) in enumerate(zip(self.gateway_procs, self.internal_urls, strict=True)):
            log = self.work / f"{self.prefix}-gateway-{n}.log"
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"gateway {n} exited; see {log}")
                try:
                    with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(0.25)
            else:
                raise RuntimeError(f"gateway {n} not ready; see {log}")
        for n in range(self.runners):
            log = self.work / f"{self.prefix}-runner-{n}.log"
            while "runner.partitions.assigned" not in log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"runner {n} got no partitions; see {log}")
                time.sleep(0.25)

    def stop(self) -> None:
        for proc in [*self.runner_procs, *self.gateway_procs]:
            stop(proc, timeout=30)


def summarise(name: str, parts: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    latencies = [x for part in parts for x in part["latencies_ms"]]
    duration = parts[0]["duration"]
    in_window = sum(p["in_window"] for p in parts)
    return {
        "phase": name,
        **extra,
        "sent": sum(p["sent"] for p in parts),
        "answered": sum(p["answered"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "timeouts": sum(p["timeouts"] for p in parts),
        "wrong": sum(p["wrong"] for p in parts),
        "order_violations": sum(p.get("order_violations", 0) for p in parts),
        "echoes_per_s": round(in_window / duration, 1),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": round(max(latencies), 2) if latencies else None,
    }


async def load_phase(
    stack: Stack,
    clients: ClientProcs,
    command: dict[str, Any],
    name: str,
    extra: dict[str, Any],
    *,
    profile: bool = True,
) -> dict[str, Any]:
    """Run one load command on every client process, sampling gateway RSS and CPU (the
    gateways' CPU added up, the RSS peak of the largest)."""
    assert stack.gateway is not None
    pid = stack.gateway.pid
    gateway_pids = [p.pid for p in stack.gateway_procs]
    command = {**command, "start_at": time.time() + 1.0}
    groups = {
        "gateway": gateway_pids,
        "runners": [p.pid for p in stack.runner_procs],
        "kafka": [stack.kafka_pid] if stack.kafka_pid else [],
        "clients": clients.pids,
    }
    peak = max(rss_kib(p) for p in gateway_pids)
    hops0 = await asyncio.to_thread(stack.hop_totals)
    task = asyncio.create_task(clients.command(command, command["duration"] + 90))
    await asyncio.sleep(1.0)  # CPU is sampled over the sending window only
    cpu0, machine0, t0 = group_cpu(groups), machine_times(), time.perf_counter()
    spies: list[asyncio.subprocess.Process] = []
    if stack.profile and profile:
        targets = [("gateway", pid)] + [("runner", p.pid) for p in stack.runner_procs[:1]]
        for label, target in targets:
            spies.append(
                await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).with_name("py-spy")),
                    *("record", "--pid", str(target), "--format", "speedscope", "--nonblocking"),
                    *("--duration", str(int(command["duration"]) - 1)),
                    *(
                        "--output",
                        str(
                            stack.work
                            / f"{label}-{name}-{extra.get('offered', 'closed')}.speedscope.json"
                        ),
                    ),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
    cpu: dict[str, float] = {}
    while not task.done():
        peak = max(peak, *(rss_kib(p) for p in gateway_pids))
        await asyncio.wait({task}, timeout=0.5)
        if not cpu and time.perf_counter() - t0 >= command["duration"] - 0.5:
            spent = time.perf_counter() - t0
            cpu = {k: round((v - cpu0[k]) / spent, 2) for k, v in group_cpu(groups).items()}
            machine = machine_times()
            cpu["machine"] = round((machine.busy - machine0.busy) / spent, 2)
            cpu["stolen"] = round((machine.stolen - machine0.stolen) / spent, 2)
    for spy in spies:
        await spy.wait()
    hops = hop_means_ms(hops0, await asyncio.to_thread(stack.hop_totals))
    row = summarise(name, task.result(), extra)
    rate = row["echoes_per_s"]
    per_echo = (
        {k: round(v / rate * 1000.0, 3) for k, v in cpu.items() if k != "stolen"} if rate else {}
    )
    row.update(
        gateway_rss_peak_kib=peak,
        cpu_cores=cpu,
        cpu_ms_per_echo=per_echo,
        hop_ms=hops,
        load_avg=round(load_average(), 1),
    )
    return row


async def idle_memory(stack: Stack, counts: list[int], procs: int) -> dict[str, Any]:
    assert stack.gateway is not None
    pid = stack.gateway.pid
    await asyncio.sleep(2)
    base = rss_kib(pid)
    result: dict[str, Any] = {"rss_before_kib": base}
    pools: list[ClientProcs] = []
    held = 0
    try:
        for count in counts:
            pool = ClientProcs(stack.url, count - held, procs, f"idle{count}-")
            pools.append(pool)
            seconds = await pool.start()
            held = count
            await asyncio.sleep(3)  # let the connects' garbage settle
            rss = rss_kib(pid)
            result[f"rss_{count}_kib"] = rss
            result[f"kib_per_conn_{count}"] = round((rss - base) / count, 1)
            result[f"connect_s_{count}"] = round(seconds, 1)
    finally:
        for pool in pools:
            await pool.close()
    return result


async def first_echoes(stack: Stack, tag: str) -> None:
    """200 echoes/s for 5 s from 20 clients: first-use allocations and imports, unmeasured."""
    first = ClientProcs(stack.urls, 20, 1, tag)
    await first.start()
    command = {"cmd": "rate", "rate": 200 / first.procs, "duration": 5, "start_at": time.time()}
    await first.command(command, 90)
    await first.close()


async def topology(stack: Stack, args: argparse.Namespace, window: int) -> dict[str, Any]:
    """The load through several gateways and runners: ``--topology-rate`` open loop, then
    ``window`` in flight per client, with the curve's figures and the order check."""
    await first_echoes(stack, "tfirst")
    clients = ClientProcs(stack.urls, args.clients, args.client_procs, "topo")
    await clients.start()
    shape = {"clients": args.clients, "gateways": stack.gateways, "runners": stack.runners}
    rows: list[dict[str, Any]] = []
    # The broker is warm when this run's warm-up phase ran; the new processes need less.
    warm = args.warmup if "warmup" not in args.phases else min(args.warmup, TOPOLOGY_WARMUP_S)
    try:
        if warm > 0:
            warmup = {"cmd": "closed", "window": window, "duration": warm}
            shaped = {**shape, "window": window}
            await load_phase(stack, clients, warmup, "warmup", shaped, profile=False)
        rate = args.topology_rate
        fixed = {"cmd": "rate", "rate": rate / clients.procs, "duration": args.duration}
        rows.append(await load_phase(stack, clients, fixed, "topology", {**shape, "offered": rate}))
        closed = {"cmd": "closed", "window": window, "duration": args.duration}
        rows.append(
            await load_phase(stack, clients, closed, "topology", {**shape, "window": window})
        )
    finally:
        await clients.close()
    return {
        "gateways": stack.gateways,
        "runners": stack.runners,
        "order_violations": sum(r["order_violations"] for r in rows),
        "rows": rows,
    }


async def end_to_end(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    phases = set(args.phases)
    # A few echoes first, so that the gateway's first-use allocations are not counted as
    # the idle connections' memory.
    await first_echoes(stack, "first")
    if args.idle and "idle" in phases:
        counts = [int(c) for c in args.idle.split(",")]
        out["idle"] = await idle_memory(stack, counts, args.idle_procs)
        args.record({"phase": "idle", **out["idle"]})
    clients = ClientProcs(stack.urls, args.clients, args.client_procs, "load")
    await clients.start()
    rows: list[dict[str, Any]] = []
    windows = [int(w) for w in args.windows.split(",") if w]
    try:
        if args.warmup > 0 and "warmup" in phases:
            window = max(windows, default=4)
            warmup = {"cmd": "closed", "window": window, "duration": args.warmup}
            shape = {"clients": args.clients, "window": window}
            out["warmup"] = await load_phase(stack, clients, warmup, "warmup", shape, profile=False)
            args.record(out["warmup"])
        rates = [float(r) for r in args.rates.split(",") if r] if "curve" in phases else []
        for rate in rates:
            command = {"cmd": "rate", "rate": rate / clients.procs, "duration": args.duration}
            shape = {"clients": args.clients, "offered": rate}
            rows.append(await load_phase(stack, clients, command, "fixed", shape))
            args.record(rows[-1])
        for window in windows if "saturation" in phases else []:
            closed = {"cmd": "closed", "window": window, "duration": args.duration}
            shape = {"clients": args.clients, "window": window}
            rows.append(await load_phase(stack, clients, closed, "saturation", shape))
            args.record(rows[-1])
    finally:
        await clients.close()
    out["load"] = rows
    if args.floor_rate > 0 and "floor" in phases:
        out["floor"] = await floor_phase(stack, args.floor_rate, args.duration)
        args.record({"phase": "floor", **out["floor"]})
    return out


async def floor_phase(stack: Stack, rate: float, duration: float) -> dict[str, Any]:
    """``pipeline_floor`` beside the stack's idle gateway, with the same CPU and hop figures."""
    settings = GatewaySettings.model_validate(
        {
            "kafka_bootstrap": stack.bootstrap,
            "redis_url": stack.redis_url,
            "topic_prefix": stack.prefix,
            "secret": stack.secret,
            "platforms": "dummy",
            "log_level": "WARNING",
        }
    )
    configure_logging(settings, process="bench-floor")  # on stderr: --json owns stdout
    groups = {
        "floor driver": [os.getpid()],
        "runners": [p.pid for p in stack.runner_procs],
        "kafka": [stack.kafka_pid] if stack.kafka_pid else [],
    }
    metrics = GatewayMetrics()
    samples: dict[str, tuple[dict[str, float], float, float]] = {}
    hops0: dict[str, tuple[float, float]] = {}

    def hop_totals() -> dict[str, tuple[float, float]]:
        return stack.hop_totals([generate_latest(metrics.registry).decode()])

    async def sample(when: str) -> None:
        samples[when] = (group_cpu(groups), machine_times().busy, time.perf_counter())
        if when == "start":
            hops0.update(await asyncio.to_thread(hop_totals))

    row = await pipeline_floor(settings, rate, duration, metrics=metrics, mark=sample)
    (cpu0, busy0, t0), (cpu1, busy1, t1) = samples["start"], samples["end"]
    cpu = {k: round((v - cpu0[k]) / (t1 - t0), 2) for k, v in cpu1.items()}
    cpu["machine"] = round((busy1 - busy0) / (t1 - t0), 2)
    # The floor's own accept-to-answer histogram stands where the idle gateway's is.
    row.update(cpu_cores=cpu, hop_ms=hop_means_ms(hops0, await asyncio.to_thread(hop_totals)))
    return row


def best_closed(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The saturation row with the most echoes per second."""
    closed = [r for r in rows if r["phase"] == "saturation"]
    return max(closed, key=lambda r: r["echoes_per_s"]) if closed else None


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target beside what was measured (those whose phase ran)."""
    loads = report.get("e2e", {}).get("load", [])
    sat = best_closed(loads)
    rows: list[tuple[str, Any, str, float]] = []
    for rate, (p50, p99) in LATENCY_TARGETS.items():
        row = next((r for r in loads if r["phase"] == "fixed" and r["offered"] == rate), None)
        if row is not None:
            rows.append((f"p50 ms at {rate:g} echoes/s", row["p50_ms"], "<=", p50))
            rows.append((f"p99 ms at {rate:g} echoes/s", row["p99_ms"], "<=", p99))
    if sat is not None:
        rows.append(("e2e echoes/s at saturation", sat["echoes_per_s"], ">=", SATURATION_TARGET))
        kafka = report.get("kafka_only")
        if kafka:
            fraction = round(sat["echoes_per_s"] / kafka["echoes_per_s"], 3)
            rows.append(("fraction of the Kafka-only flow", fraction, ">=", 0.40))
    topo = report.get("topology")
    if topo is not None:
        rows.append(("answers out of session order (topology)", topo["order_violations"],
                     "<=", 0.0))  # fmt: skip
    if loads:
        violations = sum(r.get("order_violations", 0) for r in loads)
        rows.append(("answers out of session order (load)", violations, "<=", 0.0))
    idle = report.get("e2e", {}).get("idle", {})
    for key in sorted(k for k in idle if k.startswith("kib_per_conn_")):
        rows.append((f"KiB per idle conn ({key.rsplit('_', 1)[1]})", idle[key], "<=", 30.0))
    return [
        {
            "metric": name,
            "measured": value,
            "target": f"{op} {target:g}",
            "met": value is not None and (value >= target if op == ">=" else value <= target),
        }
        for name, value, op, target in rows
    ]


def print_curve(loads: list[dict[str, Any]]) -> None:
    """Latency against load: one line per fixed rate, then the best saturation row."""
    curve = [r for r in loads if r["phase"] == "fixed"]
    sat = best_closed(loads)
    if sat is not None:
        curve.append(sat)
    if not curve:
        return
    groups = ("gateway", "runners", "kafka", "machine")
    print("\nlatency against load (ms; CPU in ms per echo: " + " / ".join(groups) + "):")
    print(f"{'offered/s':>10}{'answered/s':>11}{'p50':>8}{'p95':>8}{'p99':>8}  CPU per echo")
    for row in curve:
        offered = row.get("offered") or f"sat w={row.get('window')}"
        per_echo = " / ".join(str(row["cpu_ms_per_echo"].get(g)) for g in groups)
        print(
            f"{offered!s:>10}{row['echoes_per_s']:>11}{row['p50_ms']!s:>8}"
            f"{row['p95_ms']!s:>8}{row['p99_ms']!s:>8}  {per_echo}"
        )


def label(row: dict[str, Any]) -> str:
    """A load phase's offered rate, or its window when it is a closed loop."""
    return str(row["offered"]) if "offered" in row else f"w={row.get('window')}"


def load_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every measured load row: the stack's, then the topology's."""
    return [*report.get("e2e", {}).get("load", []), *report.get("topology", {}).get("rows", [])]


def print_topology(topo: dict[str, Any]) -> None:
    """The topology's rows as the curve prints its own, with the order check."""
    groups = ("gateway", "runners", "kafka", "machine")
    print(
        f"\nthrough {topo['gateways']} gateways and {topo['runners']} runners (ms; CPU in ms"
        f" per echo: {' / '.join(groups)}, each the sum over its processes); answers out of"
        f" session order: {topo['order_violations']}"
    )
    print(f"{'offered/s':>10}{'answered/s':>11}{'p50':>8}{'p95':>8}{'p99':>8}  CPU per echo")
    for row in topo["rows"]:
        offered = row.get("offered") or f"sat w={row.get('window')}"
        per_echo = " / ".join(str(row["cpu_ms_per_echo"].get(g)) for g in groups)
        print(
            f"{offered!s:>10}{row['echoes_per_s']:>11}{row['p50_ms']!s:>8}"
            f"{row['p95_ms']!s:>8}{row['p99_ms']!s:>8}  {per_echo}"
        )


def print_table(report: dict[str, Any]) -> None:
    kafka = report.get("kafka_only")
    loads = load_rows(report)
    print(f"machine: {report['machine']}")
    if kafka:
        print(
            f"\nKafka only (one process, {kafka['count']} echoes, {kafka['window']} in flight): "
            f"{kafka['echoes_per_s']} echoes/s, p50 {kafka['p50_ms']} ms, p99 {kafka['p99_ms']} ms"
        )
    warm = report.get("e2e", {}).get("warmup")
    if warm:
        print(
            f"\nwarm-up (not judged; {warm['clients']} clients x {warm['window']} in flight, "
            f"{report['args']['warmup']:g} s): {warm['echoes_per_s']} echoes/s, "
            f"p50 {warm['p50_ms']} ms, p99 {warm['p99_ms']} ms"
        )
    head = ("phase", "clients", "offered", "sent", "ok", "err", "echo/s", "p50", "p95", "p99")
    print(
        f"\n{head[0]:<11}{head[1]:>8}{head[2]:>9}{head[3]:>8}{head[4]:>8}{head[5]:>6}"
        f"{head[6]:>9}{head[7]:>8}{head[8]:>8}{head[9]:>8}  gw cpu  gw rss peak"
    )
    for row in loads:
        offered = row.get("offered", f"w={row.get('window')}")
        bad = row["errors"] + row["timeouts"] + row["wrong"]
        print(
            f"{row['phase']:<11}{row['clients']:>8}{offered!s:>9}{row['sent']:>8}"
            f"{row['answered']:>8}{bad:>6}{row['echoes_per_s']:>9}{row['p50_ms']!s:>8}"
            f"{row['p95_ms']!s:>8}{row['p99_ms']!s:>8}  {row['cpu_cores'].get('gateway')!s:>6}"
            f"  {row['gateway_rss_peak_kib'] // 1024} MiB"
        )
    print_curve(report.get("e2e", {}).get("load", []))
    if "topology" in report:
        print_topology(report["topology"])
    idle = report.get("e2e", {}).get("idle")
    if idle:
        print(f"\nidle memory: gateway RSS {idle['rss_before_kib'] // 1024} MiB before", end="")
        for key in sorted(k for k in idle if k.startswith("kib_per_conn_")):
            count = key.rsplit("_", 1)[1]
            print(
                f"; {count} conns: {idle[f'rss_{count}_kib'] // 1024} MiB, {idle[key]} KiB/conn",
                end="",
            )
        print()
    groups = ("gateway", "runners", "kafka", "clients", "machine")
    print(f"\nCPU during each phase, cores | ms per echo ({' / '.join(groups)}):")
    any_stolen = False
    for row in loads:
        cores = " / ".join(str(row["cpu_cores"].get(g)) for g in groups)
        per_echo = " / ".join(str(row["cpu_ms_per_echo"].get(g)) for g in groups)
        stolen = row["cpu_cores"].get("stolen", 0.0)
        marked = stolen >= STOLEN_CORES_WARN
        any_stolen = any_stolen or marked
        mark = "!" if marked else " "
        print(f" {mark}{row['phase']:<11}{label(row):>8}: {cores} | {per_echo} | stolen {stolen}")
    if any_stolen:
        print(
            f"  ! in the marked phases the hypervisor took {STOLEN_CORES_WARN} cores or more "
            "from this machine for other guests (steal): they measured a smaller machine; "
            "compare runs without it"
        )
    print(
        "\nMean ms per hop (Prometheus histograms of the gateway and the runners): to runner"
        " (gateway's producer to the runner's fetch) / to gateway (runner's producer, its"
        " transaction, to the gateway's reply reader) / gateway (accept to ack) / the rest"
        " of it (the runner's work and wait for its transaction, the gateway's own work):"
    )
    for row in loads:
        hop = row.get("hop_ms", {})
        print(
            f"  {row['phase']:<11}{label(row):>8}: "
            + " / ".join(str(hop.get(k)) for k in ("to_runner", "to_gateway", "gateway", "rest"))
        )
    floor = report.get("e2e", {}).get("floor")
    if floor:
        hop = floor["hop_ms"]
        cores = " / ".join(f"{k} {v}" for k, v in floor["cpu_cores"].items())
        print(
            f"\npipeline floor (the gateway's Kafka side in one process, no Socket.IO front) at "
            f"{floor['offered']:g}/s: {floor['answered']}/{floor['sent']} answered, "
            f"{floor['wrong']} wrong, {floor['unanswered']} unanswered; p50 {floor['p50_ms']}, "
            f"p95 {floor['p95_ms']}, p99 {floor['p99_ms']} ms; mean ms to runner / to gateway / "
            f"sent to answered / the rest: {hop['to_runner']} / {hop['to_gateway']} / "
            f"{hop['gateway']} / {hop['rest']}; cores: {cores}"
        )
    print(f"\n{'target':<36}{'measured':>10}  {'target':<8}  met")
    for v in report["verdicts"]:
        print(
            f"{v['metric']:<36}{v['measured']!s:>10}  {v['target']:<8}  "
            + ("yes" if v["met"] else "NO")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="Kafka to use (default: start one)")
    parser.add_argument("--redis-url", help="Redis to use (default: start one)")
    parser.add_argument(
        "--runners",
        type=int,
        default=1,
        help="dummy runner processes (on 2 cores a second one costs more than it adds)",
    )
    parser.add_argument(
        "--gateways",
        type=int,
        default=1,
        help="gateways the load phases' clients are spread over (each its own reply topic)",
    )
    parser.add_argument("--clients", type=int, default=200, help="clients for the load phases")
    parser.add_argument("--client-procs", type=int, default=2, help="processes holding them")
    parser.add_argument(
        "--windows", default="2,4,8", help="outstanding echoes per client, one phase each"
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per load phase")
    parser.add_argument(
        "--warmup", type=float, default=90.0, help="seconds of unmeasured closed loop first"
    )
    parser.add_argument(
        "--rates", default="200,800,1500,2500", help="fixed offered loads, echoes/s (the curve)"
    )
    parser.add_argument(
        "--phases",
        type=lambda text: [p for p in text.split(",") if p],
        default=list(PHASES),
        help=f"phases to run, comma-separated, of {','.join(PHASES)}",
    )
    parser.add_argument("--jsonl", type=Path, help="append one JSON line per phase to this file")
    parser.add_argument("--kafka-pid", type=int, help="the given --bootstrap broker's pid (CPU)")
    parser.add_argument(
        "--floor-rate",
        type=float,
        default=1500.0,
        help="echoes/s for the pipeline floor (the gateway's Kafka side alone; 0 skips it)",
    )
    parser.add_argument(
        "--topology-rate",
        type=float,
        default=1500.0,
        help=f"echoes/s of the topology phase ({TOPOLOGY_GATEWAYS} gateways, "
        f"{TOPOLOGY_RUNNERS} runners)",
    )
    parser.add_argument("--idle", default="1000,5000", help="idle connection counts ('' skips)")
    parser.add_argument("--idle-procs", type=int, default=4, help="processes per idle step")
    parser.add_argument("--kafka-count", type=int, default=20000)
    parser.add_argument("--kafka-window", type=int, default=1000)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the gateway and one runner (each load phase)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--output", type=Path, help="also write the JSON report to this file")
    args = parser.parse_args()
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.gateways < 1:
        parser.error("--gateways must be at least 1")
    run_id = uuid.uuid4().hex[:8]

    def record(row: dict[str, Any]) -> None:
        if args.jsonl is not None:
            line = {"run": run_id, "at": round(time.time(), 1), **row}
            with args.jsonl.open("a") as out:
                out.write(json.dumps(line) + "\n")

    args.record = record

    node_binary()  # before any service starts
    raise_nofile()  # inherited by the gateway and the client processes
    work = Path(tempfile.mkdtemp(prefix="e2e-bench-"))
    report: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, load average {load_average():.1f} at start",
        "args": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("json", "output", "record")
        },
        "logs": str(work),
    }
    with local_services(work, bootstrap=args.bootstrap, redis_url=args.redis_url) as services:
        assert services.redis_url is not None
        settings = CommonSettings.model_validate(
            {
                "kafka_bootstrap": services.bootstrap,
                "redis_url": services.redis_url,
                "topic_prefix": f"ko{uuid.uuid4().hex[:8]}",
            }
        )
        if "kafka" in args.phases:
            report["kafka_only"] = asyncio.run(
                kafka_only(settings, args.kafka_count, args.kafka_window)
            )
            record({"phase": "kafka", **report["kafka_only"]})
        if services.broker is not None:
            kafka_pid: int | None = int((work / "kafka" / "kafka.pid").read_text())
        else:
            kafka_pid = args.kafka_pid
        if STACK_PHASES & set(args.phases):
            stack = Stack(work, services.bootstrap, services.redis_url, args.runners,
                          gateways=args.gateways, kafka_pid=kafka_pid,
                          profile=args.profile)  # fmt: skip
            try:
                stack.start()
                report["e2e"] = asyncio.run(end_to_end(stack, args))
            finally:
                stack.stop()
        if "topology" in args.phases:
            best = best_closed(report.get("e2e", {}).get("load", []))
            window = int(best["window"]) if best is not None else TOPOLOGY_WINDOW
            topo = Stack(work, services.bootstrap, services.redis_url, TOPOLOGY_RUNNERS,
                         gateways=TOPOLOGY_GATEWAYS, kafka_pid=kafka_pid,
                         profile=args.profile)  # fmt: skip
            try:
                topo.start()
                report["topology"] = asyncio.run(topology(topo, args, window))
            finally:
                topo.stop()
            record({"phase": "topology", **report["topology"]})
    report["verdicts"] = verdicts(report)
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
