"""The permission matrix, generated: every operation of the OpenAPI document by {no key, bad key,
revoked key, expired key, customer, org user, org owner, org owner of another org, platform owner}
answers what docs/permissions.md says, and a refused request appends nothing. In both modes.

Each operation has a sample request (below) about resources of organization A that belong to
A's owner, never to the caller; so an `own` or `self` cell means 403 unless the request is about
the caller by construction (their own activity, keys, `/v1/me`). The other organization's owner
acts in their own organization: 404 for anything of A, success for what is their own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.permissions_doc import DOC, parse_matrix, render_matrix, updated
from api.runtime import Runtime
from commands.handlers import SYSTEM_ACTOR_ID, Context
from commands.models import CreateConnection
from commands.processes import AdvanceProcess
from domain.permissions import PUBLIC
from tests.conftest import OWNER, bearer, log_head
from tests.deployments import Deployment
from tests.support.parking import parked_purchase, refuse_cursed_names
from tests.tenants import Tenant, ok

Json = dict[str, Any]
KEYLESS = ("no key", "bad key", "revoked key", "expired key")
SAME_ORG = {"customer": "customer", "org user": "org_user", "org owner": "org_owner"}
OTHER_OWNER = "org owner of another org"
PLATFORM_OWNER = "platform owner"
CALLERS = (*KEYLESS, *SAME_ORG, OTHER_OWNER, PLATFORM_OWNER)


@dataclass
class Sample:
    """A request that the matrix permits for A's owner (and so must succeed for them)."""

    method: str
    url: str
    json: Json | None = None
    params: Json = field(default_factory=dict)
    about_a: bool = True
    """It names resources of organization A (the other organization's owner gets 404)."""
    about_caller: bool = False
    """It is about the caller themselves by construction (`self` reach succeeds)."""


@dataclass
class World:
    """Organization A (with sample resources, made by its owner) and organization B."""

    client: httpx.Client
    a: Tenant
    b: Tenant
    runtime: Runtime
    clone_id: str | None = None

    def thing(self, type: str = "course", **fields: Any) -> str:
        return str(self.a.act(self.a.owner, "POST", "/v1/things",
                              json={"type": type, "name": f"{type} {uuid.uuid4().hex[:6]}", **fields})["id"])

    def connection(self) -> tuple[str, str, str]:
        source, target = self.thing(), self.thing("creator")
        made = self.a.act(self.a.owner, "POST", "/v1/connections",
                          json={"from_id": source, "to_id": target, "type": "following"})
        return str(made["id"]), source, target

    def token(self) -> str:
        return self.thing("token", properties={"priceUsd": 1, "contractAddress": "0x" + "2" * 40})

    def purchase(self) -> str:
        return str(self.a.act(self.a.owner, "POST", "/v1/token-purchases", json={
            "buyer_id": self.a.owner.id, "token_id": self.token(), "amount": 2,
            "payment_method": "pm_card_visa"})["id"])

    def parked_event(self) -> int:
        """The position of a new event of A that its projection parked."""
        refuse_cursed_names(self.runtime.db)
        made = self.a.act(self.a.owner, "POST", "/v1/things", json={"type": "course", "name": "cursed"})
        parked = self.a.read(self.a.owner, "/v1/projections/parked")["items"]
        assert parked[0]["position"] == made["position"]
        return int(made["position"])

    def parked_saga(self) -> str:
        """A purchase of A, parked."""
        return parked_purchase(self.runtime, self.a)

    def journey(self) -> str:
        """An ELEVATE journey of A's owner."""
        return str(self.a.act(self.a.owner, "POST", "/v1/workflows/elevate/instances",
                              json={"input": {"business": "bakery"}})["id"])

    def parked_journey(self) -> str:
        """A journey of A's owner whose first step failed its three tries."""
        journey = self.journey()
        instance: Any = self.runtime.event_log.repository.get(uuid.UUID(journey))

        def fail_three_times(i: Any, _: Any, ctx: Any) -> None:
            for _try in range(3):
                i.begin_step(ctx.actor_id)
                i.step_failed(ctx.actor_id, "the analysis service is down", datetime.now(UTC))

        done = self.runtime.bus.execute(AdvanceProcess(instance.id, instance.version, fail_three_times))
        self.a.position = max(self.a.position, done.body["position"])
        return journey

    def schedule(self) -> str:
        """A schedule of A (it starts an ELEVATE journey for A's owner)."""
        return str(self.a.act(self.a.owner, "POST", "/v1/schedules", json={
            "name": f"journeys {uuid.uuid4().hex[:8]}", "cron": "0 9 * * *", "job": "workflow.start",
            "params": {"workflow": "elevate", "subject_id": self.a.owner.id}})["id"])

    def paused_schedule(self) -> str:
        schedule = self.schedule()
        self.a.act(self.a.owner, "POST", f"/v1/schedules/{schedule}/pause")
        return schedule

    def chat_clone(self) -> str:
        """An AI clone of A whose creator's token every member of A (and the platform owner) holds."""
        if self.clone_id is None:
            owner = self.a.owner
            creator, token, clone = self.thing("creator"), self.token(), self.thing("ai_clone")
            for target in (token, clone):
                self.a.act(owner, "POST", "/v1/connections", json={"from_id": creator, "to_id": target,
                                                                   "type": "owns"})
            holders = [m.id for m in (self.a.customer, self.a.user, owner)] + [str(SYSTEM_ACTOR_ID)]
            for holder in holders:
                done = self.runtime.bus.execute(CreateConnection(
                    from_id=uuid.UUID(holder), to_id=uuid.UUID(token), type="holds_tokens",
                    metadata={"balance": 3}), Context(org_id=self.a.id))
                self.a.position = max(self.a.position, done.body["position"])
            self.clone_id = clone
        return self.clone_id

    def bulk_job(self) -> str:
        """A bulk invitation job of A's owner."""
        return str(self.a.act(self.a.owner, "POST", "/v1/invitations/bulk",
                              json={"emails": ["one@example.com", "two@example.com"]})["id"])

    def agent(self) -> str:
        """A research agent of A, owned by A's owner."""
        return str(self.a.act(self.a.owner, "POST", "/v1/agents", json=_agent_body(self.a.owner.id))["id"])

    def execution(self) -> str:
        """A completed execution of an agent of A, run by A's owner."""
        return str(self.a.act(self.a.owner, "POST", f"/v1/agents/{self.agent()}/executions",
                              json={"input": "hello"})["execution_id"])

    def after(self) -> Json:
        return {"after": self.a.position}


