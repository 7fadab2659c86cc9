"""People and organizations read models (the Poktapok users and profiles), guarded by stream
version. Personal fields arrive opened (`projections.personal`); erasure empties them."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from domain.organizations import PROFILE_DEFAULTS, merge_profile
from eventlog.envelope import Envelope
from projections.base import Change, NewRow, Projection, Statement, split_patch


def _update(table: str, e: Envelope, assignments: str, *params: object) -> Statement:
    return (
        f"UPDATE {table} SET {assignments}, version = %s, position = %s, updated_at = %s"
        " WHERE id = %s AND version < %s",
        (*params, e.version, e.position, e.occurred_at, e.stream_id, e.version),
    )


def _profile_patch(patch: dict[str, object]) -> tuple[str, tuple[object, ...]]:
    """SQL assignment merging profile settings (stats merge key by key)."""
    stats = patch.get("stats")
    rest = {k: v for k, v in patch.items() if k != "stats"}
    if stats is None:
        return "profile = profile || %s", (Jsonb(rest),)
    return ("profile = jsonb_set(profile || %s, '{stats}', coalesce(profile->'stats', '{}') || %s)",
            (Jsonb(rest), Jsonb(stats)))


def project_people(e: Envelope) -> list[Change]:
    """Envelope → upserts of the `people` table."""
    d = e.data
    if e.type == "person.created":
        return [NewRow("people", "id", {
            "id": e.stream_id, "org_id": e.org_id, "role": d["role"], "account_status": d["account_status"],
            "primary_auth_method": d["auth_method"], "personal": d["personal"] or {},
            "profile": merge_profile(PROFILE_DEFAULTS, d["profile"]), "created_at": e.occurred_at,
            "updated_at": e.occurred_at, "created_position": e.position, "version": e.version,
            "position": e.position,
        })]
    if e.type == "person.updated":
        assignments, params = _profile_patch(d["profile"])
        if d["personal"] is not None:
            removed, values = split_patch(d["personal"])
            assignments += ", personal = (personal - %s::text[]) || %s"
            params += (removed, Jsonb(values))
        return [_update("people", e, assignments, *params)]
    if e.type == "person.role_changed":
        return [_update("people", e, "role = %s", d["role"])]
    if e.type == "person.status_changed":
        return [_update("people", e, "account_status = %s", d["status"])]
    if e.type == "person.signed_in":
        return [_update("people", e, "last_login_at = %s", e.occurred_at)]
    if e.type == "person.deleted":
        return [_update("people", e, "deleted_at = %s", e.occurred_at)]
    if e.type == "person.erased":
        return [_update("people", e, "personal = '{}', erased_at = %s", e.occurred_at)]
    return []


PEOPLE = Projection(
    name="people",
    tables=("people",),
    handles=frozenset({"person.created", "person.updated", "person.role_changed",
                       "person.status_changed", "person.signed_in", "person.deleted",
                       "person.erased"}),
    project=project_people,
)


def project_organizations(e: Envelope) -> list[Change]:
    """Envelope → upserts of the `organizations` table."""
    d = e.data
    if e.type == "organization.created":
        return [NewRow("organizations", "id", {
            "id": e.stream_id, "name": d["name"], "slug": d["slug"], "plan": d["plan"],
            "created_at": e.occurred_at, "updated_at": e.occurred_at, "version": e.version,
            "position": e.position,
        })]
    if e.type == "organization.updated":
        return [_update("organizations", e, "name = coalesce(%s, name), plan = coalesce(%s, plan)",
                        d["name"], d["plan"])]
    return []


ORGANIZATIONS = Projection(
    name="organizations",
    tables=("organizations",),
    handles=frozenset({"organization.created", "organization.updated"}),
    project=project_organizations,
)


def project_api_keys(e: Envelope) -> list[Change]:
    """Envelope → upserts of the `api_keys` table (never the secret's hash)."""
    d = e.data
    if e.type == "api_key.issued":
        return [NewRow("api_keys", "id", {
            "id": e.stream_id, "org_id": e.org_id, "person_id": d["person_id"], "name": d["name"],
            "kind": d["kind"], "created_by": e.actor_id, "created_at": e.occurred_at,
            "expires_at": d["expires_at"], "created_position": e.position, "version": e.version,
            "position": e.position,
        })]
    if e.type == "api_key.revoked":
        return [(
            "UPDATE api_keys SET revoked_at = %s, version = %s, position = %s"
            " WHERE id = %s AND version < %s",
            (e.occurred_at, e.version, e.position, e.stream_id, e.version),
        )]
    return [(
        "UPDATE api_keys SET version = %s, position = %s WHERE id = %s AND version < %s",
        (e.version, e.position, e.stream_id, e.version),
    )]


API_KEYS = Projection(
    name="api_keys",
    tables=("api_keys",),
    handles=frozenset({"api_key.issued", "api_key.revoked", "api_key.rehashed"}),
    project=project_api_keys,
)
