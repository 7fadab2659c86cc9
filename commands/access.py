"""The caller's reach applied to the streams a command touches (the permission matrix's second
half: the role check is `domain.permissions.reach`, done once per command by `handles`).

Outside the organization the caller acts in, a stream does not exist for them (404, no existence
leak). Inside it, `OWN` reach needs the stream to be theirs (they created it, or they own or
authored it), `SELF` reach needs it to be them or theirs by definition (their person, key,
purchase, outgoing connection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from commands.unit_of_work import Scope
from domain.api_keys import ApiKey
from domain.base import OneAggregate
from domain.connections import Connection, connection_id
from domain.errors import Forbidden, NotFound
from domain.organizations import Person
from domain.permissions import CLAIM_CONNECTION_TYPES, SELF_SERVICE_CONNECTION_TYPES, Reach
from domain.things import Thing
from domain.token_purchase import TokenPurchase
from domain.workflows import WorkflowInstance

if TYPE_CHECKING:
    from commands.handlers import Context

A = TypeVar("A", bound=OneAggregate)
_OWNING = ("owns", "authored")


def in_org(ctx: Context, aggregate: OneAggregate) -> bool:
    """Whether the caller may see the stream at all (its organization is the acting one)."""
    return ctx.reach is Reach.ANY or aggregate.org_id == ctx.org_id


def visible(scope: Scope, ctx: Context, id: UUID, kind: type[A], field: str = "id") -> A:
    """The stream `id` of type `kind` in the caller's organization, else NotFound on `field`."""
    aggregate = scope.find(id, kind)
    if aggregate is None or not in_org(ctx, aggregate):
        raise NotFound(f"{kind.__name__.lower()} {id} not found", field)
    return aggregate


def require_visible(scope: Scope, ctx: Context, **ids: UUID) -> None:
    """Every named stream exists in the caller's organization (e.g. connection endpoints)."""
    for field, stream_id in ids.items():
        visible(scope, ctx, stream_id, OneAggregate, field)


def is_self(actor_id: str, aggregate: OneAggregate) -> bool:
    """The stream is the caller or theirs by definition (their person, key, purchase, journey,
    outgoing connection)."""
    if isinstance(aggregate, Person):
        return str(aggregate.id) == actor_id
    if isinstance(aggregate, ApiKey):
        return aggregate.person_id == actor_id
    if isinstance(aggregate, TokenPurchase):
        return aggregate.buyer_id == actor_id
    if isinstance(aggregate, WorkflowInstance):
        return aggregate.subject_id == actor_id
    if isinstance(aggregate, Connection):
        return aggregate.from_id == actor_id
    return False


def owns(scope: Scope, actor_id: str, aggregate: OneAggregate) -> bool:
    """The caller created, owns or authored the stream (or it is them / theirs)."""
    if is_self(actor_id, aggregate):
        return True
    if isinstance(aggregate, Thing):
        if aggregate.created_by == actor_id:
            return True
        actor = UUID(actor_id)
        return any(_live(scope.find(connection_id(actor, kind, aggregate.id), Connection))
                   for kind in _OWNING)
    if isinstance(aggregate, Connection):
        if aggregate.created_by == actor_id:
            return True
        source = scope.find(UUID(aggregate.from_id), Thing)
        return source is not None and owns(scope, actor_id, source)
    return False


def _live(connection: Connection | None) -> bool:
    return connection is not None and not connection.removed


def load(scope: Scope, ctx: Context, id: UUID, kind: type[A], field: str = "id") -> A:
    """The stream a command acts on, if the caller's reach covers it."""
    aggregate = visible(scope, ctx, id, kind, field)
    if ctx.reach is Reach.OWN and not owns(scope, ctx.actor_id, aggregate):
        raise Forbidden(f"{kind.__name__.lower()} {id} is not yours", field)
    if ctx.reach is Reach.SELF and not is_self(ctx.actor_id, aggregate):
        raise Forbidden(f"{kind.__name__.lower()} {id} is not yours", field)
    return aggregate


def may_connect(scope: Scope, ctx: Context, kind: str, from_id: UUID, to_id: UUID) -> None:
    """A customer connects only themselves, and only by self-service types; an org user needs the
    source to be theirs, and the target too for a claim (owns, authored, …)."""
    if ctx.reach is Reach.SELF:
        if str(from_id) != ctx.actor_id:
            raise Forbidden("you may only connect yourself (from_id must be your id)", "from_id")
        if kind not in SELF_SERVICE_CONNECTION_TYPES:
            raise Forbidden(f"a customer may not create {kind} connections", "type")
    elif ctx.reach is Reach.OWN:
        for field, end in (("from_id", from_id), ("to_id", to_id)):
            if field == "to_id" and kind not in CLAIM_CONNECTION_TYPES:
                continue
            stream = scope.find(end, OneAggregate)
            if stream is None or not owns(scope, ctx.actor_id, stream):
                raise Forbidden(f"{field} {end} is not yours", field)
