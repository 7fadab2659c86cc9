"""What the OpenAPI document says about authentication: the bearer scheme, which operations need
it, and the `X-Org-Id` header of platform owners. (Authentication reads its headers itself, so
FastAPI cannot infer them.)"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.auth import PERMISSION_KEY
from domain.permissions import PUBLIC

SCHEME = "apiKey"
BEARER = {"type": "http", "scheme": "bearer",
          "description": "An API key: `Authorization: Bearer one_<id>_<secret>`."}
ORG_HEADER = {"name": "X-Org-Id", "in": "header", "required": False,
              "description": "Platform owners: the organization to act in (default: their own).",
              "schema": {"type": "string", "format": "uuid"}}


def document_authentication(app: FastAPI) -> None:
    """Make `app.openapi()` declare the bearer scheme on every operation that needs a key."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            document.setdefault("components", {})["securitySchemes"] = {SCHEME: BEARER}
            for operations in document["paths"].values():
                for operation in operations.values():
                    action = operation.get(PERMISSION_KEY)
                    if action is not None and action != PUBLIC:
                        operation["security"] = [{SCHEME: []}]
                        operation.setdefault("parameters", []).append(ORG_HEADER)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