def _agent_body(owner_id: str) -> Json:
    return {"type": "research_agent", "name": f"scout {uuid.uuid4().hex[:6]}", "system_prompt": "Research.",
            "pricing": {"per_execution_usd": 0.01}, "owner_id": owner_id}


def _deleted_thing(w: World) -> str:
    thing = w.thing()
    w.a.act(w.a.owner, "DELETE", f"/v1/things/{thing}")
    return thing


def _removal_by_ends(w: World) -> Sample:
    _, source, target = w.connection()
    return Sample("DELETE", "/v1/connections",
                  params={"from_id": source, "to_id": target, "type": "following"})


SAMPLES: dict[tuple[str, str], Callable[[World], Sample]] = {
    ("POST", "/v1/organizations"): lambda w: Sample(
        "POST", "/v1/organizations", {"name": "New", "slug": f"new-{uuid.uuid4().hex[:8]}"},
        about_a=False),
    ("GET", "/v1/organizations"): lambda w: Sample("GET", "/v1/organizations", params=w.after(),
                                                   about_a=False),
    ("PATCH", "/v1/organizations/{org_id}"): lambda w: Sample(
        "PATCH", f"/v1/organizations/{w.a.id}", {"plan": f"plan-{uuid.uuid4().hex[:4]}"}),
    ("GET", "/v1/organizations/{org_id}"): lambda w: Sample("GET", f"/v1/organizations/{w.a.id}",
                                                            params=w.after()),
    ("POST", "/v1/people"): lambda w: Sample("POST", "/v1/people", {"name": "New", "role": "customer"},
                                             about_a=False),
    ("GET", "/v1/people"): lambda w: Sample("GET", "/v1/people", params=w.after(), about_a=False),
    ("PATCH", "/v1/people/{person_id}"): lambda w: Sample(
        "PATCH", f"/v1/people/{w.a.person('customer').id}", {"bio": "edited"}),
    ("DELETE", "/v1/people/{person_id}"): lambda w: Sample(
        "DELETE", f"/v1/people/{w.a.person('customer').id}"),
    ("GET", "/v1/people/{person_id}"): lambda w: Sample(
        "GET", f"/v1/people/{w.a.owner.id}", params=w.after()),
    ("PUT", "/v1/people/{person_id}/role"): lambda w: Sample(
        "PUT", f"/v1/people/{w.a.person('customer').id}/role", {"role": "org_user"}),
    ("PUT", "/v1/people/{person_id}/status"): lambda w: Sample(
        "PUT", f"/v1/people/{w.a.person('customer').id}/status", {"status": "suspended"}),
    ("DELETE", "/v1/people/{person_id}/personal-data"): lambda w: Sample(
        "DELETE", f"/v1/people/{w.a.person('customer').id}/personal-data"),
    ("POST", "/v1/keys"): lambda w: Sample("POST", "/v1/keys", {"name": "mine"}, about_a=False,
                                           about_caller=True),
    ("GET", "/v1/keys"): lambda w: Sample("GET", "/v1/keys", params=w.after(), about_a=False,
                                          about_caller=True),
    ("DELETE", "/v1/keys/{key_id}"): lambda w: Sample(
        "DELETE", f"/v1/keys/{w.a.person('customer').key_id}"),
    ("GET", "/v1/me"): lambda w: Sample("GET", "/v1/me", params=w.after(), about_a=False,
                                        about_caller=True),
    ("POST", "/v1/things"): lambda w: Sample("POST", "/v1/things", {"type": "course", "name": "New"},
                                             about_a=False),
    ("GET", "/v1/things"): lambda w: Sample("GET", "/v1/things", params=w.after(), about_a=False),
    ("PATCH", "/v1/things/{thing_id}"): lambda w: Sample("PATCH", f"/v1/things/{w.thing()}",
                                                         {"name": "Renamed"}),
    ("DELETE", "/v1/things/{thing_id}"): lambda w: Sample("DELETE", f"/v1/things/{w.thing()}"),
    ("GET", "/v1/things/{thing_id}"): lambda w: Sample("GET", f"/v1/things/{w.thing()}", params=w.after()),
    ("PUT", "/v1/things/{thing_id}/status"): lambda w: Sample(
        "PUT", f"/v1/things/{w.thing()}/status", {"status": "published"}),
    ("POST", "/v1/things/{thing_id}/restore"): lambda w: Sample(
        "POST", f"/v1/things/{_deleted_thing(w)}/restore"),
    ("POST", "/v1/things/{thing_id}/tags"): lambda w: Sample(
        "POST", f"/v1/things/{w.thing()}/tags", {"tags": ["topic:new"]}),
    ("DELETE", "/v1/things/{thing_id}/tags/{tag}"): lambda w: Sample(
        "DELETE", f"/v1/things/{w.thing(tags=['topic:old'])}/tags/topic:old"),
    ("POST", "/v1/content"): lambda w: Sample("POST", "/v1/content", {
        "creator_id": w.thing("creator"), "type": "blog_post", "name": "Post"}),
    ("POST", "/v1/connections"): lambda w: Sample("POST", "/v1/connections", {
        "from_id": w.thing(), "to_id": w.thing("creator"), "type": "following"}),
    ("DELETE", "/v1/connections"): _removal_by_ends,
    ("GET", "/v1/connections"): lambda w: Sample("GET", "/v1/connections",
                                                 params={**w.after(), "type": "following"}, about_a=False),
    ("PATCH", "/v1/connections/{conn_id}"): lambda w: Sample(
        "PATCH", f"/v1/connections/{w.connection()[0]}", {"metadata": {"note": "x"}}),
    ("DELETE", "/v1/connections/{conn_id}"): lambda w: Sample(
        "DELETE", f"/v1/connections/{w.connection()[0]}"),
    ("GET", "/v1/connections/{conn_id}"): lambda w: Sample(
        "GET", f"/v1/connections/{w.connection()[0]}", params=w.after()),
    ("POST", "/v1/events"): lambda w: Sample("POST", "/v1/events",
                                             {"type": "content_viewed", "target_id": w.thing()},
                                             about_caller=True),
    ("GET", "/v1/events"): lambda w: Sample("GET", "/v1/events", params=w.after(), about_a=False,
                                            about_caller=True),
    ("GET", "/v1/things/{thing_id}/activity"): lambda w: Sample(
        "GET", f"/v1/things/{w.thing()}/activity", params=w.after(), about_a=False, about_caller=True),
    ("GET", "/v1/creators/{creator_id}"): lambda w: Sample(
        "GET", f"/v1/creators/{w.thing('creator')}", params=w.after()),
    ("GET", "/v1/holders/{holder_id}/tokens"): lambda w: Sample(
        "GET", f"/v1/holders/{w.a.owner.id}/tokens", params=w.after(), about_a=False),
    ("GET", "/v1/analytics/payments"): lambda w: Sample("GET", "/v1/analytics/payments",
                                                        params=w.after(), about_a=False),
    ("GET", "/v1/tags"): lambda w: Sample("GET", "/v1/tags", params=w.after(), about_a=False),
    ("GET", "/v1/projections"): lambda w: Sample("GET", "/v1/projections", about_a=False),
    ("GET", "/v1/projections/parked"): lambda w: Sample("GET", "/v1/projections/parked", params=w.after(),
                                                        about_a=False),
    ("POST", "/v1/projections/parked/retry"): lambda w: Sample("POST", "/v1/projections/parked/retry", {},
                                                               about_a=False),
    ("GET", "/v1/things/{thing_id}/history"): lambda w: Sample("GET", f"/v1/things/{w.thing()}/history"),
    ("GET", "/v1/connections/{conn_id}/history"): lambda w: Sample(
        "GET", f"/v1/connections/{w.connection()[0]}/history"),
    ("GET", "/v1/people/{person_id}/history"): lambda w: Sample(
        "GET", f"/v1/people/{w.a.owner.id}/history", params=w.after()),
    ("GET", "/v1/organizations/{org_id}/history"): lambda w: Sample(
        "GET", f"/v1/organizations/{w.a.id}/history"),
    ("GET", "/v1/sagas"): lambda w: Sample("GET", "/v1/sagas", params=w.after(), about_a=False),
    ("POST", "/v1/sagas/{saga_id}/retry"): lambda w: Sample("POST", f"/v1/sagas/{w.parked_saga()}/retry"),
    ("POST", "/v1/sagas/{saga_id}/resolve"): lambda w: Sample(
        "POST", f"/v1/sagas/{w.parked_saga()}/resolve", {"note": "refunded in the Stripe dashboard"}),
    ("GET", "/v1/log"): lambda w: Sample("GET", "/v1/log", params={"limit": 5}, about_a=False),
    ("GET", "/v1/schedules"): lambda w: Sample("GET", "/v1/schedules", params=w.after(), about_a=False),
    ("POST", "/v1/schedules"): lambda w: Sample("POST", "/v1/schedules", {
        "name": f"sync {uuid.uuid4().hex[:8]}", "cron": "0 12 * * *", "job": "luma.sync",
        "params": {"slug": "fruteroclub"}}, about_a=False),
    ("POST", "/v1/schedules/{schedule_id}/pause"): lambda w: Sample(
        "POST", f"/v1/schedules/{w.schedule()}/pause"),
    ("POST", "/v1/schedules/{schedule_id}/resume"): lambda w: Sample(
        "POST", f"/v1/schedules/{w.paused_schedule()}/resume"),
    ("DELETE", "/v1/schedules/{schedule_id}"): lambda w: Sample("DELETE", f"/v1/schedules/{w.schedule()}"),
    ("POST", "/v1/schedules/{schedule_id}/run"): lambda w: Sample(
        "POST", f"/v1/schedules/{w.schedule()}/run"),
    ("GET", "/v1/community-events"): lambda w: Sample("GET", "/v1/community-events", params=w.after(),
                                                      about_a=False),
    ("POST", "/v1/dsl/features"): lambda w: Sample("POST", "/v1/dsl/features", {"feature": {
        "feature": "Hello", "input": {}, "output": {}, "flow": [{"return": {}}]}}, about_a=False),
    ("POST", "/v1/dsl/validate"): lambda w: Sample(
        "POST", "/v1/dsl/validate", {"feature": {"feature": "Noop"}}, about_a=False),
    ("GET", "/v1/analytics/revenue"): lambda w: Sample("GET", "/v1/analytics/revenue", params=w.after(),
                                                       about_a=False),
    ("GET", "/v1/analytics/dashboard"): lambda w: Sample("GET", "/v1/analytics/dashboard", params=w.after(),
                                                         about_a=False),
    ("GET", "/v1/analytics/export"): lambda w: Sample(
        "GET", "/v1/analytics/export", params={"report": "top_content", **w.after()}, about_a=False),
    ("POST", "/v1/clones/{clone_id}/messages"): lambda w: Sample(
        "POST", f"/v1/clones/{w.chat_clone()}/messages", {"message": "hello"}),
    ("GET", "/v1/clones/{clone_id}/metrics"): lambda w: Sample("GET", f"/v1/clones/{w.chat_clone()}/metrics"),
    ("POST", "/v1/agents"): lambda w: Sample("POST", "/v1/agents", _agent_body(w.a.owner.id)),
    ("GET", "/v1/agents"): lambda w: Sample("GET", "/v1/agents", params=w.after(), about_a=False),
    ("POST", "/v1/agents/{agent_id}/executions"): lambda w: Sample(
        "POST", f"/v1/agents/{w.agent()}/executions", {"input": "hello"}),
    ("GET", "/v1/agents/{agent_id}/executions"): lambda w: Sample(
        "GET", f"/v1/agents/{w.agent()}/executions", params=w.after(), about_caller=True),
    ("GET", "/v1/agents/executions/{execution_id}"): lambda w: Sample(
        "GET", f"/v1/agents/executions/{w.execution()}", params=w.after()),
    ("GET", "/v1/agents/usage"): lambda w: Sample("GET", "/v1/agents/usage", params=w.after(), about_a=False),
    ("GET", "/v1/workflows"): lambda w: Sample("GET", "/v1/workflows", about_a=False, about_caller=True),
    ("POST", "/v1/workflows/{name}/instances"): lambda w: Sample(
        "POST", "/v1/workflows/elevate/instances",
        {"subject_id": w.a.owner.id, "input": {"business": "bakery"}}),
    ("GET", "/v1/workflows/instances/{instance_id}"): lambda w: Sample(
        "GET", f"/v1/workflows/instances/{w.journey()}"),
    ("POST", "/v1/workflows/instances/{instance_id}/signal"): lambda w: Sample(
        "POST", f"/v1/workflows/instances/{w.journey()}/signal", {"name": "engage"}),
    ("POST", "/v1/workflows/instances/{instance_id}/retry"): lambda w: Sample(
        "POST", f"/v1/workflows/instances/{w.parked_journey()}/retry"),
    ("POST", "/v1/workflows/instances/{instance_id}/skip"): lambda w: Sample(
        "POST", f"/v1/workflows/instances/{w.journey()}/skip", {"note": "done by hand"}),
    ("POST", "/v1/workflows/instances/{instance_id}/cancel"): lambda w: Sample(
        "POST", f"/v1/workflows/instances/{w.journey()}/cancel", {"note": "asked to stop"}),
    ("GET", "/v1/stream"): lambda w: Sample("GET", "/v1/stream", params={"after": 0, "limit": 1},
                                            about_a=False),
    ("POST", "/v1/projections/parked/{position}/skip"): lambda w: Sample(
        "POST", f"/v1/projections/parked/{w.parked_event()}/skip", {"note": "not needed"}),
    ("POST", "/v1/token-purchases"): lambda w: Sample("POST", "/v1/token-purchases", {
        "buyer_id": w.a.owner.id, "token_id": w.token(), "amount": 1, "payment_method": "pm_card_visa"}),
    ("GET", "/v1/token-purchases/{purchase_id}"): lambda w: Sample(
        "GET", f"/v1/token-purchases/{w.purchase()}"),
    ("GET", "/v1/search"): lambda w: Sample("GET", "/v1/search", params={"q": "course", **w.after()},
                                            about_a=False),
    ("POST", "/v1/knowledge/context"): lambda w: Sample(
        "POST", "/v1/knowledge/context", {"question": "which course?", "after": w.a.position},
        about_a=False),
    ("POST", "/v1/auth/privy"): lambda w: Sample("POST", "/v1/auth/privy", {"identity_token": "x.y.z"},
                                                 about_a=False),
    ("POST", "/v1/invitations"): lambda w: Sample("POST", "/v1/invitations", {"email": "friend@example.com"},
                                                  about_a=False, about_caller=True),
    ("POST", "/v1/invitations/bulk"): lambda w: Sample(
        "POST", "/v1/invitations/bulk", {"emails": ["a@example.com", "b@example.com"]}, about_a=False),
    ("GET", "/v1/invitations/bulk/{job_id}"): lambda w: Sample("GET", f"/v1/invitations/bulk/{w.bulk_job()}"),
    ("POST", "/v1/invitations/accept"): lambda w: Sample(
        "POST", "/v1/invitations/accept", {"token": "no-such-token", "name": "Someone"}, about_a=False),
    ("GET", "/v1/referrals/{person_id}/funnel"): lambda w: Sample(
        "GET", f"/v1/referrals/{w.a.owner.id}/funnel", params=w.after()),
    ("GET", "/v1/referrals/k-factor"): lambda w: Sample("GET", "/v1/referrals/k-factor", params=w.after(),
                                                        about_a=False),
    ("POST", "/v1/webhooks/stripe"): lambda w: Sample("POST", "/v1/webhooks/stripe", {"id": "evt"},
                                                      about_a=False),
}


