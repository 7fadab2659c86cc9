"""Luma calendars: fetch a public calendar page and read its events from the schema.org JSON-LD.

`fetch_calendar` GETs ``{base_url}/{slug}``; `parse_calendar_page` reads every
``<script type="application/ld+json">`` block and accepts a single ``Event`` (or subtype), a list,
an ``@graph`` or an ``ItemList`` of ``ListItem``s. Parsing is all-or-nothing: a missing or
malformed value raises `LumaSyncError` naming the event (``event #3 has no startDate``), so a
caller never writes half a page. A page whose JSON-LD holds an ``ItemList`` without items is an
empty calendar; a page whose JSON-LD holds neither events nor an ``ItemList`` is an error (so a
change of page format cannot look like "every event was removed").

`LumaEvent.properties` gives the properties of a ONE event thing (the title is the thing name):

==================== ========================================================================
key                  value
==================== ========================================================================
``description``      text or null
``coverImage``       URL of the first ``image`` or null
``lumaUrl``          the event page URL or null
``lumaEventId``      the sync key: last path segment of the URL, else ``@id``/``identifier``
``lumaSlug``         last path segment of the URL or null
``eventType``        "in-person" | "virtual" | "hybrid" (from ``eventAttendanceMode``)
``startDate``        ISO 8601 in UTC (``2026-03-05T00:00:00+00:00``)
``endDate``          ISO 8601 in UTC or null
``timezone``         IANA name from ``timezone``/``eventSchedule.scheduleTimezone``, else "UTC"
``location``         ``{name, address, latitude, longitude}`` (each may be null) or null
``hosts``            names of the ``organizer``s and ``performer``s, in page order
``registrationType`` "paid" (an offer price > 0, or ``isAccessibleForFree: false``), else
                     "approval" (custom ``requiresApproval: true``), else "free"
``registrationCount`` custom ``attendeeCount``, else ``maximumAttendeeCapacity`` minus
                     ``remainingAttendeeCapacity``, else null
``capacity``         ``maximumAttendeeCapacity`` or null
``cancelled``        ``eventStatus`` is ``EventCancelled``
==================== ========================================================================

The sync adds ``eventStatus``, ``published`` and ``featured`` (see `domain.community_events`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from domain import community_events

__all__ = ["LumaEvent", "LumaSyncError", "event_status", "fetch_calendar", "parse_calendar_page"]

SCHEMA_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "Event", "BusinessEvent", "ChildrensEvent", "ComedyEvent", "CourseInstance", "DanceEvent",
        "DeliveryEvent", "EducationEvent", "EventSeries", "ExhibitionEvent", "Festival", "FoodEvent",
        "Hackathon", "LiteraryEvent", "MusicEvent", "PublicationEvent", "BroadcastEvent",
        "OnDemandEvent", "SaleEvent", "ScreeningEvent", "SocialEvent", "SportsEvent", "TheaterEvent",
        "VisualArtsEvent",
    }
)
"""schema.org ``Event`` and its subtypes."""

_ATTENDANCE: Final[Mapping[str, str]] = {
    "OfflineEventAttendanceMode": "in-person",
    "OnlineEventAttendanceMode": "virtual",
    "MixedEventAttendanceMode": "hybrid",
}
_ADDRESS_PARTS: Final[tuple[str, ...]] = (
    "streetAddress", "addressLocality", "addressRegion", "postalCode", "addressCountry",
)
_USER_AGENT: Final[str] = "one-platform-luma-sync/1.0"


class LumaSyncError(Exception):
    """The calendar could not be fetched or parsed; `reason` (also the message) says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LumaEvent:
    """One event of a Luma calendar, with the fields of the Poktapok ``events`` table."""

    luma_event_id: str
    slug: str | None
    luma_url: str | None
    title: str
    description: str | None
    cover_image: str | None
    event_type: str
    start: datetime
    end: datetime | None
    timezone: str
    location_name: str | None
    address: str | None
    latitude: float | None
    longitude: float | None
    hosts: tuple[str, ...]
    cancelled: bool
    registration_type: str
    registration_count: int | None
    capacity: int | None

    def properties(self) -> dict[str, Any]:
        """The JSON-safe properties of the event thing (keys in the module docstring)."""
        place = (self.location_name, self.address, self.latitude, self.longitude)
        return {
            "description": self.description,
            "coverImage": self.cover_image,
            "lumaUrl": self.luma_url,
            "lumaEventId": self.luma_event_id,
            "lumaSlug": self.slug,
            "eventType": self.event_type,
            "startDate": self.start.astimezone(UTC).isoformat(),
            "endDate": None if self.end is None else self.end.astimezone(UTC).isoformat(),
            "timezone": self.timezone,
            "location": None if place == (None,) * 4 else dict(
                zip(("name", "address", "latitude", "longitude"), place, strict=True)
            ),
            "hosts": list(self.hosts),
            "registrationType": self.registration_type,
            "registrationCount": self.registration_count,
            "capacity": self.capacity,
            "cancelled": self.cancelled,
        }


