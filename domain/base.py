"""The common shape of ONE's domain events and aggregates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, Self

from eventsourcing.domain import Aggregate

_CAUSE: ContextVar[tuple[str | None, str | None, str | None]] = ContextVar(
    "one_cause", default=(None, None, None))


@contextmanager
def caused_by(correlation_id: str | None, causation_id: str | None,
              traceparent: str | None = None) -> Iterator[None]:
    """Every event triggered inside carries this correlation id (the request or process it belongs
    to), causation id (the command or event that caused it) and, when traced, the W3C
    `traceparent` of the span that made it."""
    token = _CAUSE.set((correlation_id, causation_id, traceparent))
    try:
        yield
    finally:
        _CAUSE.reset(token)


def _with_cause(kwargs: dict[str, Any]) -> dict[str, Any]:
    correlation_id, causation_id, traceparent = _CAUSE.get()
    kwargs.setdefault("correlation_id", correlation_id)
    kwargs.setdefault("causation_id", causation_id)
    kwargs.setdefault("traceparent", traceparent)
    return kwargs


class OneAggregate(Aggregate):
    """Base aggregate: every ONE stream belongs to an organization."""

    if TYPE_CHECKING:
        org_id: str

    class Event(Aggregate.Event):
        """Every event names its tenant and actor, and what it belongs to and was caused by
        (`caused_by`; None in events recorded before those existed). `TYPE` is its stable public
        name."""

        TYPE: ClassVar[str] = ""
        org_id: str
        actor_id: str
        correlation_id: str | None
        causation_id: str | None
        traceparent: str | None

    class Created(Event, Aggregate.Created):
        """Creation events start a stream."""

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Self:
        """Stamp the creation event with the current correlation and causation."""
        return super()._create(event_class, id=id, **_with_cause(kwargs))

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        """Stamp every event with the aggregate's organization, correlation and causation."""
        kwargs.setdefault("org_id", self.org_id)
        super().trigger_event(event_class, **_with_cause(kwargs))


def public_event_types(*aggregates: type[OneAggregate]) -> dict[str, type[Any]]:
    """Map each nested event class's `TYPE` to the class, for envelopes and documentation."""
    found: dict[str, type[Any]] = {}
    for aggregate in aggregates:
        for value in vars(aggregate).values():
            if isinstance(value, type) and issubclass(value, OneAggregate.Event) and value.TYPE:
                found[value.TYPE] = value
    return found
