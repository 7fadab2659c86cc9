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
