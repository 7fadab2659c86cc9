"""Command handlers: load what the command touches, let the aggregates decide, register changes.

Handlers are synchronous and do no I/O of their own beyond reads through the `Scope`; the bus
saves what they changed. Each handler validates before it mutates, and returns a `Reply` naming
the primary stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from commands import models as m
from commands.access import load, may_connect, require_visible, visible
from commands.unit_of_work import Scope
from domain import ontology, permissions
from domain.activity import Activity
from domain.base import OneAggregate
from domain.connections import Connection, connection_id
from domain.errors import AlreadyExists, Forbidden, ValidationFailed, VersionConflict
from domain.organizations import Organization
from domain.permissions import COMMUNITY_ROLES, SYSTEM, Reach
from domain.things import Thing

SYSTEM_ORG_ID = uuid5(NAMESPACE_URL, "one:organization:default")
SYSTEM_ACTOR_ID = uuid5(NAMESPACE_URL, "one:person:system")


@dataclass(frozen=True)
class Context:
    """Who issues the command (actor and role), in which organization, how far their permission
    for it reaches (set by `handles` from the permission matrix), and under which preconditions.
    The default is the platform's own system actor."""

    actor_id: str = str(SYSTEM_ACTOR_ID)
    org_id: str = str(SYSTEM_ORG_ID)
    role: str = SYSTEM
    reach: Reach = Reach.ANY
    expected_version: int | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    correlation_id: str | None = None
    """The request or process the command belongs to; its events carry it."""
    causation_id: str | None = None
    """The command (or the event) its events are caused by."""


@dataclass(frozen=True)
class Reply:
    """What a handler returns: the primary stream, HTTP-ish status, extra response fields."""

    stream_id: UUID
    status: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


A = TypeVar("A", bound=OneAggregate)
Handler = Callable[[Any, Context, Scope], Reply]
HANDLERS: dict[type[Any], Handler] = {}


def _check_storable(value: Any, field: str) -> None:
    """Refuse values the log or the read models cannot store (NaN/Infinity, NUL, lone surrogates).

    Such values would be appended and then poison the projections (PostgreSQL json/text reject
    them) or fail the whole group commit when the events are encoded.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationFailed(f"{field} must not contain NUL characters", field)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationFailed(f"{field} is not valid Unicode text", field) from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationFailed(f"{field} must be a finite number", field)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, field)
            _check_storable(item, f"{field}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_storable(item, f"{field}[{index}]")


def granted(command_type: type[Any], ctx: Context) -> Context:
    """The context with the caller's reach for this command (Forbidden if the role has none);
    commands without an action are the system's own."""
    action: str | None = getattr(command_type, "action", None)
    if action is None:
        if ctx.role != SYSTEM:
            raise Forbidden(f"{command_type.__name__} is run by the platform itself", "Authorization")
        return replace(ctx, reach=Reach.ANY)
    return replace(ctx, reach=permissions.reach(ctx.role, action))


def handles(command_type: type[Any]) -> Callable[[Handler], Handler]:
    """Register a handler for a command type: the caller's permission is checked and their reach
    set, and the input is checked to be storable, before the handler runs."""

    def register(handler: Handler) -> Handler:
        def checked(cmd: Any, ctx: Context, scope: Scope) -> Reply:
            ctx = granted(command_type, ctx)
            for name, value in cmd.model_dump().items():
                _check_storable(value, name)
            return handler(cmd, ctx, scope)

        HANDLERS[command_type] = checked
        return handler

    return register


def expect_version(aggregate: OneAggregate, ctx: Context) -> None:
    """If-Match: the stream must be at the version the caller saw."""
    if ctx.expected_version is not None and aggregate.version != ctx.expected_version:
        raise VersionConflict(
            f"expected version {ctx.expected_version}, current is {aggregate.version}", "If-Match"
        )


def existing(scope: Scope, id: UUID, kind: type[A], ctx: Context) -> A:
    """The stream a command changes: within the caller's reach and at the expected version."""
    aggregate = load(scope, ctx, id, kind)
    expect_version(aggregate, ctx)
    return aggregate


def new_id(scope: Scope, requested: UUID | None) -> UUID:
    """A fresh stream id, or the requested one if no stream has it."""
    if requested is None:
        return uuid4()
    if scope.exists(requested):
        raise AlreadyExists(f"stream {requested} already exists", "id")
    return requested


# ---- organizations and people -------------------------------------------------------------


