"""Recorded activity (the ontology's events dimension).

Each recorded activity is its own one-event stream, so recording never contends with other
recordings or with edits of the target thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain import ontology
from domain.base import OneAggregate


class Activity(OneAggregate):
    """One action in time: who did what to which target, with metadata."""

    if TYPE_CHECKING:
        type: str
        target_id: str | None
        metadata: dict[str, Any]

    class Recorded(OneAggregate.Created):
        """Something happened (content_viewed, tokens_purchased, payment_processed, ...)."""

        TYPE = "activity.recorded"
        type: str
        target_id: str | None
        metadata: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.type = self.type
            aggregate.target_id = self.target_id
            aggregate.metadata = dict(self.metadata)

    @classmethod
    def record(
        cls,
        *,
        id: UUID,
        org_id: str,
        actor_id: str,
        type: str,
        target_id: UUID | None,
        metadata: dict[str, Any] | None = None,
    ) -> Activity:
        """Normalise the event type (old names become a consolidated type + variant) and record."""
        kind, meta = ontology.normalize_event_type(type, metadata or {})
        return cls._create(
            cls.Recorded, id=id, org_id=org_id, actor_id=actor_id, type=kind,
            target_id=None if target_id is None else str(target_id), metadata=meta,
        )
