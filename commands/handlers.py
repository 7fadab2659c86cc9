"""Command handlers: load what the command touches, let the aggregates decide, register changes.

Handlers are synchronous and do no I/O of their own beyond reads through the `Scope`; the bus
saves what they changed. Each handler validates before it mutates, and returns a `Reply` naming
the primary stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from commands import models as m
from commands.unit_of_work import Scope
from domain import ontology
from domain.activity import Activity
from domain.base import OneAggregate
from domain.connections import Connection, connection_id
from domain.errors import NotFound, ValidationFailed, VersionConflict
from domain.organizations import Organization, Person
from domain.things import Thing

SYSTEM_ORG_ID = uuid5(NAMESPACE_URL, "one:organization:default")
SYSTEM_ACTOR_ID = uuid5(NAMESPACE_URL, "one:person:system")


@dataclass(frozen=True)
class Context:
    """Who issues the command, for which tenant, and under which preconditions."""

    actor_id: str = str(SYSTEM_ACTOR_ID)
    org_id: str = str(SYSTEM_ORG_ID)
    expected_version: int | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


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


def handles(command_type: type[Any]) -> Callable[[Handler], Handler]:
    """Register a handler for a command type (its input is checked to be storable first)."""

    def register(handler: Handler) -> Handler:
        def checked(cmd: Any, ctx: Context, scope: Scope) -> Reply:
            for name, value in cmd.model_dump().items():
                _check_storable(value, name)
            return handler(cmd, ctx, scope)

        HANDLERS[command_type] = checked
        return handler

    return register


def _expect(aggregate: OneAggregate, ctx: Context) -> None:
    if ctx.expected_version is not None and aggregate.version != ctx.expected_version:
        raise VersionConflict(
            f"expected version {ctx.expected_version}, current is {aggregate.version}", "If-Match"
        )


def _existing(scope: Scope, id: UUID, kind: type[A], ctx: Context) -> A:
    aggregate = scope.get(id, kind)
    _expect(aggregate, ctx)
    return aggregate


def _new_id(scope: Scope, requested: UUID | None) -> UUID:
    if requested is None:
        return uuid4()
    if scope.exists(requested):
        from domain.errors import AlreadyExists

        raise AlreadyExists(f"stream {requested} already exists", "id")
    return requested


def _require_streams(scope: Scope, **ids: UUID) -> None:
    for field_name, stream_id in ids.items():
        if not scope.exists(stream_id):
            raise NotFound(f"{stream_id} not found", field_name)


# ---- organizations and people -------------------------------------------------------------


@handles(m.CreateOrganization)
def create_organization(cmd: m.CreateOrganization, ctx: Context, scope: Scope) -> Reply:
    """Found an organization."""
    org = Organization.create(
        id=_new_id(scope, cmd.id), actor_id=ctx.actor_id, name=cmd.name, slug=cmd.slug,
        plan=cmd.plan,
    )
    scope.add(org)
    return Reply(org.id, 201)


@handles(m.UpdateOrganization)
def update_organization(cmd: m.UpdateOrganization, ctx: Context, scope: Scope) -> Reply:
    """Rename or re-plan an organization."""
    _existing(scope, cmd.id, Organization, ctx).update(ctx.actor_id, cmd.name, cmd.plan)
    return Reply(cmd.id)


@handles(m.CreatePerson)
def create_person(cmd: m.CreatePerson, ctx: Context, scope: Scope) -> Reply:
    """Register a person in the caller's organization."""
    person = Person.create(
        id=_new_id(scope, cmd.id), org_id=ctx.org_id, actor_id=ctx.actor_id, name=cmd.name,
        email=cmd.email, role=cmd.role,
    )
    scope.add(person)
    return Reply(person.id, 201)


@handles(m.ChangePersonRole)
def change_person_role(cmd: m.ChangePersonRole, ctx: Context, scope: Scope) -> Reply:
    """Change a person's role."""
    _existing(scope, cmd.id, Person, ctx).change_role(ctx.actor_id, cmd.role)
    return Reply(cmd.id)


# ---- things --------------------------------------------------------------------------------


@handles(m.CreateThing)
def create_thing(cmd: m.CreateThing, ctx: Context, scope: Scope) -> Reply:
    """Create a thing."""
    thing = Thing.create(
        id=_new_id(scope, cmd.id), org_id=ctx.org_id, actor_id=ctx.actor_id, type=cmd.type,
        name=cmd.name, properties=cmd.properties, status=cmd.status, tags=cmd.tags,
    )
    scope.add(thing)
    return Reply(thing.id, 201)


@handles(m.UpdateThing)
def update_thing(cmd: m.UpdateThing, ctx: Context, scope: Scope) -> Reply:
    """Rename / merge properties."""
    _existing(scope, cmd.id, Thing, ctx).update(ctx.actor_id, cmd.name, cmd.properties)
    return Reply(cmd.id)


@handles(m.ChangeThingStatus)
def change_thing_status(cmd: m.ChangeThingStatus, ctx: Context, scope: Scope) -> Reply:
    """Publish, archive, ..."""
    _existing(scope, cmd.id, Thing, ctx).change_status(ctx.actor_id, cmd.status)
    return Reply(cmd.id)


