"""Operators' routes: parked events listed, re-applied once their cause is fixed, or skipped; sagas
listed, and parked ones retried or resolved by hand.

An organization's owner sees and handles its own organization's; a platform owner every
organization's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api.auth import Authenticated, Caller, caller_of, permission
from api.deps import MAX_POSITION, CleanQuery, Consistent, Cursor, Limit, ReadDep, RuntimeDep
from api.problems import Problem
from api.query_filters import ParkedStatusFilter, ProjectionFilter, SagaStatusFilter
from api.runtime import Runtime
from commands.handlers import Context
from commands.models import StrictModel
from commands.processes import PROCESS_KINDS, operator_action
from domain.base import OneAggregate
from domain.token_purchase import TokenPurchase
from domain.workflows import WorkflowInstance
from projections import queries as q
from projections.parked import retry_parked, skip_parked

router = APIRouter(prefix="/v1/projections", tags=["operations"], dependencies=[Authenticated, CleanQuery])
sagas = APIRouter(prefix="/v1/sagas", tags=["operations"], dependencies=[Authenticated, CleanQuery])

Position = Annotated[int, Field(ge=1, le=MAX_POSITION)]


class RetryParked(StrictModel):
    """Which open parked events to re-apply (all of the caller's when empty)."""

    projection: ProjectionFilter | None = None
    position: Position | None = None


class SkipParked(StrictModel):
    """Why the event stays unapplied."""

    note: str = Field(min_length=1, max_length=2000, pattern=r"\S")


class ResolveSaga(StrictModel):
    """What the operator did to settle the saga (e.g. refunded in the Stripe dashboard)."""

    note: str = Field(min_length=1, max_length=2000, pattern=r"\S")


@router.get("/parked", openapi_extra=permission("operations.read"), dependencies=[Consistent])
def list_parked(conn: ReadDep, request: Request, status: ParkedStatusFilter = "open",
                projection: ProjectionFilter | None = None, limit: Limit = 50,
                cursor: Cursor = None) -> JSONResponse:
    """Parked events newest first (by default the open ones): position, stream, the projections
    that parked it, the error, status (open / retried / skipped), attempts and the operator's note."""
    page = q.list_parked(conn, caller_of(request).org_scope, None if status == "all" else status,
                         projection, limit, cursor)
    return JSONResponse(page)


@router.post("/parked/retry", openapi_extra=permission("operations.manage"))
async def retry(body: RetryParked, rt: RuntimeDep, request: Request) -> JSONResponse:
    """Re-apply the open parked events, stream by stream in log order; each outcome says whether
    it applied or the error it failed with again."""
    caller = caller_of(request)

    def run() -> list[dict[str, Any]]:
        with psycopg.connect(rt.db.conninfo, autocommit=True) as conn:
            outcomes = retry_parked(conn, caller.actor_id, caller.org_scope,
                                    body.projection, body.position)
        return [outcome.as_json() for outcome in outcomes]

    items = await asyncio.to_thread(run)
    return JSONResponse({"items": items, "retried": sum(item["retried"] for item in items)})


@router.post("/parked/{position}/skip", openapi_extra=permission("operations.manage"))
async def skip(position: Annotated[int, Path(ge=1, le=MAX_POSITION)], body: SkipParked,
               rt: RuntimeDep, request: Request) -> JSONResponse:
    """Leave the open parked event at `position` unapplied, recording who decided and why."""
    caller = caller_of(request)

    def run() -> int:
        with psycopg.connect(rt.db.conninfo, autocommit=True) as conn:
            return skip_parked(conn, position, body.note, caller.actor_id, caller.org_scope)

    if not await asyncio.to_thread(run):
        raise Problem(404, "not_found", f"no open parked event at position {position}", "position")
    return JSONResponse({"position": position, "status": "skipped", "note": body.note})



@sagas.get("", openapi_extra=permission("operations.read"), dependencies=[Consistent])
def list_sagas(conn: ReadDep, request: Request, status: SagaStatusFilter | None = None,
               limit: Limit = 50) -> JSONResponse:
    """Sagas most recently updated first, by status (e.g. `parked`)."""
    return JSONResponse({"items": q.list_sagas(conn, status, limit, caller_of(request).org_scope)})


@sagas.post("/{saga_id}/retry", openapi_extra=permission("operations.manage"))
async def retry_saga(saga_id: UUID, rt: RuntimeDep, request: Request) -> JSONResponse:
    """Retry a parked saga (or workflow instance) from the step it stopped at."""
    caller = caller_of(request)
    return await operate(rt, caller, saga_id, PROCESS_KINDS, lambda saga: saga.resume(caller.actor_id))


@sagas.post("/{saga_id}/resolve", openapi_extra=permission("operations.manage"))
async def resolve_saga(saga_id: UUID, body: ResolveSaga, rt: RuntimeDep, request: Request) -> JSONResponse:
    """Settle a parked saga by hand, recording what was done."""
    caller = caller_of(request)
    return await operate(rt, caller, saga_id, (TokenPurchase,),
                         lambda saga: saga.resolve(caller.actor_id, body.note))


async def operate(rt: Runtime, caller: Caller, process_id: UUID, kinds: tuple[type[OneAggregate], ...],
                  action: Callable[[Any], None], field: str = "saga_id") -> JSONResponse:
    """Run an operator's action on a process (of one of `kinds`) of the caller's scope, as the
    platform's own advance. The process is read from the log (its stream), not from the read
    model, which may lag."""

    def load() -> OneAggregate | None:
        try:
            process: object = rt.event_log.repository.get(process_id)
        except AggregateNotFoundError:
            return None
        org = caller.org_scope
        if not isinstance(process, kinds) or (org is not None and process.org_id != org):
            return None
        return process

    process = await asyncio.to_thread(load)
    if process is None:
        raise Problem(404, "not_found", f"{field.removesuffix('_id')} {process_id} not found", field)
    result = await rt.bus.execute_async(operator_action(process_id, process.version, action), Context())
    if rt.sagas is not None:
        rt.sagas.poke(process_id, "workflow" if isinstance(process, WorkflowInstance) else "token_purchase")
    return JSONResponse({"id": str(process_id), "version": result.body["version"],
                         "position": result.body["position"]})
