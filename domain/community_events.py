"""Community events synced from a Luma calendar: their status rule and the sync plan.

Pure standard-library module (no I/O). A community event is a ONE thing whose name is the event
title and whose properties hold the Luma data (keys documented in `providers.luma`) plus three
keys this module owns:

* ``eventStatus`` -- "upcoming", "live", "past" or "cancelled", derived by `event_status`. It is
  a property, not the thing status: thing statuses are fixed by the ontology
  (`domain.ontology.THING_STATUSES`), and synced event things are created ``active``.
* ``published`` / ``featured`` -- operator switches: True / False on creation, never written by a
  later sync.

Sync policy (`plan_sync`), per ``lumaEventId``, in ascending id order:

* listed on the page, not known yet -> `Create` with the Luma properties, ``eventStatus``,
  ``published: True`` and ``featured: False``;
* listed and known -> `Update` carrying only what differs (name, changed property keys,
  ``eventStatus``); nothing when everything is equal, so syncing the same page twice plans nothing;
* known but gone from the page -> the Luma data stays as it is. If the event is still upcoming it
  was taken off the calendar: it becomes ``cancelled: True`` / ``eventStatus: "cancelled"``.
  Otherwise (live, past, already cancelled) only ``eventStatus`` follows the clock;
* known with thing status ``archived`` -> left alone (an operator retired it), never re-created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

__all__ = [
    "EVENT_STATUSES",
    "EVENT_THING_STATUS",
    "LIVE_WITHOUT_END",
    "Change",
    "Create",
    "ExistingEvent",
    "FetchedEvent",
    "Update",
    "event_status",
    "plan_sync",
]

EVENT_STATUSES: Final[tuple[str, ...]] = ("upcoming", "live", "past", "cancelled")
EVENT_THING_STATUS: Final[str] = "active"
"""Thing status (from `domain.ontology.THING_STATUSES`) of the event things a sync creates."""
LIVE_WITHOUT_END: Final[timedelta] = timedelta(hours=2)
"""How long an event without ``endDate`` counts as live after its start."""

_ARCHIVED: Final[str] = "archived"
_OPERATOR_KEYS: Final[frozenset[str]] = frozenset({"published", "featured"})


def _instant(properties: Mapping[str, Any], key: str) -> datetime | None:
    value = properties.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be an ISO 8601 string, not {value!r}")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{key} {value!r} has no UTC offset")
    return moment


def event_status(properties: Mapping[str, Any], now: datetime) -> str:
    """"cancelled", "upcoming", "live" (start <= now < end) or "past" for an event's properties.

    Reads ``cancelled``, ``startDate`` and ``endDate`` (ISO 8601 with offset); an event without
    end is live for `LIVE_WITHOUT_END`. Raises ValueError on a naive `now` or a bad date.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if properties.get("cancelled") is True:
        return "cancelled"
    start = _instant(properties, "startDate")
    if start is None:
        raise ValueError("startDate is missing")
    end = _instant(properties, "endDate") or start + LIVE_WITHOUT_END
    if now < start:
        return "upcoming"
    return "live" if now < end else "past"


@dataclass(frozen=True)
class ExistingEvent:
    """A community-event thing already synced from the calendar."""

    thing_id: str
    name: str
    properties: Mapping[str, Any]
    status: str
    """The ONE thing status (``active``, ``archived``, ...), not ``eventStatus``."""


@dataclass(frozen=True)
class FetchedEvent:
    """An event as just read from Luma: its title and properties (with ``lumaEventId``)."""

    name: str
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class Create:
    """Create an event thing of `status` with `name` and the full `properties`."""

    luma_event_id: str
    name: str
    properties: dict[str, Any]
    status: str = EVENT_THING_STATUS


@dataclass(frozen=True)
class Update:
    """Update thing `thing_id`: rename unless `name` is None; `properties` is a merge patch.

    The patch holds only the keys whose value changed; a None value removes the key.
    """

    luma_event_id: str
    thing_id: str
    name: str | None
    properties: dict[str, Any]


Change = Create | Update


def _update(key: str, current: ExistingEvent, name: str, desired: Mapping[str, Any]) -> list[Change]:
    patch = {k: value for k, value in desired.items() if current.properties.get(k) != value}
    new_name = None if name == current.name else name
    if new_name is None and not patch:
        return []
    return [Update(key, current.thing_id, new_name, patch)]


def _vanished(key: str, current: ExistingEvent, now: datetime) -> list[Change]:
    status = event_status(current.properties, now)
    if status == "upcoming":
        return _update(key, current, current.name, {"cancelled": True, "eventStatus": "cancelled"})
    return _update(key, current, current.name, {"eventStatus": status})


def _listed(fetched: Sequence[FetchedEvent]) -> dict[str, FetchedEvent]:
    listed: dict[str, FetchedEvent] = {}
    for event in fetched:
        key = event.properties.get("lumaEventId")
        if not isinstance(key, str) or not key:
            raise ValueError(f"fetched event {event.name!r} has no lumaEventId")
        if key in listed:
            raise ValueError(f"lumaEventId {key!r} is listed twice")
        listed[key] = event
    return listed


def plan_sync(
    existing: Mapping[str, ExistingEvent], fetched: Sequence[FetchedEvent], now: datetime
) -> list[Change]:
    """The changes that bring the synced things of one calendar in line with its page at `now`.

    `existing` maps ``lumaEventId`` to every thing synced so far (archived ones included, so they
    are not re-created); `fetched` is the whole page. See the module docstring for the policy.
    Raises ValueError on a fetched event without (or with a duplicate) ``lumaEventId``.
    """
    listed = _listed(fetched)
    changes: list[Change] = []
    for key in sorted(listed.keys() | existing.keys()):
        current, event = existing.get(key), listed.get(key)
        if event is None:
            if current is not None and current.status != _ARCHIVED:
                changes += _vanished(key, current, now)
            continue
        desired = {k: v for k, v in event.properties.items() if k not in _OPERATOR_KEYS}
        desired["eventStatus"] = event_status(desired, now)
        if current is None:
            changes.append(Create(key, event.name, {**desired, "published": True, "featured": False}))
        elif current.status != _ARCHIVED:
            changes += _update(key, current, event.name, desired)
    return changes
