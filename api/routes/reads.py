"""Query endpoints (the seeds' query patterns), each scoped to the caller's organization. All
accept `?after=<position>`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.auth import Authenticated, caller_of, permission
from api.deps import CleanQuery, Consistent, Cursor, Limit, ReadDep, RuntimeDep
from api.problems import Problem
from api.query_filters import (
    ConnectionTypeFilter,
    EventTypeFilter,
    Include,
    TagCategoryFilter,
    TagFilter,
    ThingStatusFilter,
    ThingTypeFilter,
)
from api.routes.history import AsOf, AsOfVersion, folded_state
from api.status import collect_status
from projections import queries as q

router = APIRouter(prefix="/v1", tags=["queries"], dependencies=[Authenticated, CleanQuery, Consistent])


def found(row: Any, what: str, ident: UUID) -> JSONResponse:
    """The row as JSON, or 404 (also for what exists in another organization)."""
    if row is None:
        raise Problem(404, "not_found", f"{what} {ident} not found", "id")
    return JSONResponse(row)


@router.get("/things/{thing_id}", openapi_extra=permission("things.read"))
def get_thing(thing_id: UUID, conn: ReadDep, request: Request, rt: RuntimeDep,
              include: Include | None = None, as_of_version: AsOfVersion = None,
              as_of: AsOf = None) -> JSONResponse:
    """One thing; `?include=connections` adds its incoming and outgoing edges; `?as_of_version=`
    or `?as_of=` give its state then, folded from the log."""
    caller = caller_of(request)
    if as_of_version is not None or as_of is not None:
        return folded_state(rt, conn, caller, thing_id, "thing", as_of_version, as_of)
    return found(q.get_thing(conn, caller.org_id, thing_id, include == "connections"), "thing", thing_id)


@router.get("/things", openapi_extra=permission("things.read"))
def list_things(
    conn: ReadDep, request: Request, type: ThingTypeFilter | None = None,
    status: ThingStatusFilter | None = None, tag: TagFilter | None = None,
    include_deleted: bool = False, limit: Limit = 50,
    cursor: Cursor = None,
) -> JSONResponse:
    """Things newest first, by type / status / tag, with cursor pagination."""
    caller = caller_of(request)
    page = q.list_things(conn, caller.org_id, type=type, status=status, tag=tag,
                         include_deleted=include_deleted, limit=limit, cursor=cursor)
    return JSONResponse(page)


@router.get("/things/{thing_id}/activity", openapi_extra=permission("events.read"))
def thing_activity(thing_id: UUID, conn: ReadDep, request: Request, type: EventTypeFilter | None = None,
                   limit: Limit = 50, cursor: Cursor = None) -> JSONResponse:
    """A thing's interaction history (views, likes, purchases, lifecycle), newest first; a
    customer sees their own interactions."""
    caller = caller_of(request)
    page = q.list_activity(conn, caller.org_id, target_id=thing_id, type=type, limit=limit,
                           cursor=cursor, actor_id=caller.actor_id if caller.self_only else None)
    return JSONResponse(page)


@router.get("/creators/{creator_id}", openapi_extra=permission("things.read"))
def creator(creator_id: UUID, conn: ReadDep, request: Request) -> JSONResponse:
    """A creator with their content and follower count."""
    caller = caller_of(request)
    return found(q.creator_profile(conn, caller.org_id, creator_id), "creator", creator_id)


@router.get("/holders/{holder_id}/tokens", openapi_extra=permission("things.read"))
def holdings(holder_id: UUID, conn: ReadDep, request: Request) -> JSONResponse:
    """A user's token holdings with balances."""
    caller = caller_of(request)
    return JSONResponse({"items": q.token_holdings(conn, caller.org_id, holder_id)})


@router.get("/connections/{conn_id}", openapi_extra=permission("connections.read"))
def get_connection(conn_id: UUID, conn: ReadDep, request: Request, rt: RuntimeDep,
                   as_of_version: AsOfVersion = None, as_of: AsOf = None) -> JSONResponse:
    """One connection; `?as_of_version=` or `?as_of=` give its state then, folded from the log."""
    caller = caller_of(request)
    if as_of_version is not None or as_of is not None:
        return folded_state(rt, conn, caller, conn_id, "connection", as_of_version, as_of)
    return found(q.get_connection(conn, caller.org_id, conn_id), "connection", conn_id)


@router.get("/connections", openapi_extra=permission("connections.read"))
def list_connections(conn: ReadDep, request: Request, from_id: UUID | None = None,
                     to_id: UUID | None = None, type: ConnectionTypeFilter | None = None,
                     limit: Limit = 100) -> JSONResponse:
    """Live connections by endpoint and type."""
    caller = caller_of(request)
    rows = q.list_connections(conn, caller.org_id, from_id=from_id, to_id=to_id, type=type,
                              limit=limit)
    return JSONResponse({"items": rows})


@router.get("/events", openapi_extra=permission("events.read"))
def list_events(conn: ReadDep, request: Request, type: EventTypeFilter | None = None,
                actor_id: UUID | None = None, target_id: UUID | None = None,
                since: datetime | None = None, until: datetime | None = None, limit: Limit = 50,
                cursor: Cursor = None) -> JSONResponse:
    """The activity table, newest first, by type / actor / target / time range; a customer sees
    their own activity."""
    caller = caller_of(request)
    actor = caller.actor_id if caller.self_only else None if actor_id is None else str(actor_id)
    page = q.list_activity(conn, caller.org_id, type=type, actor_id=actor, target_id=target_id,
                           since=since, until=until, limit=limit, cursor=cursor)
    return JSONResponse(page)


@router.get("/analytics/payments", openapi_extra=permission("analytics.read"))
def payments(conn: ReadDep, request: Request, since: datetime | None = None,
             until: datetime | None = None) -> JSONResponse:
    """payment_processed events by status over a time range: count and total amount."""
    caller = caller_of(request)
    return JSONResponse({"by_status": q.payment_analytics(conn, caller.org_id, since, until)})


@router.get("/tags", openapi_extra=permission("things.read"))
def tags(conn: ReadDep, request: Request, category: TagCategoryFilter | None = None,
         limit: Limit = 100) -> JSONResponse:
    """The organization's tag catalogue with usage counts."""
    caller = caller_of(request)
    return JSONResponse({"items": q.list_tags(conn, caller.org_id, category, limit)})


@router.get("/projections", openapi_extra=permission("operations.read"))
def projections(rt: RuntimeDep) -> JSONResponse:
    """Each projection's position and lag; in distributed mode also each partition's watermark
    and consumer lag; and how many events are parked."""
    return JSONResponse(collect_status(rt))
