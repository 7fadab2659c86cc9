"""Tenant isolation: two organizations with overlapping data (same names, tags, texts, types);
every query, search mode, RAG context, analytics and purchase route answers each organization's
people with zero rows of the other, in both modes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest

from commands import models as m
from commands.handlers import Context
from tests.conftest import OWNER
from tests.deployments import Deployment
from tests.tenants import Member, Tenant

Json = dict[str, Any]


@pytest.fixture
def deployment(knowledge_deployment: Deployment) -> Deployment:
    """Both modes, with the vector projection."""
    return knowledge_deployment


def populate(deployment: Deployment, tenant: Tenant, payment_usd: float, posts: int) -> set[str]:
    """The same catalogue in every organization; returns the ids it made."""
    owner, customer = tenant.owner, tenant.customer
    ids = {tenant.id, *(member.id for member in tenant.members.values())}
    creator = tenant.act(owner, "POST", "/v1/things", json={
        "type": "creator", "name": "Yoga Star", "tags": ["industry:fitness"],
        "properties": {"bio": "Teaches yoga and breathing"}})["id"]
    ids.add(creator)
    for i in range(posts):
        made = tenant.act(owner, "POST", "/v1/content", json={
            "creator_id": creator, "type": "blog_post", "name": f"Yoga for beginners {i}",
            "tags": ["industry:fitness", "topic:yoga"],
            "properties": {"content": "Gentle stretching and breathing for stiff backs."}})
        ids |= {made["id"], *made["connections"]}
    token = tenant.act(owner, "POST", "/v1/things", json={
        "type": "token", "name": "Yoga Coin",
        "properties": {"priceUsd": 1, "contractAddress": "0x" + "3" * 40}})["id"]
    ids.add(token)
    ids.add(tenant.act(customer, "POST", "/v1/connections", json={
        "from_id": customer.id, "to_id": creator, "type": "following"})["id"])
    ids.add(tenant.act(customer, "POST", "/v1/events", json={"type": "content_viewed",
                                                             "target_id": creator})["id"])
    ids.add(tenant.act(customer, "POST", "/v1/token-purchases", json={
        "buyer_id": customer.id, "token_id": token, "amount": 5, "payment_method": "pm_card_visa"})["id"])
    system = Context(org_id=tenant.id)  # what the purchase saga states when it completes
    for command in (
        m.CreateConnection(from_id=UUID(customer.id), to_id=UUID(token), type="holds_tokens",
                           metadata={"balance": 5}),
        m.RecordActivity(type="payment_processed", target_id=token,
                         metadata={"status": "completed", "amount": payment_usd}),
    ):
        body = deployment.runtime.bus.execute(command, system).body
        ids.add(body["id"])
        tenant.position = max(tenant.position, body["position"])
    return ids


def leaks(body: Any, foreign: set[str], org_id: str) -> list[str]:
    """Every foreign id, or org_id other than `org_id`, anywhere in a JSON answer."""
    found: list[str] = []
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "org_id" and value is not None and value != org_id:
                found.append(f"org_id {value}")
            found += leaks(value, foreign, org_id)
    elif isinstance(body, list):
        for item in body:
            found += leaks(item, foreign, org_id)
    elif isinstance(body, str) and body in foreign:
        found.append(body)
    return found


def reads(tenant: Tenant, other: Tenant, other_ids: set[str]) -> list[tuple[str, Json]]:
    """Every read route, with the other organization's ids wherever a route takes one."""
    foreign_thing = next(iter(other_ids - {other.id, *(m.id for m in other.members.values())}))
    urls: list[tuple[str, Json]] = [
        ("/v1/things", {}), ("/v1/things", {"type": "creator"}), ("/v1/things", {"tag": "topic:yoga"}),
        ("/v1/things", {"include_deleted": "true", "limit": 500}), ("/v1/connections", {}),
        ("/v1/connections", {"type": "following"}), ("/v1/events", {}),
        ("/v1/events", {"type": "content_viewed"}),
        ("/v1/tags", {}), ("/v1/analytics/payments", {}), ("/v1/people", {}), ("/v1/keys", {}),
        ("/v1/me", {}), (f"/v1/holders/{other.customer.id}/tokens", {}),
        (f"/v1/things/{foreign_thing}/activity", {}), ("/v1/connections", {"to_id": foreign_thing}),
    ]
    urls += [("/v1/search", {"q": "yoga breathing", "mode": mode})
             for mode in ("semantic", "keyword", "hybrid")]
    return urls


def test_no_organization_sees_a_row_of_another(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.url, timeout=90, headers=OWNER) as client:
        a, b = Tenant.found(client, "Twin"), Tenant.found(client, "Twin")
        ids = {a.id: populate(deployment, a, payment_usd=10, posts=2),
               b.id: populate(deployment, b, payment_usd=1000, posts=3)}
        for tenant, other in ((a, b), (b, a)):
            foreign = ids[other.id]
            viewers: list[Member] = [tenant.owner, tenant.customer]
            for viewer in viewers:
                for url, params in reads(tenant, other, foreign):
                    answer = client.get(url, headers=viewer.headers,
                                        params={"after": max(a.position, b.position), **params})
                    if answer.status_code == 403 and viewer.role == "customer":
                        continue  # people and analytics are for the organization's staff
                    assert answer.status_code == 200, (url, answer.text)
                    assert leaks(answer.json(), foreign, tenant.id) == [], (viewer.role, url, params)
                context = client.post("/v1/knowledge/context", headers=viewer.headers, json={
                    "question": "how do I breathe in yoga?", "limit": 50,
                    "after": max(a.position, b.position)})
                assert context.status_code == 200 and context.json()["chunks"], context.text
                assert leaks(context.json(), foreign, tenant.id) == []
                for other_id in sorted(foreign):
                    for url in (f"/v1/things/{other_id}", f"/v1/connections/{other_id}",
                                f"/v1/people/{other_id}", f"/v1/token-purchases/{other_id}",
                                f"/v1/creators/{other_id}", f"/v1/organizations/{other_id}"):
                        answer = client.get(url, headers=viewer.headers)
                        if answer.status_code != 403:  # a customer may not read some at all
                            assert answer.status_code == 404, (url, answer.text)

            owner_view = tenant.read(tenant.owner, "/v1/analytics/payments")["by_status"]
            assert owner_view == [{"status": "completed", "count": 1,  # (the recorded completion)
                                   "total_amount": 10 if tenant is a else 1000},
                                  {"status": "initiated", "count": 1, "total_amount": 5}]  # the purchase
            tags = {t["tag"]: t["usage_count"] for t in tenant.read(tenant.owner, "/v1/tags")["items"]}
            posts = 2 if tenant is a else 3
            assert tags == {"industry:fitness": posts + 1, "topic:yoga": posts}
            hits = tenant.read(tenant.customer, "/v1/search", q="yoga", mode="keyword", limit=100)["results"]
            assert len(hits) == posts + 2  # the creator, its posts and "Yoga Coin"
