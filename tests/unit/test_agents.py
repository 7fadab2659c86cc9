"""Agent executions (pure): the price is fixed when queued and charged to the micro-dollar; the
lifecycle is queued → running → completed | failed; the projector writes one row per execution."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.agents import AGENT_TYPES, AgentExecution, Pricing
from domain.errors import InvalidState
from eventlog.envelope import Envelope
from projections.agents import AGENT_EXECUTIONS
from projections.base import NewRow


def _execution() -> AgentExecution:
    return AgentExecution.queue(id=uuid4(), org_id="org", actor_id="me", agent_id=uuid4(), input="hi",
                                model="", pricing=Pricing(0.01, 0.5))


def test_the_ten_business_agent_types() -> None:
    assert len(AGENT_TYPES) == 10 and {"strategy_agent", "intelligence_agent"} <= set(AGENT_TYPES)


def test_pricing_charges_per_execution_and_per_1k_tokens_to_the_micro_dollar() -> None:
    assert Pricing(0.01, 0.5).cost(1234) == 0.627
    assert Pricing(0, 0.000003).cost(1) == 0.0  # 3e-9 USD rounds to nothing
    assert Pricing(0.1, 0.2).cost(0) == 0.1 and Pricing().cost(10_000) == 0.0
    assert Pricing.of({"pricing": {"perExecutionUsd": 2, "per1kTokensUsd": "x"}}) == Pricing(2.0, 0.0)
    assert Pricing.of({}) == Pricing()
    assert Pricing.of({"pricing": Pricing(1, 2).as_properties()}) == Pricing(1, 2)


def test_an_execution_is_queued_running_then_completed_at_the_queued_price() -> None:
    execution = _execution()
    with pytest.raises(InvalidState):
        execution.complete("me", "too early", 10, 5, "local")
    execution.start("me")
    assert execution.complete("me", "answer", 1000, 42, "openai:gpt") == 0.51
    assert [getattr(e, "TYPE", None) for e in execution.collect_events()] == [
        "agent_execution.queued", "agent_execution.started", "agent_execution.completed"]
    assert (execution.status, execution.output, execution.cost_usd, execution.duration_ms) == (
        "completed", "answer", 0.51, 42)
    with pytest.raises(InvalidState):
        execution.fail("me", "late", 1)


def test_a_failed_execution_costs_nothing_and_keeps_its_reason() -> None:
    execution = _execution()
    execution.start("me")
    execution.fail("me", "rate limited", 1500)
    assert (execution.status, execution.reason, execution.cost_usd) == ("failed", "rate limited", 0.0)


def test_the_projector_writes_one_row_per_execution_guarded_by_version() -> None:
    def env(type: str, version: int, **data: object) -> Envelope:
        return Envelope(position=version + 10, stream_id="s", version=version, type=type, schema_version=1,
                        occurred_at="2026-01-01T00:00:00+00:00", org_id="org", actor_id="me", data=dict(data))

    queued = AGENT_EXECUTIONS.apply(env("agent_execution.queued", 1, agent_id="a", input="hi", model="",
                                        per_execution_usd=0.01, per_1k_tokens_usd=0.5))
    assert isinstance(queued[0], NewRow) and queued[0].values["status"] == "queued"
    done = AGENT_EXECUTIONS.apply(env("agent_execution.completed", 3, output="x", tokens_used=5, cost_usd=0.1,
                                      duration_ms=7, source="local"))
    sql, params = done[0]  # type: ignore[misc]
    assert "status = 'completed'" in sql and "version < %(version)s" in sql and params["tokens"] == 5
    assert AGENT_EXECUTIONS.apply(env("thing.created", 1)) == []
