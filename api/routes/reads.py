"""Query endpoints (the seeds' query patterns). All accept `?after=<position>`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import CleanQuery, Consistent, ReadDep, RuntimeDep
from api.problems import Problem
from api.status import collect_status
from projections import queries as q

router = APIRouter(prefix="/v1", tags=["queries"], dependencies=[CleanQuery, Consistent])
Limit = Annotated[int, Query(ge=1, le=500)]


def _found(row: Any, what: str, ident: UUID) -> JSONResponse:
    if row is None:
        raise Problem(404, "not_found", f"{what} {ident} not found", "id")
    return JSONResponse(row)


@router.get("/things/{thing_id}")
def get_thing(thing_id: UUID, conn: ReadDep, include: str | None = None) -> JSONResponse:
    """One thing; `?include=connections` adds its incoming and outgoing edges."""
    return _found(q.get_thing(conn, thing_id, include == "connections"), "thing", thing_id)


@router.get("/things")
def list_things(
    conn: ReadDep, type: str | None = None, status: str | None = None,
    tag: str | None = None, org_id: str | None = None, include_deleted: bool = False,
    limit: Limit = 50, cursor: str | None = None,
) -> JSONResponse:
    """Things newest first, by type / status / tag, with cursor pagination."""
    page = q.list_things(conn, type=type, status=status, tag=tag, org_id=org_id,
                         include_deleted=include_deleted, limit=limit, cursor=cursor)
    return JSONResponse(page)


@router.get("/things/{thing_id}/activity")
def thing_activity(thing_id: UUID, conn: ReadDep, type: str | None = None,
                   limit: Limit = 50, cursor: str | None = None) -> JSONResponse:
    """A thing's interaction history (views, likes, purchases, lifecycle), newest first."""
    page = q.list_activity(conn, target_id=thing_id, type=type, limit=limit, cursor=cursor)
    return JSONResponse(page)


@router.get("/creators/{creator_id}")
def creator(creator_id: UUID, conn: ReadDep) -> JSONResponse:
    """A creator with their content and follower count."""
    return _found(q.creator_profile(conn, creator_id), "creator", creator_id)


@router.get("/holders/{holder_id}/tokens")
def holdings(holder_id: UUID, conn: ReadDep) -> JSONResponse:
    """A user's token holdings with balances."""
    return JSONResponse({"items": q.token_holdings(conn, holder_id)})


@router.get("/connections/{conn_id}")
def get_connection(conn_id: UUID, conn: ReadDep) -> JSONResponse:
    """One connection."""
    return _found(q.get_connection(conn, conn_id), "connection", conn_id)


@router.get("/connections")
def list_connections(conn: ReadDep, from_id: UUID | None = None, to_id: UUID | None = None,
                     type: str | None = None, limit: Limit = 100) -> JSONResponse:
    """Live connections by endpoint and type."""
    rows = q.list_connections(conn, from_id=from_id, to_id=to_id, type=type, limit=limit)
    return JSONResponse({"items": rows})


@router.get("/events")
def list_events(conn: ReadDep, type: str | None = None, actor_id: str | None = None,
                target_id: UUID | None = None, since: datetime | None = None,
                until: datetime | None = None, limit: Limit = 50,
                cursor: str | None = None) -> JSONResponse:
    """The activity table, newest first, by type / actor / target / time range."""
    page = q.list_activity(conn, type=type, actor_id=actor_id, target_id=target_id,
                           since=since, until=until, limit=limit, cursor=cursor)
    return JSONResponse(page)


@router.get("/analytics/payments")
def payments(conn: ReadDep, since: datetime | None = None,
             until: datetime | None = None) -> JSONResponse:
    """payment_processed events by status over a time range: count and total amount."""
    return JSONResponse({"by_status": q.payment_analytics(conn, since, until)})


@router.get("/tags")
def tags(conn: ReadDep, category: str | None = None, limit: Limit = 100) -> JSONResponse:
    """The tag catalogue with usage counts."""
    return JSONResponse({"items": q.list_tags(conn, category, limit)})


@router.get("/projections")
def projections(rt: RuntimeDep) -> JSONResponse:
    """Each projection's position and lag; in distributed mode also each partition's watermark
    and consumer lag; and how many events are parked."""
    return JSONResponse(collect_status(rt))
