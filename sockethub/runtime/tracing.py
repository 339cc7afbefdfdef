"""Tracing switch: OpenTelemetry spans only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Off (the default), :func:`tracing_from_env` returns None without importing the SDK, and
every instrumented place costs one ``is None`` test. On, :mod:`sockethub.runtime.otel`
builds a tracer whose spans continue the W3C ``traceparent`` that requests and results
already carry through Kafka: the gateway's accept and produce spans, the runner's handle
and reply spans, and the gateway's ack span form one trace per request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sockethub.runtime.otel import Tracing

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def tracing_from_env(service: str, environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """A tracer exporting over OTLP/HTTP to the configured endpoint, or None when tracing
    is off (then nothing of OpenTelemetry is imported)."""
    if not tracing_enabled(environ):
        return None
    from sockethub.runtime.otel import Tracing, otlp_exporter

    return Tracing(service, otlp_exporter())