@handles(m.CreateOrganization)
def create_organization(cmd: m.CreateOrganization, ctx: Context, scope: Scope) -> Reply:
    """Found an organization."""
    org = Organization.create(
        id=new_id(scope, cmd.id), actor_id=ctx.actor_id, name=cmd.name, slug=cmd.slug,
        plan=cmd.plan,
    )
    scope.add(org)
    return Reply(org.id, 201)


@handles(m.UpdateOrganization)
def update_organization(cmd: m.UpdateOrganization, ctx: Context, scope: Scope) -> Reply:
    """Rename or re-plan an organization."""
    existing(scope, cmd.id, Organization, ctx).update(ctx.actor_id, cmd.name, cmd.plan)
    return Reply(cmd.id)


# ---- things --------------------------------------------------------------------------------


@handles(m.CreateThing)
def create_thing(cmd: m.CreateThing, ctx: Context, scope: Scope) -> Reply:
    """Create a thing."""
    thing = Thing.create(
        id=new_id(scope, cmd.id), org_id=ctx.org_id, actor_id=ctx.actor_id, type=cmd.type,
        name=cmd.name, properties=cmd.properties, status=cmd.status, tags=cmd.tags,
    )
    scope.add(thing)
    return Reply(thing.id, 201)


@handles(m.UpdateThing)
def update_thing(cmd: m.UpdateThing, ctx: Context, scope: Scope) -> Reply:
    """Rename / merge properties."""
    existing(scope, cmd.id, Thing, ctx).update(ctx.actor_id, cmd.name, cmd.properties)
    return Reply(cmd.id)


@handles(m.ChangeThingStatus)
def change_thing_status(cmd: m.ChangeThingStatus, ctx: Context, scope: Scope) -> Reply:
    """Publish, archive, ..."""
    existing(scope, cmd.id, Thing, ctx).change_status(ctx.actor_id, cmd.status)
    return Reply(cmd.id)


@handles(m.TagThing)
def tag_thing(cmd: m.TagThing, ctx: Context, scope: Scope) -> Reply:
    """Attach tags."""
    existing(scope, cmd.id, Thing, ctx).tag(ctx.actor_id, cmd.tags)
    return Reply(cmd.id)


@handles(m.UntagThing)
def untag_thing(cmd: m.UntagThing, ctx: Context, scope: Scope) -> Reply:
    """Detach tags."""
    existing(scope, cmd.id, Thing, ctx).untag(ctx.actor_id, cmd.tags)
    return Reply(cmd.id)


@handles(m.DeleteThing)
def delete_thing(cmd: m.DeleteThing, ctx: Context, scope: Scope) -> Reply:
    """Soft-delete."""
    existing(scope, cmd.id, Thing, ctx).delete(ctx.actor_id)
    return Reply(cmd.id)


@handles(m.RestoreThing)
def restore_thing(cmd: m.RestoreThing, ctx: Context, scope: Scope) -> Reply:
    """Restore a soft-deleted thing."""
    existing(scope, cmd.id, Thing, ctx).restore(ctx.actor_id)
    return Reply(cmd.id)


# ---- connections ---------------------------------------------------------------------------


def _community_role(scope: Scope, ctx: Context, kind: str, to_id: UUID, metadata: dict[str, Any]) -> None:
    """A `member_of` connection carries a community role; only org owners, platform owners and the
    community's admins grant moderator or admin."""
    if kind != "member_of" or "role" not in metadata:
        return
    role = metadata["role"]
    if role not in COMMUNITY_ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(sorted(COMMUNITY_ROLES))}",
                               "metadata.role")
    if role == "member" or ctx.reach in (Reach.ORG, Reach.ANY):
        return
    own = scope.find(connection_id(UUID(ctx.actor_id), "member_of", to_id), Connection)
    if own is None or own.removed or own.metadata.get("role") != "admin":
        raise Forbidden(f"only the community's admins grant {role}", "metadata.role")


def connect(
    scope: Scope, ctx: Context, from_id: UUID, to_id: UUID, kind: str, metadata: dict[str, Any]
) -> Connection:
    """Establish (or re-establish after removal) the relationship from -kind-> to, if the caller
    may state it."""
    ontology.validate_connection_endpoints(str(from_id), str(to_id))
    if ctx.role != SYSTEM:
        permissions.require_client_fact(kind, event=False)
    require_visible(scope, ctx, from_id=from_id, to_id=to_id)
    may_connect(scope, ctx, kind, from_id, to_id)
    _community_role(scope, ctx, kind, to_id, metadata)
    existing_link = scope.find(connection_id(from_id, kind, to_id), Connection)
    if existing_link is not None:
        existing_link.reestablish(ctx.actor_id, metadata)
        return existing_link
    connection = Connection.create(
        org_id=ctx.org_id, actor_id=ctx.actor_id, from_id=from_id, to_id=to_id, type=kind,
        metadata=metadata,
    )
    scope.add(connection)
    return connection


