"""Request-scoped helpers shared by the routes: runtime, command context, read-your-writes."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from api.auth import caller_of
from api.problems import Problem
from api.runtime import Runtime
from commands.bus import CommandResult, request_fingerprint
from commands.handlers import Context
from projections.queries import CURSOR_PATTERN, Conn

ETAG_PATTERN = r'^\s*(?:W/)?"?[0-9]{1,18}"?\s*$'
"""`If-Match`: a stream version, bare, quoted or weak (`3`, `"3"`, `W/"3"`)."""
POSITION_PATTERN = r"^[0-9]{1,18}$"
"""A log position sent as text (a header)."""
MAX_POSITION = 2**63 - 1


async def runtime(request: Request) -> Runtime:
    """The app's runtime."""
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def parse_if_match(value: str | None) -> int | None:
    """`If-Match: 3`, `"3"` or `W/"3"` → 3 (the header's pattern is checked before)."""
    return None if value is None else int(re.sub(r"[^0-9]", "", value))


async def command_context(
    request: Request,
    if_match: Annotated[str | None, Header(pattern=ETAG_PATTERN,
                                           description="the stream version the change expects")] = None,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255, pattern=r"\S",
                                                  description="replays answer like the first")] = None,
) -> Context:
    """Actor, role and organization (from the key), expected version and idempotency key."""
    caller = caller_of(request)
    return Context(
        actor_id=caller.actor_id, org_id=caller.org_id, role=caller.role,
        expected_version=parse_if_match(if_match), idempotency_key=idempotency_key,
        correlation_id=getattr(request.state, "correlation_id", None),
        causation_id=f"command:{uuid.uuid4()}",
    )


ContextDep = Annotated[Context, Depends(command_context)]


async def run_command(request: Request, ctx: Context, command: Any, sent: Any = None) -> CommandResult:
    """Run a command through the app's bus; with an Idempotency-Key, fingerprinted for it by what
    the client `sent` (default: the command itself) and the organization (only keyed commands
    are compared with a stored request)."""
    if ctx.idempotency_key is not None:
        ctx = replace(ctx, request_hash=request_fingerprint(
            request.method, request.url.path, ctx.org_id, type(command).__name__,
            (sent or command).model_dump(mode="json"),
        ))
    rt: Runtime = request.app.state.runtime
    return await rt.bus.execute_async(command, ctx)


def command_response(result: CommandResult, **extra: Any) -> JSONResponse:
    """A command's answer: its body (plus `extra`), ETag of the stream version, replay flag."""
    headers = {"ETag": f'"{result.body["version"]}"'}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({**result.body, **extra}, status_code=result.status, headers=headers)


async def send_command(request: Request, ctx: Context, command: Any) -> JSONResponse:
    """Run a command and answer with its result (replays are identical)."""
    return command_response(await run_command(request, ctx, command))


async def clean_query(request: Request) -> None:
    """Refuse query parameters PostgreSQL cannot compare or store (NUL characters). (Async:
    CPU-light work needs no hop to the thread pool.)"""
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise Problem(422, "validation_error", "query parameters must not contain NUL",
                          name.replace("\x00", ""))


Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[str | None, Query(pattern=CURSOR_PATTERN,
                                      description="the `next_cursor` of the previous page")]
AfterQuery = Annotated[int | None, Query(ge=0, le=MAX_POSITION,
                                          description="wait until this log position is visible")]
AfterHeader = Annotated[str | None, Header(pattern=POSITION_PATTERN,
                                           description="as `after`, for clients that send headers")]


def requested_position(after: int | None, x_after_position: str | None) -> int:
    """The log position a read waits for: the larger of `?after=` and `X-After-Position`."""
    return max(after or 0, int(x_after_position or 0))


async def consistent_read(rt: RuntimeDep, after: AfterQuery = None,
                          x_after_position: AfterHeader = None) -> None:
    """Read-your-writes: wait (bounded) until projections reach the requested position."""
    wanted = requested_position(after, x_after_position)
    if wanted:
        await rt.wait_for(wanted)


async def read_connection(rt: RuntimeDep) -> AsyncIterator[Conn]:
    """A pooled read connection for the duration of the request.

    It is taken outside the thread pool that runs the (sync) query routes and handed back on the
    event loop: a request waiting for a connection must never hold a thread that a request
    holding a connection needs to finish (with more waiting requests than threads, that
    deadlocked until the pool's timeout)."""
    conn = await asyncio.to_thread(rt.reads.getconn)
    try:
        yield conn
    finally:
        rt.reads.putconn(conn)


ReadDep = Annotated[Conn, Depends(read_connection)]
Consistent = Depends(consistent_read)
CleanQuery = Depends(clean_query)
