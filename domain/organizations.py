"""Organizations (tenants) and people (actors with a role, an account status and a profile).

A person's personal fields (`domain.personal_data`) reach the log only sealed; the aggregate keeps
the non-personal ones: role, account status, sign-in method and the profile's settings and stats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from domain import ontology
from domain.base import OneAggregate
from domain.errors import AccountSuspended, InvalidState, ValidationFailed
from domain.permissions import ACCOUNT_STATUSES, BLOCKED_STATUSES

SLUG_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""An organization's slug: lowercase letters, digits and inner dashes, at most 64 characters."""
AUTH_METHODS: Final[frozenset[str]] = frozenset({"email", "wallet", "social"})
LEARNING_TRACKS: Final[frozenset[str]] = frozenset({"ai", "crypto", "privacy"})
VISIBILITIES: Final[frozenset[str]] = frozenset({"public", "members", "private"})
AVAILABILITIES: Final[frozenset[str]] = frozenset({"available", "open_to_offers", "unavailable"})
STATS: Final[frozenset[str]] = frozenset({"completed_bounties", "total_earnings_usd", "profile_views"})
PROFILE_DEFAULTS: Final[Mapping[str, Any]] = {
    "visibility": "public", "learning_tracks": [], "availability": "available",
    "stats": {"completed_bounties": 0, "total_earnings_usd": 0, "profile_views": 0},
}


class Organization(OneAggregate):
    """A tenant. Its own `org_id` is its id."""

    if TYPE_CHECKING:
        name: str
        slug: str
        plan: str

    class Created(OneAggregate.Created):
        """The organization was founded."""

        TYPE = "organization.created"
        name: str
        slug: str
        plan: str

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.name = self.name
            aggregate.slug = self.slug
            aggregate.plan = self.plan

    class Updated(OneAggregate.Event):
        """Renamed or moved to another plan."""

        TYPE = "organization.updated"
        name: str | None
        plan: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name or aggregate.name
            aggregate.plan = self.plan or aggregate.plan

    @classmethod
    def create(cls, *, id: UUID, actor_id: str, name: str, slug: str, plan: str) -> Organization:
        """Found an organization; the slug is lowercase letters, digits and dashes."""
        if not re.fullmatch(SLUG_PATTERN, slug):
            raise ValidationFailed("slug must be lowercase letters, digits and dashes", "slug")
        return cls._create(
            cls.Created, id=id, org_id=str(id), actor_id=actor_id,
            name=ontology.validate_name(name), slug=slug, plan=ontology.validate_name(plan, "plan"),
        )

    def update(self, actor_id: str, name: str | None, plan: str | None) -> None:
        """Rename and/or change plan."""
        if name is None and plan is None:
            raise ValidationFailed("nothing to update: give name and/or plan", "name")
        self.trigger_event(
            self.Updated, actor_id=actor_id,
            name=None if name is None else ontology.validate_name(name),
            plan=None if plan is None else ontology.validate_name(plan, "plan"),
        )


def _choice(value: object, allowed: frozenset[str], field: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValidationFailed(f"{field} must be one of {', '.join(sorted(allowed))}", field)
    return value


def _stats(value: object, field: str) -> dict[str, int | float]:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} must be an object", field)
    clean: dict[str, int | float] = {}
    for name, number in value.items():
        if name not in STATS:
            raise ValidationFailed(f"unknown stat {name!r}", f"{field}.{name}")
        if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
            raise ValidationFailed("stats are non-negative numbers", f"{field}.{name}")
        clean[name] = number
    return clean


def validate_profile(patch: Mapping[str, Any], prefix: str = "profile.") -> dict[str, Any]:
    """The non-personal profile settings: visibility, learning tracks, availability, stats."""
    clean: dict[str, Any] = {}
    for name, value in patch.items():
        field = f"{prefix}{name}"
        if name == "visibility":
            clean[name] = _choice(value, VISIBILITIES, field)
        elif name == "availability":
            clean[name] = _choice(value, AVAILABILITIES, field)
        elif name == "learning_tracks":
            if not isinstance(value, list):
                raise ValidationFailed(f"{field} must be a list", field)
            clean[name] = sorted({_choice(v, LEARNING_TRACKS, f"{field}[{i}]") for i, v in enumerate(value)})
        elif name == "stats":
            clean[name] = _stats(value, field)
        else:
            raise ValidationFailed(f"unknown profile setting {name!r}", field)
    return clean


