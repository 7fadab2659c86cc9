"""The Connection aggregate: a typed, directed relationship between two streams, with metadata.

A connection's id is derived from (from, type, to), so there is at most one live relationship of a
type between two endpoints; removing and re-creating it continues the same stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain import ontology
from domain.base import OneAggregate
from domain.errors import AlreadyExists, InvalidState, ValidationFailed
from domain.things import Properties, merge_properties


def connection_id(from_id: UUID, type: str, to_id: UUID) -> UUID:
    """The deterministic stream id of the relationship `from -type-> to`."""
    return uuid5(NAMESPACE_URL, f"one:connection:{from_id}:{type}:{to_id}")


def validate_revenue_share(metadata: Properties, field: str = "metadata.revenueShare") -> None:
    """If present, revenueShare must be a number in [0, 1]."""
    share = metadata.get("revenueShare")
    if share is None:
        return
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ValidationFailed("revenueShare must be a number between 0 and 1", field)


class Connection(OneAggregate):
    """A relationship such as owns, authored, following or holds_tokens."""

    if TYPE_CHECKING:
        from_id: str
        to_id: str
        type: str
        metadata: Properties
        removed: bool
        created_by: str

    class Created(OneAggregate.Created):
        """The relationship was established."""

        TYPE = "connection.created"
        from_id: str
        to_id: str
        type: str
        metadata: Properties

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.from_id = self.from_id
            aggregate.to_id = self.to_id
            aggregate.type = self.type
            aggregate.metadata = dict(self.metadata)
            aggregate.removed = False
            aggregate.created_by = self.actor_id

    class MetadataUpdated(OneAggregate.Event):
        """Metadata merged (e.g. a new balance or revenue share)."""

        TYPE = "connection.metadata_updated"
        metadata: Properties

        def apply(self, aggregate: Any) -> None:
            aggregate.metadata = merge_properties(aggregate.metadata, self.metadata)

    class Removed(OneAggregate.Event):
        """The relationship ended (unfollow, transfer, ...)."""

        TYPE = "connection.removed"

        def apply(self, aggregate: Any) -> None:
            aggregate.removed = True

    class Reestablished(OneAggregate.Event):
        """A removed relationship was created again, with fresh metadata."""

        TYPE = "connection.reestablished"
        metadata: Properties

        def apply(self, aggregate: Any) -> None:
            aggregate.removed = False
            aggregate.metadata = dict(self.metadata)

    @classmethod
    def create(
        cls,
        *,
        org_id: str,
        actor_id: str,
        from_id: UUID,
        to_id: UUID,
        type: str,
        metadata: Properties | None = None,
    ) -> Connection:
        """Validate endpoints, type and metadata, and establish the relationship."""
        ontology.validate_connection_endpoints(str(from_id), str(to_id))
        kind = ontology.normalize_connection_type(type)
        meta = dict(metadata or {})
        validate_revenue_share(meta)
        return cls._create(
            cls.Created,
            id=connection_id(from_id, kind, to_id),
            org_id=org_id,
            actor_id=actor_id,
            from_id=str(from_id),
            to_id=str(to_id),
            type=kind,
            metadata=meta,
        )

    def reestablish(self, actor_id: str, metadata: Properties | None) -> None:
        """Create again after removal; an active relationship cannot be created twice."""
        if not self.removed:
            raise AlreadyExists(
                f"{self.type} connection {self.from_id} -> {self.to_id} already exists", "to_id"
            )
        meta = dict(metadata or {})
        validate_revenue_share(meta)
        self.trigger_event(self.Reestablished, actor_id=actor_id, metadata=meta)

    def update_metadata(self, actor_id: str, metadata: Properties) -> None:
        """Merge metadata into the live relationship."""
        self._require_live()
        if not metadata:
            raise ValidationFailed("metadata must not be empty", "metadata")
        validate_revenue_share(metadata)
        self.trigger_event(self.MetadataUpdated, actor_id=actor_id, metadata=dict(metadata))

    def remove(self, actor_id: str) -> None:
        """End the relationship."""
        self._require_live()
        self.trigger_event(self.Removed, actor_id=actor_id)

    def _require_live(self) -> None:
        if self.removed:
            raise InvalidState(f"connection {self.id} was removed", field="id")
