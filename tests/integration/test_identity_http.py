"""Identity over real HTTP: keys (shown once, hashed, revoked everywhere within a second, expiring),
accounts (suspended, deleted), roles and what they may grant, people and organizations read back,
usernames, the owner key of a first start."""

from __future__ import annotations

import stat
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.runtime import Runtime
from infra.database import ConnectionInfo
from tests.conftest import (
    BOOTSTRAP_KEY,
    api_client,
    bearer,
    database_url,
    log_head,
    served,
    start_runtime,
)
from tests.database_search import occurrences
from tests.support.one_serve import OneServe
from tests.tenants import Member, Tenant, ok


@pytest.fixture
def acme(client: httpx.Client) -> Tenant:
    return Tenant.found(client, "Acme")


def problem(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == code


def test_every_v1_route_needs_a_key_and_the_open_ones_do_not(client: httpx.Client,
                                                             runtime: Runtime) -> None:
    base = str(client.base_url)
    head = log_head(runtime.db)
    with httpx.Client(base_url=base) as anonymous:
        for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
                        bearer("one_" + "0" * 32 + "_" + "A" * 43), bearer("not-the-key")):
            resp = anonymous.post("/v1/things", json={"type": "creator", "name": "x"}, headers=headers)
            problem(resp, 401, "unauthenticated")
            assert resp.headers["www-authenticate"].startswith("Bearer")
        for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
            assert anonymous.get(path).status_code == 200, path
        document = anonymous.get("/openapi.json").json()
    assert log_head(runtime.db) == head
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer one_<id>_<secret>`."}
    for path, operations in document["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, operation in operations.items():
            public = operation["x-permission"] == "public"
            assert ("security" in operation) != public, f"{method} {path}"


def test_a_key_is_shown_once_kept_as_a_hash_and_listed_without_it(
        client: httpx.Client, runtime: Runtime, acme: Tenant) -> None:
    idem = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    issued = acme.act(acme.owner, "POST", "/v1/keys", headers=idem,
                      json={"name": "deploy bot", "role": "org_user"})
    secret = issued["key"]
    assert secret.startswith(f"one_{uuid.UUID(issued['id']).hex}_") and issued["role"] == "org_user"
    replay = acme.act(acme.owner, "POST", "/v1/keys", headers=idem,
                      json={"name": "deploy bot", "role": "org_user"})
    assert replay["id"] == issued["id"] and replay["key"] is None  # never shown twice
    me = ok(client.get("/v1/me", headers=bearer(secret)))
    assert me["person_id"] == issued["person_id"] and me["role"] == "org_user"
    assert me["org_id"] == acme.id and me["key"]["id"] == issued["id"]
    listed = acme.read(acme.owner, "/v1/keys")["items"]
    assert issued["id"] in {k["id"] for k in listed}
    assert all(set(k) >= {"id", "name", "person_id", "kind"} and "secret_hash" not in k for k in listed)
    own = acme.read(acme.user, "/v1/keys")["items"]
    assert {k["person_id"] for k in own} == {acme.user.id}  # an org user sees their own keys
    assert occurrences(runtime.db, secret) == {}
    assert occurrences(runtime.db, secret.rsplit("_", 1)[1][-20:]) == {}


def test_revocation_reaches_every_api_process_within_a_second(
        client: httpx.Client, runtime: Runtime, acme: Tenant, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url(runtime.db), "ONE_RUN_SAGAS": "0"}
    with OneServe(tmp_path, tmp_path / "data", env) as other, \
            api_client(other.url, key=acme.user.key) as elsewhere:
        assert elsewhere.get("/v1/me").status_code == 200  # now cached there
        acme.act(acme.owner, "DELETE", f"/v1/keys/{acme.user.key_id}")
        revoked = time.monotonic()
        problem(client.get("/v1/me", headers=acme.user.headers), 401, "unauthenticated")
        while elsewhere.get("/v1/me").status_code != 401:
            assert time.monotonic() - revoked < 5, "revocation never reached the other process"
        assert time.monotonic() - revoked < 1.0


def test_an_expired_key_is_refused(client: httpx.Client, acme: Tenant) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    issued = acme.act(acme.user, "POST", "/v1/keys",
                      json={"name": "short", "expires_at": expires.isoformat()})
    assert ok(client.get("/v1/me", headers=bearer(issued["key"])))["key"]["expires_at"]
    past = acme.client.post("/v1/keys", headers=acme.user.headers, json={
        "name": "stale", "expires_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()})
    problem(past, 422, "validation_error")
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)  # the clock, not a race
    problem(client.get("/v1/me", headers=bearer(issued["key"])), 401, "unauthenticated")


def test_suspended_banned_deleted_and_erased_accounts(client: httpx.Client, acme: Tenant) -> None:
    victim = acme.person("org_user")
    assert client.get("/v1/me", headers=victim.headers).status_code == 200
    for status in ("suspended", "banned"):
        acme.act(acme.owner, "PUT", f"/v1/people/{victim.id}/status", json={"status": status})
        problem(client.get("/v1/me", headers=victim.headers), 403, "account_suspended")
    acme.act(acme.owner, "PUT", f"/v1/people/{victim.id}/status", json={"status": "active"})
    assert client.get("/v1/me", headers=victim.headers).status_code == 200
    acme.act(acme.owner, "DELETE", f"/v1/people/{victim.id}")
    problem(client.get("/v1/me", headers=victim.headers), 401, "unauthenticated")
    leaving = acme.person("customer")
    acme.act(leaving, "DELETE", f"/v1/people/{leaving.id}/personal-data")  # their own right
    problem(client.get("/v1/me", headers=leaving.headers), 401, "unauthenticated")


def test_only_a_platform_owner_acts_in_another_organization(client: httpx.Client,
                                                            runtime: Runtime, acme: Tenant) -> None:
    other = Tenant.found(client, "Other")
    head = log_head(runtime.db)
    elsewhere = client.post("/v1/things", headers={**acme.owner.headers, "X-Org-Id": other.id},
                            json={"type": "creator", "name": "x"})
    problem(elsewhere, 403, "forbidden")
    same = acme.act(acme.owner, "POST", "/v1/things", headers={"X-Org-Id": acme.id},
                    json={"type": "creator", "name": "mine"})
    assert log_head(runtime.db) == same["position"] > head
    made = ok(client.post("/v1/things", headers=other.as_platform_owner,
                          json={"type": "creator", "name": "by the platform"}))
    thing = ok(client.get(f"/v1/things/{made['id']}", headers=other.as_platform_owner,
                          params={"after": made["position"]}))
    assert thing["org_id"] == other.id and thing["created_by"] == ok(client.get("/v1/me"))["person_id"]
    problem(client.get(f"/v1/things/{made['id']}", params={"after": made["position"]}), 404, "not_found")


def test_an_org_owner_manages_their_people_but_never_grants_platform_owner(
        client: httpx.Client, runtime: Runtime, acme: Tenant) -> None:
    head = log_head(runtime.db)
    for method, url, body in (
        ("POST", "/v1/people", {"name": "Boss", "role": "platform_owner"}),
        ("PUT", f"/v1/people/{acme.user.id}/role", {"role": "platform_owner"}),
        ("POST", "/v1/keys", {"name": "root", "role": "platform_owner"}),
    ):
        problem(client.request(method, url, json=body, headers=acme.owner.headers), 403, "forbidden")
    system = ok(client.get("/v1/me"))["person_id"]
    problem(client.put(f"/v1/people/{system}/status", headers={**acme.owner.headers},
                       json={"status": "banned"}), 404, "not_found")  # not even visible
    assert log_head(runtime.db) == head
    acme.act(acme.owner, "PUT", f"/v1/people/{acme.user.id}/role", json={"role": "org_owner"})
    assert ok(client.get("/v1/me", headers=acme.user.headers))["role"] == "org_owner"
    promoted = ok(client.put(f"/v1/people/{acme.user.id}/role", headers=acme.as_platform_owner,
                             json={"role": "platform_owner"}))
    assert promoted["version"] > 1


def test_roles_reach_what_they_own_and_nothing_the_platform_states(
        client: httpx.Client, runtime: Runtime, acme: Tenant) -> None:
    owners_thing = acme.act(acme.owner, "POST", "/v1/things", json={"type": "course", "name": "Owner's"})
    users_thing = acme.act(acme.user, "POST", "/v1/things", json={"type": "course", "name": "User's"})
    token = acme.act(acme.owner, "POST", "/v1/things", json={
        "type": "token", "name": "Acme Coin",
        "properties": {"priceUsd": 2, "contractAddress": "0x" + "1" * 40}})
    head = log_head(runtime.db)
    refused: list[tuple[Member, str, str, dict[str, Any]]] = [
        (acme.user, "PATCH", f"/v1/things/{owners_thing['id']}", {"json": {"name": "mine now"}}),
        (acme.user, "DELETE", f"/v1/things/{owners_thing['id']}", {}),
        (acme.user, "POST", "/v1/connections",
         {"json": {"from_id": acme.user.id, "to_id": token["id"], "type": "owns",
                   "metadata": {"revenueShare": 1}}}),
        (acme.customer, "POST", "/v1/things", {"json": {"type": "course", "name": "x"}}),
        (acme.customer, "POST", "/v1/connections",
         {"json": {"from_id": acme.user.id, "to_id": users_thing["id"], "type": "following"}}),
        (acme.customer, "POST", "/v1/connections",
         {"json": {"from_id": acme.customer.id, "to_id": users_thing["id"], "type": "owns"}}),
        (acme.customer, "POST", "/v1/token-purchases",
         {"json": {"buyer_id": acme.user.id, "token_id": token["id"], "amount": 1,
                   "payment_method": "pm_card_visa"}}),
        (acme.owner, "POST", "/v1/events", {"json": {"type": "tokens_purchased", "target_id": token["id"]}}),
        (acme.owner, "POST", "/v1/connections",
         {"json": {"from_id": acme.customer.id, "to_id": token["id"], "type": "holds_tokens",
                   "metadata": {"balance": 1000}}}),
        (acme.customer, "POST", "/v1/connections",
         {"json": {"from_id": acme.customer.id, "to_id": users_thing["id"], "type": "member_of",
                   "metadata": {"role": "admin"}}}),
    ]
    for who, method, url, kwargs in refused:
        resp = client.request(method, url, headers=who.headers, **kwargs)
        problem(resp, 403, "forbidden")
    cheap = client.post("/v1/token-purchases", headers=acme.customer.headers, json={
        "buyer_id": acme.customer.id, "token_id": token["id"], "amount": 10, "usd_amount": 1,
        "payment_method": "pm_card_visa"})
    problem(cheap, 422, "validation_error")
    assert cheap.json()["field"] == "usd_amount"
    assert log_head(runtime.db) == head, "refused requests append nothing"

    acme.act(acme.user, "PATCH", f"/v1/things/{users_thing['id']}", json={"name": "Renamed"})
    acme.act(acme.customer, "POST", "/v1/connections", json={
        "from_id": acme.customer.id, "to_id": users_thing["id"], "type": "following"})
    acme.act(acme.customer, "POST", "/v1/connections", json={
        "from_id": acme.customer.id, "to_id": users_thing["id"], "type": "member_of",
        "metadata": {"role": "member"}})
    acme.act(acme.customer, "POST", "/v1/events", json={"type": "content_viewed",
                                                       "target_id": users_thing["id"]})
    bought = acme.act(acme.customer, "POST", "/v1/token-purchases", json={
        "buyer_id": acme.customer.id, "token_id": token["id"], "amount": 3,
        "payment_method": "pm_card_visa"})
    view = acme.read(acme.customer, f"/v1/token-purchases/{bought['id']}")
    assert view["usd_amount"] == 6.0  # the token's price, not the client's
    problem(client.get(f"/v1/token-purchases/{bought['id']}", headers=acme.user.headers), 403, "forbidden")
    mine = acme.read(acme.customer, "/v1/events")["items"]
    assert mine and {row["actor_id"] for row in mine} == {acme.customer.id}
    assert len({row["actor_id"] for row in acme.read(acme.owner, "/v1/events")["items"]}) > 1
    acme.act(acme.owner, "PATCH", f"/v1/connections/"
             f"{acme.read(acme.owner, '/v1/connections', type='member_of')['items'][0]['id']}",
             json={"metadata": {"role": "moderator"}})


def test_people_and_organizations_are_read_back_as_each_viewer_may_see_them(
        client: httpx.Client, acme: Tenant) -> None:
    ann = acme.person("customer", name="Ann", email="Ann@Acme.example", username="ann",
                      bio="runner", profile={"visibility": "members", "city": "Lima",
                                             "learning_tracks": ["ai"]})
    me = acme.read(ann, "/v1/me")
    person = me["person"]
    assert (person["name"], person["email"], person["username"]) == ("Ann", "ann@acme.example", "ann")
    assert person["profile"]["city"] == "Lima" and person["profile"]["bio"] == "runner"
    assert me["organization"]["id"] == acme.id and me["organization"]["name"] == "Acme"
    as_customer = acme.read(acme.customer, f"/v1/people/{ann.id}")
    assert as_customer["name"] == "Ann" and "email" not in as_customer
    assert as_customer["profile"] == {"visibility": "members"}  # hidden from customers
    as_user = acme.read(acme.user, f"/v1/people/{ann.id}")
    assert as_user["profile"]["city"] == "Lima" and "email" not in as_user
    as_owner = acme.read(acme.owner, f"/v1/people/{ann.id}")
    assert as_owner["email"] == "ann@acme.example"
    acme.act(ann, "PATCH", f"/v1/people/{ann.id}", json={"profile": {"visibility": "private"}})
    assert acme.read(acme.user, f"/v1/people/{ann.id}")["profile"] == {"visibility": "private"}
    problem(client.patch(f"/v1/people/{ann.id}", headers=ann.headers,
                         json={"profile": {"stats": {"profile_views": 10**6}}}), 403, "forbidden")
    problem(client.patch(f"/v1/people/{acme.user.id}", headers=ann.headers, json={"bio": "x"}),
            403, "forbidden")

    customers = acme.read(acme.owner, "/v1/people", role="customer")["items"]
    assert {p["id"] for p in customers} == {ann.id, acme.customer.id}
    acme.act(acme.owner, "PUT", f"/v1/people/{ann.id}/status", json={"status": "suspended"})
    assert [p["id"] for p in acme.read(acme.owner, "/v1/people", status="suspended")["items"]] == [ann.id]
    problem(client.get("/v1/people", headers=acme.customer.headers), 403, "forbidden")
    assert acme.read(acme.customer, f"/v1/organizations/{acme.id}")["slug"].startswith("acme-")
    problem(client.get("/v1/organizations/" + ok(client.get("/v1/me"))["org_id"],
                       headers=acme.owner.headers), 404, "not_found")
    everyone = ok(client.get("/v1/organizations", params={"limit": 500}))["items"]
    assert acme.id in {o["id"] for o in everyone}


def test_usernames_are_unique_in_an_organization_until_released(client: httpx.Client,
                                                              acme: Tenant) -> None:
    first = acme.person("org_user", username="runner")
    taken = client.post("/v1/people", headers=acme.as_platform_owner,
                        json={"name": "Copycat", "username": "Runner"})
    problem(taken, 409, "already_exists")
    elsewhere = Tenant.found(client, "Elsewhere")
    elsewhere.person("org_user", username="runner")  # another organization: free
    acme.act(first, "PATCH", f"/v1/people/{first.id}", json={"username": "jogger"})
    acme.person("org_user", username="runner")  # released by the rename


def test_a_first_start_without_bootstrap_key_writes_an_owner_key(fresh_db: ConnectionInfo,
                                                                 tmp_path: Path) -> None:
    runtimes = [start_runtime(fresh_db, bootstrap_key=None, data_dir=tmp_path) for _ in range(2)]
    try:
        path = runtimes[0].owner_key_file
        assert path is not None and runtimes[1].owner_key_file == path  # written once
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = path.read_text().strip()
        with served(runtimes[0]) as http:
            me = ok(http.get("/v1/me", headers=bearer(key)))
            assert me["role"] == "platform_owner"
            problem(http.get("/v1/me", headers=bearer(BOOTSTRAP_KEY)), 401, "unauthenticated")
    finally:
        for runtime in runtimes:
            runtime.close()

