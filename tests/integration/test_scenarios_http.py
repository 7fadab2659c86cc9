"""The seeds' scenarios end to end over real HTTP, reading our own writes with `?after=`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from api.runtime import Runtime
from commands import models as m
from commands.handlers import Context
from tests.conftest import bearer

Json = dict[str, Any]


def ok(resp: httpx.Response, status: int = 201) -> Json:
    assert resp.status_code == status, resp.text
    body: Json = resp.json()
    return body


def write(client: httpx.Client, method: str, url: str, status: int = 201,
          headers: dict[str, str] | None = None, **kwargs: Any) -> Json:
    """A command: answers {id, version, position}."""
    body = ok(client.request(method, url, headers=headers, **kwargs), status)
    assert isinstance(body["position"], int) and body["position"] > 0
    assert isinstance(body["version"], int) and body["version"] >= 1
    return body


def read(client: httpx.Client, url: str, after: int, headers: dict[str, str] | None = None,
         **params: Any) -> Json:
    """A query that waits for `after` to be projected."""
    return ok(client.get(url, params={"after": after, **params}, headers=headers), 200)


class World:
    """An organization founded by the platform owner, its owner, and helpers that act as the
    owner (with the owner's own key)."""

    def __init__(self, client: httpx.Client, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime
        org = write(client, "POST", "/v1/organizations",
                    json={"name": "Fit Co", "slug": "fit-co", "plan": "pro"})
        self.org_id: str = org["id"]
        in_org = {"X-Org-Id": self.org_id}
        owner = write(client, "POST", "/v1/people", headers=in_org,
                      json={"name": "Olga", "email": "Olga@Fit.example", "role": "org_owner"})
        self.owner_id: str = owner["id"]
        key = write(client, "POST", "/v1/keys", headers=in_org,
                    json={"name": "olga's laptop", "person_id": self.owner_id})
        self.headers: dict[str, str] = bearer(key["key"])
        self.position: int = key["position"]

    def cmd(self, method: str, url: str, status: int = 201, **kwargs: Any) -> Json:
        body = write(self.client, method, url, status, headers=self.headers, **kwargs)
        assert body["position"] > self.position, "positions grow with every command"
        self.position = body["position"]
        return body

    def system(self, command: Any) -> Json:
        """What only the platform states (holdings, payments): through the bus, as the sagas do."""
        body = self.runtime.bus.execute(command, Context(org_id=self.org_id)).body
        self.position = max(self.position, body["position"])
        return body

    def thing(self, type: str, name: str, **fields: Any) -> str:
        return str(self.cmd("POST", "/v1/things", json={"type": type, "name": name, **fields})["id"])

    def get(self, url: str, **params: Any) -> Json:
        return read(self.client, url, self.position, self.headers, **params)


@pytest.fixture
def world(client: httpx.Client, runtime: Runtime) -> World:
    return World(client, runtime)


def test_organization_people_and_creator(world: World) -> None:
    creator = world.thing("creator", "  Ann Athlete  ", properties={"niche": "yoga"},
                          tags=["industry:fitness", "Skill:Yoga"])
    got = world.get(f"/v1/things/{creator}")
    assert got["name"] == "Ann Athlete"  # stripped
    assert got["type"] == "creator" and got["status"] == "draft"
    assert got["org_id"] == world.org_id and got["created_by"] == world.owner_id
    assert got["tags"] == ["industry:fitness", "skill:Yoga"]  # category lowercased
    assert got["properties"] == {"niche": "yoga"}
    joined = world.get("/v1/events", type="user_joined", actor_id=world.org_id)
    assert joined["items"] == []  # the person was created by the system actor
    people = world.get("/v1/events", type="user_joined")["items"]
    assert [(row["target_id"], row["metadata"]["role"]) for row in people] == [
        (world.owner_id, "org_owner")]  # the platform owner joined another organization


def test_content_with_ownership_authorship_collaborators_and_tags(world: World) -> None:
    creator = world.thing("creator", "Ann")
    editor = world.thing("creator", "Bob")
    studio = world.thing("creator", "Cy")
    made = world.cmd("POST", "/v1/content", json={
        "creator_id": creator, "type": "blog_post", "name": "Ten stretches",
        "properties": {"words": 900}, "tags": ["topic:stretching", "format:article"],
        "collaborators": [{"entity_id": editor, "revenue_share": 0.3},
                          {"entity_id": studio, "revenue_share": 0.25}],
    })
    content = made["id"]
    assert made["version"] == 1
    assert len(made["connections"]) == 4 and len(set(made["connections"])) == 4

    owns = world.get("/v1/connections", to_id=content, type="owns")["items"]
    shares = {row["from_id"]: row["metadata"]["revenueShare"] for row in owns}
    assert shares == pytest.approx({creator: 0.45, editor: 0.3, studio: 0.25})
    assert sum(shares.values()) == pytest.approx(1.0)
    authored = world.get("/v1/connections", from_id=creator, type="authored")["items"]
    assert [row["to_id"] for row in authored] == [content]
    assert {row["id"] for row in owns + authored} == set(made["connections"])

    thing = world.get(f"/v1/things/{content}", include="connections")
    assert thing["type"] == "blog_post" and thing["tags"] == ["topic:stretching", "format:article"]
    assert thing["properties"] == {"words": 900}
    assert len(thing["connections"]["incoming"]) == 4
    assert thing["connections"]["outgoing"] == []

    profile = world.get(f"/v1/creators/{creator}")
    assert [row["id"] for row in profile["content"]] == [content]  # owns + authored: listed once
    assert profile["follower_count"] == 0
    assert [row["id"] for row in world.get(f"/v1/creators/{editor}")["content"]] == [content]


def test_content_without_collaborators_gives_creator_everything(world: World) -> None:
    creator = world.thing("creator", "Solo")
    content = world.cmd("POST", "/v1/content", json={
        "creator_id": creator, "type": "video", "name": "Intro"})["id"]
    owns = world.get("/v1/connections", to_id=content, type="owns")["items"]
    assert [(row["from_id"], row["metadata"]["revenueShare"]) for row in owns] == [(creator, 1)]


def test_content_needs_a_live_creator(world: World) -> None:
    course = world.thing("course", "Not a creator")
    resp = world.client.post("/v1/content", headers=world.headers, json={
        "creator_id": course, "type": "blog_post", "name": "x"})
    assert resp.status_code == 422 and resp.json()["field"] == "creator_id"
    too_much = world.client.post("/v1/content", headers=world.headers, json={
        "creator_id": world.thing("creator", "Greedy"), "type": "blog_post", "name": "x",
        "collaborators": [{"entity_id": course, "revenue_share": 0.6},
                          {"entity_id": world.owner_id, "revenue_share": 0.6}]})
    assert too_much.status_code == 422, too_much.text
    assert too_much.json()["field"] == "collaborators"


def test_follow_unfollow_refollow_changes_follower_count(world: World) -> None:
    creator = world.thing("creator", "Star")
    fans = [world.thing("audience_member", f"fan {i}") for i in range(3)]

    def followers() -> int:
        return int(world.get(f"/v1/creators/{creator}")["follower_count"])

    first = world.cmd("POST", "/v1/connections",
                      json={"from_id": fans[0], "to_id": creator, "type": "following"})
    assert followers() == 1
    world.cmd("POST", "/v1/connections",
              json={"from_id": fans[1], "to_id": creator, "type": "follows"})  # legacy name
    world.cmd("POST", "/v1/connections",
              json={"from_id": fans[2], "to_id": creator, "type": "following"})
    assert followers() == 3
    assert world.get(f"/v1/creators/{fans[0]}")["following_count"] == 1

    twice = world.client.post("/v1/connections", headers=world.headers,
                              json={"from_id": fans[0], "to_id": creator, "type": "following"})
    assert twice.status_code == 409 and twice.json()["code"] == "already_exists"

    gone = world.cmd("DELETE", "/v1/connections", status=200,
                     params={"from_id": fans[0], "to_id": creator, "type": "following"})
    assert gone["id"] == first["id"] and gone["version"] == 2
    assert followers() == 2
    assert world.get(f"/v1/connections/{first['id']}")["removed_at"] is not None
    again = world.client.delete("/v1/connections", headers=world.headers,
                                params={"from_id": fans[0], "to_id": creator, "type": "following"})
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"

    back = world.cmd("POST", "/v1/connections", json={
        "from_id": fans[0], "to_id": creator, "type": "following", "metadata": {"via": "ad"}})
    assert back["id"] == first["id"] and back["version"] == 3  # the same stream continues
    assert followers() == 3
    edge = world.get(f"/v1/connections/{first['id']}")
    assert edge["removed_at"] is None and edge["metadata"] == {"via": "ad"}

    world.cmd("DELETE", "/v1/connections", status=200,
              params={"from_id": fans[1], "to_id": creator, "type": "follows"})
    assert followers() == 2
    listed = world.get("/v1/connections", to_id=creator, type="following")["items"]
    assert {row["from_id"] for row in listed} == {fans[0], fans[2]}


def test_views_interactions_and_thing_activity(world: World) -> None:
    creator = world.thing("creator", "Ann")
    content = world.cmd("POST", "/v1/content", json={
        "creator_id": creator, "type": "video", "name": "Warm up"})["id"]
    fan = world.thing("audience_member", "Fan")
    for seconds in (10, 20, 30):
        world.cmd("POST", "/v1/events", json={
            "type": "content_viewed", "target_id": content, "metadata": {"seconds": seconds}})
    liked = world.cmd("POST", "/v1/events", json={
        "type": "content_liked", "target_id": content, "metadata": {"by": fan}})
    assert liked["version"] == 1  # each activity is its own one-event stream
    world.cmd("POST", "/v1/events", json={"type": "content_shared", "target_id": content})

    history = world.get(f"/v1/things/{content}/activity")
    kinds = [row["type"] for row in history["items"]]
    assert kinds == ["content_interacted", "content_interacted", "content_viewed",
                     "content_viewed", "content_viewed", "entity_created"]  # newest first
    assert history["next_cursor"] is None
    interactions = [row["metadata"] for row in history["items"][:2]]
    assert interactions == [{"interactionType": "shared"},
                            {"by": fan, "interactionType": "liked"}]
    assert all(row["actor_id"] == world.owner_id for row in history["items"])
    assert history["items"][-1]["metadata"] == {"entityType": "video", "tagCount": 0}

    views = world.get(f"/v1/things/{content}/activity", type="content_viewed")["items"]
    assert [row["metadata"]["seconds"] for row in views] == [30, 20, 10]
    positions = [row["position"] for row in history["items"]]
    assert positions == sorted(positions, reverse=True)

    contradicting = world.client.post("/v1/events", headers=world.headers, json={
        "type": "content_liked", "target_id": content,
        "metadata": {"interactionType": "shared"}})
    assert contradicting.status_code == 422
    assert contradicting.json()["field"] == "metadata.interactionType"
    missing = world.client.post("/v1/events", headers=world.headers, json={
        "type": "content_viewed", "target_id": "7d6ad2a4-8a6e-4ad5-8a0e-000000000000"})
    assert missing.status_code == 404 and missing.json()["field"] == "target_id"


def test_list_by_type_status_and_tag_with_cursor_pagination(world: World) -> None:
    courses = [world.thing("course", f"course {i}",
                           tags=["skill:python"] if i % 2 else ["skill:go"]) for i in range(11)]
    world.thing("lesson", "not a course", tags=["skill:python"])
    for course in courses[:4]:
        world.cmd("PUT", f"/v1/things/{course}/status", status=200, json={"status": "published"})

    def page_through(**filters: Any) -> list[str]:
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {**filters, "limit": 3, **({"cursor": cursor} if cursor else {})}
            page = world.get("/v1/things", **params)
            assert len(page["items"]) <= 3
            seen += [row["id"] for row in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                return seen
            assert pages < 20

    all_courses = page_through(type="course")
    assert all_courses == list(reversed(courses))  # newest first, no duplicates, no misses
    assert page_through(type="course", tag="skill:python") == [
        c for i, c in reversed(list(enumerate(courses))) if i % 2]
    assert page_through(type="course", status="published") == list(reversed(courses[:4]))
    assert page_through(type="course", status="draft") == list(reversed(courses[4:]))
    exact = world.get("/v1/things", type="course", limit=11)
    assert len(exact["items"]) == 11 and exact["next_cursor"] is None
    assert len(page_through(tag="skill:python")) == 6
    in_default_org = read(world.client, "/v1/things", world.position, type="course")
    assert in_default_org["items"] == []  # the platform owner's own organization has none


def test_token_holdings(world: World) -> None:
    creator = world.thing("creator", "Ann")
    token = world.thing("token", "ANN", properties={"symbol": "ANN", "decimals": 18})
    other = world.thing("token", "BOB")
    fan = world.thing("audience_member", "Fan")
    held = world.system(m.CreateConnection(from_id=UUID(fan), to_id=UUID(token), type="holds_tokens",
                                           metadata={"balance": 100}))
    world.system(m.CreateConnection(from_id=UUID(fan), to_id=UUID(other), type="holds",
                                    metadata={"balance": 2.5}))
    forged = world.client.post("/v1/connections", headers=world.headers, json={
        "from_id": fan, "to_id": token, "type": "holds_tokens", "metadata": {"balance": 10**9}})
    assert forged.status_code == 403 and forged.json()["code"] == "forbidden"
    world.cmd("POST", "/v1/connections", json={
        "from_id": fan, "to_id": creator, "type": "following"})  # not a holding

    items = world.get(f"/v1/holders/{fan}/tokens")["items"]
    assert [(row["token_id"], row["token_name"], row["balance"]) for row in items] == [
        (token, "ANN", 100), (other, "BOB", 2.5)]
    assert items[0]["token_properties"] == {"symbol": "ANN", "decimals": 18}

    patched = world.client.patch(f"/v1/connections/{held['id']}", headers=world.headers,
                                 json={"metadata": {"balance": 10**9}})
    assert patched.status_code == 403, patched.text
    world.system(m.UpdateConnection(id=held["id"], metadata={"balance": 160, "note": "bought 60"}))
    items = {row["token_id"]: row for row in world.get(f"/v1/holders/{fan}/tokens")["items"]}
    assert (items[token]["balance"], items[other]["balance"]) == (160, 2.5)
    assert items[token]["metadata"] == {"balance": 160, "note": "bought 60"}
    world.system(m.RemoveConnection(id=held["id"]))
    assert [row["token_id"] for row in world.get(f"/v1/holders/{fan}/tokens")["items"]] == [other]
    assert world.get(f"/v1/holders/{creator}/tokens")["items"] == []


def test_payment_analytics_over_a_time_range(world: World) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    payments = [("completed", 10), ("completed", 15.5), ("failed", 5), ("initiated", 1)]
    for status, amount in payments:  # stated by the purchase saga
        world.system(m.RecordActivity(type="payment_processed",
                                      metadata={"status": status, "amount": amount}))
    world.system(m.RecordActivity(type="payment_refunded", metadata={"amount": 3}))
    forged = world.client.post("/v1/events", headers=world.headers, json={
        "type": "payment_completed", "metadata": {"amount": 1000}})
    assert forged.status_code == 403 and forged.json()["code"] == "forbidden"
    world.cmd("POST", "/v1/events", json={"type": "content_viewed"})  # not a payment
    end = datetime.now(UTC) + timedelta(seconds=5)

    got = world.get("/v1/analytics/payments", since=start.isoformat(), until=end.isoformat())
    by_status = {row["status"]: (row["count"], row["total_amount"]) for row in got["by_status"]}
    assert by_status == {"completed": (2, 25.5), "failed": (1, 5), "initiated": (1, 1),
                         "refunded": (1, 3)}
    before = world.get("/v1/analytics/payments", since=(start - timedelta(days=1)).isoformat(),
                       until=start.isoformat())
    assert before["by_status"] == []
    everything = world.get("/v1/analytics/payments")
    assert sum(row["count"] for row in everything["by_status"]) == 5
    refunds = world.get("/v1/events", type="payment_processed")["items"]
    assert refunds[0]["metadata"] == {"amount": 3, "status": "refunded"}


def test_tags_catalogue_usage_counts_tag_and_untag(world: World) -> None:
    a = world.thing("course", "A", tags=["topic:ai", "skill:python"])
    b = world.thing("course", "B", tags=["topic:ai"])
    world.cmd("POST", f"/v1/things/{b}/tags", status=200,
              json={"tags": ["Skill:python", "topic:ai", "goal:job"]})
    assert world.get(f"/v1/things/{b}")["tags"] == ["topic:ai", "skill:python", "goal:job"]

    def usage(**params: Any) -> dict[str, int]:
        return {row["tag"]: row["usage_count"] for row in world.get("/v1/tags", **params)["items"]}

    assert usage() == {"topic:ai": 2, "skill:python": 2, "goal:job": 1}
    assert [row["tag"] for row in world.get("/v1/tags")["items"]][-1] == "goal:job"
    assert usage(category="topic") == {"topic:ai": 2}

    world.cmd("DELETE", f"/v1/things/{a}/tags/skill:python", status=200)
    assert usage() == {"topic:ai": 2, "skill:python": 1, "goal:job": 1}
    assert world.get(f"/v1/things/{a}")["tags"] == ["topic:ai"]
    tagged = world.get("/v1/things", tag="skill:python")["items"]
    assert [row["id"] for row in tagged] == [b]

    noop = world.client.delete(f"/v1/things/{a}/tags/skill:python", headers=world.headers)
    assert noop.status_code == 200  # absent tags are ignored ...
    assert noop.json()["version"] == 2  # ... and append nothing
    world.cmd("POST", f"/v1/things/{a}/tags", status=200, json={"tags": ["skill:python"]})
    assert usage()["skill:python"] == 2


def test_patch_merges_properties_and_honours_if_match(world: World) -> None:
    thing = world.thing("course", "Draft", properties={"a": 1, "b": {"x": 1}, "c": "keep"})
    patched = world.client.patch(f"/v1/things/{thing}", headers={**world.headers, "If-Match": '"1"'},
                                 json={"name": "Final", "properties": {"a": None, "b": {"y": 2},
                                                                       "d": [1, 2]}})
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"2"' and patched.json()["version"] == 2
    world.position = patched.json()["position"]
    got = world.get(f"/v1/things/{thing}")
    assert got["name"] == "Final"
    assert got["properties"] == {"b": {"y": 2}, "c": "keep", "d": [1, 2]}  # shallow, null removes
    assert got["version"] == 2

    world.cmd("PATCH", f"/v1/things/{thing}", status=200, json={"properties": {"e": False}})
    assert world.get(f"/v1/things/{thing}")["properties"]["e"] is False
    assert world.get(f"/v1/things/{thing}")["name"] == "Final"
    empty = world.client.patch(f"/v1/things/{thing}", headers=world.headers, json={})
    assert empty.status_code == 422 and empty.json()["code"] == "validation_error"


def test_status_publish_archive(world: World) -> None:
    thing = world.thing("course", "Course")
    world.cmd("PUT", f"/v1/things/{thing}/status", status=200, json={"status": "published"})
    assert world.get(f"/v1/things/{thing}")["status"] == "published"
    same = world.client.put(f"/v1/things/{thing}/status", headers=world.headers,
                            json={"status": "published"})
    assert same.status_code == 409 and same.json()["code"] == "invalid_state"
    world.cmd("PUT", f"/v1/things/{thing}/status", status=200, json={"status": "archived"})
    assert world.get(f"/v1/things/{thing}")["status"] == "archived"
    lifecycle = world.get(f"/v1/things/{thing}/activity")["items"]
    assert [(row["type"], row["metadata"].get("previous")) for row in lifecycle] == [
        ("entity_archived", "published"), ("entity_published", "draft"),
        ("entity_created", None)]
    bad = world.client.put(f"/v1/things/{thing}/status", headers=world.headers,
                           json={"status": "deleted"})
    assert bad.status_code == 422 and bad.json()["field"] == "status"


def test_soft_delete_and_restore(world: World) -> None:
    keep = world.thing("course", "Keep")
    doomed = world.thing("course", "Doomed")
    world.cmd("DELETE", f"/v1/things/{doomed}", status=200)

    def listed(**params: Any) -> list[str]:
        return [row["id"] for row in world.get("/v1/things", type="course", **params)["items"]]

    assert listed() == [keep]
    assert listed(include_deleted="true") == [doomed, keep]
    assert world.get(f"/v1/things/{doomed}")["deleted_at"] is not None
    edit = world.client.patch(f"/v1/things/{doomed}", headers=world.headers,
                              json={"name": "Zombie"})
    assert edit.status_code == 409 and edit.json()["code"] == "invalid_state"
    twice = world.client.delete(f"/v1/things/{doomed}", headers=world.headers)
    assert twice.status_code == 409

    world.cmd("POST", f"/v1/things/{doomed}/restore", status=200)
    assert listed() == [doomed, keep]
    assert world.get(f"/v1/things/{doomed}")["deleted_at"] is None
    again = world.client.post(f"/v1/things/{keep}/restore", headers=world.headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    kinds = [row["type"] for row in world.get(f"/v1/things/{doomed}/activity")["items"]]
    assert kinds == ["entity_restored", "entity_deleted", "entity_created"]


def test_deleted_content_leaves_the_creator_profile(world: World) -> None:
    creator = world.thing("creator", "Ann")
    first = world.cmd("POST", "/v1/content", json={
        "creator_id": creator, "type": "podcast", "name": "Ep 1"})["id"]
    second = world.cmd("POST", "/v1/content", json={
        "creator_id": creator, "type": "podcast", "name": "Ep 2"})["id"]
    assert [row["id"] for row in world.get(f"/v1/creators/{creator}")["content"]] == [
        second, first]
    world.cmd("DELETE", f"/v1/things/{first}", status=200)
    assert [row["id"] for row in world.get(f"/v1/creators/{creator}")["content"]] == [second]
    world.cmd("DELETE", f"/v1/things/{creator}", status=200)
    late = world.client.post("/v1/content", headers=world.headers, json={
        "creator_id": creator, "type": "podcast", "name": "Ep 3"})
    assert late.status_code == 422 and late.json()["field"] == "creator_id"
