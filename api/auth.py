"""Authentication and the role check of every `/v1` route, in one dependency.

Each route names its action of the permission matrix (`permission("things.update")`, shown in the
OpenAPI document as `x-permission`); `authenticate` resolves the bearer key, settles the
organization the caller acts in (their own; a platform owner may name another with `X-Org-Id`)
and refuses a role without the permission (403) before anything else runs. What the caller's
reach allows on a given resource is decided where the resource is loaded (the command handlers,
the scoped queries).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import Depends, Request

from api.keyring import Principal, Unauthenticated
from api.problems import Problem
from api.runtime import Runtime
from domain import permissions
from domain.permissions import PLATFORM_OWNER, Reach

PERMISSION_KEY = "x-permission"


def permission(action: str) -> dict[str, Any]:
    """The route's action in the permission matrix (`openapi_extra` of a route decorator)."""
    if action != permissions.PUBLIC and action not in permissions.POLICY:
        raise ValueError(f"unknown action {action!r}")
    return {PERMISSION_KEY: action}


def action_of(request: Request) -> str:
    """The action of the route serving this request."""
    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    action = extra.get(PERMISSION_KEY)
    if not isinstance(action, str):
        raise RuntimeError(f"route {request.url.path} names no permission")
    return action


@dataclass(frozen=True)
class Caller:
    """An authenticated request: who, in which organization, how far their permission reaches."""

    principal: Principal
    org_id: str
    reach: Reach

    @property
    def actor_id(self) -> str:
        """The person acting."""
        return self.principal.person_id

    @property
    def role(self) -> str:
        """Their platform role."""
        return self.principal.role

    @property
    def self_only(self) -> bool:
        """The caller may see only what is theirs (e.g. a customer's own activity)."""
        return self.reach is Reach.SELF

    @property
    def org_scope(self) -> str | None:
        """The organization whose data an organization-wide read or operation covers (None: every
        organization, for a reach of `any`)."""
        return None if self.reach is Reach.ANY else self.org_id


def _acting_org(rt: Runtime, principal: Principal, header: str) -> str:
    try:
        org_id = str(UUID(header))
    except ValueError:
        raise Problem(400, "validation_error", "X-Org-Id must be a UUID", "X-Org-Id") from None
    if org_id == principal.org_id:
        return org_id
    if principal.role != PLATFORM_OWNER:
        raise Problem(403, "forbidden", "only a platform owner may act in another organization",
                      "X-Org-Id")
    if not rt.keyring.organization_exists(org_id):
        raise Problem(404, "not_found", f"organization {org_id} not found", "X-Org-Id")
    return org_id


def bearer_token(request: Request) -> str:
    """The key of `Authorization: Bearer <key>`; Unauthenticated without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("an Authorization: Bearer key is required")
    return token.strip()


async def authenticate(request: Request) -> Caller:
    """Resolve the key (401), the organization (403/404) and the role's permission (403), and
    keep the caller for the route (`caller_of`).

    It is the first dependency of every protected router, so nothing else (input checks, waits)
    runs for an unauthenticated request. Headers are read from the request directly (no
    parameters to validate on every request); the OpenAPI document declares them
    (`api.openapi`)."""
    rt: Runtime = request.app.state.runtime
    token = bearer_token(request)
    x_org_id = request.headers.get("x-org-id")
    principal = rt.keyring.cached(token)
    if principal is None:
        principal = await asyncio.to_thread(rt.keyring.authenticate, token)
    org_id = principal.org_id
    if x_org_id is not None:  # present but empty is refused, not ignored
        org_id = await asyncio.to_thread(_acting_org, rt, principal, x_org_id)
    caller = Caller(principal, org_id, permissions.reach(principal.role, action_of(request)))
    request.state.caller = caller
    return caller


def caller_of(request: Request) -> Caller:
    """The caller that `authenticate` admitted for this request. (Read from the request rather
    than declared again as a dependency: a second reference costs as much as the first.)"""
    caller: Caller = request.state.caller
    return caller


Authenticated = Depends(authenticate)
