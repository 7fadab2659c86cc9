"""Operators' routes: parked events listed, re-applied once their cause is fixed, or skipped.

An organization's owner sees and handles its own organization's parked events; a platform owner
every organization's."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api.auth import Authenticated, Caller, caller_of, permission
from api.deps import MAX_POSITION, CleanQuery, Consistent, Cursor, Limit, ReadDep, RuntimeDep
from api.problems import Problem
from api.query_filters import ParkedStatusFilter, ProjectionFilter
from commands.models import StrictModel
from domain.permissions import Reach
from projections import queries as q
from projections.parked import retry_parked, skip_parked

router = APIRouter(prefix="/v1/projections", tags=["operations"], dependencies=[Authenticated, CleanQuery])

Position = Annotated[int, Field(ge=1, le=MAX_POSITION)]


class RetryParked(StrictModel):
    """Which open parked events to re-apply (all of the caller's when empty)."""

    projection: ProjectionFilter | None = None
    position: Position | None = None


class SkipParked(StrictModel):
    """Why the event stays unapplied."""

    note: str = Field(min_length=1, max_length=2000, pattern=r"\S")


def scope(caller: Caller) -> str | None:
    """The organization whose parked events the caller handles (None: every organization)."""
    return None if caller.reach is Reach.ANY else caller.org_id


@router.get("/parked", openapi_extra=permission("operations.read"), dependencies=[Consistent])
def list_parked(conn: ReadDep, request: Request, status: ParkedStatusFilter = "open",
                projection: ProjectionFilter | None = None, limit: Limit = 50,
                cursor: Cursor = None) -> JSONResponse:
    """Parked events newest first (by default the open ones): position, stream, the projections
    that parked it, the error, status (open / retried / skipped), attempts and the operator's note."""
    page = q.list_parked(conn, scope(caller_of(request)), None if status == "all" else status,
                         projection, limit, cursor)
    return JSONResponse(page)


@router.post("/parked/retry", openapi_extra=permission("operations.manage"))
async def retry(body: RetryParked, rt: RuntimeDep, request: Request) -> JSONResponse:
    """Re-apply the open parked events, stream by stream in log order; each outcome says whether
    it applied or the error it failed with again."""
    caller = caller_of(request)

    def run() -> list[dict[str, Any]]:
        with psycopg.connect(rt.db.conninfo, autocommit=True) as conn:
            outcomes = retry_parked(conn, caller.actor_id, scope(caller),
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
            return skip_parked(conn, position, body.note, caller.actor_id, scope(caller))

    if not await asyncio.to_thread(run):
        raise Problem(404, "not_found", f"no open parked event at position {position}", "position")
    return JSONResponse({"position": position, "status": "skipped", "note": body.note})

