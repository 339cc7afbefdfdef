"""OpenTelemetry spans along one request: gateway accept and produce, runner handle and
reply, gateway ack, in one trace through the ``traceparent`` the records carry. An
in-process span exporter stands in for the collector; off, nothing of the SDK is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from gateway.metrics import GatewayMetrics
from gateway.requests import RequestTracker
from gateway.sessions import Session
from schemas.envelopes import Request
from schemas.platform_registry import canonical_context
from sockethub.runtime.otel import Tracing
from sockethub.runtime.tracing import tracing_enabled, tracing_from_env
from tests.unit.gateway.test_requests import Acks, Bridge
from tests.unit.platform_runners.runner_fakes import REPLIES, eventually

NAMES = ["sockethub.gateway.accept", "sockethub.gateway.produce", "sockethub.runner.handle",
         "sockethub.runner.reply", "sockethub.gateway.ack"]  # fmt: skip


def _request(verb: str = "echo") -> Request:
    activity = {
        "@context": canonical_context("dummy"), "type": verb,
        "actor": {"id": "s1@example", "type": "person"},
        "object": {"type": "message", "content": "1"},
    }  # fmt: skip
    return Request("s1", REPLIES, "dummy", verb, activity, correlation_id="s1-1")


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert len(spans) == len(exporter.get_finished_spans()), "a span name came twice"
    return spans


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def _through_gateway_and_runner(harness: Any, verb: str) -> dict[str, ReadableSpan]:
    exporter = InMemorySpanExporter()
    tracing = Tracing("sockethub-test", exporter, batch=False)
    bridge = Bridge()
    tracker = RequestTracker(bridge, GatewayMetrics(), 60.0, tracing)
    session = Session("s1", "127.0.0.1")
    session.inflight = 1
    acks = Acks()
    assert await tracker.submit(session, _request(verb), "s1", {}, "g3", acks) is None
    (pending,) = bridge.pending.values()
    produced = pending.request
    assert produced.traceparent is not None  # the record carries the produce span

    h = harness()
    h.tracing = tracing
    value, headers = h.codec.encode(produced)
    h.kafka.append(0, value, headers, b"s1")
    await h.start()
    await eventually(lambda: len(h.results()) == 1)
    await eventually(lambda: "sockethub.runner.reply" in _by_name(exporter))
    (result,) = h.results()
    await bridge.reply(result)
    await eventually(lambda: bool(acks.sent))
    spans = _by_name(exporter)
    assert sorted(spans) == sorted(NAMES)
    assert result.traceparent == Tracing.traceparent(_live(spans["sockethub.runner.handle"]))
    return spans


def _live(span: ReadableSpan) -> Any:
    """A context-only stand-in for a finished span (for its traceparent)."""
    from opentelemetry.trace import NonRecordingSpan

    return NonRecordingSpan(span.get_span_context())


async def test_one_trace_from_accept_to_ack(harness: Any) -> None:
    spans = await _through_gateway_and_runner(harness, "echo")
    ids = {name: s.context.span_id for name, s in spans.items()}
    assert len({s.context.trace_id for s in spans.values()}) == 1
    assert _parent(spans["sockethub.gateway.accept"]) is None
    assert _parent(spans["sockethub.gateway.produce"]) == ids["sockethub.gateway.accept"]
    assert _parent(spans["sockethub.runner.handle"]) == ids["sockethub.gateway.produce"]
    assert _parent(spans["sockethub.runner.reply"]) == ids["sockethub.runner.handle"]
    assert _parent(spans["sockethub.gateway.ack"]) == ids["sockethub.runner.handle"]
    handle = spans["sockethub.runner.handle"]
    assert handle.attributes is not None and handle.attributes["sockethub.verb"] == "echo"
    assert handle.attributes["sockethub.outcome"] == "ok"
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans.values())


async def test_an_error_answer_marks_the_handle_and_ack_spans(harness: Any) -> None:
    spans = await _through_gateway_and_runner(harness, "nosuchverb")
    assert spans["sockethub.runner.handle"].status.status_code is StatusCode.ERROR
    assert spans["sockethub.gateway.ack"].status.status_code is StatusCode.ERROR
    assert spans["sockethub.runner.reply"].status.status_code is not StatusCode.ERROR


def test_tracing_follows_the_otlp_endpoint_variables() -> None:
    assert not tracing_enabled({})
    assert not tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": " "})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1"})
    assert tracing_from_env("x", {}) is None
    on = tracing_from_env("x", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert isinstance(on, Tracing)
    on.shutdown()  # nothing was recorded: nothing is sent


def test_off_the_sdk_is_never_imported() -> None:
    """A gateway app and a runner built without the variable load no tracing SDK and no
    exporter. (redis-py imports OpenTelemetry's metrics API when it is installed; its
    instrumentation stays off until ``redis.observability`` is initialised.)"""
    code = (
        "import sys\n"
        "from gateway.app import create_apps\n"
        "from gateway.settings import GatewaySettings\n"
        "import platform_runners.runner\n"
        "create_apps(GatewaySettings(secret='s' * 32))\n"
        "print(sorted(m for m in sys.modules if m == 'sockethub.runtime.otel'\n"
        "             or m.startswith(('opentelemetry.sdk.trace', 'opentelemetry.exporter'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True)  # fmt: skip
    assert run.stdout.strip() == "[]", run.stdout
