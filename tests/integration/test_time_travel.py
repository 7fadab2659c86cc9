"""Time travel: a stream's history (paged by version) and its state at a version or a moment,
folded from the log by the domain's event classes (old events upcast), over HTTP and the CLI;
scoped to the caller's organization."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventsourcing.persistence import StoredEvent

from api.runtime import Runtime
from tests.conftest import database_url, served
from tests.tenants import Tenant, ok

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def http(runtime: Runtime) -> Iterator[httpx.Client]:
    with served(runtime) as client:
        yield client


def test_a_things_history_and_its_state_at_each_version_and_moment(http: httpx.Client) -> None:
    a, b = Tenant.found(http, "A"), Tenant.found(http, "B")
    thing = a.act(a.owner, "POST", "/v1/things", json={"type": "course", "name": "Yoga", "tags": ["topic:a"],
                                                        "properties": {"level": 1}})
    url = f"/v1/things/{thing['id']}"
    a.act(a.owner, "PATCH", url, json={"name": "Yoga 2", "properties": {"level": None, "hours": 3}})
    a.act(a.owner, "POST", f"{url}/tags", json={"tags": ["topic:b"]})
    a.act(a.owner, "PUT", f"{url}/status", json={"status": "published"})

    events = a.read(a.owner, f"{url}/history")
    assert [(e["version"], e["type"]) for e in events["items"]] == [
        (1, "thing.created"), (2, "thing.updated"), (3, "thing.tagged"), (4, "thing.status_changed")]
    assert events["next_after_version"] is None
    first = a.read(a.owner, f"{url}/history", limit=2)
    assert [e["version"] for e in first["items"]] == [1, 2] and first["next_after_version"] == 2
    rest = a.read(a.owner, f"{url}/history", after_version=2)
    assert first["items"] + rest["items"] == events["items"]

    def state(**params: Any) -> dict[str, Any]:
        return ok(http.get(url, params=params, headers=a.owner.headers), 200)

    one, two = state(as_of_version=1), state(as_of_version=2)
    assert (one["name"], one["properties"], one["tags"], one["status"]) == (
        "Yoga", {"level": 1}, ["topic:a"], "draft")
    assert (two["name"], two["properties"], two["tags"]) == ("Yoga 2", {"hours": 3}, ["topic:a"])
    assert state(as_of=events["items"][1]["occurred_at"]) == {**two, "as_of": {
        "version": 2, "moment": events["items"][1]["occurred_at"]}}
    assert state(as_of_version=3, as_of=events["items"][1]["occurred_at"])["version"] == 2  # the earlier
    assert state(as_of_version=1, as_of=events["items"][1]["occurred_at"])["version"] == 1
    now, read_model = state(as_of_version=4), a.read(a.owner, url)
    assert {k: now[k] for k in ("name", "properties", "tags", "status", "org_id")} == {
        k: read_model[k] for k in ("name", "properties", "tags", "status", "org_id")}

    cases: list[tuple[dict[str, str | int], int]] = [
        ({"as_of_version": 5}, 404), ({"as_of": "2000-01-01T00:00:00Z"}, 404),
        ({"as_of_version": 0}, 422), ({"as_of": "yesterday"}, 422)]
    for params, status in cases:
        resp = http.get(url, params=params, headers=a.owner.headers)
        assert resp.status_code == status and resp.headers["content-type"] == "application/problem+json"
    assert http.get(f"{url}/history", headers=b.owner.headers).status_code == 404
    assert http.get(url, params={"as_of_version": 1}, headers=b.owner.headers).status_code == 404
    assert http.get(f"/v1/connections/{thing['id']}/history", headers=a.owner.headers).status_code == 404


def test_connections_and_organizations_travel_too(http: httpx.Client) -> None:
    a = Tenant.found(http, "A")
    ends = [a.act(a.owner, "POST", "/v1/things", json={"type": t, "name": t})["id"]
            for t in ("course", "creator")]
    edge = a.act(a.owner, "POST", "/v1/connections", json={"from_id": ends[0], "to_id": ends[1],
                                                           "type": "following", "metadata": {"since": 1}})
    a.act(a.owner, "PATCH", f"/v1/connections/{edge['id']}", json={"metadata": {"since": 2}})
    history = a.read(a.owner, f"/v1/connections/{edge['id']}/history")["items"]
    assert [e["type"] for e in history] == ["connection.created", "connection.metadata_updated"]
    then = ok(http.get(f"/v1/connections/{edge['id']}", params={"as_of_version": 1}, headers=a.owner.headers))
    assert (then["metadata"], then["from_id"], then["type"]) == ({"since": 1}, ends[0], "following")

    a.act(a.owner, "PATCH", f"/v1/organizations/{a.id}", json={"name": "A renamed"})
    org = a.read(a.owner, f"/v1/organizations/{a.id}/history")["items"]
    assert [e["type"] for e in org] == ["organization.created", "organization.updated"]
    was = ok(http.get(f"/v1/organizations/{a.id}", params={"as_of_version": 1}, headers=a.owner.headers))
    assert was["name"] == "A" and was["id"] == a.id


def test_old_events_read_as_today_s_and_the_cli_folds_the_same(runtime: Runtime, http: httpx.Client) -> None:
    a = Tenant.found(http, "A")
    old = uuid.uuid4()
    state = json.dumps({"timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"},
                        "originator_topic": "domain.things:Thing", "org_id": a.id, "actor_id": a.owner.id,
                        "type": "course", "name": "From v1", "properties": {}, "tags": [],
                        "class_version": 1}).encode()  # version 1 had no status
    runtime.event_log.recorder.insert_events([StoredEvent(old, 1, "domain.things:Thing.Created", state)])
    (created,) = a.read(a.owner, f"/v1/things/{old}/history")["items"]
    assert (created["schema_version"], created["data"]["status"]) == (2, "draft")
    folded = ok(http.get(f"/v1/things/{old}", params={"as_of": "2026-06-01T00:00:00Z"},
                         headers=a.owner.headers))
    assert (folded["name"], folded["status"], folded["version"]) == ("From v1", "draft", 1)

    env = {**os.environ, "DATABASE_URL": database_url(runtime.db), "COLUMNS": "250"}

    def one(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "api.cli", "history", str(old), *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert [json.loads(line)["type"] for line in one().splitlines()] == ["thing.created"]
    cli_state = json.loads(one("--as-of-version", "1"))
    assert cli_state == {k: v for k, v in folded.items() if k != "as_of"}


def test_a_person_then_is_shaped_like_the_live_person_and_their_history_stays_sealed(
        http: httpx.Client) -> None:
    a = Tenant.found(http, "A")
    zoe = a.person("customer", name="Zoe Then", email="zoe@then.example")
    a.act(a.owner, "PATCH", f"/v1/people/{zoe.id}", json={"name": "Zoe Now", "email": "zoe@now.example"})
    a.act(a.owner, "PUT", f"/v1/people/{zoe.id}/role", json={"role": "org_user"})

    history = a.read(a.owner, f"/v1/people/{zoe.id}/history")["items"]
    assert [e["type"] for e in history] == ["person.created", "person.updated", "person.role_changed"]
    assert "zoe@" not in json.dumps(history) and "Zoe" not in json.dumps(history)  # sealed, as in the log

    def then(who: Any, **params: Any) -> dict[str, Any]:
        return ok(http.get(f"/v1/people/{zoe.id}", params=params, headers=who.headers), 200)

    first, now = then(a.owner, as_of_version=1), a.read(a.owner, f"/v1/people/{zoe.id}")
    assert (first["name"], first["email"], first["role"], first["version"]) == (
        "Zoe Then", "zoe@then.example", "customer", 1)
    assert {k: v for k, v in then(a.owner, as_of_version=3).items() if k != "as_of"} == now
    seen_by_other = then(a.user, as_of_version=1)
    assert seen_by_other["name"] == "Zoe Then" and "email" not in seen_by_other  # visibility applies
    other = Tenant.found(http, "B")
    assert http.get(f"/v1/people/{zoe.id}", params={"as_of_version": 1},
                    headers=other.owner.headers).status_code == 404
    too_late = http.get(f"/v1/people/{zoe.id}", params={"as_of_version": 4}, headers=a.owner.headers)
    assert too_late.status_code == 404