def merge_profile(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A profile with a validated patch applied (stats merge key by key)."""
    merged = {**current, **patch}
    if "stats" in patch:
        merged["stats"] = {**current.get("stats", {}), **patch["stats"]}
    return merged


class Person(OneAggregate):
    """An actor: every command is made by one person, in one role."""

    if TYPE_CHECKING:
        role: str
        account_status: str
        auth_method: str
        profile: dict[str, Any]
        username_claim: str | None
        deleted: bool
        erased: bool

    class Created(OneAggregate.Created):
        """The person joined an organization. v2 sealed the personal fields and added the
        account status, sign-in method, profile and username claim."""

        TYPE = "person.created"
        class_version = 2
        role: str
        account_status: str
        auth_method: str
        personal: str | None
        profile: dict[str, Any]
        username_claim: str | None
        unsealed: dict[str, str]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 kept name and email in clear (they stay `unsealed`) and had no status."""
            state["unsealed"] = {"name": state.pop("name"), "email": state.pop("email")}
            state.update(account_status="active", auth_method="email", personal=None,
                         profile={}, username_claim=None)

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.role = self.role
            aggregate.account_status = self.account_status
            aggregate.auth_method = self.auth_method
            aggregate.profile = merge_profile(PROFILE_DEFAULTS, self.profile)
            aggregate.username_claim = self.username_claim
            aggregate.deleted = aggregate.erased = False

    class Updated(OneAggregate.Event):
        """Personal fields (sealed patch; a null field is removed) and/or profile settings
        changed; `username_claim` names the new username's claim when the username changed."""

        TYPE = "person.updated"
        personal: str | None
        profile: dict[str, Any]
        username_claim: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.profile = merge_profile(aggregate.profile, self.profile)
            if self.username_claim is not None:
                aggregate.username_claim = self.username_claim

    class RoleChanged(OneAggregate.Event):
        """Promotion or demotion."""

        TYPE = "person.role_changed"
        role: str

        def apply(self, aggregate: Any) -> None:
            aggregate.role = self.role

    class StatusChanged(OneAggregate.Event):
        """The account moved (incomplete → pending → active, suspended, banned)."""

        TYPE = "person.status_changed"
        status: str
        previous: str

        def apply(self, aggregate: Any) -> None:
            aggregate.account_status = self.status

    class SignedIn(OneAggregate.Event):
        """The person signed in (its time is the person's lastLoginAt)."""

        TYPE = "person.signed_in"
        method: str

    class Deleted(OneAggregate.Event):
        """Soft deletion: the person can no longer act; their history stays."""

        TYPE = "person.deleted"

        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    class Erased(OneAggregate.Event):
        """The person's key was destroyed: their personal fields are unreadable everywhere."""

        TYPE = "person.erased"

        def apply(self, aggregate: Any) -> None:
            aggregate.erased = True
            aggregate.username_claim = None

    @classmethod
    def create(
        cls, *, id: UUID, org_id: str, actor_id: str, role: str, account_status: str = "active",
        auth_method: str = "email", personal: str | None, profile: Mapping[str, Any] | None = None,
        username_claim: str | None = None,
    ) -> Person:
        """Register a person; `personal` is already sealed, `profile` already validated."""
        return cls._create(
            cls.Created, id=id, org_id=org_id, actor_id=actor_id,
            role=ontology.validate_role(role),
            account_status=_choice(account_status, ACCOUNT_STATUSES, "account_status"),
            auth_method=_choice(auth_method, AUTH_METHODS, "primary_auth_method"),
            personal=personal, profile=dict(profile or {}), username_claim=username_claim,
            unsealed={},
        )

    @property
    def live(self) -> bool:
        """Neither deleted nor erased."""
        return not (self.deleted or self.erased)

    def _require_live(self) -> None:
        if not self.live:
            state = "erased" if self.erased else "deleted"
            raise InvalidState(f"person {self.id} is {state}", "id")

    def update(
        self, actor_id: str, personal: str | None, profile: Mapping[str, Any],
        username_claim: str | None = None,
    ) -> None:
        """Change personal fields (sealed) and/or profile settings (validated)."""
        self._require_live()
        if personal is None and not profile:
            raise ValidationFailed("nothing to update", "body")
        self.trigger_event(self.Updated, actor_id=actor_id, personal=personal, profile=dict(profile),
                           username_claim=username_claim)

    def change_role(self, actor_id: str, role: str) -> None:
        """Give the person another role."""
        self._require_live()
        new_role = ontology.validate_role(role)
        if new_role == self.role:
            raise InvalidState(f"person already has role {new_role}", "role")
        self.trigger_event(self.RoleChanged, actor_id=actor_id, role=new_role)

    def change_status(self, actor_id: str, status: str) -> None:
        """Move the account to another status."""
        self._require_live()
        new_status = _choice(status, ACCOUNT_STATUSES, "status")
        if new_status == self.account_status:
            raise InvalidState(f"account is already {new_status}", "status")
        self.trigger_event(self.StatusChanged, actor_id=actor_id, status=new_status,
                           previous=self.account_status)

    def sign_in(self, method: str) -> None:
        """Record a sign-in; a suspended or banned account may not sign in."""
        self._require_live()
        if self.account_status in BLOCKED_STATUSES:
            raise AccountSuspended(f"account is {self.account_status}", "account_status")
        self.trigger_event(self.SignedIn, actor_id=str(self.id),
                           method=_choice(method, AUTH_METHODS, "method"))

    def delete(self, actor_id: str) -> None:
        """Soft-delete the person."""
        self._require_live()
        self.trigger_event(self.Deleted, actor_id=actor_id)

    def erase(self, actor_id: str) -> None:
        """Mark the personal data erased (the caller destroys the key in the same transaction)."""
        if self.erased:
            raise InvalidState(f"person {self.id} is already erased", "id")
        self.trigger_event(self.Erased, actor_id=actor_id)
