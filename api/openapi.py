"""The OpenAPI document, completed where FastAPI cannot infer it: the bearer scheme and which
operations need it (authentication reads its headers itself), the `X-Org-Id` header of platform
owners, every problem+json answer a route can give, and optional parameters without `null` (an
absent parameter is omitted, never sent as null)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.auth import PERMISSION_KEY
from api.problems import PROBLEM_JSON
from commands.fields import STORABLE_JSON, STORABLE_JSON_SCHEMA
from domain.permissions import PUBLIC

SCHEME = "apiKey"
BEARER = {"type": "http", "scheme": "bearer",
          "description": "An API key: `Authorization: Bearer one_<id>_<secret>`."}
ORG_HEADER = {"name": "X-Org-Id", "in": "header", "required": False,
              "description": "Platform owners: the organization to act in (default: their own).",
              "schema": {"type": "string", "format": "uuid"}}
PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details with a stable `code` and the `field` at fault.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "code": {"type": "string"}, "detail": {"type": "string"}, "field": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}, "type": {"type": "string"}}}},
    },
}
WHY = {
    400: "Malformed request (JSON, a position no write has reached, a bad signature)",
    401: "No valid API key", 403: "The key's role or organization may not do this",
    404: "No such resource in the caller's organization",
    409: "Conflicts with the current state (a version, an idempotency key, a position not yet written)",
    410: "No longer valid (an expired invitation)",
    413: "Body too large", 422: "Invalid input (the `field` says where)",
    503: "A dependency (index, embedder, database) is not available",
    504: "Read models did not reach the requested position in time",
}
_WRITES = frozenset({"post", "put", "patch", "delete"})


def document_api(app: FastAPI) -> None:
    """Make `app.openapi()` return the completed document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            components = document.setdefault("components", {})
            components["securitySchemes"] = {SCHEME: BEARER}
            components.setdefault("schemas", {}).update({"Problem": PROBLEM,
                                                         STORABLE_JSON: STORABLE_JSON_SCHEMA})
            for path, operations in document["paths"].items():
                for method, operation in operations.items():
                    _complete(path, method, operation)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(path: str, method: str, operation: dict[str, Any]) -> None:
    action = operation.get(PERMISSION_KEY)
    authenticated = action is not None and action != PUBLIC
    if authenticated:
        operation["security"] = [{SCHEME: []}]
        operation.setdefault("parameters", []).append(ORG_HEADER)
    for parameter in operation.get("parameters", []):
        parameter["schema"] = _without_null(parameter["schema"])
    responses = operation.setdefault("responses", {})
    declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    for status in sorted(_problems(path, method, operation, authenticated) | declared):
        responses[str(status)] = {"description": WHY[status], "content": {
            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _problems(path: str, method: str, operation: dict[str, Any], authenticated: bool) -> set[int]:
    """The problem statuses an operation can answer."""
    if not path.startswith("/v1"):
        return {503} if path == "/readyz" else set()
    statuses = {400, 404, 422}
    if authenticated:
        statuses |= {401, 403}
    if "requestBody" in operation:
        statuses.add(413)
    if method in _WRITES:
        statuses.add(409)
    names = {parameter["name"] for parameter in operation.get("parameters", [])}
    if method == "get" and "after" in names:
        statuses |= {409, 504}
    if operation.get(PERMISSION_KEY) == "knowledge.search":
        statuses |= {503, 504}
    return statuses


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` → X (keeping the title, description and default)."""
    options = [option for option in schema.get("anyOf", ()) if option != {"type": "null"}]
    if "anyOf" not in schema or len(options) != 1:
        return schema
    rest = {key: value for key, value in schema.items()
            if key != "anyOf" and not (key == "default" and value is None)}
    return {**options[0], **rest}
