"""AI clones (the seeds' code pattern 6): chat behind the creator's token gate, answered with the
clone's own knowledge, recorded and rewarded; and the clone's metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from api.auth import Authenticated, Caller, caller_of, permission
from api.deps import CleanQuery, ContextDep, RuntimeDep
from api.problems import Problem
from api.routes.knowledge import with_active_index
from api.runtime import Runtime
from commands.clones import CloneMessage, RecordCloneInteraction
from commands.handlers import Context
from domain.things import Thing
from projections import queries as q
from projections.knowledge.search import Filters, context_chunks
from providers.chat import HISTORY_TURNS, ChatReply, ChatUnavailable, Conversation
from sagas.views import load_process

router = APIRouter(prefix="/v1/clones", tags=["ai clones"], dependencies=[Authenticated, CleanQuery])
CONTEXT_PASSAGES = 5


def _clone(rt: Runtime, caller: Caller, clone_id: UUID) -> Thing:
    clone = load_process(rt.event_log, clone_id, Thing, caller.org_scope)
    if clone is None or clone.type != "ai_clone" or clone.deleted:
        raise Problem(404, "not_found", f"ai clone {clone_id} not found", "clone_id")
    return clone


def _prepare(rt: Runtime, caller: Caller, clone_id: UUID, message: str) -> tuple[Thing, str, Conversation]:
    """The clone, the creator's token the caller holds (else 403 tokens_required) and the
    conversation: system prompt, the clone's own knowledge nearest to the message, the caller's
    last turns."""
    clone = _clone(rt, caller, clone_id)
    with rt.reads.connection() as conn:
        token = q.clone_access_token(conn, str(clone_id), caller.actor_id)
        knowledge = q.clone_knowledge(conn, str(clone_id))
        history = q.clone_history(conn, str(clone_id), caller.actor_id, HISTORY_TURNS)
    if token is None:
        raise Problem(403, "tokens_required", "hold the creator's token to chat with this clone", "clone_id")
    return clone, token, Conversation.of(clone.properties, message, _passages(rt, clone, knowledge, message),
                                         history)


def _passages(rt: Runtime, clone: Thing, knowledge: list[str], message: str) -> list[str]:
    """Retrieval restricted to what the clone is trained on (none: no passages)."""
    if not knowledge:
        return []
    filters = Filters(org_id=clone.org_id, thing_ids=tuple(knowledge))
    try:
        _, chunks = with_active_index(rt, lambda conn, index, embed: context_chunks(
            conn, index, embed(message), filters, CONTEXT_PASSAGES))
    except Problem:  # no knowledge index yet, or the embedder failed: answer without passages
        return []
    return [str(chunk["text"]) for chunk in chunks]


@router.post("/{clone_id}/messages", status_code=201, openapi_extra=permission("clones.chat"),
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "the answer as Server-Sent Events (`stream: true`)"}})
async def send_message(clone_id: UUID, body: CloneMessage, rt: RuntimeDep, request: Request,
                       ctx: ContextDep) -> Any:
    """Ask the clone. A caller holding none of the creator's tokens gets `403 tokens_required`.
    The answer (the OpenAI SDK's chat completions, or the local responder) is recorded as a
    `clone_interaction` and rewarded with tokens (a saga mints them, once per interaction). With
    `stream: true` (or `Accept: text/event-stream`) the answer comes as `delta` events, then `done`."""
    caller = caller_of(request)
    clone, token, conversation = await asyncio.to_thread(_prepare, rt, caller, clone_id, body.message)
    model = rt.chat_model()
    if body.stream or "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(_streamed(rt, ctx, clone, token, conversation),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        reply = await asyncio.to_thread(model.reply, conversation)
    except ChatUnavailable as error:
        raise Problem(503, "chat_unavailable", str(error), "message") from error
    return JSONResponse(await _record(rt, ctx, clone, token, conversation, reply), status_code=201)


async def _streamed(rt: Runtime, ctx: Context, clone: Thing, token: str,
                    conversation: Conversation) -> AsyncIterator[str]:
    try:
        async for piece in iterate_in_threadpool(rt.chat_model().stream(conversation)):
            if isinstance(piece, ChatReply):
                recorded = await _record(rt, ctx, clone, token, conversation, piece)
                yield f"event: done\ndata: {json.dumps(recorded)}\n\n"
            else:
                yield f"event: delta\ndata: {json.dumps({'text': piece})}\n\n"
    except ChatUnavailable as error:
        yield f"event: error\ndata: {json.dumps({'code': 'chat_unavailable', 'detail': str(error)})}\n\n"


async def _record(rt: Runtime, ctx: Context, clone: Thing, token: str, conversation: Conversation,
                  reply: ChatReply) -> dict[str, Any]:
    """Append the interaction with its reward; the client's answer."""
    reward = rt.settings.clone_reward_tokens
    result = await rt.bus.execute_async(RecordCloneInteraction(
        interaction_id=uuid4(), clone_id=clone.id, message=conversation.message, response=reply.text,
        tokens_used=reply.tokens_used, source=reply.source, token_id=UUID(token), reward=reward), ctx)
    if rt.sagas is not None and reward:
        rt.sagas.poke()
    return {"interaction_id": result.body["id"], "response": reply.text, "source": reply.source,
            "tokens_used": reply.tokens_used, "tokens_earned": reward, "passages": len(conversation.context),
            "position": result.body["position"]}


@router.get("/{clone_id}/metrics", openapi_extra=permission("clones.read"))
def clone_metrics(clone_id: UUID, rt: RuntimeDep, request: Request) -> JSONResponse:
    """Interactions, unique users, tokens used, and rewards paid (and pending)."""
    _clone(rt, caller_of(request), clone_id)
    with rt.reads.connection() as conn:
        return JSONResponse(q.clone_metrics(conn, str(clone_id)))
