"""Organizations (tenants) and people (actors with a role)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain import ontology
from domain.base import OneAggregate
from domain.errors import InvalidState, ValidationFailed

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
        if not _SLUG.match(slug):
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


class Person(OneAggregate):
    """An actor: every command is made by one person, in one role."""

    if TYPE_CHECKING:
        name: str
        email: str
        role: str

    class Created(OneAggregate.Created):
        """The person joined an organization."""

        TYPE = "person.created"
        name: str
        email: str
        role: str

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.name = self.name
            aggregate.email = self.email
            aggregate.role = self.role

    class RoleChanged(OneAggregate.Event):
        """Promotion or demotion."""

        TYPE = "person.role_changed"
        role: str

        def apply(self, aggregate: Any) -> None:
            aggregate.role = self.role

    @classmethod
    def create(
        cls, *, id: UUID, org_id: str, actor_id: str, name: str, email: str, role: str
    ) -> Person:
        """Register a person with a valid email and role."""
        if not _EMAIL.match(email):
            raise ValidationFailed("email is not a valid address", "email")
        return cls._create(
            cls.Created, id=id, org_id=org_id, actor_id=actor_id,
            name=ontology.validate_name(name), email=email.lower(),
            role=ontology.validate_role(role),
        )

    def change_role(self, actor_id: str, role: str) -> None:
        """Give the person another role."""
        new_role = ontology.validate_role(role)
        if new_role == self.role:
            raise InvalidState(f"person already has role {new_role}", "role")
        self.trigger_event(self.RoleChanged, actor_id=actor_id, role=new_role)
