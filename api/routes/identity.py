"""Organizations, people, API keys, the caller (`/v1/me`) and Privy sign-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api.auth import Authenticated, caller_of, permission
from api.deps import (
    CleanQuery,
    Consistent,
    ContextDep,
    Cursor,
    Limit,
    ReadDep,
    RuntimeDep,
    command_response,
    run_command,
    send_command,
)
from api.problems import Problem
from api.query_filters import AccountStatusFilter, RoleFilter
from api.routes.history import AsOf, AsOfVersion, folded_state, person_then
from api.routes.reads import found
from commands import models as m
from commands.bus import CommandResult
from commands.handlers import SYSTEM_ORG_ID, Context
from commands.identity import privy_person_id
from domain.api_keys import hash_token, new_token
from domain.errors import VersionConflict
from domain.permissions import PUBLIC, Reach
from projections import queries as q
from providers.privy import PrivyTokenInvalid

router = APIRouter(prefix="/v1", tags=["identity"], dependencies=[Authenticated, CleanQuery])
reads = APIRouter(prefix="/v1", tags=["identity"], dependencies=[Authenticated, CleanQuery, Consistent])
sign_in = APIRouter(prefix="/v1", tags=["identity"])
"""Sign-in: authenticated by the identity token it carries, not by a key."""
Resp = JSONResponse


# ---- organizations -------------------------------------------------------------------------


@router.post("/organizations", status_code=201, openapi_extra=permission("organizations.create"))
async def create_organization(request: Request, body: m.CreateOrganization,
                              ctx: ContextDep) -> Resp:
    """Found an organization (platform owners)."""
    return await send_command(request, ctx, body)


@router.patch("/organizations/{org_id}", openapi_extra=permission("organizations.update"))
async def update_organization(request: Request, org_id: UUID, body: m.OrganizationPatch,
                              ctx: ContextDep) -> Resp:
    """Rename / re-plan an organization."""
    return await send_command(request, ctx, m.UpdateOrganization(id=org_id, **dict(body)))


@reads.get("/organizations", openapi_extra=permission("organizations.list"))
def list_organizations(conn: ReadDep, limit: Limit = 50, cursor: Cursor = None) -> Resp:
    """Every organization, newest first (platform owners)."""
    return JSONResponse(q.list_organizations(conn, limit, cursor))


@reads.get("/organizations/{org_id}", openapi_extra=permission("organizations.read"))
def get_organization(org_id: UUID, conn: ReadDep, request: Request, rt: RuntimeDep,
                     as_of_version: AsOfVersion = None, as_of: AsOf = None) -> Resp:
    """An organization: the caller's own (a platform owner may read any); `?as_of_version=` or
    `?as_of=` give its state then, folded from the log."""
    caller = caller_of(request)
    if as_of_version is not None or as_of is not None:
        return folded_state(rt, conn, caller, org_id, "organization", as_of_version, as_of)
    mine = caller.reach is Reach.ANY or str(org_id) == caller.org_id
    return found(q.get_organization(conn, org_id) if mine else None, "organization", org_id)


# ---- people --------------------------------------------------------------------------------


@router.post("/people", status_code=201, openapi_extra=permission("people.create"))
async def create_person(request: Request, body: m.CreatePerson,
                        ctx: ContextDep) -> Resp:
    """Register a person in the caller's organization (their personal fields are sealed in the
    log with a key of theirs)."""
    return await send_command(request, ctx, body)


@router.patch("/people/{person_id}", openapi_extra=permission("people.update"))
async def update_person(request: Request, person_id: UUID, body: m.PersonPatch,
                        ctx: ContextDep) -> Resp:
    """Change a person's fields and profile (a null removes a field)."""
    fields = body.model_dump(exclude_unset=True)
    return await send_command(request, ctx, m.UpdatePerson(id=person_id, **fields))


