"""Command models: the validated shape of every write. HTTP bodies are the `*Body` models."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

JsonObject = dict[str, Any]


class StrictModel(BaseModel):
    """Unknown fields are refused; models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- organizations and people -------------------------------------------------------------


class CreateOrganization(StrictModel):
    """Found a tenant."""

    name: str
    slug: str
    plan: str = "starter"
    id: UUID | None = None


class OrganizationPatch(StrictModel):
    """Rename or change plan."""

    name: str | None = None
    plan: str | None = None


class UpdateOrganization(OrganizationPatch):
    """Rename or change plan of organization `id`."""

    id: UUID


class CreatePerson(StrictModel):
    """Register an actor in the caller's organization."""

    name: str
    email: str
    role: str = "customer"
    id: UUID | None = None


class ChangePersonRoleBody(StrictModel):
    """New role for a person."""

    role: str


class ChangePersonRole(ChangePersonRoleBody):
    """Give person `id` another role."""

    id: UUID


# ---- things --------------------------------------------------------------------------------


class CreateThing(StrictModel):
    """Create a thing of an ontology type."""

    type: str
    name: str
    properties: JsonObject = Field(default_factory=dict)
    status: str = "draft"
    tags: list[str] = Field(default_factory=list)
    id: UUID | None = None


class ThingPatch(StrictModel):
    """Rename and/or merge properties (a null property value removes the key)."""

    name: str | None = None
    properties: JsonObject | None = None


class UpdateThing(ThingPatch):
    """Patch thing `id`."""

    id: UUID


class StatusBody(StrictModel):
    """Target lifecycle status."""

    status: str


class ChangeThingStatus(StatusBody):
    """Move thing `id` to another status."""

    id: UUID


class TagsBody(StrictModel):
    """Tags as `category:value`."""

    tags: list[str] = Field(min_length=1)


class TagThing(TagsBody):
    """Attach tags to thing `id`."""

    id: UUID


class UntagThing(TagsBody):
    """Detach tags from thing `id`."""

    id: UUID


class DeleteThing(StrictModel):
    """Soft-delete thing `id`."""

    id: UUID


class RestoreThing(StrictModel):
    """Undo the soft deletion of thing `id`."""

    id: UUID


# ---- connections ---------------------------------------------------------------------------


class CreateConnection(StrictModel):
    """Connect two existing streams with a typed relationship."""

    from_id: UUID
    to_id: UUID
    type: str
    metadata: JsonObject = Field(default_factory=dict)


class ConnectionPatch(StrictModel):
    """Metadata to merge into a connection."""

    metadata: JsonObject


class UpdateConnection(ConnectionPatch):
    """Merge metadata into connection `id`."""

    id: UUID


class RemoveConnection(StrictModel):
    """End connection `id`."""

    id: UUID


# ---- activity and composite commands -------------------------------------------------------


class RecordActivity(StrictModel):
    """Record an event of the ontology's events dimension."""

    type: str
    target_id: UUID | None = None
    metadata: JsonObject = Field(default_factory=dict)


class Collaborator(StrictModel):
    """A co-owner of new content and their share of its revenue (0..1)."""

    entity_id: UUID
    revenue_share: float = Field(ge=0, le=1, strict=True)


class CreateContent(StrictModel):
    """The seeds' createContent: a thing, owned and authored by a creator, with collaborators."""

    creator_id: UUID
    type: str
    name: str
    properties: JsonObject = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    collaborators: list[Collaborator] = Field(default_factory=list)
    id: UUID | None = None




class StartTokenPurchase(StrictModel):
    """Buy `amount` tokens with a card; `usd_amount` defaults to amount * the token's priceUsd."""

    buyer_id: UUID
    token_id: UUID
    amount: int = Field(gt=0, strict=True)
    payment_method: str = Field(min_length=1, max_length=255)
    usd_amount: float | None = Field(default=None, gt=0)