def event_status(event: LumaEvent | Mapping[str, Any], now: datetime) -> str:
    """"cancelled", "upcoming", "live" or "past" at `now` (rule: `domain.community_events`)."""
    properties = event.properties() if isinstance(event, LumaEvent) else event
    return community_events.event_status(properties, now)


def fetch_calendar(slug: str, base_url: str, timeout_s: float = 10.0) -> list[LumaEvent]:
    """GET ``{base_url}/{slug}`` and parse its events; any failure raises `LumaSyncError`."""
    url = f"{base_url.rstrip('/')}/{slug}"
    try:
        response = httpx.get(
            url, timeout=timeout_s, follow_redirects=True,
            headers={"User-Agent": _USER_AGENT, "Accept": "text/html"},
        )
    except httpx.TimeoutException as exc:
        raise LumaSyncError(f"luma did not answer within {timeout_s:g}s for {url}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise LumaSyncError(f"could not reach luma at {url}: {exc}") from exc
    if not response.is_success:
        raise LumaSyncError(f"luma answered {response.status_code} for {url}")
    return parse_calendar_page(response.text)


class _JsonLdScripts(HTMLParser):
    """Collects the text of every ``<script type="application/ld+json">``."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            kind = (dict(attrs).get("type") or "").split(";")[0].strip().lower()
            self._current = [] if kind == "application/ld+json" else None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._current is not None:
            self.blocks.append("".join(self._current))
            self._current = None


def parse_calendar_page(html: str) -> list[LumaEvent]:
    """Every event in the page's JSON-LD, in page order (a repeated event counts once)."""
    scripts = _JsonLdScripts()
    scripts.feed(html)
    scripts.close()
    if not scripts.blocks:
        raise LumaSyncError("no JSON-LD in the page")
    nodes: list[dict[str, Any]] = []
    listed = False
    for number, block in enumerate(scripts.blocks, start=1):
        try:
            document = json.loads(block)
        except json.JSONDecodeError as exc:
            raise LumaSyncError(f"JSON-LD block #{number} is not valid JSON: {exc}") from exc
        listed = _collect(document, nodes) or listed
    if not listed:
        raise LumaSyncError("no JSON-LD events in the page")
    events: dict[str, LumaEvent] = {}
    for number, node in enumerate(nodes, start=1):
        try:
            event = _event(node)
        except _Invalid as exc:
            raise LumaSyncError(f"event #{number} {exc}") from None
        events.setdefault(event.luma_event_id, event)
    return list(events.values())


def _types(node: Mapping[str, Any]) -> set[str]:
    raw = node.get("@type")
    names = raw if isinstance(raw, list) else [raw]
    return {_term(name) for name in names if isinstance(name, str)}


def _term(value: str) -> str:
    """``https://schema.org/EventCancelled`` / ``schema:EventCancelled`` -> ``EventCancelled``."""
    return value.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _collect(node: Any, out: list[dict[str, Any]]) -> bool:
    """Append the event nodes under `node` to `out`; True if it held events or an empty ItemList."""
    if isinstance(node, list):
        return any([_collect(item, out) for item in node])
    if not isinstance(node, dict):
        return False
    types = _types(node)
    if types & SCHEMA_EVENT_TYPES:
        out.append(node)
        return True
    if "@graph" in node:
        return _collect(node["@graph"], out)
    if "ItemList" in types:
        elements = node.get("itemListElement")
        return _collect(elements, out) or not elements
    return "ListItem" in types and _collect(node.get("item"), out)


class _Invalid(Exception):
    """A value of one event is missing or malformed (message: "has no startDate", ...)."""


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _first(value: Any) -> Any:
    return (value[0] if value else None) if isinstance(value, list) else value


def _each(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _last_segment(url: str | None) -> str | None:
    return (urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or None) if url else None


def _http_url(value: Any) -> str | None:
    text = _text(value)
    return text if text and urlsplit(text).scheme in ("http", "https") else None


def _ids(node: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """(luma_event_id, slug, luma_url)."""
    url = _http_url(node.get("url")) or _http_url(node.get("@id"))
    slug = _last_segment(url)
    identifier = _first(node.get("identifier"))
    if isinstance(identifier, dict):
        identifier = identifier.get("value")
    fallback = _text(node.get("@id")) if url is None else None
    key = slug or fallback or (str(identifier).strip() if isinstance(identifier, str | int) else None)
    if not key:
        raise _Invalid("has no url, @id or identifier")
    return key, slug, url


def _zone(node: Mapping[str, Any]) -> str:
    schedule = _first(node.get("eventSchedule"))
    name = _text(node.get("timezone")) or (
        _text(schedule.get("scheduleTimezone")) if isinstance(schedule, dict) else None
    )
    if name is None:
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Invalid(f"has an unknown timezone {name!r}") from None
    return name


def _moment(node: Mapping[str, Any], key: str, zone: str) -> datetime | None:
    value = node.get(key)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise _Invalid(f"has an invalid {key} {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise _Invalid(f"has an invalid {what} {value!r}")


def _count(node: Mapping[str, Any], key: str) -> int | None:
    number = _number(node.get(key), key)
    if number is None:
        return None
    if not number.is_integer() or number < 0:
        raise _Invalid(f"has an invalid {key} {node[key]!r}")
    return int(number)


def _image(value: Any) -> str | None:
    image = _first(value)
    if isinstance(image, dict):
        return _text(image.get("url")) or _text(image.get("contentUrl"))
    return _text(image)


def _address(value: Any) -> str | None:
    if not isinstance(value, dict):
        return _text(value)
    parts = [part.get("name") if isinstance(part, dict) else part
             for part in (value.get(key) for key in _ADDRESS_PARTS)]
    return ", ".join(text for text in map(_text, parts) if text) or None


def _place(value: Any) -> tuple[str | None, str | None, float | None, float | None]:
    """(name, address, latitude, longitude) of the first physical location."""
    places = _each(value)
    place = next((p for p in places if isinstance(p, dict) and "VirtualLocation" not in _types(p)), None)
    if place is None:
        return next((_text(p) for p in places if _text(p)), None), None, None, None
    geo = _first(place.get("geo"))
    geo = geo if isinstance(geo, dict) else {}
    return (
        _text(place.get("name")),
        _address(place.get("address")),
        _number(geo.get("latitude"), "latitude"),
        _number(geo.get("longitude"), "longitude"),
    )


def _hosts(node: Mapping[str, Any]) -> tuple[str, ...]:
    people = [*_each(node.get("organizer")), *_each(node.get("performer"))]
    names = (_text(p.get("name")) if isinstance(p, dict) else _text(p) for p in people)
    return tuple(dict.fromkeys(name for name in names if name))


def _registration_type(node: Mapping[str, Any]) -> str:
    prices = [
        _number(offer.get(key), key)
        for offer in _each(node.get("offers")) if isinstance(offer, dict)
        for key in ("price", "lowPrice", "highPrice")
    ]
    if any((price or 0) > 0 for price in prices) or node.get("isAccessibleForFree") is False:
        return "paid"
    return "approval" if node.get("requiresApproval") is True else "free"


def _event(node: Mapping[str, Any]) -> LumaEvent:
    key, slug, url = _ids(node)
    title = _text(node.get("name"))
    if title is None:
        raise _Invalid("has no name")
    zone = _zone(node)
    start = _moment(node, "startDate", zone)
    if start is None:
        raise _Invalid("has no startDate")
    end = _moment(node, "endDate", zone)
    if end is not None and end < start:
        raise _Invalid("ends before it starts")
    name, address, latitude, longitude = _place(node.get("location"))
    capacity = _count(node, "maximumAttendeeCapacity")
    remaining = _count(node, "remainingAttendeeCapacity")
    attendees = _count(node, "attendeeCount")
    if attendees is None and capacity is not None and remaining is not None:
        attendees = max(capacity - remaining, 0)
    mode = _text(node.get("eventAttendanceMode"))
    status = _text(node.get("eventStatus"))
    return LumaEvent(
        luma_event_id=key,
        slug=slug,
        luma_url=url,
        title=title,
        description=_text(node.get("description")),
        cover_image=_image(node.get("image")),
        event_type=_ATTENDANCE.get(_term(mode), "in-person") if mode else "in-person",
        start=start,
        end=end,
        timezone=zone,
        location_name=name,
        address=address,
        latitude=latitude,
        longitude=longitude,
        hosts=_hosts(node),
        cancelled=status is not None and _term(status) == "EventCancelled",
        registration_type=_registration_type(node),
        registration_count=attendees,
        capacity=capacity,
    )