@router.put("/people/{person_id}/role", openapi_extra=permission("people.change_role"))
async def change_role(request: Request, person_id: UUID, body: m.ChangePersonRoleBody,
                      rt: RuntimeDep, ctx: ContextDep) -> Resp:
    """Change a person's platform role (only platform owners grant platform_owner)."""
    return await _about_person(request, rt, ctx, person_id,
                               m.ChangePersonRole(id=person_id, role=body.role))


@router.put("/people/{person_id}/status", openapi_extra=permission("people.change_status"))
async def change_status(request: Request, person_id: UUID, body: m.AccountStatusBody,
                        rt: RuntimeDep, ctx: ContextDep) -> Resp:
    """Activate, suspend or ban an account: a suspended or banned person's keys get 403."""
    return await _about_person(request, rt, ctx, person_id,
                               m.ChangeAccountStatus(id=person_id, status=body.status))


@router.delete("/people/{person_id}", openapi_extra=permission("people.delete"))
async def delete_person(request: Request, person_id: UUID, rt: RuntimeDep, ctx: ContextDep) -> Resp:
    """Soft-delete a person: their keys stop working; their history stays."""
    return await _about_person(request, rt, ctx, person_id, m.DeletePerson(id=person_id))


@router.delete("/people/{person_id}/personal-data", openapi_extra=permission("people.erase"))
async def erase_personal_data(request: Request, person_id: UUID, rt: RuntimeDep,
                              ctx: ContextDep) -> Resp:
    """Erase a person's personal data: their key is destroyed, so their sealed fields are
    unreadable in the log, on Kafka, in replays and in every rebuild."""
    return await _about_person(request, rt, ctx, person_id, m.ErasePersonalData(id=person_id))


async def _about_person(request: Request, rt: RuntimeDep, ctx: Context, person_id: UUID,
                        command: m.StrictModel) -> Resp:
    """Run a command that changes what a person's keys may do, and forget them here at once."""
    response = await send_command(request, ctx, command)
    rt.keyring.forget(person_id)
    return response


@reads.get("/people", openapi_extra=permission("people.list"))
def list_people(conn: ReadDep, request: Request, role: RoleFilter | None = None,
                status: AccountStatusFilter | None = None, include_deleted: bool = False, limit: Limit = 50,
                cursor: Cursor = None) -> Resp:
    """The organization's people, newest first, by role and account status."""
    caller = caller_of(request)
    page = q.list_people(conn, caller.org_id, role=role, status=status,
                         include_deleted=include_deleted, limit=limit, cursor=cursor)
    page["items"] = [q.person_view(row, caller.actor_id, caller.role) for row in page["items"]]
    return JSONResponse(page)


@reads.get("/people/{person_id}", openapi_extra=permission("people.read"))
def get_person(person_id: UUID, conn: ReadDep, request: Request, rt: RuntimeDep,
               as_of_version: AsOfVersion = None, as_of: AsOf = None) -> Resp:
    """A person as the caller may see them (profile visibility applies); `?as_of_version=` or
    `?as_of=` give them as they were then, from the log."""
    caller = caller_of(request)
    if as_of_version is not None or as_of is not None:
        return person_then(rt, conn, caller, person_id, as_of_version, as_of)
    row = q.get_person(conn, caller.org_id, person_id)
    return found(None if row is None else q.person_view(row, caller.actor_id, caller.role),
                 "person", person_id)


@reads.get("/me", openapi_extra=permission("me.read"))
def me(conn: ReadDep, request: Request) -> Resp:
    """The caller: their person (null until projected; use `?after=`), role, organization and
    key."""
    caller = caller_of(request)
    principal = caller.principal
    row = q.get_person(conn, principal.org_id, principal.person_id)
    return JSONResponse({
        "person_id": principal.person_id, "role": principal.role, "org_id": principal.org_id,
        "acting_org_id": caller.org_id,
        "person": None if row is None else q.person_view(row, principal.person_id, principal.role),
        "organization": q.get_organization(conn, principal.org_id),
        "key": {"id": principal.key_id, "kind": principal.key_kind,
                "expires_at": None if principal.expires_at is None else principal.expires_at.isoformat()},
    })


