"""Request-scoped helpers shared by the routes: runtime, command context, read-your-writes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from api.problems import Problem
from api.runtime import Runtime
from commands.bus import request_fingerprint
from commands.handlers import SYSTEM_ACTOR_ID, SYSTEM_ORG_ID, Context
from projections.queries import Conn

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


async def runtime(request: Request) -> Runtime:
    """The app's runtime."""
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def _uuid_header(value: str | None, name: str, default: UUID) -> str:
    if value is None:
        return str(default)
    try:
        return str(UUID(value))
    except ValueError:
        raise Problem(400, "validation_error", f"{name} must be a UUID", name) from None


def parse_if_match(value: str | None) -> int | None:
    """`If-Match: 3`, `"3"` or `W/"3"` → 3."""
    if value is None:
        return None
    match = _ETAG.match(value)
    if not match:
        raise Problem(400, "validation_error", "If-Match must be a stream version", "If-Match")
    return int(match.group(1))


async def command_context(
    request: Request,
    x_actor_id: Annotated[str | None, Header()] = None,
    x_org_id: Annotated[str | None, Header()] = None,
    if_match: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Context:
    """Actor, tenant, expected version and idempotency key of a command request."""
    return Context(
        actor_id=_uuid_header(x_actor_id, "X-Actor-Id", SYSTEM_ACTOR_ID),
        org_id=_uuid_header(x_org_id, "X-Org-Id", SYSTEM_ORG_ID),
        expected_version=parse_if_match(if_match),
        idempotency_key=idempotency_key,
        request_hash=None,
    )


ContextDep = Annotated[Context, Depends(command_context)]


async def send_command(
    request: Request, rt: Runtime, ctx: Context, command: Any
) -> JSONResponse:
    """Run a command through the bus and answer with its result (replays are identical)."""
    fingerprint = request_fingerprint(
        request.method, request.url.path, type(command).__name__,
        command.model_dump(mode="json"),
    )
    ctx = Context(ctx.actor_id, ctx.org_id, ctx.expected_version, ctx.idempotency_key, fingerprint)
    result = await rt.bus.execute_async(command, ctx)
    headers = {"ETag": f'"{result.body["version"]}"'}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(result.body, status_code=result.status, headers=headers)


def clean_query(request: Request) -> None:
    """Refuse query parameters PostgreSQL cannot compare or store (NUL characters)."""
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise Problem(422, "validation_error", "query parameters must not contain NUL",
                          name.replace("\x00", ""))


async def consistent_read(
    rt: RuntimeDep,
    after: Annotated[int | None, Query(ge=0, description="wait until this log position is visible")] = None,
    x_after_position: Annotated[int | None, Header(ge=0)] = None,
) -> None:
    """Read-your-writes: wait (bounded) until projections reach the requested position."""
    wanted = max(after or 0, x_after_position or 0)
    if wanted:
        await rt.wait_for(wanted)


def read_connection(rt: RuntimeDep) -> Iterator[Conn]:
    """A pooled read connection for the duration of the request."""
    with rt.reads.connection() as conn:
        yield conn


ReadDep = Annotated[Conn, Depends(read_connection)]
Consistent = Depends(consistent_read)
CleanQuery = Depends(clean_query)
