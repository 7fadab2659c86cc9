"""The agent marketplace: register a business agent (a thing of an `*_agent` type, owned by a
person or thing), and record its executions (queued and running in one transaction before the
model is asked; completed or failed, with the `agent_executed` activity, in one after)."""

from __future__ import annotations

from typing import Annotated
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import Field

from commands import models as m
from commands.access import load
from commands.fields import NO_NUL, JsonNumber, Name, Tag, one_of
from commands.handlers import Context, Reply, connect, create_thing, handles
from commands.models import StrictModel
from commands.unit_of_work import Scope
from domain.activity import Activity
from domain.agents import AGENT_TYPES, AgentExecution, Pricing
from domain.errors import ValidationFailed
from domain.ontology import NOT_BLANK
from domain.things import Thing

AgentType = Annotated[str, Field(pattern=f"^({'|'.join(AGENT_TYPES)})$"),
                      one_of(AGENT_TYPES, "one of the ten business agent types")]
Usd = Annotated[JsonNumber, Field(ge=0, le=1000)]
MAX_OUTPUT, MAX_REASON, MAX_SOURCE = 200_000, 2000, 200
AgentInput = Annotated[str, Field(max_length=20_000, pattern=NOT_BLANK)]


def activity_id(execution_id: UUID) -> UUID:
    """The `agent_executed` activity of an execution (one per execution, ever)."""
    return uuid5(NAMESPACE_URL, f"one:agent-executed:{execution_id}")


class AgentPricing(StrictModel):
    """USD per execution and per 1,000 tokens (either may be 0; both 0 is a free agent)."""

    per_execution_usd: Usd = 0.0
    per_1k_tokens_usd: Usd = 0.0


class RegisterAgent(StrictModel):
    """Register a business agent; `owner_id` (a person or thing of the organization, default the
    caller) owns it."""

    action = "agents.register"

    type: AgentType
    name: Name
    description: str = Field(default="", max_length=5000, pattern=NO_NUL)
    system_prompt: str = Field(max_length=20_000, pattern=NOT_BLANK)
    model: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
                              description="the chat model to ask (default: the platform's)")
    temperature: JsonNumber = Field(default=0.7, ge=0, le=2)
    capabilities: list[Annotated[str, Field(max_length=100, pattern=NOT_BLANK)]] = Field(
        default_factory=list, max_length=50)
    pricing: AgentPricing
    owner_id: UUID | None = None
    tags: list[Tag] = Field(default_factory=list)


class AgentExecutionBody(StrictModel):
    """What the agent is asked."""

    input: AgentInput


class StartAgentExecution(StrictModel):
    """Queue execution `execution_id` of agent `agent_id` and mark it running."""

    action = "agents.execute"

    execution_id: UUID
    agent_id: UUID
    input: AgentInput


class FinishAgentExecution(StrictModel):
    """Record a running execution's answer (`output`, `tokens_used`, `source`), or its failure
    (`reason`), and how long it took."""

    action = "agents.execute"

    execution_id: UUID
    duration_ms: int = Field(ge=0)
    output: str | None = Field(default=None, max_length=MAX_OUTPUT)
    tokens_used: int = Field(default=0, ge=0)
    source: str = Field(default="", max_length=MAX_SOURCE)
    reason: str | None = Field(default=None, max_length=MAX_REASON)


@handles(RegisterAgent)
def register_agent(cmd: RegisterAgent, ctx: Context, scope: Scope) -> Reply:
    """The agent thing (active) and the `owns` connection from its owner, all or nothing."""
    properties = {
        "description": cmd.description, "systemPrompt": cmd.system_prompt, "temperature": cmd.temperature,
        "capabilities": cmd.capabilities,
        "pricing": Pricing(cmd.pricing.per_execution_usd, cmd.pricing.per_1k_tokens_usd).as_properties(),
        **({"model": cmd.model} if cmd.model else {})}
    agent = create_thing(m.CreateThing(type=cmd.type, name=cmd.name, properties=properties, status="active",
                                       tags=cmd.tags), ctx, scope).stream_id
    owner = cmd.owner_id or UUID(ctx.actor_id)
    link = connect(scope, ctx, owner, agent, "owns", {"revenueShare": 1.0})
    return Reply(agent, 201, {"owner_id": str(owner), "connection_id": str(link.id)})


def live_agent(scope: Scope, ctx: Context, agent_id: UUID) -> Thing:
    """The agent `agent_id`, a live thing of an agent type in the caller's reach."""
    agent = load(scope, ctx, agent_id, Thing, "agent_id")
    if agent.type not in AGENT_TYPES or agent.deleted:
        raise ValidationFailed("agent_id must name a live business agent", "agent_id")
    return agent


@handles(StartAgentExecution)
def start_agent_execution(cmd: StartAgentExecution, ctx: Context, scope: Scope) -> Reply:
    """Queue the execution at the agent's current price and mark it running."""
    agent = live_agent(scope, ctx, cmd.agent_id)
    execution = AgentExecution.queue(
        id=cmd.execution_id, org_id=agent.org_id, actor_id=ctx.actor_id, agent_id=agent.id, input=cmd.input,
        model=str(agent.properties.get("model") or ""), pricing=Pricing.of(agent.properties))
    execution.start(ctx.actor_id)
    scope.add(execution)
    return Reply(execution.id, 201)


@handles(FinishAgentExecution)
def finish_agent_execution(cmd: FinishAgentExecution, ctx: Context, scope: Scope) -> Reply:
    """Completed (charged at the queued price) or failed, and the `agent_executed` activity."""
    execution = load(scope, ctx, cmd.execution_id, AgentExecution, "execution_id")
    metadata: dict[str, object] = {"executionId": str(execution.id), "durationMs": cmd.duration_ms}
    if cmd.output is None:
        execution.fail(ctx.actor_id, cmd.reason or "the model did not answer", cmd.duration_ms)
        metadata |= {"status": "failed", "reason": cmd.reason}
    else:
        cost = execution.complete(ctx.actor_id, cmd.output, cmd.tokens_used, cmd.duration_ms, cmd.source)
        metadata |= {"status": "success", "tokensUsed": cmd.tokens_used, "costUsd": cost}
    scope.add(Activity.record(id=activity_id(execution.id), org_id=execution.org_id, actor_id=ctx.actor_id,
                              type="agent_executed", target_id=UUID(execution.agent_id), metadata=metadata))
    return Reply(execution.id, 200, {"status": execution.status})
