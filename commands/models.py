"""Command models: the validated shape of every write. HTTP bodies are the `*Body` models.

Every command a client may send names its `action` in the permission matrix
(`domain.permissions.POLICY`); a command without one is internal (sagas, sign-in, bootstrap) and
only the system may run it.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from commands.fields import (
    AccountStatus,
    AuthMethod,
    Availability,
    ConnectionTypeName,
    EventTypeName,
    JsonDateTime,
    JsonInt,
    JsonNumber,
    JsonObject,
    KeyName,
    LearningTrack,
    Name,
    Role,
    Slug,
    Stats,
    Tag,
    ThingStatus,
    ThingTypeName,
    Visibility,
    at_least_one_of,
    document_person_patch,
    document_personal_fields,
)


class StrictModel(BaseModel):
    """Unknown fields are refused; models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: ClassVar[str | None] = None


# ---- organizations and people -------------------------------------------------------------


class CreateOrganization(StrictModel):
    """Found a tenant."""

    action = "organizations.create"

    name: Name
    slug: Slug
    plan: Name = "starter"
    id: UUID | None = None


class OrganizationPatch(StrictModel):
    """Rename or change plan."""

    model_config = ConfigDict(json_schema_extra=at_least_one_of("name", "plan"))

    name: Name | None = None
    plan: Name | None = None


class UpdateOrganization(OrganizationPatch):
    """Rename or change plan of organization `id`."""

    action = "organizations.update"

    id: UUID


class ProfileFields(StrictModel):
    """A person's profile: location and social links (personal data, sealed in the log) and
    settings (visibility, learning tracks, availability, stats)."""

    model_config = ConfigDict(json_schema_extra=document_personal_fields)

    city: str | None = None
    country: str | None = None
    country_code: str | None = None
    github_url: str | None = None
    twitter_url: str | None = None
    linkedin_url: str | None = None
    telegram_handle: str | None = None
    learning_tracks: list[LearningTrack] | SkipJsonSchema[None] = None
    visibility: Visibility | SkipJsonSchema[None] = None
    availability: Availability | SkipJsonSchema[None] = None
    stats: Stats | SkipJsonSchema[None] = None


class PersonFields(StrictModel):
    """A person's own fields (all personal data) and profile. In a patch, a null removes a field."""

    model_config = ConfigDict(json_schema_extra=document_personal_fields)

    name: str | None = None
    email: str | None = None
    username: str | None = None
    bio: str | None = None
    avatar_url: str | None = None
    ext_wallet: str | None = None
    app_wallet: str | None = None
    profile: ProfileFields | None = None


class CreatePerson(PersonFields):
    """Register a person in the caller's organization."""

    action = "people.create"
    name: str
    role: Role = "customer"
    account_status: AccountStatus = "active"
    primary_auth_method: AuthMethod = "email"
    id: UUID | None = None


class PersonPatch(PersonFields):
    """Change a person's fields and profile settings."""

    model_config = ConfigDict(json_schema_extra=document_person_patch)


class UpdatePerson(PersonPatch):
    """Patch person `id`."""

    action = "people.update"
    id: UUID


class ChangePersonRoleBody(StrictModel):
    """New role for a person."""

    role: Role


class ChangePersonRole(ChangePersonRoleBody):
    """Give person `id` another role."""

    action = "people.change_role"
    id: UUID


class AccountStatusBody(StrictModel):
    """New account status (incomplete, pending, active, suspended, banned)."""

    status: AccountStatus


class ChangeAccountStatus(AccountStatusBody):
    """Move person `id`'s account to another status."""

    action = "people.change_status"
    id: UUID


class DeletePerson(StrictModel):
    """Soft-delete person `id`."""

    action = "people.delete"
    id: UUID


class ErasePersonalData(StrictModel):
    """Destroy person `id`'s personal-data key (crypto-shredding)."""

    action = "people.erase"
    id: UUID


# ---- API keys and sign-in ------------------------------------------------------------------


class ApiKeyBody(StrictModel):
    """A key for a person of the organization (default: the caller), or, with `role`, for a new
    service account with that role."""

    name: KeyName
    person_id: UUID | None = None
    role: Role | None = None
    expires_at: JsonDateTime | None = None


class IssueApiKey(ApiKeyBody):
    """Issue key `id` with the hash of its secret (the secret itself never enters a command)."""

    action = "keys.create"
    id: UUID
    secret_hash: str


class RevokeApiKey(StrictModel):
    """Revoke key `id`."""

    action = "keys.revoke"
    id: UUID


