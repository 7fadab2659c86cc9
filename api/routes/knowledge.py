"""Knowledge endpoints: search things by meaning and/or words, and the RAG context step."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api.auth import Authenticated, caller_of, permission
from api.deps import MAX_POSITION, AfterHeader, AfterQuery, CleanQuery, RuntimeDep, requested_position
from api.problems import Problem
from api.query_filters import TagFilter, ThingStatusFilter, ThingTypeFilter
from api.runtime import Runtime
from commands.fields import JsonInt
from commands.models import StrictModel
from projections.knowledge.indexes import KnowledgeIndex, hold_active_index
from projections.knowledge.search import Filters, context_chunks, search
from providers.embeddings import EmbeddingError

router = APIRouter(prefix="/v1", tags=["knowledge"], dependencies=[Authenticated, CleanQuery])
Mode = Literal["semantic", "keyword", "hybrid"]


class ContextRequest(StrictModel):
    """The RAG step before a clone chat: which chunks best answer a question."""

    question: str = Field(min_length=1, max_length=4000, pattern=r"\S")
    limit: JsonInt = Field(default=5, ge=1, le=50)
    type: ThingTypeFilter | None = None
    tag: TagFilter | None = None
    status: ThingStatusFilter | None = None
    after: JsonInt | None = Field(default=None, ge=0, le=MAX_POSITION)


def with_active_index(rt: Runtime, work: Any) -> Any:
    """Run `work(conn, index, embed)` on the active index, mapping the knowledge failures."""
    with rt.reads.connection() as conn, conn.transaction():
        index = hold_active_index(conn)
        if index is None:
            raise Problem(503, "knowledge_unavailable", "no knowledge index is active yet")
        embedder = rt.embedder_for(index.spec)

        def embed(text: str) -> npt.NDArray[np.float32]:
            vector: npt.NDArray[np.float32] = embedder.embed([text])[0]
            return vector

        try:
            return index, work(conn, index, embed)
        except EmbeddingError as error:
            raise Problem(503, "embedding_unavailable", f"could not embed the query: {error}") from error


def _described(index: KnowledgeIndex, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({**body, "index": index.name, "model": index.spec.model})


@router.get("/search", openapi_extra=permission("knowledge.search"))
async def search_things(
    rt: RuntimeDep, request: Request,
    q: Annotated[str, Query(min_length=1, max_length=1000, pattern=r"\S", description="what to look for")],
    mode: Mode = "hybrid",
    type: ThingTypeFilter | None = None, tag: TagFilter | None = None,
    status: ThingStatusFilter | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    after: AfterQuery = None, x_after_position: AfterHeader = None,
) -> JSONResponse:
    """Things by meaning (semantic), by words (keyword) or both fused by reciprocal rank (hybrid)."""
    caller = caller_of(request)
    filters = Filters(type=type, tag=tag, status=status, org_id=caller.org_id)
    await rt.wait_for(requested_position(after, x_after_position), knowledge=True)
    index, results = await asyncio.to_thread(
        with_active_index, rt, lambda conn, index, embed: search(conn, index, embed, q, mode, filters, limit))
    return _described(index, {"results": results, "mode": mode})


@router.post("/knowledge/context", openapi_extra=permission("knowledge.search"))
async def knowledge_context(rt: RuntimeDep, request: Request, body: ContextRequest) -> JSONResponse:
    """The chunks nearest to a question, each with its thing (context for a clone's answer)."""
    caller = caller_of(request)
    filters = Filters(type=body.type, tag=body.tag, status=body.status, org_id=caller.org_id)
    await rt.wait_for(body.after or 0, knowledge=True)
    index, chunks = await asyncio.to_thread(
        with_active_index, rt,
        lambda conn, index, embed: context_chunks(conn, index, embed(body.question), filters, body.limit))
    return _described(index, {"question": body.question, "chunks": chunks})
