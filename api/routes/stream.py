"""The live event stream: `GET /v1/stream` as Server-Sent Events of envelopes.

Each event's id is its log position, so a client resumes with `Last-Event-ID` (or `?after=`)
without gap or duplicate, across reconnections and server restarts. Filters: event types, one
stream, one thing type. Comment lines keep an idle connection alive; a client too slow to keep up
gets an `overflow` event with the id to resume from, and the stream ends. An organization's owner
follows its own organization's events; a platform owner every organization's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.auth import Authenticated, caller_of, permission
from api.deps import MAX_POSITION, POSITION_PATTERN, CleanQuery, RuntimeDep
from api.query_filters import LogEventTypeFilter, ThingTypeFilter
from api.runtime import Runtime
from eventlog.envelope import Envelope, dump_json
from streams.live import Overflowed, catch_up_then_follow
from streams.replay import LogFilter

router = APIRouter(prefix="/v1", tags=["log"], dependencies=[Authenticated, CleanQuery])
EVENT_STREAM = "text/event-stream"
SERVER_SENT_EVENTS = {"description": "`id:` log position, `event:` type, `data:` the envelope",
                      "content": {EVENT_STREAM: {"schema": {"type": "string"}}}}
RECONNECT_MS = 1000


@router.get("/stream", openapi_extra=permission("log.read"), response_class=StreamingResponse,
            responses={200: SERVER_SENT_EVENTS})
async def stream(
    rt: RuntimeDep, request: Request,
    after: Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="start after it")] = None,
    type: Annotated[list[LogEventTypeFilter] | None, Query()] = None, stream_id: UUID | None = None,
    thing_type: ThingTypeFilter | None = None,
    heartbeat: Annotated[float, Query(ge=0.1, le=60, description="seconds between keep-alives")] = 15,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000, description="end after this many events")] = None,
    last_event_id: Annotated[str | None, Header(pattern=POSITION_PATTERN,
                                                description="the last id received: resume after it")] = None,
) -> StreamingResponse:
    """Envelopes as they are appended (after `Last-Event-ID` or `after` first, if given), until
    the client leaves or `limit` events were sent."""
    start = max(int(last_event_id or 0), after or 0) if last_event_id or after is not None else rt.head()
    chosen = LogFilter(types=frozenset(type or ()), org_id=caller_of(request).org_scope,
                       stream_id=None if stream_id is None else str(stream_id))
    events = catch_up_then_follow(rt.live, start, chosen.admits, heartbeat)
    if thing_type is not None:
        events = _of_thing_type(events, _thing_type_lookup(rt), thing_type)
    return StreamingResponse(_server_sent(events, limit), media_type=EVENT_STREAM,
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _server_sent(events: AsyncGenerator[Envelope | None], limit: int | None) -> AsyncIterator[bytes]:
    yield f"retry: {RECONNECT_MS}\n\n".encode()
    last, sent = None, 0
    try:
        async with contextlib.aclosing(events):
            async for envelope in events:
                if envelope is None:
                    yield b": keep-alive\n\n"
                    continue
                last, sent = envelope.position, sent + 1
                yield b"id: %d\nevent: %s\ndata: %s\n\n" % (envelope.position, envelope.type.encode(),
                                                            dump_json(envelope.to_dict()))
                if sent == limit:
                    return
    except Overflowed as reason:
        yield b"event: overflow\ndata: %s\n\n" % dump_json({"reason": str(reason), "resume_after": last})


async def _of_thing_type(events: AsyncGenerator[Envelope | None], lookup: Callable[[str], str | None],
                         wanted: str) -> AsyncGenerator[Envelope | None]:
    """Only the events of things of type `wanted` (and the keep-alives)."""
    known: dict[str, str | None] = {}
    async with contextlib.aclosing(events):
        async for envelope in events:
            if envelope is None:
                yield envelope
                continue
            if not envelope.type.startswith("thing."):
                continue
            if envelope.type == "thing.created":
                known[envelope.stream_id] = str(envelope.data["type"])
            elif envelope.stream_id not in known:
                known[envelope.stream_id] = await asyncio.to_thread(lookup, envelope.stream_id)
            if known[envelope.stream_id] == wanted:
                yield envelope


def _thing_type_lookup(rt: Runtime) -> Callable[[str], str | None]:
    def lookup(thing_id: str) -> str | None:
        with rt.reads.connection() as conn:
            row = conn.execute("SELECT type FROM things WHERE id = %s", (thing_id,)).fetchone()
        return None if row is None else str(row[0])

    return lookup
