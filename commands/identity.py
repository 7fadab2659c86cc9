"""Identity commands: people (with sealed personal data, usernames, account status, erasure),
API keys, the bootstrap key and Privy sign-in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from commands import models as m
from commands.access import load
from commands.handlers import Context, Reply, existing, expect_version, handles, new_id
from commands.unit_of_work import Scope
from commands.vault import destroy_personal_key, seal_personal
from domain import permissions
from domain.api_keys import BOOTSTRAP_KEY_ID, ApiKey
from domain.errors import Forbidden, InvalidState, ValidationFailed
from domain.organizations import Organization, Person, validate_profile
from domain.permissions import Reach
from domain.personal_data import PERSONAL_FIELDS, validate_personal
from domain.usernames import UsernameClaim, username_claim_id

SESSION_KIND = "session"


def privy_person_id(did: str) -> UUID:
    """The person of a Privy DID (derived, so a retried or racing first sign-in creates one)."""
    return uuid5(NAMESPACE_URL, f"one:privy:{did}")


def split_fields(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A person body (as sent: null = remove) as (personal fields, profile settings)."""
    profile = dict(fields.pop("profile", None) or {})
    personal = {k: v for k, v in {**fields, **profile}.items() if k in PERSONAL_FIELDS}
    settings = {k: v for k, v in profile.items() if k not in PERSONAL_FIELDS}
    return personal, settings


def _claim_username(scope: Scope, ctx: Context, org_id: str, username: str, person_id: UUID) -> str:
    """Claim `username` for the person; AlreadyExists if someone holds it."""
    claim_id = username_claim_id(org_id, username)
    claim = scope.find(claim_id, UsernameClaim)
    if claim is None:
        scope.add(UsernameClaim.claim(org_id=org_id, actor_id=ctx.actor_id, username=username,
                                      person_id=str(person_id)))
    else:
        claim.reclaim(ctx.actor_id, str(person_id))
    return str(claim_id)


def _release_username(scope: Scope, ctx: Context, person: Person) -> None:
    if person.username_claim is not None:
        scope.get(UUID(person.username_claim), UsernameClaim).release(ctx.actor_id)


def _managed(scope: Scope, ctx: Context, id: UUID, field: str = "id") -> Person:
    """A person the caller may act on: themselves, or (org reach) one of their org who is not a
    platform owner unless they are one."""
    person = load(scope, ctx, id, Person, field)
    if ctx.reach is not Reach.SELF:
        permissions.require_manageable(ctx.role, person.role, field)
    return person


def _changed(scope: Scope, ctx: Context, id: UUID) -> Person:
    """The person a command changes: manageable by the caller and at the expected version."""
    person = _managed(scope, ctx, id)
    expect_version(person, ctx)
    return person


@handles(m.CreatePerson)
def create_person(cmd: m.CreatePerson, ctx: Context, scope: Scope) -> Reply:
    """Register a person in the caller's organization (personal fields sealed)."""
    permissions.require_grantable(ctx.role, cmd.role)
    person_id = new_id(scope, cmd.id)
    personal, settings = split_fields(cmd.model_dump(
        exclude_unset=True, exclude={"id", "role", "account_status", "primary_auth_method"}))
    personal = {k: v for k, v in validate_personal(personal).items() if v is not None}
    profile = validate_profile(settings)
    username = personal.get("username")
    claim = None if username is None else _claim_username(scope, ctx, ctx.org_id, username, person_id)
    person = Person.create(
        id=person_id, org_id=ctx.org_id, actor_id=ctx.actor_id, role=cmd.role,
        account_status=cmd.account_status, auth_method=cmd.primary_auth_method,
        personal=seal_personal(scope, person_id, personal), profile=profile, username_claim=claim,
    )
    scope.add(person)
    return Reply(person.id, 201)


@handles(m.UpdatePerson)
def update_person(cmd: m.UpdatePerson, ctx: Context, scope: Scope) -> Reply:
    """Change a person's fields (sealed) and profile settings; stats are the organization's."""
    person = _changed(scope, ctx, cmd.id)
    if not person.live:
        raise InvalidState(f"person {cmd.id} is {'erased' if person.erased else 'deleted'}", "id")
    personal, settings = split_fields(cmd.model_dump(exclude_unset=True, exclude={"id"}))
    if "stats" in settings and ctx.reach is Reach.SELF:
        raise Forbidden("profile stats are kept by the organization", "profile.stats")
    personal = validate_personal(personal)
    for required in ("name", "username"):
        if required in personal and personal[required] is None:
            raise ValidationFailed(f"{required} can be changed, not removed", required)
    claim = None
    username = personal.get("username")
    if username is not None:
        claim = _claim_username(scope, ctx, person.org_id, username, person.id)
        if claim != person.username_claim:
            _release_username(scope, ctx, person)
        else:
            claim = None
    person.update(ctx.actor_id, seal_personal(scope, person.id, personal),
                  validate_profile(settings), claim)
    return Reply(person.id)


@handles(m.ChangePersonRole)
def change_person_role(cmd: m.ChangePersonRole, ctx: Context, scope: Scope) -> Reply:
    """Change a person's platform role (only platform owners grant or revoke platform_owner)."""
    person = _changed(scope, ctx, cmd.id)
    permissions.require_grantable(ctx.role, cmd.role)
    person.change_role(ctx.actor_id, cmd.role)
    return Reply(cmd.id)


@handles(m.ChangeAccountStatus)
def change_account_status(cmd: m.ChangeAccountStatus, ctx: Context, scope: Scope) -> Reply:
    """Activate, suspend or ban an account (a suspended or banned person's keys get 403)."""
    person = _changed(scope, ctx, cmd.id)
    person.change_status(ctx.actor_id, cmd.status)
    return Reply(cmd.id)


