"""Command models: the validated shape of every write. HTTP bodies are the `*Body` models.

Every command a client may send names its `action` in the permission matrix
(`domain.permissions.POLICY`); a command without one is internal (sagas, sign-in, bootstrap) and
only the system may run it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

JsonObject = dict[str, Any]


class StrictModel(BaseModel):
    """Unknown fields are refused; models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: ClassVar[str | None] = None


# ---- organizations and people -------------------------------------------------------------


class CreateOrganization(StrictModel):
    """Found a tenant."""

    action = "organizations.create"

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

    action = "organizations.update"

    id: UUID


class ProfileFields(StrictModel):
    """A person's profile: location and social links (personal data, sealed in the log) and
    settings (visibility, learning tracks, availability, stats)."""

    city: str | None = None
    country: str | None = None
    country_code: str | None = None
    github_url: str | None = None
    twitter_url: str | None = None
    linkedin_url: str | None = None
    telegram_handle: str | None = None
    learning_tracks: list[str] | None = None
    visibility: str | None = None
    availability: str | None = None
    stats: dict[str, float] | None = None


class PersonFields(StrictModel):
    """A person's own fields (all personal data) and profile. In a patch, a null removes a field."""

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
    role: str = "customer"
    account_status: str = "active"
    primary_auth_method: str = "email"
    id: UUID | None = None


class PersonPatch(PersonFields):
    """Change a person's fields and profile settings."""


class UpdatePerson(PersonPatch):
    """Patch person `id`."""

    action = "people.update"
    id: UUID


class ChangePersonRoleBody(StrictModel):
    """New role for a person."""

    role: str


class ChangePersonRole(ChangePersonRoleBody):
    """Give person `id` another role."""

    action = "people.change_role"
    id: UUID


class AccountStatusBody(StrictModel):
    """New account status (incomplete, pending, active, suspended, banned)."""

    status: str


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

    name: str = Field(min_length=1, max_length=100)
    person_id: UUID | None = None
    role: str | None = None
    expires_at: datetime | None = None


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

    action = "things.update"

    id: UUID


class StatusBody(StrictModel):
    """Target lifecycle status."""

    status: str


class ChangeThingStatus(StatusBody):
    """Move thing `id` to another status."""

    action = "things.update"

    id: UUID


class TagsBody(StrictModel):
    """Tags as `category:value`."""

    tags: list[str] = Field(min_length=1)


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
    type: str
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

    type: str
    target_id: UUID | None = None
    metadata: JsonObject = Field(default_factory=dict)


class Collaborator(StrictModel):
    """A co-owner of new content and their share of its revenue (0..1)."""

    entity_id: UUID
    revenue_share: float = Field(ge=0, le=1, strict=True)


class CreateContent(StrictModel):
    """The seeds' createContent: a thing, owned and authored by a creator, with collaborators."""

    action = "content.create"

    creator_id: UUID
    type: str
    name: str
    properties: JsonObject = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    collaborators: list[Collaborator] = Field(default_factory=list)
    id: UUID | None = None



class StartTokenPurchase(StrictModel):
    """Buy `amount` tokens with a card; `usd_amount` defaults to amount * the token's priceUsd."""

    action = "purchases.create"

    buyer_id: UUID
    token_id: UUID
    amount: int = Field(gt=0, strict=True)
    payment_method: str = Field(min_length=1, max_length=255)
    usd_amount: float | None = Field(default=None, gt=0)


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

