"""The agent marketplace (seeds: week 7): register, list and search business agents; run one
through the chat model (as AI clones do), recorded as an execution with its tokens, cost and
duration; executions by status; usage per organization and agent over a period, for billing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.auth import Authenticated, Caller, caller_of, permission
from api.deps import (
    CleanQuery,
    Consistent,
    ContextDep,
    Cursor,
    Limit,
    ReadDep,
    RuntimeDep,
    run_command,
    send_command,
)
from api.problems import Problem, problem_response
from api.runtime import Runtime
from commands.agents import (
    MAX_OUTPUT,
    MAX_REASON,
    MAX_SOURCE,
    AgentExecutionBody,
    AgentType,
    FinishAgentExecution,
    RegisterAgent,
    StartAgentExecution,
)
from commands.fields import JsonDateTime
from commands.handlers import Context
from domain.agents import AGENT_TYPES, EXECUTION_STATUSES, AgentExecution
from domain.things import Thing
from projections import queries as q
from providers.chat import ChatReply, ChatUnavailable, Conversation
from sagas.views import load_process

router = APIRouter(prefix="/v1/agents", tags=["agent marketplace"], dependencies=[Authenticated, CleanQuery])
ExecutionStatus = Annotated[str | None, Query(pattern=f"^({'|'.join(EXECUTION_STATUSES)})$",
                                              description="queued, running, completed or failed")]
Moment = Annotated[JsonDateTime | None, Query(description="an RFC 3339 date-time")]
CHAT_UNAVAILABLE = {"description": "the model did not answer: the execution is recorded as failed (its"
                                   " id is the problem's `execution_id`, the execution its `execution`)",
                    "content": {"application/problem+json": {}}}


@router.post("", status_code=201, openapi_extra=permission("agents.register"))
async def register_agent(body: RegisterAgent, request: Request, ctx: ContextDep) -> JSONResponse:
    """Register a business agent of one of the ten types: an active thing of that type with its
    system prompt, model and pricing, and an `owns` connection from `owner_id` (default: you)."""
    return await send_command(request, ctx, body)


@router.get("", openapi_extra=permission("agents.read"), dependencies=[Consistent])
def list_agents(conn: ReadDep, request: Request, type: Annotated[AgentType | None, Query()] = None,
                q_: Annotated[str | None, Query(alias="q", min_length=1, max_length=200,
                                                description="a keyword in the name or description")] = None,
                owner_id: UUID | None = None, limit: Limit = 50, cursor: Cursor = None) -> JSONResponse:
    """Agents newest first, by type, keyword and owner, with their execution figures."""
    types = AGENT_TYPES if type is None else (type,)
    return JSONResponse(q.list_agents(conn, caller_of(request).org_id, types, q=q_, owner_id=owner_id,
                                      limit=limit, cursor=cursor))


@router.get("/usage", openapi_extra=permission("agents.usage"), dependencies=[Consistent])
def agent_usage(conn: ReadDep, request: Request, since: Moment = None, until: Moment = None,
                agent_id: UUID | None = None) -> JSONResponse:
    """Usage for usage-based billing: the executions finished in [since, until), their tokens and
    cost (USD), in total and by agent."""
    return JSONResponse(q.agent_usage(conn, caller_of(request).org_id, since, until, agent_id))


@router.get("/executions/{execution_id}", openapi_extra=permission("agents.executions"),
            dependencies=[Consistent])
def get_execution(execution_id: UUID, conn: ReadDep, request: Request) -> JSONResponse:
    """One execution: status, input, output or error, tokens, cost, duration and timestamps."""
    caller = caller_of(request)
    row = q.get_agent_execution(conn, caller.org_scope, execution_id)
    if row is None:
        raise Problem(404, "not_found", f"agent execution {execution_id} not found", "execution_id")
    if caller.self_only and row["actor_id"] != caller.actor_id:
        raise Problem(403, "forbidden", f"agent execution {execution_id} is not yours", "execution_id")
    return JSONResponse(row)


@router.get("/{agent_id}/executions", openapi_extra=permission("agents.executions"),
            dependencies=[Consistent])
def list_executions(agent_id: UUID, rt: RuntimeDep, conn: ReadDep, request: Request,
                    status: ExecutionStatus = None, limit: Limit = 50) -> JSONResponse:
    """The agent's executions by status, newest first (a customer or org user sees their own)."""
    caller = caller_of(request)
    _agent(rt, caller, agent_id)
    mine = caller.actor_id if caller.self_only else None
    return JSONResponse({"items": q.agent_executions(conn, agent_id, status, mine, limit)})