@handles(m.CreateConnection)
def create_connection(cmd: m.CreateConnection, ctx: Context, scope: Scope) -> Reply:
    """Connect two streams (an old type name keeps the variant it implies, in the metadata)."""
    kind, metadata = ontology.normalize_connection(cmd.type, cmd.metadata)
    connection = connect(scope, ctx, cmd.from_id, cmd.to_id, kind, metadata)
    return Reply(connection.id, 201)


def _changeable_connection(scope: Scope, ctx: Context, id: UUID) -> Connection:
    connection = existing(scope, id, Connection, ctx)
    if ctx.role != SYSTEM:
        permissions.require_client_fact(connection.type, event=False)
    return connection


@handles(m.UpdateConnection)
def update_connection(cmd: m.UpdateConnection, ctx: Context, scope: Scope) -> Reply:
    """Merge connection metadata."""
    connection = _changeable_connection(scope, ctx, cmd.id)
    _community_role(scope, ctx, connection.type, UUID(connection.to_id), cmd.metadata)
    connection.update_metadata(ctx.actor_id, cmd.metadata)
    return Reply(cmd.id)


@handles(m.RemoveConnection)
def remove_connection(cmd: m.RemoveConnection, ctx: Context, scope: Scope) -> Reply:
    """End a relationship (e.g. unfollow)."""
    _changeable_connection(scope, ctx, cmd.id).remove(ctx.actor_id)
    return Reply(cmd.id)


# ---- activity and composite commands -------------------------------------------------------


@handles(m.RecordActivity)
def record_activity(cmd: m.RecordActivity, ctx: Context, scope: Scope) -> Reply:
    """Record an activity in its own stream (never contends with anything); facts only the
    platform states (payments, purchases, lifecycle) are refused to clients."""
    kind, metadata = ontology.normalize_event_type(cmd.type, cmd.metadata)
    if ctx.role != SYSTEM:
        permissions.require_client_fact(kind, event=True)
    if cmd.target_id is not None:
        require_visible(scope, ctx, target_id=cmd.target_id)
    activity = Activity.record(
        id=uuid4(), org_id=ctx.org_id, actor_id=ctx.actor_id, type=kind,
        target_id=cmd.target_id, metadata=metadata,
    )
    scope.add(activity)
    return Reply(activity.id, 201)


@handles(m.CreateContent)
def create_content(cmd: m.CreateContent, ctx: Context, scope: Scope) -> Reply:
    """Content + owns/authored from its creator + owns from each collaborator, all or nothing.

    The creator keeps the revenue share the collaborators do not take; an org user may create
    content only for a creator of theirs.
    """
    creator = load(scope, ctx, cmd.creator_id, Thing, "creator_id")
    if creator.type != "creator" or creator.deleted:
        raise ValidationFailed("creator_id must name a live thing of type creator", "creator_id")
    shares = [c.revenue_share for c in cmd.collaborators]
    if sum(shares) > 1:
        raise ValidationFailed("collaborator revenue shares add up to more than 1", "collaborators")
    ids = [c.entity_id for c in cmd.collaborators]
    if len(set(ids)) != len(ids) or cmd.creator_id in ids:
        raise ValidationFailed("collaborators must be distinct and not the creator", "collaborators")
    for index, collaborator in enumerate(cmd.collaborators):
        visible(scope, ctx, collaborator.entity_id, OneAggregate, f"collaborators[{index}].entity_id")
    content = create_thing(
        m.CreateThing(type=cmd.type, name=cmd.name, properties=cmd.properties, tags=cmd.tags,
                      id=cmd.id),
        ctx, scope,
    ).stream_id
    linking = replace(ctx, reach=Reach.ORG)  # the caller may act for the creator: link as one
    links = [
        connect(scope, linking, cmd.creator_id, content, "owns", {"revenueShare": 1 - sum(shares)}),
        connect(scope, linking, cmd.creator_id, content, "authored", {}),
    ]
    links += [
        connect(scope, linking, c.entity_id, content, "owns", {"revenueShare": c.revenue_share})
        for c in cmd.collaborators
    ]
    return Reply(content, 201, {"connections": [str(link.id) for link in links]})
