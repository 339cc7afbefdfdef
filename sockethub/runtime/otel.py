"""OpenTelemetry spans around a request's hops; imported only when tracing is on
(see :mod:`sockethub.runtime.tracing`).

A span's parent comes from a ``traceparent`` string (the field that :mod:`schemas.envelopes`
records carry through Kafka), and a span hands its own context on as one. Each
:class:`Tracing` has its own provider, never the global one, so tests can hold several.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
Attributes = dict[str, str | int | float | bool]


def otlp_exporter() -> SpanExporter:
    """OTLP over HTTP; the endpoint, headers and timeout come from the standard
    ``OTEL_EXPORTER_OTLP_*`` variables, read by the exporter itself."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


class Tracing:
    def __init__(self, service: str, exporter: SpanExporter, *, batch: bool = True) -> None:
        """``batch``: export from a background thread (production); off, each span is
        exported as it ends (tests with an in-memory exporter)."""
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self._tracer = self.provider.get_tracer("sockethub")

    def start(
        self, name: str, parent: str | None = None, attributes: Attributes | None = None
    ) -> Span:
        """A span, child of the context in ``parent`` (a traceparent) when it is valid."""
        context = _PROPAGATOR.extract({"traceparent": parent}) if parent else None
        return self._tracer.start_span(
            name, context=context, kind=trace.SpanKind.INTERNAL, attributes=attributes
        )

    @staticmethod
    def traceparent(span: Span) -> str | None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return carrier.get("traceparent")

    @staticmethod
    def end(span: Span, error: BaseException | str | None = None, **attributes: Any) -> None:
        for key, value in attributes.items():
            span.set_attribute(f"sockethub.{key}", value)
        if error is not None:
            # The type or the given text only: an exception's message may carry a secret.
            text = error if isinstance(error, str) else type(error).__name__
            span.set_status(Status(StatusCode.ERROR, text))
        span.end()

    @contextlib.contextmanager
    def span(
        self, name: str, parent: str | None = None, attributes: Attributes | None = None
    ) -> Iterator[Span]:
        span = self.start(name, parent, attributes)
        try:
            yield span
        except BaseException as exc:
            self.end(span, exc)
            raise
        else:
            if span.is_recording():
                span.end()

    def shutdown(self) -> None:
        """Flush what is queued and stop the exporter (process exit)."""
        self.provider.shutdown()
