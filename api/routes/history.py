"""Time travel: a stream's history (its events, paged by version) and its state at a version or a
moment, from the log (not the read model): things, connections and organizations folded by their
aggregates; people by the people projection into temporary tables, then shaped by the same view
as the live person. Each read is scoped like the stream's ordinary read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.auth import Authenticated, Caller, caller_of, permission
from api.deps import CleanQuery, ReadDep
from api.problems import Problem
from api.runtime import Runtime
from eventlog.envelope import Envelope
from eventlog.history import history, state_at, version_at
from projections import queries as q
from projections.as_of import projected_at
from projections.people import PEOPLE
from projections.queries import Conn

router = APIRouter(prefix="/v1", tags=["history"], dependencies=[Authenticated, CleanQuery])

AfterVersion = Annotated[int, Query(ge=0, le=2**31 - 1, description="events after this stream version")]
HistoryLimit = Annotated[int, Query(ge=1, le=1000, description="page size")]
AsOfVersion = Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                          description="the state at this stream version (from the log)")]
AsOf = Annotated[datetime | None, Query(description="the state at this moment, ISO 8601 (from the log)")]
KINDS = {"thing": "thing.created", "connection": "connection.created", "organization": "organization.created",
         "person": "person.created"}


def owned_stream(conn: Conn, caller: Caller, stream_id: UUID, kind: str) -> Envelope:
    """The stream's first event, if it is a `kind` the caller may read; else 404."""
    first = history(conn, str(stream_id), limit=1)
    visible = first and first[0].type == KINDS[kind] and caller.org_scope in (None, first[0].org_id)
    if not visible:
        raise Problem(404, "not_found", f"{kind} {stream_id} not found", "id")
    return first[0]


def version_asked(conn: Conn, caller: Caller, stream_id: UUID, kind: str, as_of_version: int | None,
                  as_of: datetime | None) -> int:
    """The stream version `as_of_version` or `as_of` name (with both, the earlier); 404 if the
    stream is not the caller's or did not exist yet."""
    owned_stream(conn, caller, stream_id, kind)
    version = as_of_version
    if as_of is not None:
        moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        then = version_at(conn, str(stream_id), moment)
        if then == 0:
            raise Problem(404, "not_found", f"{kind} {stream_id} did not exist yet at {moment.isoformat()}",
                          "as_of")
        version = then if version is None else min(version, then)
    assert version is not None
    return version


def folded_state(rt: Runtime, conn: Conn, caller: Caller, stream_id: UUID, kind: str,
                 as_of_version: int | None, as_of: datetime | None) -> JSONResponse:
    """The stream's state at a version or a moment (with both, whichever is earlier), folded from
    the log."""
    version = version_asked(conn, caller, stream_id, kind, as_of_version, as_of)
    state = state_at(rt.event_log, str(stream_id), version)
    if state is None:
        raise Problem(404, "not_found", f"{kind} {stream_id} has no version {version}", "as_of_version")
    return JSONResponse({**state, "as_of": {"version": version, "moment": as_of and as_of.isoformat()}})


def person_then(rt: Runtime, conn: Conn, caller: Caller, person_id: UUID, as_of_version: int | None,
                as_of: datetime | None) -> JSONResponse:
    """A person as they were, shaped for the caller like the live person: the people projection
    applies their events up to then into temporary tables (`projections.as_of`)."""
    version = version_asked(conn, caller, person_id, "person", as_of_version, as_of)
    events = history(conn, str(person_id), limit=version)
    if len(events) < version:
        raise Problem(404, "not_found", f"person {person_id} has no version {version}", "as_of_version")
    with psycopg.connect(rt.db.conninfo, autocommit=True) as scratch:
        row = projected_at(scratch, PEOPLE, events, lambda c: q.get_person(c, events[0].org_id, person_id))
    assert row is not None
    view = q.person_view(row, caller.actor_id, caller.role)
    return JSONResponse({**view, "as_of": {"version": version, "moment": as_of and as_of.isoformat()}})


def _page(conn: Conn, caller: Caller, stream_id: UUID, kind: str, after_version: int,
          limit: int) -> JSONResponse:
    owned_stream(conn, caller, stream_id, kind)
    events = history(conn, str(stream_id), after_version, limit + 1)
    items = [envelope.to_dict() for envelope in events[:limit]]
    more = len(events) > limit
    return JSONResponse({"items": items, "next_after_version": items[-1]["version"] if more else None})


@router.get("/things/{thing_id}/history", openapi_extra=permission("things.read"))
def thing_history(thing_id: UUID, conn: ReadDep, request: Request, after_version: AfterVersion = 0,
                  limit: HistoryLimit = 100) -> JSONResponse:
    """A thing's events, oldest first (as envelopes, upcast to today's schema)."""
    return _page(conn, caller_of(request), thing_id, "thing", after_version, limit)


@router.get("/connections/{conn_id}/history", openapi_extra=permission("connections.read"))
def connection_history(conn_id: UUID, conn: ReadDep, request: Request, after_version: AfterVersion = 0,
                       limit: HistoryLimit = 100) -> JSONResponse:
    """A connection's events, oldest first."""
    return _page(conn, caller_of(request), conn_id, "connection", after_version, limit)


@router.get("/people/{person_id}/history", openapi_extra=permission("people.read"))
def person_history(person_id: UUID, conn: ReadDep, request: Request, after_version: AfterVersion = 0,
                   limit: HistoryLimit = 100) -> JSONResponse:
    """A person's events, oldest first (their personal fields stay sealed, as in the log)."""
    return _page(conn, caller_of(request), person_id, "person", after_version, limit)


@router.get("/organizations/{org_id}/history", openapi_extra=permission("organizations.read"))
def organization_history(org_id: UUID, conn: ReadDep, request: Request, after_version: AfterVersion = 0,
                         limit: HistoryLimit = 100) -> JSONResponse:
    """An organization's own events (created, renamed, re-planned), oldest first."""
    return _page(conn, caller_of(request), org_id, "organization", after_version, limit)
