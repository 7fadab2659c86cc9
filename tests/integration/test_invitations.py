"""Invitations and referrals (the seeds' week 6) over HTTP against the real runtime: a magic link
registers the invitee with their referrer; a used, expired or unknown link is refused and
appends nothing; the raw token never reaches the log; a referred person's first purchase pays
the referrer 10% once, five conversions pay the first tier bonus; a bulk job of 120 invitations
completes with progress; the funnel and the K-factor count what happened."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from api.runtime import Runtime
from eventlog.store import EVENTS_TABLE
from infra.database import ConnectionInfo
from tests.conftest import api_client, log_head, start_runtime
from tests.support.clock import MovableClock
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until
from tests.tenants import Member, Tenant, ok

Json = dict[str, Any]


@dataclass
class Site:
    """A running platform (sagas on a movable clock) and an organization on it."""

    runtime: Runtime
    clock: MovableClock
    client: httpx.Client
    tenant: Tenant

    def invite(self, who: Member, email: str, **extra: Any) -> Json:
        return self.tenant.act(who, "POST", "/v1/invitations", json={"email": email, **extra}, status=201)

    def accept(self, token: str, name: str = "Invitee") -> httpx.Response:
        with httpx.Client(base_url=self.client.base_url, timeout=60) as anonymous:
            return anonymous.post("/v1/invitations/accept", json={"token": token, "name": name})

    def joined(self, token: str, name: str = "Invitee") -> Member:
        """Accept `token`: the new person with their key."""
        body = ok(self.accept(token, name), 201)
        self.tenant.position = max(self.tenant.position, body["position"])
        return Member(body["person_id"], body["role"], body["key"], body["key_id"])

    def refused(self, token: str, status: int, code: str) -> None:
        head = log_head(self.runtime.db)
        resp = self.accept(token)
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["code"] == code and resp.json()["field"] == "token"
        assert log_head(self.runtime.db) == head, "a refused acceptance appended events"

    def synced(self) -> None:
        self.runtime.wait_for_sync(self.runtime.head(), timeout=30)
        self.tenant.position = max(self.tenant.position, self.runtime.head())

    def log_contains(self, text: str) -> bool:
        with psycopg.connect(self.runtime.db.conninfo) as conn:
            row = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE} WHERE position(%s IN state) > 0",
                               (text.encode(),)).fetchone()
        return bool(row and row[0])


@pytest.fixture
def site(fresh_db: ConnectionInfo) -> Iterator[Site]:
    runtime = start_runtime(fresh_db)
    clock = MovableClock()
    runtime.clock = clock
    runtime.start_sagas()
    try:
        with LiveServer(runtime) as live, api_client(live.url, timeout=60) as client:
            yield Site(runtime, clock, client, Tenant.found(client, "Referrers"))
    finally:
        runtime.close()


def test_a_magic_link_registers_the_invitee_once_with_their_referrer(site: Site) -> None:
    tenant, customer = site.tenant, site.tenant.customer
    made = site.invite(customer, "Friend@Example.com")
    assert made["referrer_id"] == customer.id and made["link"].endswith("/invite/" + made["token"])
    assert not site.log_contains(made["token"]), "the raw token is in the event log"
    assert not site.log_contains("friend@example.com"), "the invitee's email is in clear in the log"

    friend = site.joined(made["token"], "Friend")
    me = ok(site.client.get("/v1/me", headers=friend.headers, params={"after": tenant.position}), 200)
    assert me["role"] == "customer" and me["org_id"] == tenant.id
    assert me["person"]["email"] == "friend@example.com" and me["person"]["name"] == "Friend"
    links = tenant.read(tenant.owner, "/v1/connections", type="referred_by")["items"]
    assert [(c["from_id"], c["to_id"]) for c in links] == [(friend.id, customer.id)]
    assert not site.log_contains(made["token"])

    site.refused(made["token"], 409, "invitation_used")
    site.refused("not-a-token-we-made", 404, "not_found")
    late = site.invite(customer, "late@example.com")
    site.clock.advance(hours=1)
    site.refused(late["token"], 410, "invitation_expired")

    funnel = tenant.read(customer, f"/v1/referrals/{customer.id}/funnel")
    assert (funnel["invited"], funnel["registered"], funnel["converted"]) == (2, 1, 0)
    assert funnel["registration_rate"] == 0.5


def test_invitations_are_org_scoped_and_a_customer_invites_only_as_themselves(site: Site) -> None:
    tenant, other = site.tenant, Tenant.found(site.client, "Elsewhere")
    head = log_head(site.runtime.db)
    for body, field in (({"email": "x@example.com", "referrer_id": tenant.owner.id}, "referrer_id"),
                        ({"email": "x@example.com", "role": "org_user"}, "role")):
        resp = site.client.post("/v1/invitations", json=body, headers=tenant.customer.headers)
        assert resp.status_code == 403 and resp.json()["field"] == field, resp.text
    resp = site.client.post("/v1/invitations", json={"email": "not an email"}, headers=tenant.owner.headers)
    assert resp.status_code == 422 and resp.json()["field"] == "email", resp.text
    resp = site.client.get(f"/v1/referrals/{tenant.owner.id}/funnel", headers=other.owner.headers)
    assert resp.status_code == 404, resp.text
    forged = site.client.post("/v1/events", headers=tenant.owner.headers, json={
        "type": "referral_created", "metadata": {"referrerId": tenant.owner.id}})
    assert forged.status_code == 403, forged.text  # the funnel counts only what the platform states
    forged = site.client.post("/v1/connections", headers=tenant.owner.headers, json={
        "from_id": tenant.customer.id, "to_id": tenant.owner.id, "type": "referred_by"})
    assert forged.status_code == 403, forged.text
    assert log_head(site.runtime.db) == head
    made = site.invite(tenant.owner, "new.user@example.com", role="org_user")
    assert site.joined(made["token"]).role == "org_user"


def test_two_racing_acceptances_of_one_link_register_one_person(site: Site) -> None:
    token = site.invite(site.tenant.owner, "racer@example.com")["token"]
    with ThreadPoolExecutor(2) as pool:
        answers = sorted(r.status_code for r in pool.map(lambda _: site.accept(token), range(2)))
    assert answers == [201, 409]


def _token_for_sale(tenant: Tenant, price: float) -> str:
    token = str(tenant.act(tenant.owner, "POST", "/v1/things", json={
        "type": "token", "name": "REF", "properties": {"priceUsd": price}})["id"])
    wait_until(lambda: tenant.read(tenant.owner, f"/v1/things/{token}")["properties"].get("contractAddress"),
               "the token's contract", timeout=60)
    return token


def _buy(tenant: Tenant, buyer: Member, token: str) -> None:
    bought = tenant.act(buyer, "POST", "/v1/token-purchases", json={
        "buyer_id": buyer.id, "token_id": token, "amount": 2, "payment_method": "pm_card_visa"})
    purchase = f"/v1/token-purchases/{bought['id']}"
    wait_until(lambda: tenant.read(buyer, purchase)["status"] == "completed", "the purchase", timeout=60)


def test_first_purchases_pay_ten_percent_once_and_five_conversions_pay_the_first_tier(site: Site) -> None:
    tenant = site.tenant
    referrer = tenant.user
    token = _token_for_sale(tenant, 12.5)  # a purchase of 2 costs $25: the commission is $2.50
    referred = [site.joined(site.invite(referrer, f"buyer{n}@example.com")["token"], f"Buyer {n}")
                for n in range(5)]

    _buy(tenant, referred[0], token)
    _buy(tenant, referred[0], token)  # a second purchase pays nothing more
    site.synced()
    funnel = tenant.read(referrer, f"/v1/referrals/{referrer.id}/funnel")
    assert (funnel["converted"], funnel["commissions"], funnel["bonuses"]) == (1, 2.5, 0)

    for buyer in referred[1:]:
        _buy(tenant, buyer, token)
    _buy(tenant, tenant.customer, token)  # not referred: no commission
    site.synced()
    funnel = tenant.read(referrer, f"/v1/referrals/{referrer.id}/funnel")
    assert (funnel["invited"], funnel["registered"], funnel["converted"]) == (5, 5, 5)
    assert (funnel["commissions"], funnel["bonuses"], funnel["conversion_rate"]) == (12.5, 50, 1.0)
    with site.runtime.reads.connection() as conn:
        rows = conn.execute("SELECT metadata FROM activity WHERE type = 'revenue_generated'"
                            " AND metadata->>'role' = 'referral_bonus'").fetchall()
    assert [row[0]["tier"] for row in rows] == [5]


def test_a_bulk_job_of_120_invitations_completes_with_progress_and_counts_in_the_k_factor(
        site: Site) -> None:
    tenant, owner = site.tenant, site.tenant.owner
    emails = [f"guest{n}@example.com" for n in range(120)]
    job = tenant.act(owner, "POST", "/v1/invitations/bulk", json={"emails": emails}, status=202)
    assert job["count"] == 120 and [i["email"] for i in job["invitations"]] == emails
    url = f"/v1/invitations/bulk/{job['id']}"
    seen: set[int] = set()

    def done() -> bool:
        progress = tenant.read(owner, url)
        seen.add(progress["issued"])
        return bool(progress["status"] == "completed")

    wait_until(done, "the bulk job", timeout=120)
    final = tenant.read(owner, url)
    assert (final["issued"], final["total"], final["percent"], final["batches_done"]) == (120, 120, 100, 6)
    assert seen <= {0, 20, 40, 60, 80, 100, 120}
    assert not any(site.log_contains(i["token"]) for i in job["invitations"][:5])

    for invitation in job["invitations"][:3]:
        site.joined(invitation["token"])
    site.joined(site.invite(tenant.customer, "pal@example.com")["token"])
    site.synced()
    k = tenant.read(owner, "/v1/referrals/k-factor")
    assert (k["inviters"], k["invited"], k["registered"], k["converted"]) == (2, 121, 4, 0)
    assert (k["k_factor"], k["invitations_per_inviter"], k["converted_k_factor"]) == (2.0, 60.5, 0.0)
    customer = tenant.client.get("/v1/referrals/k-factor", headers=tenant.customer.headers)
    assert customer.status_code == 403
