"""The common shape of ONE's domain events and aggregates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from eventsourcing.domain import Aggregate


class OneAggregate(Aggregate):
    """Base aggregate: every ONE stream belongs to an organization."""

    if TYPE_CHECKING:
        org_id: str

    class Event(Aggregate.Event):
        """Every event names its tenant and actor. `TYPE` is its stable public name."""

        TYPE: ClassVar[str] = ""
        org_id: str
        actor_id: str

    class Created(Event, Aggregate.Created):
        """Creation events start a stream."""

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        """Stamp every event with the aggregate's organization."""
        kwargs.setdefault("org_id", self.org_id)
        super().trigger_event(event_class, **kwargs)


def public_event_types(*aggregates: type[OneAggregate]) -> dict[str, type[Any]]:
    """Map each nested event class's `TYPE` to the class, for envelopes and documentation."""
    found: dict[str, type[Any]] = {}
    for aggregate in aggregates:
        for value in vars(aggregate).values():
            if isinstance(value, type) and issubclass(value, OneAggregate.Event) and value.TYPE:
                found[value.TYPE] = value
    return found
