"""Scheduled jobs and the Luma sync: a daily `luma.sync` schedule keeps community events current
from a Luma-shaped page served by a local server (new, changed, cancelled and vanished events;
an unchanged page appends nothing; a malformed page and a 500 fail the tick with a reason and
write nothing, and the next tick retries); ticks fire once across a restart and across processes;
the seeds' DSL example validates over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg

from api.runtime import Runtime
from domain.errors import DomainError
from domain.schedules import Schedule
from eventlog.reader import read_stream
from infra.database import ConnectionInfo
from tests.conftest import database_url, served, start_runtime
from tests.support.clock import MovableClock
from tests.support.dsl_examples import CREATE_AI_CLONE, CREATE_AI_CLONE_CONTEXT
from tests.support.luma_server import LumaServer, luma_event
from tests.support.waiting import wait_until

DAY_START = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)


def _fired(runtime: Runtime, schedule: str) -> int:
    with psycopg.connect(runtime.db.conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM one_events WHERE originator_id = %s"
                           " AND topic LIKE %s", (schedule, "%Schedule.Fired")).fetchone()
    return int(row[0]) if row else 0


def _thing_events(runtime: Runtime) -> int:
    with psycopg.connect(runtime.db.conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM one_events WHERE topic LIKE 'domain.things:%'").fetchone()
    return int(row[0]) if row else 0


def _events(http: httpx.Client, **params: Any) -> dict[str, dict[str, Any]]:
    r = http.get("/v1/community-events", params=params)
    assert r.status_code == 200, r.text
    return {e["properties"]["lumaEventId"]: e for e in r.json()["items"]}


def _tick(runtime: Runtime, clock: MovableClock, schedule: str, fired_before: int) -> dict[str, Any]:
    clock.advance(days=1)
    wait_until(lambda: _fired(runtime, schedule) > fired_before, "the next tick to fire", timeout=30)
    state: Schedule = runtime.event_log.repository.get(UUID(schedule))
    runtime.wait_for_sync(runtime.head())
    return {"outcome": state.last_outcome, "tick": state.last_tick}


def test_a_daily_luma_sync_keeps_community_events_current(fresh_db: ConnectionInfo) -> None:
    clock = MovableClock(DAY_START)
    soon, later = DAY_START + timedelta(days=3), DAY_START + timedelta(days=10)
    with LumaServer() as luma:
        luma.publish("fruteroclub", [
            luma_event("hack-night", "Hack Night", soon, soon + timedelta(hours=3)),
            luma_event("demo-day", "Demo Day", later, later + timedelta(hours=2)),
            luma_event("meetup", "Meetup", later, later + timedelta(hours=2)),
        ])
        runtime = start_runtime(fresh_db, luma_base_url=luma.base_url)
        runtime.start_sagas(clock=clock)
        try:
            with served(runtime) as http:
                r = http.post("/v1/schedules", json={
                    "name": "sync frutero luma calendar", "cron": "0 12 * * *", "job": "luma.sync",
                    "params": {"slug": "fruteroclub"}})
                assert r.status_code == 201, r.text
                schedule = r.json()["id"]
                assert r.json()["next_at"].startswith("2026-12-02T12:00:00")
                # wall time is still before the tick: nothing fires
                listed = http.get("/v1/schedules", params={"after": r.json()["position"]}).json()["items"]
                assert [(s["name"], s["fired"]) for s in listed] == [("sync frutero luma calendar", 0)]
                assert _tick(runtime, clock, schedule, 0)["outcome"] == "succeeded"
                events = _events(http)
                assert set(events) == {"hack-night", "demo-day", "meetup"}
                hack = events["hack-night"]["properties"]
                assert events["hack-night"]["name"] == "Hack Night"
                assert hack["eventStatus"] == "upcoming" and hack["published"] is True
                assert hack["lumaUrl"].endswith("/hack-night") and hack["location"]["latitude"] is not None

                things = _thing_events(runtime)
                assert _tick(runtime, clock, schedule, 1)["outcome"] == "succeeded"
                assert _thing_events(runtime) == things, "an unchanged page appended thing events"

                luma.publish("fruteroclub", [
                    luma_event("hack-night", "Hack Night CDMX", soon, soon + timedelta(hours=3)),
                    luma_event("demo-day", "Demo Day", later, later + timedelta(hours=2),
                               eventStatus="https://schema.org/EventCancelled"),
                ])  # renamed, cancelled, and the meetup vanished
                assert _tick(runtime, clock, schedule, 2)["outcome"] == "succeeded"
                events = _events(http)
                assert events["hack-night"]["name"] == "Hack Night CDMX"
                assert events["demo-day"]["properties"]["eventStatus"] == "cancelled"
                assert events["meetup"]["properties"]["eventStatus"] == "cancelled"
                assert set(_events(http, status="cancelled")) == {"demo-day", "meetup"}
                assert set(_events(http, published="true")) == {"hack-night", "demo-day", "meetup"}

                things = _thing_events(runtime)
                for broken, status in (("<html><script type=\"application/ld+json\">{nope", 200),
                                       ("upstream error", 500)):
                    luma.serve_raw("fruteroclub", broken, status)
                    assert _tick(runtime, clock, schedule, _fired(runtime, schedule))["outcome"] == "failed"
                    assert _thing_events(runtime) == things
                row = http.get("/v1/schedules").json()["items"][0]
                assert "500" in row["last_detail"]["reason"]
                luma.publish("fruteroclub", [
                    luma_event("hack-night", "Hack Night CDMX", soon, soon + timedelta(hours=3))])
                assert _tick(runtime, clock, schedule, _fired(runtime, schedule))["outcome"] == "succeeded"
                # the hack night has happened by now (the clock moved past it)
                assert _events(http)["hack-night"]["properties"]["eventStatus"] == "past"
        finally:
            runtime.close()


def test_a_tick_fires_once_across_a_restart_and_across_processes(fresh_db: ConnectionInfo) -> None:
    clock = MovableClock(DAY_START)
    with LumaServer() as luma:
        luma.publish("club", [])
        first = start_runtime(fresh_db, luma_base_url=luma.base_url)
        second = start_runtime(fresh_db, luma_base_url=luma.base_url)
        first.clock = second.clock = clock
        try:
            with served(first) as http:
                schedule = http.post("/v1/schedules", json={
                    "name": "hourly", "cron": "0 * * * *", "job": "luma.sync",
                    "params": {"slug": "club"}}).json()["id"]
            first.wait_for_sync(first.head())
            second.wait_for_sync(first.head())
            clock.advance(hours=3, minutes=30)  # the 12:00, 13:00 and 14:00 ticks came while ONE was down
            schedulers = [first.scheduler(), second.scheduler()]
            errors: list[BaseException] = []

            def fire(index: int) -> None:
                try:
                    schedulers[index].fire(UUID(schedule))
                except DomainError as error:  # lost the claim to the other process
                    errors.append(error)

            threads = [threading.Thread(target=fire, args=(i,)) for i in (0, 1) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert _fired(first, schedule) == 1, "the due tick fired more than once"
            state: Schedule = first.event_log.repository.get(UUID(schedule))
            assert state.last_tick == "2026-12-02T14:00:00+00:00"
            assert state.next_at == "2026-12-02T15:00:00+00:00"
            with psycopg.connect(fresh_db.conninfo) as conn:
                claims = [e.data for e in read_stream(conn, schedule) if e.type == "schedule.tick_claimed"]
            assert len(claims) == 1 and claims[0]["missed"] == 2
        finally:
            second.close()
            first.close()


def test_the_seed_dsl_feature_validates_and_errors_name_their_paths(runtime: Runtime) -> None:
    with served(runtime) as http:
        context = CREATE_AI_CLONE_CONTEXT
        r = http.post("/v1/dsl/validate", json={"feature": CREATE_AI_CLONE, "context": context})
        assert r.status_code == 200, r.text
        assert r.json() == {"valid": True, "errors": []}
        broken = {**CREATE_AI_CLONE, "flow": [*CREATE_AI_CLONE["flow"]]}
        broken["flow"][2] = {"entity": {**CREATE_AI_CLONE["flow"][2]["entity"], "type": "ai_clon"},
                             "output": "cloneId"}
        body = http.post("/v1/dsl/validate", json={"feature": broken, "context": context}).json()
        assert body["valid"] is False
        assert {"path": "$.flow[2].entity.type", "code": "unknown_thing_type"} in [
            {"path": e["path"], "code": e["code"]} for e in body["errors"]]


def _one(runtime: Runtime, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `one` CLI against the runtime's database."""
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "DATABASE_URL": database_url(runtime.db), "COLUMNS": "250",
                               "ONE_KNOWLEDGE": "0", **env})


