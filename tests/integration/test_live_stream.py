"""The live stream (`GET /v1/stream`, Server-Sent Events) read with an SSE client (`httpx-sse`):
catch-up then live in log order, scoped to the caller's organization, filtered, resumed by
`Last-Event-ID` across a server restart without gap or duplicate, keep-alives when idle, and a
client that falls too far behind cut off with the id to resume from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import wait
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from api.runtime import Runtime
from commands import models as m
from infra.database import ConnectionInfo
from tests.conftest import OWNER, served, start_runtime
from tests.tenants import Tenant

Json = dict[str, Any]


def events_of(source: Iterator[ServerSentEvent], count: int) -> list[ServerSentEvent]:
    """The next `count` events with data (the `retry:` preamble carries none)."""
    received: list[ServerSentEvent] = []
    for event in source:
        if event.data:
            received.append(event)
        if len(received) == count:
            break
    return received


def envelopes(events: list[ServerSentEvent]) -> list[Json]:
    decoded = [json.loads(event.data) for event in events]
    assert [event.id for event in events] == [str(e["position"]) for e in decoded]
    assert [event.event for event in events] == [e["type"] for e in decoded]
    return decoded


def log_of(http: httpx.Client, **params: Any) -> list[Json]:
    resp = http.get("/v1/log", params={"limit": 100_000, **params}, headers=OWNER)
    return [json.loads(line) for line in resp.text.splitlines()]


def test_catch_up_then_live_scoped_and_filtered(runtime: Runtime) -> None:
    with served(runtime) as http:
        a, b = Tenant.found(http, "A"), Tenant.found(http, "B")
        start = max(a.position, b.position)
        course = a.act(a.owner, "POST", "/v1/things", json={"type": "course", "name": "before"})
        b.act(b.owner, "POST", "/v1/things", json={"type": "course", "name": "other org"})
        with connect_sse(http, "GET", "/v1/stream", params={"after": start},
                         headers=a.owner.headers) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            events = source.iter_sse()
            (first,) = envelopes(events_of(events, 1))
            assert (first["stream_id"], first["data"]["name"]) == (course["id"], "before")
            a.act(a.owner, "PATCH", f"/v1/things/{course['id']}", json={"name": "live"})
            b.act(b.owner, "POST", "/v1/things", json={"type": "course", "name": "still other"})
            creator = a.act(a.owner, "POST", "/v1/things", json={"type": "creator", "name": "Ann"})
            later = envelopes(events_of(events, 2))
        assert [(e["type"], e["stream_id"]) for e in later] == [
            ("thing.updated", course["id"]), ("thing.created", creator["id"])]
        assert all(e["org_id"] == a.id for e in [first, *later])
        assert [first, *later] == [e for e in log_of(http, after=start) if e["org_id"] == a.id]

        for params, want in (({"type": "thing.updated"}, [("thing.updated", course["id"])]),
                             ({"thing_type": "creator"}, [("thing.created", creator["id"])]),
                             ({"stream_id": course["id"]}, [("thing.created", course["id"]),
                                                            ("thing.updated", course["id"])])):
            with connect_sse(http, "GET", "/v1/stream", params={"after": start, **params},
                             headers=a.owner.headers) as source:
                got = envelopes(events_of(source.iter_sse(), len(want)))
            assert [(e["type"], e["stream_id"]) for e in got] == want

        with connect_sse(http, "GET", "/v1/stream", params={"after": start, "limit": 2},
                         headers=a.owner.headers) as source:
            assert envelopes([e for e in source.iter_sse() if e.data]) == [first, later[0]]  # then it ends
        with http.stream("GET", "/v1/stream", params={"heartbeat": 0.2}, headers=a.owner.headers) as idle:
            lines = idle.iter_lines()
            assert next(lines) == "retry: 1000"
            assert ": keep-alive" in [next(lines) for _ in range(3)]
        for params in ({"type": "nope"}, {"after": -1}, {"heartbeat": 0}):
            assert http.get("/v1/stream", params=params, headers=a.owner.headers).status_code == 422
        assert http.get("/v1/stream", headers={**a.owner.headers, "Last-Event-ID": "x"}).status_code == 422
        assert http.get("/v1/stream", headers=a.customer.headers).status_code == 403


def test_resume_by_last_event_id_across_a_server_restart(fresh_db: ConnectionInfo) -> None:
    first_runtime = start_runtime(fresh_db)
    try:
        head = first_runtime.head()
        for i in range(5):
            first_runtime.bus.execute(m.CreateThing(type="course", name=f"c{i}"))
        with served(first_runtime) as http, \
                connect_sse(http, "GET", "/v1/stream", params={"after": head}) as source:
            seen = envelopes(events_of(source.iter_sse(), 3))
    finally:
        first_runtime.close()
    last_id = seen[-1]["position"]

    second_runtime = start_runtime(fresh_db)
    try:
        for i in range(5, 8):
            second_runtime.bus.execute(m.CreateThing(type="course", name=f"c{i}"))
        with served(second_runtime) as http:
            with connect_sse(http, "GET", "/v1/stream", headers={"Last-Event-ID": str(last_id)}) as source:
                events = source.iter_sse()
                rest = envelopes(events_of(events, 5))
                made = second_runtime.bus.execute(m.CreateThing(type="course", name="live")).body
                (live_one,) = envelopes(events_of(events, 1))
            assert live_one["position"] == made["position"]
            names = [e["data"]["name"] for e in seen + rest]
            assert names == [f"c{i}" for i in range(8)]
            assert seen + rest + [live_one] == log_of(http, after=head)
    finally:
        second_runtime.close()


def test_a_client_too_far_behind_is_cut_off_with_where_to_resume(runtime: Runtime) -> None:
    runtime.live.max_buffer = 5
    with served(runtime) as http:
        head = runtime.head()
        with connect_sse(http, "GET", "/v1/stream", params={"after": head}) as source:
            events = source.iter_sse()
            wait([runtime.bus.submit(m.CreateThing(type="course", name=f"b{i}")) for i in range(200)])
            received = [event for event in events if event.data]
        overflow = received[-1]
        assert overflow.event == "overflow" and "behind the log" in json.loads(overflow.data)["reason"]
        delivered = envelopes(received[:-1])
        assert json.loads(overflow.data)["resume_after"] == (delivered[-1]["position"] if delivered else None)
        assert [e["position"] for e in delivered] == list(range(head + 1, head + 1 + len(delivered)))