@handles(m.TagThing)
def tag_thing(cmd: m.TagThing, ctx: Context, scope: Scope) -> Reply:
    """Attach tags."""
    _existing(scope, cmd.id, Thing, ctx).tag(ctx.actor_id, cmd.tags)
    return Reply(cmd.id)


@handles(m.UntagThing)
def untag_thing(cmd: m.UntagThing, ctx: Context, scope: Scope) -> Reply:
    """Detach tags."""
    _existing(scope, cmd.id, Thing, ctx).untag(ctx.actor_id, cmd.tags)
    return Reply(cmd.id)


@handles(m.DeleteThing)
def delete_thing(cmd: m.DeleteThing, ctx: Context, scope: Scope) -> Reply:
    """Soft-delete."""
    _existing(scope, cmd.id, Thing, ctx).delete(ctx.actor_id)
    return Reply(cmd.id)


@handles(m.RestoreThing)
def restore_thing(cmd: m.RestoreThing, ctx: Context, scope: Scope) -> Reply:
    """Restore a soft-deleted thing."""
    _existing(scope, cmd.id, Thing, ctx).restore(ctx.actor_id)
    return Reply(cmd.id)


# ---- connections ---------------------------------------------------------------------------


def _connect(
    scope: Scope, ctx: Context, from_id: UUID, to_id: UUID, kind: str, metadata: dict[str, Any]
) -> Connection:
    """Establish (or re-establish after removal) the relationship from -kind-> to."""
    ontology.validate_connection_endpoints(str(from_id), str(to_id))
    kind = ontology.normalize_connection_type(kind)
    existing = scope.find(connection_id(from_id, kind, to_id), Connection)
    if existing is not None:
        existing.reestablish(ctx.actor_id, metadata)
        return existing
    _require_streams(scope, from_id=from_id, to_id=to_id)
    connection = Connection.create(
        org_id=ctx.org_id, actor_id=ctx.actor_id, from_id=from_id, to_id=to_id, type=kind,
        metadata=metadata,
    )
    scope.add(connection)
    return connection


@handles(m.CreateConnection)
def create_connection(cmd: m.CreateConnection, ctx: Context, scope: Scope) -> Reply:
    """Connect two streams."""
    connection = _connect(scope, ctx, cmd.from_id, cmd.to_id, cmd.type, cmd.metadata)
    return Reply(connection.id, 201)


@handles(m.UpdateConnection)
def update_connection(cmd: m.UpdateConnection, ctx: Context, scope: Scope) -> Reply:
    """Merge connection metadata."""
    _existing(scope, cmd.id, Connection, ctx).update_metadata(ctx.actor_id, cmd.metadata)
    return Reply(cmd.id)


@handles(m.RemoveConnection)
def remove_connection(cmd: m.RemoveConnection, ctx: Context, scope: Scope) -> Reply:
    """End a relationship (e.g. unfollow)."""
    _existing(scope, cmd.id, Connection, ctx).remove(ctx.actor_id)
    return Reply(cmd.id)


# ---- activity and composite commands -------------------------------------------------------


@handles(m.RecordActivity)
def record_activity(cmd: m.RecordActivity, ctx: Context, scope: Scope) -> Reply:
    """Record an activity in its own stream (never contends with anything)."""
    if cmd.target_id is not None:
        _require_streams(scope, target_id=cmd.target_id)
    activity = Activity.record(
        id=uuid4(), org_id=ctx.org_id, actor_id=ctx.actor_id, type=cmd.type,
        target_id=cmd.target_id, metadata=cmd.metadata,
    )
    scope.add(activity)
    return Reply(activity.id, 201)


@handles(m.CreateContent)
def create_content(cmd: m.CreateContent, ctx: Context, scope: Scope) -> Reply:
    """Content + owns/authored from its creator + owns from each collaborator, all or nothing.

    The creator keeps the revenue share the collaborators do not take.
    """
    creator = scope.get(cmd.creator_id, Thing, "creator_id")
    if creator.type != "creator" or creator.deleted:
        raise ValidationFailed("creator_id must name a live thing of type creator", "creator_id")
    shares = [c.revenue_share for c in cmd.collaborators]
    if sum(shares) > 1:
        raise ValidationFailed("collaborator revenue shares add up to more than 1", "collaborators")
    ids = [c.entity_id for c in cmd.collaborators]
    if len(set(ids)) != len(ids) or cmd.creator_id in ids:
        raise ValidationFailed("collaborators must be distinct and not the creator", "collaborators")
    for index, collaborator in enumerate(cmd.collaborators):
        _require_streams(scope, **{f"collaborators[{index}].entity_id": collaborator.entity_id})
    content = create_thing(
        m.CreateThing(type=cmd.type, name=cmd.name, properties=cmd.properties, tags=cmd.tags,
                      id=cmd.id),
        ctx, scope,
    ).stream_id
    links = [
        _connect(scope, ctx, cmd.creator_id, content, "owns", {"revenueShare": 1 - sum(shares)}),
        _connect(scope, ctx, cmd.creator_id, content, "authored", {}),
    ]
    links += [
        _connect(scope, ctx, c.entity_id, content, "owns", {"revenueShare": c.revenue_share})
        for c in cmd.collaborators
    ]
    return Reply(content, 201, {"connections": [str(link.id) for link in links]})
