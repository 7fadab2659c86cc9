"""Luma calendar sync: JSON-LD parsing, fetching from a local Luma stand-in, and the sync plan."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from domain.community_events import (
    EVENT_THING_STATUS,
    Change,
    Create,
    ExistingEvent,
    FetchedEvent,
    Update,
    plan_sync,
)
from domain.ontology import THING_STATUSES
from domain.things import merge_properties
from providers.luma import LumaEvent, LumaSyncError, event_status, fetch_calendar, parse_calendar_page
from tests.support.luma_server import LumaServer, luma_event, render_calendar_page

CDMX = timezone(timedelta(hours=-6))
START = datetime(2026, 3, 5, 18, 0, tzinfo=CDMX)
BEFORE = START - timedelta(days=1)


def _page(*blocks: Any) -> str:
    scripts = "".join(f'<script type="application/ld+json">{json.dumps(b)}</script>' for b in blocks)
    return f"<html><head>{scripts}</head><body><p>calendar</p></body></html>"


def _one(**overrides: Any) -> LumaEvent:
    [event] = parse_calendar_page(_page(luma_event("hack-night", "Hack Night", START, **overrides)))
    return event


def _error(html: str) -> str:
    with pytest.raises(LumaSyncError) as caught:
        parse_calendar_page(html)
    return caught.value.reason


# ------------------------------------------------------------------------------------------ parsing
def test_parses_every_field_of_a_luma_page() -> None:
    description = "Hack & demo </script> <b>night</b>"
    [event] = parse_calendar_page(render_calendar_page([
        luma_event("hack-night", "  Hack Night ", START, timezone="America/Mexico_City",
                   description=description),
    ]))
    assert event == LumaEvent(
        luma_event_id="hack-night",
        slug="hack-night",
        luma_url="https://lu.ma/hack-night",
        title="Hack Night",
        description=description,
        cover_image="https://images.lumacdn.com/event-covers/hack-night.png",
        event_type="in-person",
        start=START,
        end=START + timedelta(hours=2),
        timezone="America/Mexico_City",
        location_name="Frutero Club HQ",
        address="Av. Álvaro Obregón 99, Ciudad de México, CDMX, 06700, MX",
        latitude=19.4194,
        longitude=-99.1617,
        hosts=("Frutero Club", "Mel Guerrero"),
        cancelled=False,
        registration_type="free",
        registration_count=42,
        capacity=80,
    )
    assert event.properties() == {
        "description": description,
        "coverImage": "https://images.lumacdn.com/event-covers/hack-night.png",
        "lumaUrl": "https://lu.ma/hack-night",
        "lumaEventId": "hack-night",
        "lumaSlug": "hack-night",
        "eventType": "in-person",
        "startDate": "2026-03-06T00:00:00+00:00",
        "endDate": "2026-03-06T02:00:00+00:00",
        "timezone": "America/Mexico_City",
        "location": {"name": "Frutero Club HQ",
                     "address": "Av. Álvaro Obregón 99, Ciudad de México, CDMX, 06700, MX",
                     "latitude": 19.4194, "longitude": -99.1617},
        "hosts": ["Frutero Club", "Mel Guerrero"],
        "registrationType": "free",
        "registrationCount": 42,
        "capacity": 80,
        "cancelled": False,
    }
    assert json.loads(json.dumps(event.properties())) == event.properties()


def test_minimal_event_defaults() -> None:
    block = {"@type": "Event", "name": "Meetup", "startDate": "2026-03-05T18:00:00", "identifier": "evt-1"}
    [event] = parse_calendar_page(_page(block))
    assert (event.luma_event_id, event.slug, event.luma_url) == ("evt-1", None, None)
    assert event.start == datetime(2026, 3, 5, 18, 0, tzinfo=UTC) and event.end is None
    assert (event.timezone, event.event_type, event.registration_type) == ("UTC", "in-person", "free")
    assert event.properties()["location"] is None
    assert (event.hosts, event.registration_count, event.capacity) == ((), None, None)


def test_naive_dates_are_read_in_the_event_timezone() -> None:
    event = _one(startDate="2026-03-05T18:00:00", endDate=None, timezone="America/Mexico_City")
    assert event.start.utcoffset() == timedelta(hours=-6)
    assert event.properties()["startDate"] == "2026-03-06T00:00:00+00:00"


@pytest.mark.parametrize("shape", ["single", "list", "graph", "item_list", "list_items_without_wrapper"])
def test_accepts_every_json_ld_shape(shape: str) -> None:
    a, b = luma_event("a", "A", START), luma_event("b", "B", START)
    document: Any = {
        "single": [a, b],
        "list": [[a, b]],
        "graph": [{"@context": "https://schema.org", "@graph": [{"@type": "Organization"}, a, b]}],
        "item_list": [{"@type": "ItemList", "itemListElement": [
            {"@type": "ListItem", "position": 1, "item": a},
            {"@type": "ListItem", "position": 2, "item": b},
        ]}],
        "list_items_without_wrapper": [{"@type": "ItemList", "itemListElement": [a, b]}],
    }[shape]
    assert [e.luma_event_id for e in parse_calendar_page(_page(*document))] == ["a", "b"]


@pytest.mark.parametrize(
    "kind", ["SocialEvent", "https://schema.org/EducationEvent", ["Event", "BusinessEvent"]]
)
def test_event_subtypes_count(kind: Any) -> None:
    assert _one(**{"@type": kind}).title == "Hack Night"


def test_an_event_repeated_in_two_blocks_counts_once() -> None:
    event = luma_event("a", "A", START)
    html = _page(event, {"@type": "ItemList", "itemListElement": [{"@type": "ListItem", "item": event}]})
    assert [e.luma_event_id for e in parse_calendar_page(html)] == ["a"]


def test_an_empty_item_list_is_an_empty_calendar() -> None:
    assert parse_calendar_page(render_calendar_page([])) == []


def test_virtual_and_hybrid_events() -> None:
    online = {"@type": "VirtualLocation", "url": "https://meet.example/x"}
    virtual = _one(eventAttendanceMode="https://schema.org/OnlineEventAttendanceMode", location=online)
    assert virtual.event_type == "virtual" and virtual.properties()["location"] is None
    hybrid = _one(eventAttendanceMode="MixedEventAttendanceMode",
                  location=[online, {"@type": "Place", "name": "Casa", "address": "Roma Norte, CDMX"}])
    assert hybrid.event_type == "hybrid"
    assert hybrid.properties()["location"] == {"name": "Casa", "address": "Roma Norte, CDMX",
                                               "latitude": None, "longitude": None}


def test_cancelled_event() -> None:
    event = _one(eventStatus="https://schema.org/EventCancelled")
    assert event.cancelled and event_status(event, BEFORE) == "cancelled"
    assert not _one(eventStatus="https://schema.org/EventRescheduled").cancelled


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "free"),
        ({"offers": None}, "free"),
        ({"offers": {"@type": "Offer", "price": "25.00", "priceCurrency": "MXN"}}, "paid"),
        ({"offers": [{"@type": "AggregateOffer", "lowPrice": 0, "highPrice": 150}]}, "paid"),
        ({"offers": None, "isAccessibleForFree": False}, "paid"),
        ({"isAccessibleForFree": True, "requiresApproval": True}, "approval"),
    ],
)
def test_registration_type(overrides: dict[str, Any], expected: str) -> None:
    assert _one(**overrides).registration_type == expected


def test_registration_count_and_images() -> None:
    event = _one(attendeeCount=7, maximumAttendeeCapacity=None,
                 image={"@type": "ImageObject", "url": "https://img.example/c.png"})
    assert (event.registration_count, event.capacity, event.cover_image) == (7, None, "https://img.example/c.png")
    assert _one(remainingAttendeeCapacity=None).registration_count is None


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<html><script>var a = 1;</script></html>", "no JSON-LD in the page"),
        (_page({"@type": "Organization", "name": "Frutero"}), "no JSON-LD events in the page"),
        (_page({"@type": "ItemList", "itemListElement": [{"@type": "ListItem", "url": "https://lu.ma/a"}]}),
         "no JSON-LD events in the page"),
        (_page(luma_event("a", "A", START)) + '<script type="application/ld+json">{"@type":</script>',
         "JSON-LD block #2 is not valid JSON: "),
        (_page(luma_event("a", "A", START), luma_event("b", "B", START, startDate=None)),
         "event #2 has no startDate"),
        (_page(luma_event("a", "A", START, startDate="next friday")), "event #1 has an invalid startDate"),
        (_page(luma_event("a", "A", START, name=None)), "event #1 has no name"),
        (_page(luma_event("a", "A", START, url=None, **{"@id": None})),
         "event #1 has no url, @id or identifier"),
        (_page(luma_event("a", "A", START, timezone="Mars/Olympus")), "event #1 has an unknown timezone"),
        (_page(luma_event("a", "A", START, end=START - timedelta(hours=1))),
         "event #1 ends before it starts"),
        (_page(luma_event("a", "A", START, maximumAttendeeCapacity="lots")),
         "event #1 has an invalid maximumAttendeeCapacity"),
    ],
)
def test_malformed_pages_fail_whole_with_a_reason(html: str, reason: str) -> None:
    assert _error(html).startswith(reason)


# ------------------------------------------------------------------------------------------ fetching
@pytest.fixture
def luma() -> Iterator[LumaServer]:
    with LumaServer() as server:
        yield server


def test_fetch_calendar(luma: LumaServer) -> None:
    luma.publish("fruteroclub", [luma_event("a", "A", START), luma_event("b", "B", START)])
    events = fetch_calendar("fruteroclub", luma.base_url + "/")
    assert [e.title for e in events] == ["A", "B"]
    assert luma.requests == {"fruteroclub": 1}


@pytest.mark.parametrize(("slug", "status"), [("broken", 500), ("nobody", 404)])
def test_fetch_calendar_names_the_http_status(luma: LumaServer, slug: str, status: int) -> None:
    luma.serve_raw("broken", "<h1>Internal error</h1>", status=500)
    with pytest.raises(LumaSyncError, match=f"luma answered {status} for {luma.base_url}/{slug}$"):
        fetch_calendar(slug, luma.base_url)


def test_fetch_calendar_fails_on_a_malformed_page(luma: LumaServer) -> None:
    luma.serve_raw("fruteroclub", "<html><body>maintenance</body></html>")
    with pytest.raises(LumaSyncError, match=r"^no JSON-LD in the page$"):
        fetch_calendar("fruteroclub", luma.base_url)


def test_fetch_calendar_network_errors() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(LumaSyncError, match=rf"luma did not answer within 0.2s for {base}/x"):
            fetch_calendar("x", base, timeout_s=0.2)
    with pytest.raises(LumaSyncError, match=rf"^could not reach luma at {base}/x: "):
        fetch_calendar("x", base)


# ------------------------------------------------------------------------------------------ status
def test_event_status_follows_the_clock() -> None:
    event = _one()
    assert event_status(event, BEFORE) == "upcoming"
    assert event_status(event, START) == "live"
    assert event_status(event.properties(), START + timedelta(hours=2)) == "past"
    no_end = _one(endDate=None)
    assert event_status(no_end, START + timedelta(hours=1, minutes=59)) == "live"
    assert event_status(no_end, START + timedelta(hours=2)) == "past"
    with pytest.raises(ValueError, match="timezone-aware"):
        event_status(event, datetime(2026, 3, 5))


# ------------------------------------------------------------------------------------------ sync plan
def _fetched(*events: dict[str, Any]) -> list[FetchedEvent]:
    page = render_calendar_page(list(events))
    return [FetchedEvent(e.title, e.properties()) for e in parse_calendar_page(page)]


def _apply(things: dict[str, ExistingEvent], changes: list[Change]) -> dict[str, ExistingEvent]:
    """What the sync's caller would write: create things, rename, merge property patches."""
    result = dict(things)
    for change in changes:
        if isinstance(change, Create):
            result[change.luma_event_id] = ExistingEvent(
                f"thing-{change.luma_event_id}", change.name, change.properties, change.status)
        else:
            current = result[change.luma_event_id]
            merged = merge_properties(dict(current.properties), change.properties)
            result[change.luma_event_id] = ExistingEvent(
                current.thing_id, change.name or current.name, merged, current.status)
    return result


