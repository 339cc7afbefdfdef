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
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.measure import percentile
from gateway.kafka_bridge import KafkaBridge
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from schemas.envelopes import Request, Result
from schemas.platform_registry import canonical_context

SESSIONS = 200
"""Distinct session keys, as many as the end-to-end benchmark's clients."""

ResultHandler = Callable[[Result], Awaitable[None]]


class EchoWaiter:
    """The bridge's pending entry for one echo: its result goes to ``on_result``."""

    __slots__ = ("on_result", "request")

    def __init__(self, request: Request, on_result: ResultHandler) -> None:
        self.request = request
        self.on_result = on_result

    async def resolve(self, result: Result) -> None:
        await self.on_result(result)

    def delivery_done(self, delivery: asyncio.Future[object]) -> None:
        pass  # a lost echo is counted as unanswered

    def drop(self) -> None:
        pass


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


async def pipeline_floor(
    settings: GatewaySettings,
    rate: float,
    duration: float,
    *,
    metrics: GatewayMetrics | None = None,
    warmup: float = 5.0,
    answer_within: float = 60.0,
    mark: Callable[[str], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Send ``rate`` echoes/s through a ``KafkaBridge``, ``warmup`` s unmeasured (its new
    reply topic and clients settle) and then ``duration`` s measured; time each answer.

    Latency runs from handing a request to the bridge to its result's dispatch; each
    measured one is also observed in ``metrics``' accept-to-ack histogram, beside the
    bridge's own reply-hop histogram, so the hops read as a gateway's do. Answers that are
    errors, or that do not echo their request, are counted as ``wrong``. ``mark`` is
    called with ``"start"`` and ``"end"`` around the measured sending, for a caller
    sampling CPU or histograms over the same window.
    """
    metrics = metrics or GatewayMetrics()
    bridge = KafkaBridge(
        settings,
        gateway_id=f"floor-{uuid.uuid4().hex[:8]}",
        platforms=["dummy"],
        metrics=metrics,
    )
    await bridge.start()
    warm = int(rate * warmup)
    total = warm + int(rate * duration)
    latencies: list[float] = []
    answered = wrong = 0
    everything_answered = asyncio.Event()
    accept_to_ack = metrics.request_seconds.labels("dummy")

    def waiter(n: int, sent_at: float, content: str) -> ResultHandler:
        async def on_result(result: Result) -> None:
            nonlocal answered, wrong
            answered += 1
            obj = result.activity.get("object")
            echoed = isinstance(obj, dict) and obj.get("content") == content
            if result.error is not None or not echoed:
                wrong += 1
            elif n >= warm:
                seconds = time.perf_counter() - sent_at
                latencies.append(seconds * 1000.0)
                accept_to_ack.observe(seconds)
            if answered == total:
                everything_answered.set()

        return on_result

    loop = asyncio.get_running_loop()
    started = measured_from = loop.time()
    try:
        for n in range(total):
            delay = started + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if n == warm:
                measured_from = loop.time()
                if mark is not None:
                    await mark("start")
            request = echo_request(n, bridge.reply_topic)
            content = request.activity["object"]["content"]
            on_result = waiter(n, time.perf_counter(), content)
            await bridge.submit(EchoWaiter(request, on_result), request.session_id)
        sending = loop.time() - measured_from
        if mark is not None:
            await mark("end")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everything_answered.wait(), answer_within)
    finally:
        await bridge.stop()
    return {
        "offered": rate,
        "sent": total - warm,
        "answered": len(latencies),
        "wrong": wrong,
        "unanswered": total - answered,
        "echoes_per_s": round((total - warm) / sending, 1) if sending > 0 else None,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": round(max(latencies), 2) if latencies else None,
    }
