"""The log itself for analysts: `GET /v1/log` streams envelopes as newline-delimited JSON.

An organization's owner reads its own organization's events; a platform owner every
organization's. The log is the source of truth, so this read waits for no projection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.auth import Authenticated, caller_of, permission
from api.correlation import VALID
from api.deps import MAX_POSITION, CleanQuery, RuntimeDep
from api.query_filters import LogEventTypeFilter
from streams.replay import LogFilter, json_lines, replay

router = APIRouter(prefix="/v1", tags=["log"], dependencies=[Authenticated, CleanQuery])
NDJSON = "application/x-ndjson"
Position = Annotated[int, Query(ge=0, le=MAX_POSITION)]


ENVELOPE_LINES = {"description": "One envelope per line, in log order",
                  "content": {NDJSON: {"schema": {"type": "string"}}}}


@router.get("/log", openapi_extra=permission("log.read"), response_class=StreamingResponse,
            responses={200: ENVELOPE_LINES})
def read_log(
    rt: RuntimeDep, request: Request, after: Position = 0, until: Position | None = None,
    since: datetime | None = None, type: Annotated[list[LogEventTypeFilter] | None, Query()] = None,
    stream_id: UUID | None = None, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    correlation_id: Annotated[str | None, Query(pattern=VALID.pattern,
                                                description="everything one request caused")] = None,
) -> StreamingResponse:
    """Envelopes after position `after` through `until`, occurred at or after `since`, of the
    given types (repeatable), stream and correlation, at most `limit`; resume with `after` = the
    last position read."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    chosen = LogFilter(after=after, until=until, since=since, types=frozenset(type or ()),
                       stream_id=None if stream_id is None else str(stream_id),
                       org_id=caller_of(request).org_scope, correlation_id=correlation_id)
    return StreamingResponse(json_lines(replay(rt.event_log, chosen, limit)), media_type=NDJSON)