def test_new_events_are_created_then_a_second_run_plans_nothing() -> None:
    page = _fetched(luma_event("b", "B", START), luma_event("a", "A", START))
    changes = plan_sync({}, page, BEFORE)
    assert [(type(c), c.luma_event_id, c.name) for c in changes] == [(Create, "a", "A"), (Create, "b", "B")]
    create = changes[0]
    assert isinstance(create, Create) and create.status == EVENT_THING_STATUS in THING_STATUSES
    assert create.properties == {**page[1].properties, "eventStatus": "upcoming", "published": True,
                                 "featured": False}
    assert plan_sync(_apply({}, changes), page, BEFORE) == []


def test_a_changed_title_is_one_update() -> None:
    things = _apply({}, plan_sync({}, _fetched(luma_event("a", "A", START, description="Demos")), BEFORE))
    changes = plan_sync(things, _fetched(luma_event("a", "A (sold out)", START, description="Demos")), BEFORE)
    assert changes == [Update("a", "thing-a", "A (sold out)", {})]


def test_property_changes_are_a_patch_and_operator_switches_are_kept() -> None:
    things = _apply({}, plan_sync({}, _fetched(luma_event("a", "A", START)), BEFORE))
    a = things["a"]
    things["a"] = ExistingEvent(a.thing_id, a.name, {**a.properties, "published": False, "featured": True},
                                a.status)
    changes = plan_sync(things, _fetched(luma_event("a", "A", START, endDate=None, attendeeCount=50)), BEFORE)
    assert changes == [Update("a", "thing-a", None, {"endDate": None, "registrationCount": 50})]
    after = _apply(things, changes)["a"].properties
    assert (after["published"], after["featured"], "endDate" in after) == (False, True, False)
    assert plan_sync(_apply(things, changes), _fetched(luma_event("a", "A", START, endDate=None,
                                                                  attendeeCount=50)), BEFORE) == []


