"""The agent marketplace (seeds: week 7): business agents are things of the ten `*_agent` types
with a system prompt, a model and a price; each run of one is an `AgentExecution` stream.

An execution is queued, then running, then completed (output, tokens used, cost, duration) or
failed (the reason). Its cost is fixed by the price the agent had when the execution was queued
(`Pricing`, carried by the queued event), so a later change of price never rewrites a bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain import ontology
from domain.base import OneAggregate
from domain.errors import InvalidState

AGENT_TYPES: tuple[str, ...] = ontology.THING_TYPE_GROUPS["business_agents"]
"""strategy_agent … intelligence_agent."""
EXECUTION_STATUSES = ("queued", "running", "completed", "failed")
USD_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class Pricing:
    """What an execution costs in USD: a fixed price per execution plus a price per 1,000 tokens."""

    per_execution_usd: float = 0.0
    per_1k_tokens_usd: float = 0.0

    def cost(self, tokens: int) -> float:
        """The price of one execution that used `tokens` (to the micro-dollar, half up)."""
        total = Decimal(str(self.per_execution_usd)) + Decimal(str(self.per_1k_tokens_usd)) * tokens / 1000
        return float(total.quantize(USD_PLACES, rounding=ROUND_HALF_UP))

    def as_properties(self) -> dict[str, float]:
        """The agent thing's `pricing` property."""
        return {"perExecutionUsd": self.per_execution_usd, "per1kTokensUsd": self.per_1k_tokens_usd}

    @classmethod
    def of(cls, properties: dict[str, Any]) -> Pricing:
        """The pricing stated by an agent thing's properties (free if it states none)."""
        pricing = properties.get("pricing")
        pricing = pricing if isinstance(pricing, dict) else {}
        return cls(*(float(v) if isinstance(v, int | float) else 0.0
                     for v in (pricing.get("perExecutionUsd"), pricing.get("per1kTokensUsd"))))


class AgentExecution(OneAggregate):
    """One run of an agent on an input."""

    if TYPE_CHECKING:
        agent_id: str
        input: str
        pricing: Pricing
        status: str
        output: str | None
        tokens_used: int
        cost_usd: float
        duration_ms: int | None
        source: str | None
        reason: str | None

    class Queued(OneAggregate.Created):
        """An execution was asked for, at the agent's current price."""

        TYPE = "agent_execution.queued"
        agent_id: str
        input: str
        model: str
        per_execution_usd: float
        per_1k_tokens_usd: float

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id, aggregate.agent_id, aggregate.input = self.org_id, self.agent_id, self.input
            aggregate.pricing = Pricing(self.per_execution_usd, self.per_1k_tokens_usd)
            aggregate.status, aggregate.tokens_used, aggregate.cost_usd = "queued", 0, 0.0
            aggregate.output = aggregate.duration_ms = aggregate.source = aggregate.reason = None

    class Started(OneAggregate.Event):
        """The model was asked."""

        TYPE = "agent_execution.started"

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "running"

    class Completed(OneAggregate.Event):
        """The model answered: its output, the tokens it used, their cost, how long it took."""

        TYPE = "agent_execution.completed"
        output: str
        tokens_used: int
        cost_usd: float
        duration_ms: int
        source: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status, aggregate.output, aggregate.source = "completed", self.output, self.source
            aggregate.tokens_used, aggregate.cost_usd = self.tokens_used, self.cost_usd
            aggregate.duration_ms = self.duration_ms

    class Failed(OneAggregate.Event):
        """The model did not answer (nothing is charged)."""

        TYPE = "agent_execution.failed"
        reason: str
        duration_ms: int

        def apply(self, aggregate: Any) -> None:
            aggregate.status, aggregate.reason = "failed", self.reason
            aggregate.duration_ms = self.duration_ms

    @classmethod
    def queue(cls, *, id: UUID, org_id: str, actor_id: str, agent_id: UUID, input: str, model: str,
              pricing: Pricing) -> AgentExecution:
        """A new execution of `agent_id` at `pricing`."""
        return cls._create(cls.Queued, id=id, org_id=org_id, actor_id=actor_id, agent_id=str(agent_id),
                           input=input, model=model, per_execution_usd=pricing.per_execution_usd,
                           per_1k_tokens_usd=pricing.per_1k_tokens_usd)

    def start(self, actor: str) -> None:
        """Hand the input to the model."""
        self._require("queued")
        self.trigger_event(self.Started, actor_id=actor)

    def complete(self, actor: str, output: str, tokens_used: int, duration_ms: int, source: str) -> float:
        """Record the answer, charged at the queued price; return the cost."""
        self._require("running")
        cost = self.pricing.cost(tokens_used)
        self.trigger_event(self.Completed, actor_id=actor, output=output, tokens_used=tokens_used,
                           cost_usd=cost, duration_ms=duration_ms, source=source)
        return cost

    def fail(self, actor: str, reason: str, duration_ms: int) -> None:
        """Record why the model did not answer."""
        self._require("running")
        self.trigger_event(self.Failed, actor_id=actor, reason=reason, duration_ms=duration_ms)

    def _require(self, status: str) -> None:
        if self.status != status:
            raise InvalidState(f"execution {self.id} is {self.status}, not {status}", "status")
