"""Knowledge endpoints: search things by meaning and/or words, and the RAG context step."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api.auth import Authenticated, caller_of, permission
from api.deps import CleanQuery, RuntimeDep
from api.problems import Problem
from api.runtime import Runtime
from commands.models import StrictModel
from domain import ontology
from projections.knowledge.indexes import KnowledgeIndex, hold_active_index
from projections.knowledge.search import Filters, context_chunks, search
from providers.embeddings import EmbeddingError

router = APIRouter(prefix="/v1", tags=["knowledge"], dependencies=[Authenticated, CleanQuery])
Mode = Literal["semantic", "keyword", "hybrid"]


class ContextRequest(StrictModel):
    """The RAG step before a clone chat: which chunks best answer a question."""

    question: str = Field(min_length=1, max_length=4000)
    limit: int = Field(default=5, ge=1, le=50)
    type: str | None = None
    tag: str | None = None
    status: str | None = None
    after: int | None = Field(default=None, ge=0)


def filters_of(type: str | None, tag: str | None, status: str | None, org_id: str) -> Filters:
    """Validated, canonical filters within the caller's organization (unknown type/status or a
    malformed tag → 422)."""
    return Filters(
        type=None if type is None else ontology.normalize_thing_type(type),
        tag=None if tag is None else ontology.format_tag(*ontology.parse_tag(tag, field="tag")),
        status=None if status is None else ontology.validate_status(status),
        org_id=org_id,
    )


def _run(rt: Runtime, work: Any) -> Any:
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
    q: Annotated[str, Query(min_length=1, max_length=1000, description="what to look for")],
    mode: Mode = "hybrid",
    type: str | None = None, tag: str | None = None, status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    after: Annotated[int | None, Query(ge=0, description="wait until this position is searchable")] = None,
    x_after_position: Annotated[int | None, Header(ge=0)] = None,
) -> JSONResponse:
    """Things by meaning (semantic), by words (keyword) or both fused by reciprocal rank (hybrid)."""
    caller = caller_of(request)
    if not q.strip():
        raise Problem(422, "validation_error", "q must not be blank", "q")
    filters = filters_of(type, tag, status, caller.org_id)
    await rt.wait_for(max(after or 0, x_after_position or 0), knowledge=True)
    index, results = await asyncio.to_thread(
        _run, rt, lambda conn, index, embed: search(conn, index, embed, q, mode, filters, limit))
    return _described(index, {"results": results, "mode": mode})


@router.post("/knowledge/context", openapi_extra=permission("knowledge.search"))
async def knowledge_context(rt: RuntimeDep, request: Request, body: ContextRequest) -> JSONResponse:
    """The chunks nearest to a question, each with its thing (context for a clone's answer)."""
    caller = caller_of(request)
    if not body.question.strip():
        raise Problem(422, "validation_error", "question must not be blank", "question")
    filters = filters_of(body.type, body.tag, body.status, caller.org_id)
    await rt.wait_for(body.after or 0, knowledge=True)
    index, chunks = await asyncio.to_thread(
        _run, rt, lambda conn, index, embed: context_chunks(conn, index, embed(body.question), filters,
                                                           body.limit))
    return _described(index, {"question": body.question, "chunks": chunks})
