"""The Thing aggregate: any typed entity of the ontology (creator, course, token, blog_post, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain import ontology
from domain.base import OneAggregate
from domain.errors import InvalidState, ValidationFailed

Properties = dict[str, Any]


def merge_properties(current: Properties, patch: Properties) -> Properties:
    """Shallow JSON merge patch: keys in `patch` replace, a None value removes the key."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def normalize_tags(tags: list[str], field: str = "tags") -> list[str]:
    """Validate `category:value` tags; return them canonical, de-duplicated, in given order."""
    seen: dict[str, None] = {}
    for index, tag in enumerate(tags):
        category, value = ontology.parse_tag(tag, field=f"{field}[{index}]")
        seen[ontology.format_tag(category, value)] = None
    return list(seen)


class Thing(OneAggregate):
    """A typed entity with free-form properties, a status, tags and soft deletion."""

    if TYPE_CHECKING:
        type: str
        name: str
        properties: Properties
        status: str
        tags: list[str]
        deleted: bool
        created_by: str

    class Created(OneAggregate.Created):
        """A thing came into being. v2 added `status` (v1 things were created as drafts)."""

        TYPE = "thing.created"
        class_version = 2
        type: str
        name: str
        properties: Properties
        status: str
        tags: list[str]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 had no status: every thing started as a draft."""
            state["status"] = "draft"

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.type = self.type
            aggregate.name = self.name
            aggregate.properties = dict(self.properties)
            aggregate.status = self.status
            aggregate.tags = list(self.tags)
            aggregate.deleted = False
            aggregate.created_by = self.actor_id

    class Updated(OneAggregate.Event):
        """Name and/or properties changed; `properties` is a shallow merge patch."""

        TYPE = "thing.updated"
        name: str | None
        properties: Properties

        def apply(self, aggregate: Any) -> None:
            if self.name is not None:
                aggregate.name = self.name
            aggregate.properties = merge_properties(aggregate.properties, self.properties)

    class StatusChanged(OneAggregate.Event):
        """Lifecycle move (draft → published → archived, ...)."""

        TYPE = "thing.status_changed"
        status: str
        previous: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = self.status

    class Tagged(OneAggregate.Event):
        """Tags newly attached to the thing."""

        TYPE = "thing.tagged"
        tags: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.tags = aggregate.tags + [t for t in self.tags if t not in aggregate.tags]

    class Untagged(OneAggregate.Event):
        """Tags detached from the thing."""

        TYPE = "thing.untagged"
        tags: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.tags = [t for t in aggregate.tags if t not in self.tags]

    class Deleted(OneAggregate.Event):
        """Soft deletion: the stream stays; queries hide the thing."""

        TYPE = "thing.deleted"

        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    class Restored(OneAggregate.Event):
        """Undo of a soft deletion."""

        TYPE = "thing.restored"

        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = False

    @classmethod
    def create(
        cls,
        *,
        id: UUID,
        org_id: str,
        actor_id: str,
        type: str,
        name: str,
        properties: Properties | None = None,
        status: str = "draft",
        tags: list[str] | None = None,
    ) -> Thing:
        """Validate against the ontology and create a thing."""
        return cls._create(
            cls.Created,
            id=id,
            org_id=org_id,
            actor_id=actor_id,
            type=ontology.normalize_thing_type(type),
            name=ontology.validate_name(name),
            properties=dict(properties or {}),
            status=ontology.validate_status(status),
            tags=normalize_tags(tags or []),
        )

    def _require_live(self) -> None:
        if self.deleted:
            raise InvalidState(f"thing {self.id} is deleted; restore it first", field="id")

    def update(self, actor_id: str, name: str | None, properties: Properties | None) -> None:
        """Rename and/or merge properties."""
        self._require_live()
        if name is None and not properties:
            raise ValidationFailed("nothing to update: give name and/or properties", "name")
        new_name = None if name is None else ontology.validate_name(name)
        self.trigger_event(
            self.Updated, actor_id=actor_id, name=new_name, properties=dict(properties or {})
        )

    def change_status(self, actor_id: str, status: str) -> None:
        """Move to another lifecycle status (publish, archive, ...)."""
        self._require_live()
        new_status = ontology.validate_status(status)
        if new_status == self.status:
            raise InvalidState(f"thing is already {new_status}", field="status")
        self.trigger_event(
            self.StatusChanged, actor_id=actor_id, status=new_status, previous=self.status
        )

    def tag(self, actor_id: str, tags: list[str]) -> None:
        """Attach tags (already-present ones are ignored)."""
        self._require_live()
        new = [t for t in normalize_tags(tags) if t not in self.tags]
        if new:
            self.trigger_event(self.Tagged, actor_id=actor_id, tags=new)

    def untag(self, actor_id: str, tags: list[str]) -> None:
        """Detach tags (absent ones are ignored)."""
        self._require_live()
        present = [t for t in normalize_tags(tags) if t in self.tags]
        if present:
            self.trigger_event(self.Untagged, actor_id=actor_id, tags=present)

    def delete(self, actor_id: str) -> None:
        """Soft-delete the thing."""
        self._require_live()
        self.trigger_event(self.Deleted, actor_id=actor_id)

    def restore(self, actor_id: str) -> None:
        """Bring a soft-deleted thing back."""
        if not self.deleted:
            raise InvalidState(f"thing {self.id} is not deleted", field="id")
        self.trigger_event(self.Restored, actor_id=actor_id)
