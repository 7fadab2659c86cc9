"""Bad input over real HTTP: always a 4xx problem+json with a stable code and the field at fault,
never a 5xx, and never a new event in the log. Plus idempotency keys over HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.runtime import Runtime
from commands.handlers import SYSTEM_ACTOR_ID
from infra.database import ConnectionInfo, ensure_database
from tests.conftest import api_client, bearer, log_head, start_runtime
from tests.support.live_server import LiveServer

Json = dict[str, Any]
JSON_HEADERS = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def runtime(pg_server: ConnectionInfo) -> Iterator[Runtime]:
    """One runtime for the module: every test checks the log head itself."""
    rt = start_runtime(ensure_database(pg_server, f"t_bad_{uuid.uuid4().hex[:8]}"))
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def base_url(runtime: Runtime) -> Iterator[str]:
    with LiveServer(runtime) as live:
        yield live.url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with api_client(base_url, timeout=30) as http:
        yield http


def created(client: httpx.Client, type: str = "creator", name: str = "Ann") -> Json:
    resp = client.post("/v1/things", json={"type": type, "name": name})
    assert resp.status_code == 201, resp.text
    body: Json = resp.json()
    return body


def nested(depth: int) -> Json:
    """A JSON object nested `depth` levels deep."""
    value: Json = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def assert_problem(runtime: Runtime, resp: httpx.Response, status: int, code: str,
                   field: str | None, head_before: int) -> Json:
    assert resp.status_code == status, resp.text
    assert 400 <= resp.status_code < 500
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: Json = resp.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(f"/{code}")
    assert body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    assert log_head(runtime.db) == head_before, "bad input must append nothing"
    return body


def send(client: httpx.Client, request: tuple[str, str, dict[str, Any]]) -> httpx.Response:
    method, url, kwargs = request
    return client.request(method, url, **kwargs)


@pytest.fixture
def thing(client: httpx.Client) -> Json:
    return created(client)


RANDOM = "0b5e8d6e-7d2c-4f44-9a57-2a1f0c1d0e11"


def cases(t: Json, other: Json) -> list[tuple[str, tuple[str, str, dict[str, Any]], int, str, str]]:
    """(name, request, status, code, field) for requests that must all be refused."""
    tid, oid = t["id"], other["id"]
    thing_url = f"/v1/things/{tid}"
    return [
        ("unknown thing type", ("POST", "/v1/things", {"json": {"type": "spaceship", "name": "x"}}),
         422, "validation_error", "type"),
        ("empty name", ("POST", "/v1/things", {"json": {"type": "creator", "name": "   "}}),
         422, "validation_error", "name"),
        ("name too long", ("POST", "/v1/things", {"json": {"type": "creator", "name": "x" * 501}}),
         422, "validation_error", "name"),
        ("unknown status", ("POST", "/v1/things",
                            {"json": {"type": "creator", "name": "x", "status": "gone"}}),
         422, "validation_error", "status"),
        ("existing id", ("POST", "/v1/things", {"json": {"type": "creator", "name": "x", "id": tid}}),
         409, "already_exists", "id"),
        ("missing connection endpoint", ("POST", "/v1/connections",
                                         {"json": {"to_id": tid, "type": "following"}}),
         422, "validation_error", "from_id"),
        ("unknown connection endpoint", ("POST", "/v1/connections",
                                         {"json": {"from_id": RANDOM, "to_id": tid,
                                                   "type": "following"}}),
         404, "not_found", "from_id"),
        ("identical endpoints", ("POST", "/v1/connections",
                                 {"json": {"from_id": tid, "to_id": tid, "type": "following"}}),
         422, "validation_error", "to_id"),
        ("unknown connection type", ("POST", "/v1/connections",
                                     {"json": {"from_id": tid, "to_id": oid, "type": "likes"}}),
         422, "validation_error", "type"),
        ("revenue share above 1", ("POST", "/v1/connections",
                                   {"json": {"from_id": tid, "to_id": oid, "type": "owns",
                                             "metadata": {"revenueShare": 1.5}}}),
         422, "validation_error", "metadata.revenueShare"),
        ("unknown type on unfollow", ("DELETE", "/v1/connections",
                                      {"params": {"from_id": tid, "to_id": oid, "type": "likes"}}),
         422, "validation_error", "type"),
        ("unfollow of no connection", ("DELETE", "/v1/connections",
                                       {"params": {"from_id": tid, "to_id": oid,
                                                   "type": "following"}}),
         404, "not_found", "id"),
        ("malformed JSON", ("POST", "/v1/things", {"content": b'{"type": "creator", "name": ',
                                                   "headers": JSON_HEADERS}),
         400, "malformed_json", "body"),
        ("JSON that is not an object", ("POST", "/v1/things", {"content": b"[1, 2]",
                                                               "headers": JSON_HEADERS}),
         422, "validation_error", "body"),
        ("empty body", ("POST", "/v1/things", {"content": b"", "headers": JSON_HEADERS}),
         422, "validation_error", "body"),
        ("unknown field", ("POST", "/v1/things",
                           {"json": {"type": "creator", "name": "x", "colour": "red"}}),
         422, "validation_error", "colour"),
        ("unknown field in patch", ("PATCH", thing_url, {"json": {"title": "x"}}),
         422, "validation_error", "title"),
        ("wrong type: name", ("POST", "/v1/things", {"json": {"type": "creator", "name": 123}}),
         422, "validation_error", "name"),
        ("wrong type: properties", ("POST", "/v1/things",
                                    {"json": {"type": "creator", "name": "x", "properties": [1]}}),
         422, "validation_error", "properties"),
        ("wrong type: tags", ("POST", "/v1/things",
                              {"json": {"type": "creator", "name": "x", "tags": "topic:ai"}}),
         422, "validation_error", "tags"),
        ("wrong type: uuid", ("POST", "/v1/connections",
                              {"json": {"from_id": "me", "to_id": oid, "type": "following"}}),
         422, "validation_error", "from_id"),
        ("wrong type: revenue share", ("POST", "/v1/content", {"json": {
            "creator_id": tid, "type": "video", "name": "x",
            "collaborators": [{"entity_id": oid, "revenue_share": "lots"}]}}),
         422, "validation_error", "collaborators.0.revenue_share"),
        ("revenue share out of range", ("POST", "/v1/content", {"json": {
            "creator_id": tid, "type": "video", "name": "x",
            "collaborators": [{"entity_id": oid, "revenue_share": 1.01}]}}),
         422, "validation_error", "collaborators.0.revenue_share"),
        ("bad collaborator", ("POST", "/v1/content", {"json": {
            "creator_id": tid, "type": "video", "name": "x",
            "collaborators": [{"entity_id": oid, "revenue_share": 0.1},
                              {"entity_id": RANDOM, "revenue_share": 0.1}]}}),
         404, "not_found", "collaborators[1].entity_id"),
        ("stale If-Match", ("PATCH", thing_url, {"json": {"name": "y"},
                                                 "headers": {"If-Match": '"7"'}}),
         409, "version_conflict", "If-Match"),
        ("stale If-Match on status", ("PUT", f"{thing_url}/status",
                                      {"json": {"status": "published"},
                                       "headers": {"If-Match": "0"}}),
         409, "version_conflict", "If-Match"),
        ("bad If-Match", ("PATCH", thing_url, {"json": {"name": "y"},
                                               "headers": {"If-Match": "latest"}}),
         422, "validation_error", "If-Match"),
        ("empty Idempotency-Key", ("POST", "/v1/things", {"json": {"type": "creator", "name": "x"},
                                                         "headers": {"Idempotency-Key": ""}}),
         422, "validation_error", "Idempotency-Key"),
        ("properties nested 300 levels", ("POST", "/v1/things", {"json": {
            "type": "creator", "name": "x", "properties": nested(300)}}),
         422, "validation_error", "properties"),
        ("metadata nested 300 levels", ("POST", "/v1/events", {"json": {
            "type": "content_viewed", "metadata": nested(300)}}),
         422, "validation_error", "metadata"),
        ("oversized payload", ("POST", "/v1/things", {"json": {
            "type": "creator", "name": "x", "properties": {"blob": "x" * (300 * 1024)}}}),
         413, "payload_too_large", "body"),
        ("bad tag format", ("POST", "/v1/things",
                            {"json": {"type": "creator", "name": "x",
                                      "tags": ["topic:ai", "fitness"]}}),
         422, "validation_error", "tags[1]"),
        ("unknown tag category", ("POST", f"{thing_url}/tags", {"json": {"tags": ["colour:red"]}}),
         422, "validation_error", "tags[0]"),
        ("empty tag value", ("POST", f"{thing_url}/tags", {"json": {"tags": ["topic:  "]}}),
         422, "validation_error", "tags[0]"),
        ("no tags", ("POST", f"{thing_url}/tags", {"json": {"tags": []}}),
         422, "validation_error", "tags"),
        ("bad tag in path", ("DELETE", f"{thing_url}/tags/nocolon", {}),
         422, "validation_error", "tags[0]"),
        ("unknown X-Org-Id", ("POST", "/v1/things",
                              {"json": {"type": "creator", "name": "x"},
                               "headers": {"X-Org-Id": RANDOM}}),
         404, "not_found", "X-Org-Id"),
        ("non-UUID X-Org-Id", ("POST", "/v1/things",
                               {"json": {"type": "creator", "name": "x"},
                                "headers": {"X-Org-Id": "acme"}}),
         400, "validation_error", "X-Org-Id"),
        ("not found thing: patch", ("PATCH", f"/v1/things/{RANDOM}", {"json": {"name": "y"}}),
         404, "not_found", "id"),
        ("not found thing: delete", ("DELETE", f"/v1/things/{RANDOM}", {}),
         404, "not_found", "id"),
        ("not found connection", ("PATCH", f"/v1/connections/{RANDOM}",
                                  {"json": {"metadata": {"a": 1}}}),
         404, "not_found", "id"),
        ("person is not a thing", ("PATCH", f"/v1/things/{SYSTEM_ACTOR_ID}",
                                   {"json": {"name": "y"}}),
         404, "not_found", "id"),
        ("non-UUID path id", ("PATCH", "/v1/things/abc", {"json": {"name": "y"}}),
         422, "validation_error", "thing_id"),
        ("unknown event type", ("POST", "/v1/events", {"json": {"type": "thing_exploded"}}),
         422, "validation_error", "type"),
        ("bad slug", ("POST", "/v1/organizations", {"json": {"name": "A", "slug": "Not A Slug"}}),
         422, "validation_error", "slug"),
        ("bad email", ("POST", "/v1/people", {"json": {"name": "A", "email": "nope"}}),
         422, "validation_error", "email"),
        ("bad role", ("POST", "/v1/people",
                      {"json": {"name": "A", "email": "a@b.example", "role": "king"}}),
         422, "validation_error", "role"),
        ("NaN property", ("POST", "/v1/things", {
            "content": b'{"type": "creator", "name": "x", "properties": {"score": NaN}}',
            "headers": JSON_HEADERS}),
         422, "validation_error", "properties.score"),
        ("Infinity metadata", ("POST", "/v1/events", {
            "content": b'{"type": "content_viewed", "metadata": {"a": [1, -Infinity]}}',
            "headers": JSON_HEADERS}),
         422, "validation_error", "metadata.a[1]"),
        ("NUL in name", ("POST", "/v1/things", {"json": {"type": "creator", "name": "a\u0000b"}}),
         422, "validation_error", "name"),
        ("NUL in tag", ("POST", f"{thing_url}/tags", {"json": {"tags": ["topic:a\u0000"]}}),
         422, "validation_error", "tags[0]"),
        ("lone surrogate", ("POST", "/v1/things", {
            "content": b'{"type": "creator", "name": "\\ud800"}', "headers": JSON_HEADERS}),
         422, "validation_error", "name"),
    ]


CASE_NAMES = [case[0] for case in cases({"id": RANDOM}, {"id": RANDOM})]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_command_is_refused_without_appending(
    name: str, runtime: Runtime, client: httpx.Client, thing: Json
) -> None:
    other = created(client, "audience_member", "Other")
    found = {case[0]: case[1:] for case in cases(thing, other)}
    request, status, code, field = found[name]
    before = log_head(runtime.db)
    assert_problem(runtime, send(client, request), status, code, field, before)
    healthy = client.get("/readyz")
    assert healthy.status_code == 200, healthy.text  # projections were not poisoned


def test_streamed_oversized_body_is_413(runtime: Runtime, base_url: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"type": "creator", "name": "x", "properties": {"blob": "'
        for _ in range(260):
            yield b"x" * 1024
        yield b'"}}'

    before = log_head(runtime.db)
    with api_client(base_url, timeout=30) as fresh:  # no Content-Length: chunked
        resp = fresh.post("/v1/things", content=chunks(), headers=JSON_HEADERS)
    assert_problem(runtime, resp, 413, "payload_too_large", "body", before)


def test_body_just_under_the_limit_is_accepted(runtime: Runtime, client: httpx.Client) -> None:
    blob = "x" * (runtime.settings.max_body_bytes - 200)
    resp = client.post("/v1/things", json={"type": "creator", "name": "big",
                                           "properties": {"blob": blob}})
    assert resp.status_code == 201, resp.text[:300]
    got = client.get(f"/v1/things/{resp.json()['id']}", params={"after": resp.json()["position"]})
    assert len(got.json()["properties"]["blob"]) == len(blob)


@pytest.mark.parametrize(("url", "params", "status", "field"), [
    ("/v1/things", {"cursor": "!!not-a-cursor!!"}, 422, "cursor"),
    ("/v1/things", {"cursor": "q12"}, 422, "cursor"),
    ("/v1/things", {"cursor": "pxyz"}, 422, "cursor"),
    ("/v1/events", {"cursor": "bm9wZQ"}, 422, "cursor"),
    (f"/v1/things/{RANDOM}/activity", {"cursor": "%%%"}, 422, "cursor"),
    ("/v1/things", {"after": 2**63}, 422, "after"),
    ("/v1/things", {"limit": 0}, 422, "limit"),
    ("/v1/things", {"limit": "many"}, 422, "limit"),
    ("/v1/things", {"after": -1}, 422, "after"),
    ("/v1/things", {"type": "a\u0000b"}, 422, "type"),
    ("/v1/things", {"tag": "\u0000"}, 422, "tag"),
    ("/v1/tags", {"category": "\u0000"}, 422, "category"),
    ("/v1/events", {"since": "yesterday"}, 422, "since"),
    ("/v1/things/not-a-uuid", {}, 422, "thing_id"),
])
def test_bad_query_is_a_4xx_problem(runtime: Runtime, client: httpx.Client, url: str,
                                    params: dict[str, Any], status: int, field: str) -> None:
    before = log_head(runtime.db)
    code = "validation_error"
    assert_problem(runtime, client.get(url, params=params), status, code, field, before)


@pytest.mark.parametrize("url", ["/v1/things/{id}", "/v1/creators/{id}", "/v1/connections/{id}"])
def test_not_found_read_is_404(runtime: Runtime, client: httpx.Client, url: str) -> None:
    before = log_head(runtime.db)
    resp = client.get(url.format(id=RANDOM))
    assert_problem(runtime, resp, 404, "not_found", "id", before)


def test_unknown_route_and_method_are_problems(runtime: Runtime, client: httpx.Client) -> None:
    before = log_head(runtime.db)
    assert_problem(runtime, client.get("/v1/nowhere"), 404, "not_found", None, before)
    put = client.put("/v1/things", json={})
    assert_problem(runtime, put, 405, "method_not_allowed", None, before)
    assert set(put.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_a_position_no_write_has_reached_is_refused_at_once(runtime: Runtime,
                                                            client: httpx.Client) -> None:
    before = log_head(runtime.db)
    for params, headers in (({"after": before + 1000}, {}), ({}, {"X-After-Position": str(before + 1000)})):
        started = time.monotonic()
        resp = client.get("/v1/things", params=params, headers=headers)
        assert_problem(runtime, resp, 409, "position_ahead", "after", before)
        assert time.monotonic() - started < runtime.settings.read_wait_timeout_s / 2
    bad_header = client.get("/v1/things", headers={"X-After-Position": "soon"})
    assert_problem(runtime, bad_header, 422, "validation_error", "X-After-Position", before)


def test_if_match_current_version_succeeds(runtime: Runtime, client: httpx.Client,
                                           thing: Json) -> None:
    for value in ("1", '"2"', 'W/"3"'):
        resp = client.patch(f"/v1/things/{thing['id']}", json={"properties": {"v": value}},
                            headers={"If-Match": value})
        assert resp.status_code == 200, resp.text
    assert resp.json()["version"] == 4 and resp.headers["etag"] == '"4"'


# ---- idempotency over HTTP ------------------------------------------------------------------


def test_same_key_same_body_replays_without_new_events(runtime: Runtime,
                                                       client: httpx.Client) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"type": "course", "name": "Once", "tags": ["topic:ai"]}
    first = client.post("/v1/things", json=body, headers=key)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    head = log_head(runtime.db)
    for reordered in (body, dict(reversed(list(body.items())))):
        again = client.post("/v1/things", json=reordered, headers=key)
        assert again.status_code == first.status_code
        assert again.json() == first.json()
        assert again.headers["etag"] == first.headers["etag"]
        assert again.headers["idempotent-replayed"] == "true"
    assert log_head(runtime.db) == head
    listed = client.get("/v1/things", params={"type": "course", "after": head, "limit": 500})
    assert [t["name"] for t in listed.json()["items"]].count("Once") == 1


def test_same_key_different_body_is_a_mismatch(runtime: Runtime, client: httpx.Client) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = client.post("/v1/things", json={"type": "course", "name": "A"}, headers=key)
    assert first.status_code == 201, first.text
    head = log_head(runtime.db)
    changed = client.post("/v1/things", json={"type": "course", "name": "B"}, headers=key)
    assert_problem(runtime, changed, 409, "idempotency_mismatch", "Idempotency-Key", head)
    elsewhere = client.post("/v1/events", json={"type": "content_viewed"}, headers=key)
    assert_problem(runtime, elsewhere, 409, "idempotency_mismatch", "Idempotency-Key", head)
    same = client.post("/v1/things", json={"type": "course", "name": "A"}, headers=key)
    assert same.json() == first.json()


def test_idempotency_keys_are_per_actor(runtime: Runtime, client: httpx.Client) -> None:
    key = f"shared-{uuid.uuid4()}"
    secrets = [client.post("/v1/keys", json={"name": f"actor {i}", "role": "org_user"}).json()["key"]
               for i in range(2)]
    bodies = [client.post("/v1/events", json={"type": "content_viewed"},
                          headers={"Idempotency-Key": key, **bearer(secret)}).json()
              for secret in secrets]
    assert bodies[0]["id"] != bodies[1]["id"]
    assert bodies[1]["position"] > bodies[0]["position"]


def test_idempotent_update_replays_even_after_later_changes(runtime: Runtime,
                                                            client: httpx.Client,
                                                            thing: Json) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}", "If-Match": "1"}
    url = f"/v1/things/{thing['id']}"
    first = client.patch(url, json={"name": "Renamed"}, headers=key)
    assert first.status_code == 200 and first.json()["version"] == 2
    assert client.patch(url, json={"name": "Other"}).status_code == 200
    head = log_head(runtime.db)
    again = client.patch(url, json={"name": "Renamed"}, headers=key)  # If-Match 1 is stale now
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert log_head(runtime.db) == head