def test_the_cli_lists_schedules_and_runs_one_now(runtime: Runtime) -> None:
    with LumaServer() as luma, served(runtime) as http:
        luma.publish("club", [luma_event("launch", "Launch party", DAY_START + timedelta(days=2))])
        made = http.post("/v1/schedules", json={"name": "nightly", "cron": "30 2 * * *", "job": "luma.sync",
                                                "params": {"slug": "club"}})
        assert made.status_code == 201, made.text
        runtime.wait_for_sync(made.json()["position"])
        listed = _one(runtime, {}, "schedules", "list")
        assert listed.returncode == 0, listed.stderr
        assert "nightly" in listed.stdout and "30 2 * * *" in listed.stdout
        ran = _one(runtime, {"LUMA_BASE_URL": luma.base_url}, "schedules", "run", "nightly")
        assert ran.returncode == 0, ran.stderr
        assert '"outcome": "succeeded"' in ran.stdout and '"created": 1' in ran.stdout
        missing = _one(runtime, {}, "schedules", "run", "no-such-schedule")
        assert missing.returncode == 1 and "no schedule" in missing.stdout
        runtime.wait_for_sync(runtime.head())
        assert set(_events(http)) == {"launch"}
        state: Schedule = runtime.event_log.repository.get(UUID(made.json()["id"]))
        assert state.last_outcome == "succeeded" and state.status == "active"


