"""AI clone chat (the seeds' code pattern 6) over HTTP, with the real `openai` SDK against a local
OpenAI-compatible chat server: a customer holding the creator's token chats (plain and streamed),
the answer uses only the clone's own knowledge and the last turns, the interaction is recorded and
rewarded with tokens minted once by the saga; a customer without tokens is refused; a 429 and a
timeout answer 503 and record nothing; without a model the local responder answers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest

from api.runtime import Runtime
from commands.clones import RecordCloneInteraction
from commands.handlers import Context
from domain.errors import DomainError
from infra.database import ConnectionInfo
from tests.conftest import api_client, start_runtime
from tests.support.chat_server import ChatServer
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until
from tests.tenants import Member, Tenant

KNOWN = "The studio opens at 7am on weekdays and runs a beginners class on Saturdays."
SECRET = "The office safe code is 4711."


@dataclass
class Studio:
    """A creator with a deployed token, an AI clone trained on one knowledge item, a customer who
    bought the token and one who did not."""

    runtime: Runtime
    url: str
    tenant: Tenant
    clone: str
    token: str
    holder: Member
    outsider: Member

    def ask(self, who: Member, message: str, **extra: Any) -> httpx.Response:
        with api_client(self.url, timeout=60) as http:
            return http.post(f"/v1/clones/{self.clone}/messages", headers=who.headers,
                             json={"message": message, **extra})

    def balance(self) -> float:
        holdings = self.tenant.read(self.holder, f"/v1/holders/{self.holder.id}/tokens")["items"]
        return float(next(h["balance"] for h in holdings if h["token_id"] == self.token))

    def interactions(self) -> int:
        with self.runtime.reads.connection() as conn:
            row = conn.execute("SELECT count(*) FROM activity WHERE type = 'clone_interaction'").fetchone()
        return int(row[0]) if row else 0


def _studio(runtime: Runtime, url: str, client: httpx.Client) -> Studio:
    tenant = Tenant.found(client, "Studio")
    owner = tenant.owner
    creator = tenant.act(owner, "POST", "/v1/things", json={"type": "creator", "name": "Ada"})["id"]
    token = tenant.act(owner, "POST", "/v1/things", json={
        "type": "token", "name": "ADA", "properties": {"priceUsd": 1}})["id"]
    clone = tenant.act(owner, "POST", "/v1/things", json={
        "type": "ai_clone", "name": "Ada AI", "status": "active",
        "properties": {"systemPrompt": "You are Ada's yoga assistant.", "temperature": 0.3}})["id"]
    known = tenant.act(owner, "POST", "/v1/things", json={
        "type": "knowledge_item", "name": "Opening hours", "properties": {"description": KNOWN}})["id"]
    tenant.act(owner, "POST", "/v1/things", json={
        "type": "knowledge_item", "name": "Office", "properties": {"description": SECRET}})
    for source, target, kind in ((creator, token, "owns"), (creator, clone, "owns"),
                                 (clone, known, "trained_on")):
        tenant.act(owner, "POST", "/v1/connections",
                   json={"from_id": source, "to_id": target, "type": kind})
    holder, outsider = tenant.customer, tenant.person("customer")

    def deployed() -> bool:
        return bool(tenant.read(owner, f"/v1/things/{token}")["properties"].get("contractAddress"))

    wait_until(deployed, "the token's contract", timeout=60)
    bought = tenant.act(holder, "POST", "/v1/token-purchases", json={
        "buyer_id": holder.id, "token_id": token, "amount": 5, "payment_method": "pm_card_visa"})
    purchase = f"/v1/token-purchases/{bought['id']}"
    wait_until(lambda: tenant.read(holder, purchase)["status"] == "completed", "the purchase", timeout=60)
    return Studio(runtime, url, tenant, clone, token, holder, outsider)


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatServer]:
    with ChatServer(responder=lambda messages: "We open at 7am on weekdays.") as server:
        yield server


@pytest.fixture
def studio(fresh_db: ConnectionInfo, chat: ChatServer) -> Iterator[Studio]:
    runtime = start_runtime(fresh_db, run_knowledge=True, openai_base_url=chat.base_url,
                            chat_model="gpt-test-mini", chat_timeout_s=1.0, clone_reward_tokens=10)
    runtime.start_sagas()
    try:
        with LiveServer(runtime) as live, api_client(live.url, timeout=60) as client:
            yield _studio(runtime, live.url, client)
    finally:
        runtime.close()


def _wait_knowledge(studio: Studio) -> None:
    def indexed() -> bool:
        with studio.runtime.reads.connection() as conn:
            status = conn.execute("SELECT count(*) FROM information_schema.tables"
                                  " WHERE table_name LIKE 'knowledge_%_chunks'").fetchone()
        return bool(status and status[0])

    wait_until(indexed, "a knowledge index", timeout=120)
    studio.runtime.wait_for_sync(studio.runtime.head())


def test_a_token_holder_chats_and_is_rewarded_once_an_outsider_is_refused(studio: Studio,
                                                                          chat: ChatServer) -> None:
    _wait_knowledge(studio)
    refused = studio.ask(studio.outsider, "When do you open?")
    assert refused.status_code == 403 and refused.json()["code"] == "tokens_required"
    before = studio.balance()
    r = studio.ask(studio.holder, "When does the studio open?")
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["response"] == "We open at 7am on weekdays." and answer["source"] == "openai:gpt-test-mini"
    assert answer["tokens_earned"] == 10 and answer["tokens_used"] > 0
    system = chat.requests[-1]["messages"][0]["content"]
    assert "You are Ada's yoga assistant." in system and "7am" in system and "4711" not in system
    assert chat.requests[-1]["temperature"] == 0.3

    r = studio.ask(studio.holder, "And on Saturdays?")
    assert r.status_code == 201, r.text
    sent = chat.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "When does the studio open?" and sent[-1]["content"] == "And on Saturdays?"

    wait_until(lambda: studio.balance() == before + 20, "two rewards of 10 tokens", timeout=60)
    metrics = studio.tenant.read(studio.tenant.owner, f"/v1/clones/{studio.clone}/metrics")
    assert metrics["interactions"] == 2 and metrics["unique_users"] == 1
    assert metrics["rewards_paid"] == 2 and metrics["reward_tokens"] == 20 and metrics["tokens_used"] > 0

    replay = RecordCloneInteraction(
        interaction_id=UUID(answer["interaction_id"]), clone_id=UUID(studio.clone), message="again",
        response="again", tokens_used=1, source="test", token_id=UUID(studio.token), reward=10)
    with pytest.raises(DomainError):  # the same interaction cannot be recorded (or rewarded) twice
        studio.runtime.bus.execute(replay, Context(actor_id=studio.holder.id, org_id=studio.tenant.id))
    studio.runtime.wait_for_sync(studio.runtime.head())
    assert studio.balance() == before + 20


def test_the_answer_streams_as_server_sent_events(studio: Studio) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    with api_client(studio.url, timeout=60) as http, http.stream(
            "POST", f"/v1/clones/{studio.clone}/messages", headers=studio.holder.headers,
            json={"message": "Hello", "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    deltas = "".join(e["text"] for k, e in events if k == "delta")
    done = [e for k, e in events if k == "done"]
    assert deltas == "We open at 7am on weekdays." and len(done) == 1
    assert done[0]["response"] == deltas and done[0]["interaction_id"]


def test_a_rate_limited_or_slow_model_answers_503_and_records_nothing(studio: Studio,
                                                                       chat: ChatServer) -> None:
    before = studio.interactions()
    chat.fail_next(2, status=429)  # the SDK's one retry is rate limited too
    r = studio.ask(studio.holder, "Hi")
    assert r.status_code == 503 and r.json()["code"] == "chat_unavailable"
    chat.stall_next(2, 3.0)  # beyond the 1 s timeout, twice
    r = studio.ask(studio.holder, "Hi")
    assert r.status_code == 503 and r.json()["code"] == "chat_unavailable"
    studio.runtime.wait_for_sync(studio.runtime.head())
    assert studio.interactions() == before


def test_without_a_model_the_local_responder_answers_from_the_clones_knowledge(studio: Studio) -> None:
    _wait_knowledge(studio)
    without_model = dataclasses.replace(studio.runtime.settings, openai_base_url=None, openai_api_key=None)
    local = Runtime.start(without_model, studio.runtime.db)
    try:
        with LiveServer(local) as live, api_client(live.url, timeout=60) as http:
            r = http.post(f"/v1/clones/{studio.clone}/messages", headers=studio.holder.headers,
                          json={"message": "When does the studio open?"})
    finally:
        local.close()
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "local-responder"
    assert r.json()["response"].startswith("[Local responder") and "7am" in r.json()["response"]
    assert "4711" not in r.json()["response"]
