"""Smoke: a thing goes in over HTTP and comes back out of the read model."""

from __future__ import annotations

import httpx


def test_create_and_read_back(client: httpx.Client) -> None:
    created = client.post("/v1/things", json={"type": "creator", "name": "Ann",
                                              "tags": ["industry:fitness"]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["version"] == 1 and body["position"] > 0
    got = client.get(f"/v1/things/{body['id']}", params={"after": body["position"]})
    assert got.status_code == 200, got.text
    assert got.json()["name"] == "Ann"
    assert got.json()["tags"] == ["industry:fitness"]


def test_projection_status_and_metrics(client: httpx.Client) -> None:
    created = client.post("/v1/things", json={"type": "course", "name": "Course"}).json()
    status = client.get("/v1/projections", params={"after": created["position"]}).json()
    assert status["mode"] == "embedded"
    assert status["projected"] >= created["position"]
    assert {row["name"] for row in status["items"]} == {
        "things", "tags", "connections", "activity", "sagas", "organizations", "people", "api_keys",
        "schedules", "agent_executions"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    head_line = next(line for line in metrics.text.splitlines()
                     if line.startswith("one_log_head_position "))
    assert float(head_line.split()[1]) >= created["position"]
    assert 'one_projection_lag_events{projection="things"}' in metrics.text
