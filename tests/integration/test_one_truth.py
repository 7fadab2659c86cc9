"""The embedded default's chain, holdings and payments survive restarts of `one serve` and agree
across two `one serve` processes on one database: the leading process rebuilds the in-process
chain from the signed transactions in the log, and the payment sandbox keeps its state in the
database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from eth_account import Account

from domain.token_purchase import TOKEN_DECIMALS
from eventlog.store import open_event_log
from infra.database import ConnectionInfo, ensure_database
from infra.settings import Settings
from providers.chain import Web3Ledger
from providers.evm import DEV_DEPLOYER_KEY, in_process_web3
from providers.sandbox_state import DatabaseStore
from sagas.chain_audit import audit_chain
from sagas.chain_replay import replay_signed_transactions
from tests.conftest import api_client, database_url, start_runtime, wait_for_purchase
from tests.support.one_serve import ROOT, OneServe
from tests.support.stripe_sandbox_hooks import ObservedSandbox
from tests.support.waiting import wait_until

PRICE_USD = 2


@pytest.fixture
def serve_env(fresh_db: ConnectionInfo) -> dict[str, str]:
    """The environment of `one serve` processes sharing `fresh_db`."""
    return {"DATABASE_URL": database_url(fresh_db)}


@pytest.fixture
def servers(tmp_path: Path, serve_env: dict[str, str]) -> Iterator[list[OneServe]]:
    """`one serve` processes the test starts; all stopped at the end."""
    started: list[OneServe] = []
    yield started
    for server in started:
        server.process.stop()


def serve(servers: list[OneServe], tmp_path: Path, env: dict[str, str]) -> OneServe:
    """Start one more `one serve` on the shared database."""
    server = OneServe(tmp_path, tmp_path / f"data-{len(servers)}", env).start()
    servers.append(server)
    return server


def buy(http: httpx.Client, buyer: str, token: str, amount: int, correlation: str | None = None) -> str:
    """Start a purchase (accepted at once, even while the token's contract is being deployed)."""
    started = http.post("/v1/token-purchases", json={
        "buyer_id": buyer, "token_id": token, "amount": amount, "payment_method": "pm_card_visa"},
        headers={"X-Correlation-Id": correlation} if correlation else {})
    assert started.status_code == 202, started.text
    assert started.headers["X-Correlation-Id"] == (correlation or started.headers["X-Correlation-Id"])
    return str(started.json()["id"])


def completed(http: httpx.Client, purchases: list[str]) -> list[dict[str, Any]]:
    """Wait until every purchase is settled; each must have completed."""
    views = [wait_for_purchase(http, purchase) for purchase in purchases]
    assert [view["status"] for view in views] == ["completed"] * len(views), views
    return views


def set_up_token(http: httpx.Client) -> tuple[str, str, str]:
    """A token and two buyers: one custodial, one with a wallet of their own."""
    custodial = http.post("/v1/people", json={"name": "Cus Todial"}).json()["id"]
    own_wallet = http.post("/v1/things", json={
        "type": "creator", "name": "Wal Let",
        "properties": {"walletAddress": Account.create().address}}).json()["id"]
    token = http.post("/v1/things", json={"type": "token", "name": "Truth Coin",
                                          "properties": {"priceUsd": PRICE_USD}}).json()["id"]
    return custodial, own_wallet, token


def audit_from_cli(env: dict[str, str]) -> list[dict[str, Any]]:
    """`one sagas chain --json`: the chain rebuilt from the log, compared with the holdings."""
    done = subprocess.run([sys.executable, "-m", "api.cli", "sagas", "chain", "--json"], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    audits: list[dict[str, Any]] = json.loads(done.stdout)
    return audits


def assert_chain_matches(audits: list[dict[str, Any]], token: str, tokens_bought: int,
                         holders: int) -> None:
    """One deployed token whose supply and every holder's balance equal the holdings."""
    assert [audit["token_id"] for audit in audits] == [token]
    (audit,) = audits
    assert audit["deployed"] and audit["agrees"], audit
    assert int(audit["on_chain_supply"]) == tokens_bought * 10**TOKEN_DECIMALS
    assert len(audit["holders"]) == holders
    assert all(holder["agrees"] and int(holder["on_chain"]) > 0 for holder in audit["holders"])


def readiness(server: OneServe) -> dict[str, Any]:
    """The server's /readyz document."""
    body: dict[str, Any] = httpx.get(f"{server.url}/readyz", timeout=5).json()
    return body


def test_chain_survives_restarts(tmp_path: Path, servers: list[OneServe], serve_env: dict[str, str],
                                 fresh_db: ConnectionInfo) -> None:
    server = serve(servers, tmp_path, serve_env)
    with api_client(server.url) as http:
        custodial, own_wallet, token = set_up_token(http)
        # both before the token's deployment
        first = [buy(http, custodial, token, 5, "order-5"), buy(http, own_wallet, token, 3)]
        completed(http, first)
        assert_caused_by_one_request(http, "order-5", first[0])
    server.process.stop()
    server.start()  # a new in-process chain: the leader rebuilds it from the log
    with api_client(server.url) as http:
        completed(http, [buy(http, custodial, token, 4), buy(http, own_wallet, token, 1)])
        assert readiness(server)["sagas"] == {"leading": True, "missing_contracts": 0}
    assert_chain_matches(audit_from_cli(serve_env), token, tokens_bought=13, holders=2)

    empty_chain = Web3Ledger(in_process_web3(), DEV_DEPLOYER_KEY, Settings().custody_seed.encode())
    event_log = open_event_log(fresh_db)
    try:
        with psycopg.connect(fresh_db.conninfo) as conn:
            (before,) = audit_chain(event_log, conn, empty_chain)
            assert not before.deployed and not before.agrees, "an empty chain must be reported"
            assert replay_signed_transactions(event_log, empty_chain) == 5  # deployment + 4 mints
            (after,) = audit_chain(event_log, conn, empty_chain)
            assert after.agrees
    finally:
        event_log.close()


def assert_caused_by_one_request(http: httpx.Client, correlation: str, saga: str) -> None:
    """Everything the purchase's request caused carries its correlation id: the saga's events, each
    caused by the saga's version before it (the step that woke it), and what the saga recorded."""
    answer = http.get("/v1/log", params={"correlation_id": correlation})
    caused = [json.loads(line) for line in answer.text.splitlines()]
    steps = [e for e in caused if e["stream_id"] == saga]
    assert steps[0]["type"] == "token_purchase.started" and steps[0]["causation_id"].startswith("command:")
    assert steps[-1]["type"] == "token_purchase.completed"
    for step in steps[1:]:
        woke_by = step["causation_id"].split("@")
        assert woke_by[0] == saga and int(woke_by[1]) < step["version"], step
    assert {e["type"] for e in caused if e["stream_id"] != saga} >= {"activity.recorded"}
    assert all(e["correlation_id"] == correlation for e in caused)


def test_two_processes_one_truth(tmp_path: Path, servers: list[OneServe], serve_env: dict[str, str],
                                 fresh_db: ConnectionInfo) -> None:
    pair = [serve(servers, tmp_path, serve_env), serve(servers, tmp_path, serve_env)]
    wait_until(lambda: sum(readiness(s)["sagas"]["leading"] for s in pair) == 1, "one leader")
    clients = [api_client(server.url) for server in pair]
    try:
        custodial, own_wallet, token = set_up_token(clients[0])
        purchases = [buy(clients[i % 2], (custodial, own_wallet)[i % 3 % 2], token, 1 + i % 3)
                     for i in range(8)]
        completed(clients[1], purchases)
        leader = next(i for i, server in enumerate(pair) if readiness(server)["sagas"]["leading"])
        pair[leader].process.stop()
        survivor, http = pair[1 - leader], clients[1 - leader]
        wait_until(lambda: readiness(survivor)["sagas"]["leading"], "the survivor to take the lead")
        later = [buy(http, custodial, token, 2), buy(http, own_wallet, token, 2)]
        views = completed(http, purchases + later)
    finally:
        for client in clients:
            client.close()

    bought = sum(view["amount"] for view in views)
    assert_chain_matches(audit_from_cli(serve_env), token, tokens_bought=bought, holders=2)
    with psycopg.connect(fresh_db.conninfo) as conn:
        deployments = conn.execute("SELECT count(*) FROM activity WHERE type = 'token_deployed'"
                                   " AND target_id = %s", (token,)).fetchone()
    assert deployments == (1,), "the token was deployed more than once"
    stripe = ObservedSandbox(store=DatabaseStore(fresh_db.conninfo))
    intents = {intent["id"]: intent for intent in stripe.payment_intents()}
    assert sorted(intents) == sorted(view["payment_id"] for view in views), "one payment each"
    for view in views:
        intent = intents[view["payment_id"]]
        assert (intent["status"], intent["amount_received"]) == ("succeeded", view["usd_amount"] * 100)
    assert stripe.captured_cents() == PRICE_USD * 100 * bought, "a payment was captured twice"


def test_processes_starting_together_on_a_new_database_all_start(
    fresh_db: ConnectionInfo, pg_server: ConnectionInfo,
) -> None:
    """They take turns to create the default organization, the system person and the owner key
    (a process that lost the race used to fail its start with a version conflict)."""
    alone = start_runtime(ensure_database(pg_server, f"t_alone_{uuid.uuid4().hex[:8]}"))
    one_bootstrap = alone.head()
    alone.close()
    with ThreadPoolExecutor(max_workers=3) as pool:
        starts = [pool.submit(start_runtime, fresh_db) for _ in range(3)]
        runtimes = [start.result(timeout=120) for start in starts]
    try:
        assert [rt.head() for rt in runtimes] == [one_bootstrap] * 3  # written once, not thrice
    finally:
        for rt in runtimes:
            rt.close()