def expected(cells: dict[str, str], caller: str, sample: Sample) -> str:
    """What the matrix says: "2xx", "401", "403" or "404"."""
    if caller in KEYLESS:
        return "401"
    if caller == PLATFORM_OWNER:
        return "2xx"
    role = "org_owner" if caller == OTHER_OWNER else SAME_ORG[caller]
    cell = cells[role]
    if cell == "—":
        return "403"
    if caller == OTHER_OWNER:
        return "404" if sample.about_a else "2xx"
    if cell in ("org", "any") or sample.about_caller:
        return "2xx"
    return "403"


@pytest.fixture
def deployment(knowledge_deployment: Deployment) -> Deployment:
    """Both modes, with the vector projection."""
    return knowledge_deployment


def _callers(world: World) -> dict[str, dict[str, str]]:
    a = world.a
    revoked = a.person("customer")
    a.act(a.owner, "DELETE", f"/v1/keys/{revoked.key_id}")
    expires = datetime.now(UTC) + timedelta(seconds=1)
    expiring = a.act(a.customer, "POST", "/v1/keys",
                     json={"name": "brief", "expires_at": expires.isoformat()})
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)  # the clock, not a race
    return {
        "no key": {},
        "bad key": bearer(f"one_{uuid.uuid4().hex}_{'x' * 43}"),
        "revoked key": revoked.headers,
        "expired key": bearer(expiring["key"]),
        "customer": a.customer.headers,
        "org user": a.user.headers,
        "org owner": a.owner.headers,
        OTHER_OWNER: world.b.owner.headers,
        PLATFORM_OWNER: {**OWNER, "X-Org-Id": a.id},
    }


