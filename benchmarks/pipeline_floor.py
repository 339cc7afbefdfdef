"""The latency floor under the gateway's Socket.IO front.

The gateway's own Kafka side (``gateway.kafka_bridge.KafkaBridge``, in this process) is
driven at a fixed rate: dummy echo requests go to the runners' request topic, and their
results come back on a reply topic of its own, read as the gateway reads its replies. The
real broker and the real runners answer. No websocket, Socket.IO, validation or session
work is done, so the latency measured here is what every request through the gateway
pays before the gateway's front adds its own: an end-to-end latency target below this
floor cannot be met by work on the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from prometheus_client import generate_latest

from benchmarks.measure import histogram_totals, percentile
from gateway.kafka_bridge import KafkaBridge, ResultHandler
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from schemas.envelopes import Request, Result
from schemas.platform_registry import canonical_context

SESSIONS = 200
"""Distinct session keys, as many as the end-to-end benchmark's clients."""


def echo_request(n: int, route: str, sessions: int = SESSIONS) -> Request:
    """The ``n``-th dummy echo, keyed by one of ``sessions`` sessions, answered to ``route``."""
    session = f"k{n % sessions}"
    activity: dict[str, Any] = {
        "@context": canonical_context("dummy"),
        "type": "echo",
        "id": f"{session}-{n}",
        "actor": {"id": "bench@dummy", "type": "person", "name": "Bench"},
        "object": {"type": "message", "content": f"hello {n}"},
    }
    return Request(session, route, "dummy", "echo", activity, correlation_id=f"{session}-{n}")


def reply_totals(metrics: GatewayMetrics) -> dict[str, tuple[float, float]]:
    """The bridge's own histograms, as ``histogram_totals`` reads a scrape."""
    return histogram_totals(generate_latest(metrics.registry).decode())


async def pipeline_floor(
    settings: GatewaySettings, rate: float, duration: float, *, answer_within: float = 60.0
) -> dict[str, Any]:
    """Send ``rate`` echoes/s for ``duration`` s through a ``KafkaBridge``; time each answer.

    Latency runs from handing a request to the bridge to its result's dispatch. Answers
    that are errors, or that do not echo their request, are counted as ``wrong``.
    """
    metrics = GatewayMetrics()
    bridge = KafkaBridge(
        settings,
        gateway_id=f"floor-{uuid.uuid4().hex[:8]}",
        platforms=["dummy"],
        metrics=metrics,
    )
    await bridge.start()
    total = int(rate * duration)
    latencies: list[float] = []
    wrong = 0
    everything_answered = asyncio.Event()

    def waiter(sent_at: float, content: str) -> ResultHandler:
        async def on_result(result: Result) -> None:
            nonlocal wrong
            obj = result.activity.get("object")
            echoed = isinstance(obj, dict) and obj.get("content") == content
            if result.error is None and echoed:
                latencies.append((time.perf_counter() - sent_at) * 1000.0)
            else:
                wrong += 1
            if len(latencies) + wrong == total:
                everything_answered.set()

        return on_result

    before = reply_totals(metrics)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        for n in range(total):
            delay = started + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            request = echo_request(n, bridge.reply_topic)
            content = request.activity["object"]["content"]
            await bridge.submit(request, request.session_id, waiter(time.perf_counter(), content))
        sending = loop.time() - started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everything_answered.wait(), answer_within)
        after = reply_totals(metrics)
    finally:
        await bridge.stop()
    reply_count = after.get("sockethub_gateway_reply_seconds", (0.0, 0.0))
    reply_count0 = before.get("sockethub_gateway_reply_seconds", (0.0, 0.0))
    answers = reply_count[0] - reply_count0[0]
    return {
        "offered": rate,
        "sent": total,
        "answered": len(latencies),
        "wrong": wrong,
        "unanswered": total - len(latencies) - wrong,
        "echoes_per_s": round(total / sending, 1) if sending > 0 else None,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "mean_ms": round(sum(latencies) / len(latencies), 2) if latencies else None,
        "to_gateway_mean_ms": (
            round((reply_count[1] - reply_count0[1]) / answers * 1000.0, 2) if answers else None
        ),
    }