@handles(m.DeletePerson)
def delete_person(cmd: m.DeletePerson, ctx: Context, scope: Scope) -> Reply:
    """Soft-delete a person: their keys stop working, their history stays."""
    person = _changed(scope, ctx, cmd.id)
    person.delete(ctx.actor_id)
    return Reply(cmd.id)


@handles(m.ErasePersonalData)
def erase_personal_data(cmd: m.ErasePersonalData, ctx: Context, scope: Scope) -> Reply:
    """Destroy the person's key (with the erasure event, in one transaction) and free their
    username: their personal fields become unreadable wherever the log went."""
    person = _managed(scope, ctx, cmd.id)
    person.erase(ctx.actor_id)
    _release_username(scope, ctx, person)
    destroy_personal_key(scope, person.id)
    return Reply(cmd.id)


# ---- keys ----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _key_holder(cmd: m.IssueApiKey, ctx: Context, scope: Scope) -> Person:
    """The person a new key acts as: a new service account with `role`, or an existing person."""
    if cmd.role is None:
        wanted = cmd.person_id or UUID(ctx.actor_id)
        holder = (scope.get(wanted, Person, "person_id") if str(wanted) == ctx.actor_id
                  else _managed(scope, ctx, wanted, "person_id"))  # one's own key: from any org
        if not holder.live:
            raise InvalidState(f"person {holder.id} cannot hold keys", "person_id")
        return holder
    if cmd.person_id is not None:
        raise ValidationFailed("give person_id or role, not both", "role")
    if ctx.reach is Reach.SELF:
        raise Forbidden("only organization owners create service accounts", "role")
    permissions.require_grantable(ctx.role, cmd.role)
    scope.get(UUID(ctx.org_id), Organization, "org_id")
    account_id = uuid4()
    account = Person.create(id=account_id, org_id=ctx.org_id, actor_id=ctx.actor_id, role=cmd.role,
                            personal=seal_personal(scope, account_id, {"name": cmd.name}))
    scope.add(account)
    return account


@handles(m.IssueApiKey)
def issue_api_key(cmd: m.IssueApiKey, ctx: Context, scope: Scope) -> Reply:
    """Issue a key (its hash only) for a person of the organization or a new service account."""
    holder = _key_holder(cmd, ctx, scope)
    key = ApiKey.issue(
        id=new_id(scope, cmd.id), org_id=holder.org_id, actor_id=ctx.actor_id,
        person_id=str(holder.id), name=cmd.name, kind="api", secret_hash=cmd.secret_hash,
        expires_at=cmd.expires_at, now=_now(),
    )
    scope.add(key)
    return Reply(key.id, 201, {"person_id": key.person_id, "name": key.name, "role": holder.role,
                               "expires_at": key.expires_at})


@handles(m.RevokeApiKey)
def revoke_api_key(cmd: m.RevokeApiKey, ctx: Context, scope: Scope) -> Reply:
    """Revoke a key: it stops working in every API process within a second."""
    key = existing(scope, cmd.id, ApiKey, ctx)
    if ctx.reach is not Reach.SELF:
        holder = scope.find(UUID(key.person_id), Person)
        if holder is not None:
            permissions.require_manageable(ctx.role, holder.role)
    key.revoke(ctx.actor_id)
    return Reply(cmd.id)


@handles(m.EnsureBootstrapKey)
def ensure_bootstrap_key(cmd: m.EnsureBootstrapKey, ctx: Context, scope: Scope) -> Reply:
    """Issue the bootstrap key of the system person, or re-hash it when the value changed."""
    key = scope.find(BOOTSTRAP_KEY_ID, ApiKey)
    if key is None:
        key = ApiKey.issue(id=BOOTSTRAP_KEY_ID, org_id=ctx.org_id, actor_id=ctx.actor_id,
                           person_id=ctx.actor_id, name="ONE_BOOTSTRAP_KEY", kind="bootstrap",
                           secret_hash=cmd.secret_hash, expires_at=None, now=_now())
        scope.add(key)
        return Reply(key.id, 201)
    key.rehash(ctx.actor_id, cmd.secret_hash)
    return Reply(key.id)


# ---- Privy sign-in -------------------------------------------------------------------------


@handles(m.SignInWithPrivy)
def sign_in_with_privy(cmd: m.SignInWithPrivy, ctx: Context, scope: Scope) -> Reply:
    """The seeds' createUserFromPrivy: the first sign-in of a DID creates the person (a customer,
    account incomplete) with their sealed identity; every sign-in is recorded and gets a
    short-lived session key."""
    person_id = privy_person_id(cmd.did)
    person = scope.find(person_id, Person)
    created = person is None
    if person is None:
        identity = validate_personal({"privy_did": cmd.did, "email": cmd.email,
                                      "ext_wallet": cmd.ext_wallet, "app_wallet": cmd.app_wallet})
        person = Person.create(
            id=person_id, org_id=ctx.org_id, actor_id=str(person_id), role="customer",
            account_status="incomplete", auth_method=cmd.method,
            personal=seal_personal(scope, person_id,
                                   {k: v for k, v in identity.items() if v is not None}),
        )
        scope.add(person)
    person.sign_in(cmd.method)
    key = ApiKey.issue(id=cmd.session_key_id, org_id=person.org_id, actor_id=str(person_id),
                       person_id=str(person_id), name="privy session", kind=SESSION_KIND,
                       secret_hash=cmd.session_hash, expires_at=cmd.expires_at, now=_now())
    scope.add(key)
    return Reply(person.id, 201 if created else 200,
                 {"created": created, "key_id": str(key.id), "expires_at": key.expires_at,
                  "org_id": person.org_id})
