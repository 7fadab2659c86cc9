"""RFC 9457 problem+json responses with stable codes and the field at fault."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.keyring import Unauthenticated
from api.limits import BodyTooLarge
from api.runtime import NotCaughtUp, PositionAhead
from commands.bus import IdempotencyMismatch
from domain.errors import (
    AccountSuspended,
    AlreadyExists,
    DomainError,
    Forbidden,
    Gone,
    InvalidState,
    NotFound,
    ValidationFailed,
    VersionConflict,
)
from projections.queries import BadCursor

PROBLEM_JSON = "application/problem+json"
STATUS_OF: dict[type[DomainError], int] = {
    ValidationFailed: 422,
    NotFound: 404,
    VersionConflict: 409,
    AlreadyExists: 409,
    InvalidState: 409,
    Gone: 410,
    IdempotencyMismatch: 409,  # the key already names another request (state, not syntax)
    Forbidden: 403,
    AccountSuspended: 403,
}


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.field = status, code, detail, field


def problem_response(
    status: int, code: str, detail: str, field: str | None = None,
    headers: Mapping[str, str] | None = None, **extra: Any,
) -> JSONResponse:
    """Build the problem+json response."""
    body: dict[str, Any] = {
        "type": f"https://one-platform.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_of(loc: tuple[Any, ...]) -> str:
    """The field a validation error names: a dotted path, or a header's canonical name."""
    if len(loc) == 2 and loc[0] == "header":
        return "-".join(word.capitalize() for word in str(loc[1]).split("-"))
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_problem_handlers(app: FastAPI) -> None:
    """Map every known error to problem+json."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail, exc.field)

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        return problem_response(401, "unauthenticated", str(exc), "Authorization",
                                headers={"WWW-Authenticate": 'Bearer realm="one"'})

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        status = next((STATUS_OF[kind] for kind in type(exc).__mro__ if kind in STATUS_OF), 422)
        return problem_response(status, exc.code, exc.message, exc.field)

    @app.exception_handler(BadCursor)
    async def _cursor(_: Request, exc: BadCursor) -> JSONResponse:
        return problem_response(400, "validation_error", str(exc), "cursor")

    @app.exception_handler(NotCaughtUp)
    async def _lagging(_: Request, exc: NotCaughtUp) -> JSONResponse:
        return problem_response(504, "not_caught_up", str(exc), "after")

    @app.exception_handler(PositionAhead)
    async def _ahead(_: Request, exc: PositionAhead) -> JSONResponse:
        return problem_response(409, "position_ahead", str(exc), "after")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_of(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        for error, raw in zip(errors, exc.errors(), strict=True):
            if error["type"] == "json_invalid":  # loc is (body, character offset)
                error["field"] = "body"
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):  # the tag is at fault
                tag = str(raw.get("ctx", {}).get("discriminator", "")).strip("'")
                error["field"] = tag if error["field"] == "body" else f"{error['field']}.{tag}"
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        code = "malformed_json" if first.get("type") == "json_invalid" else "validation_error"
        status = 400 if code == "malformed_json" else 422
        return problem_response(status, code, first["message"], first["field"], errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, BodyTooLarge):  # a streamed body outgrew the limit
            return problem_response(413, "payload_too_large", "request body is too large", "body")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(sorted(allowed_methods(request)))
        return problem_response(exc.status_code, code, str(exc.detail), headers=headers)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> set[str]:
    """Every method some route of the app serves at the request's path (Starlette's 405 names
    only the first route that matched the path): each method is tried against the routes."""
    routes = request.app.router.routes
    return {
        method for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    }