def test_a_cancelled_event_is_updated() -> None:
    things = _apply({}, plan_sync({}, _fetched(luma_event("a", "A", START)), BEFORE))
    cancelled = _fetched(luma_event("a", "A", START, eventStatus="https://schema.org/EventCancelled"))
    assert plan_sync(things, cancelled, BEFORE) == [
        Update("a", "thing-a", None, {"cancelled": True, "eventStatus": "cancelled"})
    ]


def test_vanished_events_upcoming_ones_are_cancelled_past_ones_stay() -> None:
    page = _fetched(luma_event("old", "Old", START - timedelta(days=30)), luma_event("soon", "Soon", START))
    things = _apply({}, plan_sync({}, page, BEFORE))
    changes = plan_sync(things, [], BEFORE)
    assert changes == [Update("soon", "thing-soon", None, {"cancelled": True, "eventStatus": "cancelled"})]
    assert plan_sync(_apply(things, changes), [], BEFORE) == []


def test_a_vanished_event_still_moves_to_past() -> None:
    things = _apply({}, plan_sync({}, _fetched(luma_event("a", "A", START)), START))
    changes = plan_sync(things, [], START + timedelta(days=1))
    assert changes == [Update("a", "thing-a", None, {"eventStatus": "past"})]


def test_status_moves_upcoming_live_past() -> None:
    page = _fetched(luma_event("a", "A", START))
    things = _apply({}, plan_sync({}, page, BEFORE))
    seen = [things["a"].properties["eventStatus"]]
    for now in (START + timedelta(minutes=5), START + timedelta(hours=1), START + timedelta(hours=3)):
        changes = plan_sync(things, page, now)
        things = _apply(things, changes)
        seen += [c.properties["eventStatus"] for c in changes]
    assert seen == ["upcoming", "live", "past"]


def test_archived_things_are_left_alone() -> None:
    page = _fetched(luma_event("a", "A", START), luma_event("b", "B", START))
    things = _apply({}, plan_sync({}, page, BEFORE))
    things = {k: ExistingEvent(t.thing_id, t.name, t.properties, "archived") for k, t in things.items()}
    assert plan_sync(things, _fetched(luma_event("a", "Renamed", START)), BEFORE) == []


def test_duplicate_ids_are_refused() -> None:
    twice = _fetched(luma_event("a", "A", START)) * 2
    with pytest.raises(ValueError, match="listed twice"):
        plan_sync({}, twice, BEFORE)
