"""Parked events handled in place: listed, re-applied once their cause is fixed (with the events of
their stream that came after them), or skipped with a note; each organization's owner sees and
handles only its own, over HTTP and from the CLI.

The cause here is real and fixable: a trigger an operator put on `things` refuses some names, so
the projection of those creations fails and is parked; dropping the trigger fixes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from api.runtime import Runtime
from commands import models as m
from tests.conftest import database_url, served
from tests.support.parking import REFUSAL, fix_the_cause, refuse_cursed_names
from tests.tenants import Tenant, ok

ROOT = Path(__file__).resolve().parents[2]

@pytest.fixture
def http(runtime: Runtime) -> Iterator[httpx.Client]:
    with served(runtime) as client:
        yield client


def parked(tenant: Tenant, status: str = "open") -> list[dict[str, object]]:
    return list(tenant.read(tenant.owner, "/v1/projections/parked", status=status)["items"])


def test_parked_event_is_retried_with_its_stream_once_the_cause_is_fixed(
        runtime: Runtime, http: httpx.Client) -> None:
    a, b = Tenant.found(http, "A"), Tenant.found(http, "B")
    refuse_cursed_names(runtime.db)
    thing = a.act(a.owner, "POST", "/v1/things", json={"type": "course", "name": "cursed course",
                                                        "tags": ["topic:parked"]})
    a.act(a.owner, "PATCH", f"/v1/things/{thing['id']}", json={"properties": {"level": 2}})
    fine = a.act(a.owner, "POST", "/v1/things", json={"type": "course", "name": "fine course"})

    (event,) = parked(a)
    assert (event["position"], event["stream_id"], event["status"], event["attempts"]) == (
        thing["position"], thing["id"], "open", 1)
    assert REFUSAL in str(event["error"]) and "things" in event["projections"]  # type: ignore[operator]
    assert a.read(a.owner, f"/v1/things/{fine['id']}")["name"] == "fine course"  # not blocked
    assert http.get(f"/v1/things/{thing['id']}", headers=a.owner.headers).status_code == 404
    assert a.read(a.owner, "/v1/projections")["parked_events"] == 1
    assert parked(b) == [] and ok(http.post("/v1/projections/parked/retry", json={},
                                            headers=b.owner.headers))["items"] == []

    again = ok(http.post("/v1/projections/parked/retry", json={}, headers=a.owner.headers))
    assert again["retried"] == 0 and REFUSAL in again["items"][0]["error"]
    assert [(e["status"], e["attempts"]) for e in parked(a)] == [("open", 2)]

    fix_the_cause(runtime.db)
    done = ok(http.post("/v1/projections/parked/retry", json={"projection": "things"},
                        headers=a.owner.headers))
    assert done["items"] == [{"stream_id": thing["id"], "positions": [thing["position"]], "retried": True,
                              "error": None}]
    row = a.read(a.owner, f"/v1/things/{thing['id']}")
    assert (row["name"], row["properties"], row["version"]) == ("cursed course", {"level": 2}, 2)
    assert {t["tag"]: t["usage_count"] for t in a.read(a.owner, "/v1/tags")["items"]} == {"topic:parked": 1}
    (retried,) = parked(a, "retried")
    assert (retried["resolved_by"], retried["attempts"]) == (a.owner.id, 3)
    assert parked(a) == [] and a.read(a.owner, "/v1/projections")["parked_events"] == 0


def test_skip_records_the_decision_and_bad_requests_change_nothing(
        runtime: Runtime, http: httpx.Client) -> None:
    a, b = Tenant.found(http, "A"), Tenant.found(http, "B")
    refuse_cursed_names(runtime.db)
    thing = a.act(a.owner, "POST", "/v1/things", json={"type": "course", "name": "cursed again"})
    (event,) = parked(a)
    url = f"/v1/projections/parked/{event['position']}/skip"

    for body, who, status in (({"note": " "}, a.owner, 422), ({}, a.owner, 422),
                              ({"note": "x", "extra": 1}, a.owner, 422), ({"note": "mine"}, b.owner, 404),
                              ({"note": "not allowed"}, a.user, 403)):
        resp = http.post(url, json=body, headers=who.headers)
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
    assert http.post("/v1/projections/parked/retry", json={"projection": "nope"},
                     headers=a.owner.headers).json()["code"] == "validation_error"
    assert [e["status"] for e in parked(a)] == ["open"]

    skipped = ok(http.post(url, json={"note": "a test thing, never needed"}, headers=a.owner.headers))
    assert skipped == {"position": thing["position"], "status": "skipped",
                       "note": "a test thing, never needed"}
    assert http.post(url, json={"note": "twice"}, headers=a.owner.headers).status_code == 404
    (decided,) = parked(a, "skipped")
    assert (decided["note"], decided["resolved_by"]) == ("a test thing, never needed", a.owner.id)
    every = a.read(a.owner, "/v1/projections/parked", status="all")["items"]
    assert [e["status"] for e in every] == ["skipped"]


def _one(runtime: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url(runtime.db), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "api.cli", "projections", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_lists_retries_and_skips_parked_events(runtime: Runtime) -> None:
    refuse_cursed_names(runtime.db)
    first = runtime.bus.execute(m.CreateThing(type="course", name="cursed first")).body
    second = runtime.bus.execute(m.CreateThing(type="course", name="cursed second")).body
    runtime.wait_for_sync(second["position"])

    listed = [json.loads(line) for line in _one(runtime, "parked", "--json").stdout.splitlines()]
    assert [(e["position"], e["status"]) for e in listed] == [(second["position"], "open"),
                                                             (first["position"], "open")]
    failing = _one(runtime, "retry-parked", "--position", str(first["position"]))
    assert failing.returncode == 1 and REFUSAL in failing.stdout

    fix_the_cause(runtime.db)
    skipped = _one(runtime, "skip", str(second["position"]), "--note", "left out on purpose")
    assert skipped.returncode == 0, skipped.stderr
    retried = _one(runtime, "retry-parked")
    assert retried.returncode == 0 and "1 of 1 stream(s) re-applied" in retried.stdout
    assert _one(runtime, "skip", str(second["position"]), "--note", "again").returncode == 1
    with psycopg.connect(runtime.db.conninfo) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM things")}
        decisions = conn.execute("SELECT position, status, note, resolved_by LIKE 'cli:%'"
                                 " FROM projection_errors ORDER BY position").fetchall()
    assert "cursed first" in names and "cursed second" not in names
    assert decisions == [(first["position"], "retried", None, True),
                         (second["position"], "skipped", "left out on purpose", True)]