@router.post("/{agent_id}/executions", status_code=201, openapi_extra=permission("agents.execute"),
             responses={503: CHAT_UNAVAILABLE})
async def execute_agent(agent_id: UUID, body: AgentExecutionBody, rt: RuntimeDep, request: Request,
                        ctx: ContextDep) -> JSONResponse:
    """Run the agent on `input` (the OpenAI SDK's chat completions, or the local responder): the
    execution is queued and running before the model is asked, then completed with its output,
    tokens, cost (from the agent's pricing) and duration (`201`). If the model does not answer
    (rate limited, timed out) the execution is recorded as failed and the answer is
    `503 chat_unavailable` carrying it (`execution_id`, `execution`). With an `Idempotency-Key`,
    a replay answers the execution as it stands and runs nothing."""
    caller = caller_of(request)
    agent = await asyncio.to_thread(_agent, rt, caller, agent_id)
    started = await run_command(request, ctx, StartAgentExecution(
        execution_id=uuid4(), agent_id=agent_id, input=body.input), sent=body)
    execution_id = UUID(started.body["id"])
    if started.replayed:
        return JSONResponse(await _answer(rt, execution_id, rt.head()), status_code=started.status)
    model = str(agent.properties.get("model") or "") or None
    conversation = Conversation.of(agent.properties, body.input, model=model)
    began = time.monotonic()
    try:
        reply: ChatReply | ChatUnavailable = await asyncio.to_thread(rt.chat_model().reply, conversation)
    except ChatUnavailable as error:
        reply = error
    finished = await _finish(rt, ctx, execution_id, reply, int((time.monotonic() - began) * 1000))
    answer = await _answer(rt, execution_id, finished)
    if isinstance(reply, ChatUnavailable):
        return problem_response(503, "chat_unavailable", str(reply), "input",
                                execution_id=answer["execution_id"], execution=answer)
    return JSONResponse(answer, status_code=201)


def _agent(rt: Runtime, caller: Caller, agent_id: UUID) -> Thing:
    agent = load_process(rt.event_log, agent_id, Thing, caller.org_scope)
    if agent is None or agent.type not in AGENT_TYPES or agent.deleted:
        raise Problem(404, "not_found", f"agent {agent_id} not found", "agent_id")
    return agent


async def _finish(rt: Runtime, ctx: Context, execution_id: UUID, reply: ChatReply | ChatUnavailable,
                  duration_ms: int) -> int:
    """Record the outcome (not under the request's idempotency key: it belongs to the start);
    return its log position. What the model said is made storable (no NUL, bounded)."""
    outcome = (FinishAgentExecution(execution_id=execution_id, duration_ms=duration_ms,
                                    reason=str(reply)[:MAX_REASON])
               if isinstance(reply, ChatUnavailable) else
               FinishAgentExecution(execution_id=execution_id, duration_ms=duration_ms,
                                    output=reply.text.replace("\x00", "")[:MAX_OUTPUT],
                                    tokens_used=reply.tokens_used, source=reply.source[:MAX_SOURCE]))
    result = await rt.bus.execute_async(outcome, replace(ctx, idempotency_key=None, request_hash=None))
    return int(result.body["position"])


async def _answer(rt: Runtime, execution_id: UUID, position: int) -> dict[str, Any]:
    """The execution as its stream tells it, and the log position to read it after."""
    execution = await asyncio.to_thread(load_process, rt.event_log, execution_id, AgentExecution)
    if execution is None:
        raise Problem(404, "not_found", f"agent execution {execution_id} not found", "execution_id")
    return {"execution_id": str(execution.id), "agent_id": execution.agent_id, "status": execution.status,
            "input": execution.input, "output": execution.output, "error": execution.reason,
            "tokens_used": execution.tokens_used, "cost_usd": execution.cost_usd,
            "duration_ms": execution.duration_ms, "source": execution.source, "version": execution.version,
            "position": position}