# ---- keys ----------------------------------------------------------------------------------


@router.post("/keys", status_code=201, openapi_extra=permission("keys.create"))
async def create_key(request: Request, body: m.ApiKeyBody, ctx: ContextDep) -> Resp:
    """Issue an API key. Its secret is in this response only (`key`); the platform keeps its
    hash. A replay by Idempotency-Key answers the same key without its secret."""
    key_id = uuid4()
    token = new_token(key_id)
    command = m.IssueApiKey(id=key_id, secret_hash=hash_token(token), **dict(body))
    result = await run_command(request, ctx, command, sent=body)
    return command_response(result, key=None if result.replayed else token)


@reads.get("/keys", openapi_extra=permission("keys.list"))
def list_keys(conn: ReadDep, request: Request, person_id: UUID | None = None,
              include_revoked: bool = False, limit: Limit = 50, cursor: Cursor = None) -> Resp:
    """API keys of the organization (a customer or org user sees their own); never secrets."""
    caller = caller_of(request)
    person = caller.actor_id if caller.self_only else (None if person_id is None else str(person_id))
    return JSONResponse(q.list_api_keys(conn, caller.org_id, person_id=person,
                                        include_revoked=include_revoked, limit=limit, cursor=cursor))


@router.delete("/keys/{key_id}", openapi_extra=permission("keys.revoke"))
async def revoke_key(request: Request, key_id: UUID, rt: RuntimeDep, ctx: ContextDep) -> Resp:
    """Revoke a key: refused everywhere within a second (here at once)."""
    response = await send_command(request, ctx, m.RevokeApiKey(id=key_id))
    rt.keyring.forget(key_id)
    return response


# ---- sign-in -------------------------------------------------------------------------------


class PrivySignIn(m.StrictModel):
    """A Privy identity token (an ES256 JWT from the Privy SDK)."""

    identity_token: str = Field(min_length=1, max_length=16384)


@sign_in.post("/auth/privy", openapi_extra=permission(PUBLIC))
async def privy_sign_in(body: PrivySignIn, rt: RuntimeDep) -> Resp:
    """The seeds' createUserFromPrivy: verify the token; the first sign-in of a DID creates the
    person (a customer, account incomplete) and their profile; every sign-in records lastLoginAt
    and answers a short-lived session key (`key`, shown once)."""
    if rt.privy is None:
        raise Problem(404, "not_found", "Privy sign-in is not configured", "identity_token")
    try:
        identity = rt.privy.verify(body.identity_token)
    except PrivyTokenInvalid as error:
        raise Problem(401, "unauthenticated", f"identity token refused: {error}",
                      "identity_token") from None
    key_id = uuid4()
    token = new_token(key_id)
    command = m.SignInWithPrivy(
        did=identity.did, email=identity.email, ext_wallet=identity.ext_wallet,
        app_wallet=identity.app_wallet, method=identity.method, session_key_id=key_id,
        session_hash=hash_token(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=rt.settings.session_ttl_s),
    )
    person_id = privy_person_id(identity.did)
    ctx = Context(actor_id=str(person_id), org_id=rt.settings.privy_org_id or str(SYSTEM_ORG_ID))
    result = await _signed_in(rt, command, ctx)
    body_out = {**result.body, "person_id": str(person_id), "key": token}
    return JSONResponse(body_out, status_code=result.status)


async def _signed_in(rt: RuntimeDep, command: m.SignInWithPrivy, ctx: Context) -> CommandResult:
    """Sign in; a first sign-in racing another process's for the same DID is retried once (it
    then finds the person the other created)."""
    try:
        return await rt.bus.execute_async(command, ctx)
    except VersionConflict:
        return await rt.bus.execute_async(command, ctx)
