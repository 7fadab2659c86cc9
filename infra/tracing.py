"""Tracing with OpenTelemetry, off by default.

Spans: the HTTP request, each command, its append, each event's projection, each saga step and
each provider call. The trace context travels with the events themselves (their `traceparent`,
stamped like the correlation id), and so through the log, Kafka (also as a header), the workers
and the saga driver: one trace spans every process a request reaches.

`configure_tracing` exports over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; tests `install` a provider of their own (e.g. with
the SDK's in-memory exporter). Without either, every span is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import Link, NoOpTracerProvider, Tracer, TracerProvider

_provider: TracerProvider = NoOpTracerProvider()


def install(provider: TracerProvider | None) -> None:
    """Trace with this provider from now on (None: stop tracing)."""
    global _provider
    _provider = provider or NoOpTracerProvider()


def tracer() -> Tracer:
    """The platform's tracer (a no-op one unless tracing is configured)."""
    return _provider.get_tracer("one")


def enabled() -> bool:
    """Whether spans are recorded at all (so per-event work can be skipped when they are not)."""
    return not isinstance(_provider, NoOpTracerProvider)


def configure_tracing(service: str) -> None:
    """Export spans over OTLP/HTTP if the standard OpenTelemetry endpoint variables say where."""
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not any(os.environ.get(name) for name in endpoints):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SdkTracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (None when nothing is traced)."""
    if not enabled():
        return None
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> Context | None:
    """The trace context a `traceparent` names (None: start a new trace)."""
    return extract({"traceparent": traceparent}) if traceparent else None


def links_to(traceparents: Iterable[str | None]) -> list[Link]:
    """Links to the spans that made these events (a batch belongs to many traces)."""
    contexts = (trace.get_current_span(context_from(tp)).get_span_context() for tp in traceparents if tp)
    return [Link(context) for context in contexts if context.is_valid]


def mark(name: str, traceparent: str | None, **attributes: Any) -> None:
    """A point-in-time span under the trace an event belongs to (e.g. its projection)."""
    if traceparent and enabled():
        tracer().start_span(name, context=context_from(traceparent), attributes=attributes).end()


class Traced:
    """A provider (payments, chain) whose every public call is a span `<kind>.<method>`."""

    def __init__(self, inner: Any, kind: str) -> None:
        self._inner = inner
        self._kind = kind

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value
        return _span_around(f"{self._kind}.{name}", value)


def _span_around(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def traced(*args: Any, **kwargs: Any) -> Any:
        with tracer().start_as_current_span(name):
            return call(*args, **kwargs)

    return traced

