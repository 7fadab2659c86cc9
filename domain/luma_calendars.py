"""A Luma calendar synced into an organization: which Luma events it has brought in, so an event
that disappears from the page is noticed (and cancelled while still upcoming)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain.base import OneAggregate


class LumaCalendar(OneAggregate):
    """The synced calendar `slug` of an organization."""

    if TYPE_CHECKING:
        slug: str
        event_ids: list[str]

    class Created(OneAggregate.Created):
        """The calendar was synced for the first time."""

        TYPE = "luma_calendar.created"
        slug: str
        event_ids: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id, aggregate.slug = self.org_id, self.slug
            aggregate.event_ids = sorted(self.event_ids)

    class EventsListed(OneAggregate.Event):
        """The page listed Luma events the calendar had not brought in before."""

        TYPE = "luma_calendar.events_listed"
        event_ids: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.event_ids = sorted({*aggregate.event_ids, *self.event_ids})

    @classmethod
    def start(cls, *, id: Any, org_id: str, actor_id: str, slug: str, event_ids: list[str]) -> LumaCalendar:
        """The first sync of `slug`."""
        return cls._create(cls.Created, id=id, org_id=org_id, actor_id=actor_id, slug=slug,
                           event_ids=sorted(event_ids))

    def listed(self, actor: str, event_ids: list[str]) -> None:
        """Remember the events of this sync that are new to the calendar."""
        new = sorted(set(event_ids) - set(self.event_ids))
        if new:
            self.trigger_event(self.EventsListed, actor_id=actor, event_ids=new)