class EnsureBootstrapKey(StrictModel):
    """Internal: make `ONE_BOOTSTRAP_KEY` (by its hash) the system person's bootstrap key."""

    secret_hash: str


class SignInWithPrivy(StrictModel):
    """Internal (after the Privy token was verified): find or create the person of a Privy DID,
    record the sign-in and issue a session key."""

    did: str
    email: str | None = None
    ext_wallet: str | None = None
    app_wallet: str | None = None
    method: str
    session_key_id: UUID
    session_hash: str
    expires_at: datetime


# ---- things --------------------------------------------------------------------------------


class CreateThing(StrictModel):
    """Create a thing of an ontology type."""

    action = "things.create"

    type: ThingTypeName
    name: Name
    properties: JsonObject = Field(default_factory=dict)
    status: ThingStatus = "draft"
    tags: list[Tag] = Field(default_factory=list)
    id: UUID | None = None


class ThingPatch(StrictModel):
    """Rename and/or merge properties (a null property value removes the key)."""

    model_config = ConfigDict(json_schema_extra=at_least_one_of("name", "properties"))

    name: Name | None = None
    properties: JsonObject | None = None


class UpdateThing(ThingPatch):
    """Patch thing `id`."""

    action = "things.update"

    id: UUID


class StatusBody(StrictModel):
    """Target lifecycle status."""

    status: ThingStatus


class ChangeThingStatus(StatusBody):
    """Move thing `id` to another status."""

    action = "things.update"

    id: UUID


class TagsBody(StrictModel):
    """Tags as `category:value`."""

    tags: list[Tag] = Field(min_length=1)


class TagThing(TagsBody):
    """Attach tags to thing `id`."""

    action = "things.update"

    id: UUID


class UntagThing(TagsBody):
    """Detach tags from thing `id`."""

    action = "things.update"

    id: UUID


class DeleteThing(StrictModel):
    """Soft-delete thing `id`."""

    action = "things.update"

    id: UUID


class RestoreThing(StrictModel):
    """Undo the soft deletion of thing `id`."""

    action = "things.update"

    id: UUID


# ---- connections ---------------------------------------------------------------------------


class CreateConnection(StrictModel):
    """Connect two existing streams with a typed relationship."""

    action = "connections.create"

    from_id: UUID
    to_id: UUID
    type: ConnectionTypeName
    metadata: JsonObject = Field(default_factory=dict)


class ConnectionPatch(StrictModel):
    """Metadata to merge into a connection."""

    metadata: JsonObject


class UpdateConnection(ConnectionPatch):
    """Merge metadata into connection `id`."""

    action = "connections.update"

    id: UUID


class RemoveConnection(StrictModel):
    """End connection `id`."""

    action = "connections.remove"

    id: UUID


# ---- activity and composite commands -------------------------------------------------------


class RecordActivity(StrictModel):
    """Record an event of the ontology's events dimension."""

    action = "events.record"

    type: EventTypeName
    target_id: UUID | None = None
    metadata: JsonObject = Field(default_factory=dict)


class Collaborator(StrictModel):
    """A co-owner of new content and their share of its revenue (0..1)."""

    entity_id: UUID
    revenue_share: JsonNumber = Field(ge=0, le=1)


class CreateContent(StrictModel):
    """The seeds' createContent: a thing, owned and authored by a creator, with collaborators."""

    action = "content.create"

    creator_id: UUID
    type: ThingTypeName
    name: Name
    properties: JsonObject = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list)
    collaborators: list[Collaborator] = Field(default_factory=list)
    id: UUID | None = None



class StartTokenPurchase(StrictModel):
    """Buy `amount` tokens with a card; `usd_amount` defaults to amount * the token's priceUsd."""

    action = "purchases.create"

    buyer_id: UUID
    token_id: UUID
    amount: JsonInt = Field(gt=0)
    payment_method: str = Field(min_length=1, max_length=255)
    usd_amount: JsonNumber | None = Field(default=None, gt=0)


# ---- internal: token contract deployment ---------------------------------------------------


class RecordDeployment(StrictModel):
    """Internal (the deployer): a signed deployment of `token_id`'s contract, before broadcast
    (it replaces a previous one that can never land)."""

    token_id: UUID
    address: str
    tx_hash: str
    raw: str
    nonce: int


class ConfirmDeployment(StrictModel):
    """Internal (the deployer): the recorded deployment created the contract."""

    token_id: UUID
    tx_hash: str
    block_number: int