def test_every_operation_answers_each_caller_as_the_matrix_says(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.url, timeout=90, headers=OWNER) as client, \
            httpx.Client(base_url=deployment.url, timeout=90) as plain:
        world = World(client, Tenant.found(client, "A"), Tenant.found(client, "B"), deployment.runtime)
        callers = _callers(world)
        matrix = parse_matrix(DOC.read_text())
        operations = [(method.upper(), path, op["x-permission"])
                      for path, ops in client.get("/openapi.json").json()["paths"].items()
                      if path.startswith("/v1") for method, op in ops.items()]
        assert {(m, p) for m, p, _ in operations} == set(SAMPLES), "each operation needs a sample"
        failures: list[str] = []
        for method, path, action in operations:
            public_answers: set[int] = set()
            for caller, headers in callers.items():
                sample = SAMPLES[(method, path)](world)
                head = log_head(deployment.runtime.db)
                resp = plain.request(sample.method, sample.url, json=sample.json, params=sample.params,
                                     headers=headers)
                got = resp.status_code
                if got >= 400 and log_head(deployment.runtime.db) != head:
                    failures.append(f"{method} {path} as {caller}: refused ({got}) but appended")
                if got >= 500:
                    failures.append(f"{method} {path} as {caller}: {got} {resp.text}")
                if action == PUBLIC:
                    public_answers.add(got)
                    continue
                want = expected(matrix[action], caller, sample)
                if (want == "2xx" and not 200 <= got < 300) or (want != "2xx" and str(got) != want):
                    failures.append(f"{method} {path} as {caller}: want {want}, got {got} {resp.text[:160]}")
                elif got >= 400:
                    assert resp.headers["content-type"].startswith("application/problem+json")
            if action == PUBLIC:
                assert len(public_answers) == 1 and 401 not in public_answers, (path, public_answers)
        assert not failures, "\n".join(failures)


def test_the_document_shows_the_policy_the_code_enforces(client: httpx.Client) -> None:
    openapi = client.get("/openapi.json").json()
    text = DOC.read_text()
    assert updated(text, openapi) == text, "run: .venv/bin/python -m api.permissions_doc"
    assert render_matrix(openapi) in text
    assert ok(client.get("/v1/me"))["role"] == "platform_owner"
