"""The agent marketplace over HTTP, with the real `openai` SDK against a local OpenAI-compatible chat
server: register agents (bad type or pricing refused, appending nothing), list and search them;
an execution completes with its output, tokens, cost and duration recorded; a rate-limited or
slow model records a failed execution (503); executions by status (a customer sees their own);
usage per agent and organization over a period, for billing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api.runtime import Runtime
from infra.database import ConnectionInfo
from tests.conftest import api_client, log_head, start_runtime
from tests.support.chat_server import ChatServer
from tests.support.live_server import LiveServer
from tests.tenants import Member, Tenant, ok

PRICING = {"per_execution_usd": 0.01, "per_1k_tokens_usd": 0.5}


@dataclass
class Market:
    """An organization with a creator, served by a runtime whose chat model is the local server."""

    runtime: Runtime
    client: httpx.Client
    tenant: Tenant
    creator: str

    def register(self, **fields: Any) -> str:
        body = {"type": "research_agent", "name": "Scout", "system_prompt": "You research markets.",
                "pricing": PRICING, "owner_id": self.creator, **fields}
        return str(self.tenant.act(self.tenant.owner, "POST", "/v1/agents", json=body)["id"])

    def run(self, agent: str, text: str, who: Member | None = None, key: str | None = None) -> httpx.Response:
        headers = {**(who or self.tenant.owner).headers, **({"Idempotency-Key": key} if key else {})}
        response = self.client.post(f"/v1/agents/{agent}/executions", json={"input": text}, headers=headers)
        answer = response.json().get("execution", response.json())
        if isinstance(answer.get("position"), int):
            self.tenant.position = max(self.tenant.position, answer["position"])
        return response

    def executions(self, agent: str, who: Member | None = None, **params: Any) -> list[dict[str, Any]]:
        url = f"/v1/agents/{agent}/executions"
        items: list[dict[str, Any]] = self.tenant.read(who or self.tenant.owner, url, **params)["items"]
        return items


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


@pytest.fixture
def market(fresh_db: ConnectionInfo, chat: ChatServer) -> Iterator[Market]:
    chat.reset()
    runtime = start_runtime(fresh_db, openai_base_url=chat.base_url, chat_model="gpt-test-mini",
                            chat_timeout_s=1.0)
    try:
        with LiveServer(runtime) as live, api_client(live.url, timeout=60) as client:
            tenant = Tenant.found(client, "Market")
            creator = tenant.act(tenant.owner, "POST", "/v1/things", json={"type": "creator", "name": "Ada"})
            yield Market(runtime, client, tenant, creator["id"])
    finally:
        runtime.close()


def test_agents_are_registered_with_their_pricing_and_owner_listed_and_searched(market: Market) -> None:
    tenant, owner = market.tenant, market.tenant.owner
    scout = market.register(description="Finds competitors and market sizes.", model="gpt-research",
                            capabilities=["web research"], tags=["industry:fitness"])
    writer = market.register(type="marketing_agent", name="Quill", system_prompt="You write copy.",
                             pricing={"per_execution_usd": 0.2}, owner_id=None)

    head = log_head(market.runtime.db)
    for body, field in (({"type": "course"}, "type"), ({"type": "clone_agent"}, "type"),
                        ({"pricing": {"per_1k_tokens_usd": -1}}, "pricing.per_1k_tokens_usd"),
                        ({"pricing": {"per_execution_usd": "free"}}, "pricing.per_execution_usd"),
                        ({"pricing": None}, "pricing"), ({"system_prompt": " "}, "system_prompt")):
        r = market.client.post("/v1/agents", headers=owner.headers, json={
            "type": "research_agent", "name": "Bad", "system_prompt": "x", "pricing": PRICING, **body})
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "validation_error" and r.json()["field"] == field, r.text
    refused = market.client.post("/v1/agents", headers=tenant.customer.headers, json={
        "type": "research_agent", "name": "Mine", "system_prompt": "x", "pricing": PRICING})
    assert refused.status_code == 403
    assert log_head(market.runtime.db) == head

    agents = tenant.read(owner, "/v1/agents")["items"]
    assert [a["id"] for a in agents] == [writer, scout]
    found = agents[1]
    assert (found["type"], found["status"], found["owner_id"]) == ("research_agent", "active", market.creator)
    assert found["properties"]["pricing"] == {"perExecutionUsd": 0.01, "per1kTokensUsd": 0.5}
    assert found["properties"]["systemPrompt"] == "You research markets." and found["executions"] == 0
    assert agents[0]["owner_id"] == owner.id  # default owner: the caller
    marketing = tenant.read(tenant.customer, "/v1/agents", type="marketing_agent")["items"]
    assert [a["id"] for a in marketing] == [writer]
    assert [a["id"] for a in tenant.read(owner, "/v1/agents", q="COMPETITORS")["items"]] == [scout]
    assert [a["id"] for a in tenant.read(owner, "/v1/agents", q="quil")["items"]] == [writer]
    assert tenant.read(owner, "/v1/agents", q="100%")["items"] == []
    assert [a["id"] for a in tenant.read(owner, "/v1/agents", owner_id=market.creator)["items"]] == [scout]
    other = Tenant.found(market.client, "Other")
    assert other.read(other.owner, "/v1/agents")["items"] == []
    assert market.client.post(f"/v1/agents/{scout}/executions", headers=other.owner.headers,
                              json={"input": "hi"}).status_code == 404


def test_an_execution_completes_with_output_tokens_cost_and_duration(market: Market,
                                                                     chat: ChatServer) -> None:
    agent = market.register(model="gpt-research", temperature=0.2)
    r = market.run(agent, "Size the yoga market in Lisbon.", key="run-1")
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["status"] == "completed" and done["output"] == "Answer to: Size the yoga market in Lisbon."
    assert done["source"] == "openai:gpt-research" and done["error"] is None
    sent = chat.requests[-1]
    assert sent["model"] == "gpt-research" and sent["temperature"] == 0.2
    assert sent["messages"][0] == {"role": "system", "content": "You research markets."}
    assert done["tokens_used"] > 0 and done["duration_ms"] >= 0
    assert done["cost_usd"] == round(0.01 + 0.5 * done["tokens_used"] / 1000, 6)

    replay = market.run(agent, "Size the yoga market in Lisbon.", key="run-1")
    assert replay.status_code == 201 and replay.json()["execution_id"] == done["execution_id"]
    assert len(chat.requests) == 1, "a replay runs nothing"

    row = market.tenant.read(market.tenant.owner, f"/v1/agents/executions/{done['execution_id']}")
    assert (row["status"], row["output"]) == ("completed", done["output"])
    assert row["actor_id"] == market.tenant.owner.id
    assert row["tokens_used"] == done["tokens_used"] and row["cost_usd"] == done["cost_usd"]
    assert row["queued_at"] <= row["started_at"] <= row["finished_at"]
    assert market.tenant.read(market.tenant.owner, "/v1/agents")["items"][0]["completed"] == 1
    with market.runtime.reads.connection() as conn:
        activity = conn.execute("SELECT target_id::text, metadata FROM activity WHERE type = 'agent_executed'"
                                ).fetchall()
    recorded = [(a[0], a[1]["status"], a[1]["costUsd"]) for a in activity]
    assert recorded == [(agent, "success", done["cost_usd"])]


def test_a_rate_limited_or_slow_model_records_a_failed_execution(market: Market, chat: ChatServer) -> None:
    agent = market.register()
    tenant = market.tenant
    chat.fail_next(2, status=429)  # the SDK's one retry is rate limited too
    r = market.run(agent, "First question")
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
    failed = r.json()
    assert failed["code"] == "chat_unavailable" and failed["execution"]["status"] == "failed"
    assert failed["execution_id"] == failed["execution"]["execution_id"] and failed["execution"]["error"]
    chat.stall_next(2, 3.0)  # beyond the 1 s timeout, twice
    r = market.run(agent, "Second question")
    assert r.status_code == 503 and r.json()["execution"]["duration_ms"] >= 1000
    assert ok(market.run(agent, "Third question"), 201)["status"] == "completed"
    mine = ok(market.run(agent, "A customer's question", who=tenant.customer), 201)

    failures = market.executions(agent, status="failed")
    assert [e["input"] for e in failures] == ["Second question", "First question"]
    assert [(e["status"], e["cost_usd"]) for e in failures] == [("failed", 0), ("failed", 0)]
    assert len(market.executions(agent, status="completed")) == 2 and len(market.executions(agent)) == 4
    assert market.executions(agent, status="running") == []
    assert [e["id"] for e in market.executions(agent, who=tenant.customer)] == [mine["execution_id"]]
    url = "/v1/agents/executions/{}"
    assert tenant.read(tenant.customer, url.format(mine["execution_id"]))["status"] == "completed"
    theirs = market.client.get(url.format(failed["execution_id"]), headers=tenant.customer.headers,
                               params={"after": tenant.position})
    assert theirs.status_code == 403
    bad = market.client.get(f"/v1/agents/{agent}/executions", headers=tenant.owner.headers,
                            params={"status": "done"})
    assert bad.status_code == 422 and bad.json()["field"] == "status"
    with market.runtime.reads.connection() as conn:
        statuses = conn.execute("SELECT metadata->>'status', count(*) FROM activity"
                                " WHERE type = 'agent_executed' GROUP BY 1 ORDER BY 1").fetchall()
    assert statuses == [("failed", 2), ("success", 2)]


def _instant() -> str:
    """Now, strictly between what came before and what comes after."""
    time.sleep(0.05)
    moment = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    return moment


def test_usage_per_agent_and_organization_over_a_period(market: Market, chat: ChatServer) -> None:
    scout = market.register(name="Scout")
    quill = market.register(type="marketing_agent", name="Quill", pricing={"per_execution_usd": 0.25})
    ok(market.run(scout, "before the period"), 201)
    since = _instant()
    inside = [ok(market.run(scout, "one"), 201), ok(market.run(scout, "two two"), 201),
              ok(market.run(quill, "three"), 201)]
    chat.fail_next(2, status=429)
    assert market.run(quill, "four").status_code == 503
    until = _instant()
    ok(market.run(quill, "after the period"), 201)

    owner = market.tenant.owner
    usage = market.tenant.read(owner, "/v1/agents/usage", since=since, until=until)
    assert usage["org_id"] == market.tenant.id
    assert (usage["executions"], usage["completed"], usage["failed"]) == (4, 3, 1)
    assert usage["tokens_used"] == sum(e["tokens_used"] for e in inside)
    assert usage["cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in inside), abs=1e-6)
    by_agent = {a["agent_id"]: a for a in usage["agents"]}
    assert by_agent[quill]["executions"] == 2 and by_agent[quill]["failed"] == 1
    assert by_agent[quill]["cost_usd"] == 0.25 and by_agent[quill]["name"] == "Quill"
    assert by_agent[scout]["executions"] == 2
    scouting = inside[0]["cost_usd"] + inside[1]["cost_usd"]
    assert by_agent[scout]["cost_usd"] == pytest.approx(scouting, abs=1e-6)

    only = market.tenant.read(owner, "/v1/agents/usage", since=since, until=until, agent_id=scout)
    assert [a["agent_id"] for a in only["agents"]] == [scout] and only["executions"] == 2
    assert market.tenant.read(owner, "/v1/agents/usage")["executions"] == 6  # no period: everything
    other = Tenant.found(market.client, "Other")
    assert other.read(other.owner, "/v1/agents/usage")["executions"] == 0
    assert market.client.get("/v1/agents/usage", headers=market.tenant.user.headers).status_code == 403
