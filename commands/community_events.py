"""Community events from a Luma calendar: one command applies a whole sync (every create and update
of the page, and the calendar's list of known events) in one transaction, or nothing.

Each Luma event's thing has an id derived from the organization and the Luma event id, and the
calendar remembers the events it brought in, so a sync reads the current state from the log (never
from a read model that may lag) and a second run of the same page appends nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from commands.handlers import HANDLERS, Context, Reply, granted
from commands.unit_of_work import Scope
from domain.community_events import Create, ExistingEvent, FetchedEvent, plan_sync
from domain.luma_calendars import LumaCalendar
from domain.things import Thing


def calendar_id(org_id: str, slug: str) -> UUID:
    """The stream of the organization's synced calendar `slug`."""
    return uuid5(NAMESPACE_URL, f"one:luma-calendar:{org_id}:{slug}")


def event_thing_id(org_id: str, luma_event_id: str) -> UUID:
    """The thing of Luma event `luma_event_id` in the organization."""
    return uuid5(NAMESPACE_URL, f"one:luma-event:{org_id}:{luma_event_id}")


@dataclass(frozen=True)
class SyncCalendar:
    """Internal (the sync job): bring the calendar's event things in line with its page at `now`."""

    org_id: str
    slug: str
    events: tuple[FetchedEvent, ...]
    now: datetime


def sync_calendar(cmd: SyncCalendar, ctx: Context, scope: Scope) -> Reply:
    """Plan the changes from the log's state and apply them all."""
    ctx = granted(SyncCalendar, ctx)
    stream = calendar_id(cmd.org_id, cmd.slug)
    calendar = scope.find(stream, LumaCalendar)
    known = calendar.event_ids if calendar is not None else []
    existing = {}
    for luma_id in known:
        thing = scope.find(event_thing_id(cmd.org_id, luma_id), Thing)
        if thing is not None:
            existing[luma_id] = ExistingEvent(str(thing.id), thing.name, thing.properties,
                                              "archived" if thing.deleted else thing.status)
    changes = plan_sync(existing, cmd.events, cmd.now)
    created = updated = 0
    for change in changes:
        if isinstance(change, Create):
            scope.add(Thing.create(id=event_thing_id(cmd.org_id, change.luma_event_id), org_id=cmd.org_id,
                                   actor_id=ctx.actor_id, type="event", name=change.name,
                                   properties=change.properties, status=change.status))
            created += 1
        else:
            scope.get(UUID(change.thing_id), Thing).update(ctx.actor_id, change.name, change.properties)
            updated += 1
    listed = [str(e.properties["lumaEventId"]) for e in cmd.events]
    if calendar is None:
        calendar = LumaCalendar.start(id=stream, org_id=cmd.org_id, actor_id=ctx.actor_id, slug=cmd.slug,
                                      event_ids=listed)
        scope.add(calendar)
    else:
        calendar.listed(ctx.actor_id, listed)
    return Reply(stream, 200, {"created": created, "updated": updated, "listed": len(listed)})


HANDLERS[SyncCalendar] = sync_calendar