def test_bad_schedules_are_refused_with_the_field_at_fault(runtime: Runtime) -> None:
    head = runtime.head()
    with served(runtime) as http:
        for body, field in (
            ({"name": "a", "cron": "every day", "job": "luma.sync", "params": {"slug": "x"}}, "cron"),
            ({"name": "a", "cron": "0 0 30 2 *", "job": "luma.sync", "params": {"slug": "x"}}, "cron"),
            ({"name": "a", "cron": "0 12 * * *", "job": "luma.sync", "params": {}}, "slug"),
            ({"name": "a", "cron": "0 12 * * *", "job": "backup", "params": {}}, "job"),
        ):
            r = http.post("/v1/schedules", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["code"] == "validation_error" and field in r.json()["field"], r.json()
    assert runtime.head() == head


def test_over_a_restart_each_tick_fires_once_and_missed_ticks_once(fresh_db: ConnectionInfo) -> None:
    clock = MovableClock(DAY_START)
    with LumaServer() as luma:
        luma.publish("club", [])
        runtime = start_runtime(fresh_db, luma_base_url=luma.base_url)
        runtime.start_sagas(clock=clock)
        try:
            with served(runtime) as http:
                schedule = http.post("/v1/schedules", json={
                    "name": "hourly", "cron": "0 * * * *", "job": "luma.sync",
                    "params": {"slug": "club"}}).json()["id"]
            clock.advance(hours=1)  # 12:00
            wait_until(lambda: _fired(runtime, schedule) == 1, "the 12:00 tick")
        finally:
            runtime.close()
        clock.advance(hours=3)  # 13:00, 14:00 and 15:00 pass while ONE is down
        runtime = start_runtime(fresh_db, luma_base_url=luma.base_url)
        runtime.start_sagas(clock=clock)
        try:
            wait_until(lambda: _fired(runtime, schedule) == 2, "the missed ticks, once")
            time.sleep(1.0)  # several scans of the runner later: still once
            assert _fired(runtime, schedule) == 2
            with psycopg.connect(fresh_db.conninfo) as conn:
                claims = [e.data for e in read_stream(conn, schedule) if e.type == "schedule.tick_claimed"]
        finally:
            runtime.close()
    assert [(c["tick"][11:16], c["missed"]) for c in claims] == [("12:00", 0), ("15:00", 2)]
