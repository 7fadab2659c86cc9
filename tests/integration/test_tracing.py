"""Tracing: one purchase, followed through the SDK's in-memory exporter, is one trace: its HTTP
request, the command and its append, each event's projection, every saga step (each under the
event that woke it), the provider calls of the steps and the commands the steps ran."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api.runtime import Runtime
from infra import tracing
from infra.database import ConnectionInfo
from tests.conftest import served, start_runtime, wait_for_purchase

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
"""The client's own trace context: the request continues it."""


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)
    provider.shutdown()


@pytest.fixture
def runtime_with_sagas(fresh_db: ConnectionInfo) -> Iterator[Runtime]:
    rt = start_runtime(fresh_db, run_sagas=True)
    yield rt
    rt.close()


def parent_of(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return by_id.get(span.parent.span_id) if span.parent is not None else None


def test_one_purchase_is_one_trace_across_request_commands_projections_and_saga_steps(
        runtime_with_sagas: Runtime, spans: InMemorySpanExporter) -> None:
    with served(runtime_with_sagas, timeout=60) as http:
        buyer = http.post("/v1/people", json={"name": "Tra Ced"}).json()["id"]
        token = http.post("/v1/things", json={"type": "token", "name": "Trace Coin",
                                              "properties": {"priceUsd": 1}}).json()["id"]
        started = http.post("/v1/token-purchases", headers={"traceparent": TRACEPARENT}, json={
            "buyer_id": buyer, "token_id": token, "amount": 2, "payment_method": "pm_card_visa"})
        assert started.status_code == 202, started.text
        assert wait_for_purchase(http, started.json()["id"])["status"] == "completed"
        runtime_with_sagas.wait_for_sync(runtime_with_sagas.head())
        events = http.get("/v1/log", params={"correlation_id": started.headers["X-Correlation-Id"]})
    trace_id = int(TRACEPARENT.split("-")[1], 16)
    mine = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in mine}
    names = [s.name for s in mine]

    request = next(s for s in mine if s.name == "POST /v1/token-purchases")
    assert request.parent is not None and request.parent.span_id == int(TRACEPARENT.split("-")[2], 16)
    command = next(s for s in mine if s.name == "command StartTokenPurchase")
    assert parent_of(command, by_id) is request
    assert any(s.name == "append" and parent_of(s, by_id) is command for s in mine)
    assert any(s.name == "project token_purchase.started" and parent_of(s, by_id) is command for s in mine)

    steps = [s for s in mine if s.name.startswith("saga ")]
    assert {"saga charge", "saga mint", "saga record"} <= {s.name for s in steps}
    for step in steps:  # each under the command whose event woke it
        woke_by = parent_of(step, by_id)
        assert woke_by is not None and woke_by.name.startswith("command ")
    charge = next(s for s in steps if s.name == "saga charge")
    assert any(s.name == "payments.charge" and parent_of(s, by_id) is charge for s in mine)
    assert any(s.name.startswith("chain.") for s in mine)
    assert any(s.name == "command AdvanceProcess" and parent_of(s, by_id) is charge for s in mine)
    assert "project token_purchase.completed" in names
    batches = [s for s in spans.get_finished_spans() if s.name == "project batch"]
    assert any(link.context.span_id == command.context.span_id for b in batches for link in b.links)

    envelopes = [json.loads(line) for line in events.text.splitlines()]
    assert envelopes and all(e["traceparent"] and int(e["traceparent"].split("-")[1], 16) == trace_id
                             for e in envelopes)
