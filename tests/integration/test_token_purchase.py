"""The token purchase saga on real parts: the official Stripe SDK over the Stripe test-mode
sandbox transport, the ERC-20 contract on the in-process EVM, the event log on PostgreSQL.

The driver is advanced step by step (no background runner) so every scenario is deterministic;
`test_http_purchase_completes` runs the background runner behind the HTTP API."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from web3 import Web3

from api.runtime import Runtime
from commands import models as m
from commands.handlers import SYSTEM_ORG_ID, Context
from commands.processes import AdvanceProcess
from domain.token_purchase import TOKEN_DECIMALS, TokenPurchase
from infra.database import ConnectionInfo
from projections.rebuild import rebuild, snapshot
from projections.sagas import SAGAS
from providers.chain import Web3Ledger, http_web3
from providers.evm import DEV_DEPLOYER_KEY, InProcessEVMProvider, in_process_web3
from providers.stripe_sandbox import sandbox_gateway
from providers.stripe_webhooks import encode_event, sign_webhook
from sagas.purchase_driver import DriverPolicy, PurchaseDriver
from tests.conftest import (
    api_client,
    database_url,
    start_runtime,
    wait_for_contract,
    wait_for_purchase,
)
from tests.support.anvil import Anvil
from tests.support.live_server import LiveServer
from tests.support.stripe_sandbox_hooks import ObservedSandbox

CUSTODY_SEED = b"test-custody-seed-0123456789"


@dataclass
class World:
    runtime: Runtime
    driver: PurchaseDriver
    stripe: ObservedSandbox
    ledger: Web3Ledger
    buyer: UUID
    token: UUID
    contract: str
    creator: UUID
    collaborator: UUID
    w3: Web3

    def start(self, amount: int = 10, card: str = "pm_card_visa", buyer: UUID | None = None) -> UUID:
        body = self.runtime.bus.execute(m.StartTokenPurchase(
            buyer_id=buyer or self.buyer, token_id=self.token, amount=amount, payment_method=card,
        )).body
        assert body["status"] == "running"
        return UUID(body["id"])

    def run(self, saga_id: UUID, steps: int = 12) -> TokenPurchase:
        for _ in range(steps):
            if self.driver.advance(saga_id) not in ("running", "compensating"):
                break
        saga: TokenPurchase = self.runtime.event_log.repository.get(saga_id)
        return saga

    def buyer_with_bad_wallet(self) -> UUID:
        """A buyer (a thing) whose own walletAddress is not an address: the mint is refused."""
        return UUID(self.runtime.bus.execute(m.CreateThing(
            type="creator", name="Bad wallet", properties={"walletAddress": "0xbad"})).body["id"])

    def supply(self) -> int:
        return self.ledger.total_supply(self.contract)


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    """A real anvil node for the module; each test reverts to a clean snapshot."""
    node = Anvil().start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(params=["anvil", "in-process-evm"])
def chain(request: pytest.FixtureRequest) -> Iterator[Web3]:
    """The same scenarios on anvil (JSON-RPC) and on the embedded default's in-process EVM."""
    if request.param == "in-process-evm":
        yield in_process_web3()
        return
    node: Anvil = request.getfixturevalue("anvil")
    snapshot = node.snapshot()
    try:
        yield http_web3(node.rpc_url)
    finally:
        node.revert(snapshot)


@pytest.fixture
def world(fresh_db: ConnectionInfo, chain: Web3) -> Iterator[World]:
    rt = start_runtime(fresh_db)
    stripe = ObservedSandbox()
    ledger = Web3Ledger(chain, DEV_DEPLOYER_KEY, CUSTODY_SEED)
    contract = ledger.deploy_token(name="Fit Token", symbol="FIT")
    bus = rt.bus
    creator = UUID(bus.execute(m.CreateThing(type="creator", name="Coach")).body["id"])
    collaborator = UUID(bus.execute(m.CreateThing(type="creator", name="Editor")).body["id"])
    token = UUID(bus.execute(m.CreateThing(type="token", name="Fit Token", properties={
        "contractAddress": contract, "priceUsd": 0.5, "symbol": "FIT"})).body["id"])
    bus.execute(m.CreateConnection(from_id=creator, to_id=token, type="owns",
                                   metadata={"revenueShare": 0.75}))
    last = bus.execute(m.CreateConnection(from_id=collaborator, to_id=token, type="owns",
                                          metadata={"revenueShare": 0.25})).body
    buyer = UUID(bus.execute(m.CreatePerson(name="Bea", email="bea@example.com")).body["id"])
    rt.wait_for_sync(last["position"])
    driver = new_driver(rt, stripe, ledger)
    world = World(rt, driver, stripe, ledger, buyer, token, contract, creator, collaborator, chain)
    yield world
    try:
        assert_invariants(world)
    finally:
        rt.close()


def new_driver(rt: Runtime, stripe: ObservedSandbox, ledger: Web3Ledger) -> PurchaseDriver:
    """A driver as a freshly started process would build it (its own gateway and nonces)."""
    return PurchaseDriver(rt.bus, rt.event_log, sandbox_gateway(stripe), ledger, rt.token_owners,
                          DriverPolicy(max_attempts=3, base_backoff_s=0))


def assert_invariants(world: World) -> None:
    """Checked after every scenario (issue 4): chain = holdings; money = tokens or refunds;
    no saga stuck without a timer or a reason; the sagas read model equals its rebuild."""
    rt = world.runtime
    rt.wait_for_sync(rt.head())
    with rt.reads.connection() as conn:
        holdings = conn.execute(
            "SELECT c.from_id, (c.metadata->>'balance')::bigint, t.properties->>'walletAddress'"
            " FROM connections c LEFT JOIN things t ON t.id = c.from_id WHERE c.to_id = %s"
            " AND c.type = 'holds_tokens' AND c.removed_at IS NULL", (world.token,)).fetchall()
        sagas = conn.execute("SELECT status, retry_at, reason, usd_cents FROM sagas").fetchall()
    unit = 10**TOKEN_DECIMALS
    assert world.supply() == sum(balance for _, balance, _ in holdings) * unit
    for holder, balance, wallet in holdings:
        address = wallet or world.ledger.custodial_address(str(holder))
        assert world.ledger.balance_of(world.contract, address) == balance * unit
    completed = sum(cents for status, _, _, cents in sagas if status == "completed")
    assert world.stripe.captured_cents() == completed, "a captured payment is neither minted nor refunded"
    for status, retry_at, reason, _ in sagas:
        if status in ("running", "compensating"):
            assert retry_at is not None, "an active saga has no pending timer"
        if status == "parked":
            assert reason, "a parked saga has no reason"
    assert rt.runner is not None
    rt.runner.stop()
    before = snapshot(rt.db, [SAGAS])
    rebuild(rt.event_log, rt.db, [SAGAS])
    assert snapshot(rt.db, [SAGAS]) == before, "rebuilding sagas from the log changed them"


def _one(rt: Runtime, *args: str) -> str:
    """Run the `one` CLI against the runtime's database; return its stdout."""
    env = {**os.environ, "DATABASE_URL": database_url(rt.db), "COLUMNS": "250"}
    done = subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    return done.stdout


def _types(world: World, saga_id: UUID) -> list[str]:
    from sagas.views import purchase_view

    view = purchase_view(world.runtime.event_log, saga_id)
    assert view is not None
    return [step["type"] for step in view["steps"]]


def test_purchase_charges_mints_and_records_holdings_with_revenue_split(world: World) -> None:
    saga_id = world.start(amount=10)  # 10 x $0.50 = $5.00
    saga = world.run(saga_id)
    assert saga.status == "completed"
    assert _types(world, saga_id) == ["started", "payment_succeeded", "mint_signed",
                                      "mint_confirmed", "completed"]
    wallet = world.ledger.custodial_address(str(world.buyer))
    assert world.ledger.balance_of(world.contract, wallet) == 10 * 10**TOKEN_DECIMALS
    assert world.stripe.captured_cents() == 500
    rt = world.runtime
    rt.wait_for_sync(rt.head())
    with rt.reads.connection() as conn:
        from projections.queries import list_activity, token_holdings

        org = str(SYSTEM_ORG_ID)
        holdings = token_holdings(conn, org, world.buyer)
        revenue = list_activity(conn, org, target_id=world.token, type="revenue_generated")["items"]
    assert [(h["token_id"], h["balance"]) for h in holdings] == [(str(world.token), 10)]
    split = {r["metadata"]["recipient"]: r["metadata"]["amount"] for r in revenue}
    # 15% fee = $0.75; $4.25 split 75/25 = $3.18 + $1.06 (cents floored); the leftover cent
    # goes to the platform, so the parts add up to the whole
    assert split == {"platform": 0.76, str(world.creator): 3.18, str(world.collaborator): 1.06}
    assert round(sum(split.values()), 2) == 5.00


def test_second_purchase_adds_to_the_balance(world: World) -> None:
    world.run(world.start(amount=4))
    world.run(world.start(amount=6))
    wallet = world.ledger.custodial_address(str(world.buyer))
    assert world.ledger.balance_of(world.contract, wallet) == 10 * 10**TOKEN_DECIMALS
    rt = world.runtime
    rt.wait_for_sync(rt.head())
    with rt.reads.connection() as conn:
        from projections.queries import token_holdings

        assert [h["balance"] for h in token_holdings(conn, str(SYSTEM_ORG_ID), world.buyer)] == [10]


def test_declined_card_fails_without_minting(world: World) -> None:
    saga = world.run(world.start(card="pm_card_chargeDeclined"))
    assert saga.status == "failed"
    assert "declined" in (saga.reason or "")
    assert world.supply() == 0
    assert world.stripe.captured_cents() == 0


def test_mint_refused_is_refunded(world: World) -> None:
    saga_id = world.start(buyer=world.buyer_with_bad_wallet())
    saga = world.run(saga_id)
    assert saga.status == "compensated"
    assert _types(world, saga_id)[-2:] == ["compensation_started", "refunded"]
    assert world.supply() == 0
    assert world.stripe.captured_cents() == 0  # charged, then refunded in full


def test_failure_after_minting_burns_and_refunds(world: World) -> None:
    def owners_unavailable(org_id: str, token_id: str) -> dict[str, float]:
        raise RuntimeError("read model unavailable")

    world.driver.owners_of = owners_unavailable
    saga_id = world.start(amount=7)
    saga = world.run(saga_id)
    assert saga.status == "compensated"
    types = _types(world, saga_id)
    assert types[-4:] == ["compensation_started", "burn_signed", "burn_confirmed", "refunded"]
    assert types.count("step_failed") == 2
    assert world.supply() == 0
    assert world.stripe.captured_cents() == 0


def test_refund_that_keeps_failing_parks_then_operator_retry_completes_it(world: World) -> None:
    world.stripe.fail_next(10, status=500, match="POST /v1/refunds")
    saga_id = world.start(buyer=world.buyer_with_bad_wallet())
    saga = world.run(saga_id)
    assert saga.status == "parked" and "refund" in (saga.reason or "")
    rt = world.runtime
    rt.wait_for_sync(rt.head())
    assert str(saga_id) in _one(rt, "sagas", "list", "--status", "parked")
    assert '"status": "parked"' in _one(rt, "sagas", "show", str(saga_id))
    world.stripe.clear_faults()
    _one(rt, "sagas", "retry", str(saga_id))
    assert world.run(saga_id).status == "compensated"
    assert world.stripe.captured_cents() == 0


def test_lost_charge_response_is_retried_without_double_charging(world: World) -> None:
    world.stripe.fail_next(1, status=None, after_processing=True, match="POST /v1/payment_intents")
    saga_id = world.start(amount=2)
    assert world.driver.advance(saga_id) == "running"  # the charge happened; its response was lost
    assert world.run(saga_id).status == "completed"
    assert len(world.stripe.payment_intents()) == 1
    assert world.stripe.captured_cents() == 100


def test_driver_dying_after_recording_the_mint_never_mints_twice(world: World) -> None:
    saga_id = world.start(amount=3)
    world.driver.advance(saga_id)  # charge
    saga: TokenPurchase = world.runtime.event_log.repository.get(saga_id)
    wallet = world.ledger.custodial_address(str(world.buyer))
    signed = world.ledger.sign_mint(contract=world.contract, to=wallet, amount=3 * 10**TOKEN_DECIMALS)
    world.runtime.bus.execute(AdvanceProcess(
        saga_id, saga.version,
        lambda s, _, ctx: s.mint_signed(ctx.actor_id, signed.tx_hash, signed.raw, signed.nonce),
    ), Context())  # ... and the driver "dies" here, before broadcasting
    assert world.supply() == 0
    assert world.run(saga_id).status == "completed"
    world.ledger.broadcast(signed)  # a stray re-broadcast of the same transaction changes nothing
    assert world.supply() == 3 * 10**TOKEN_DECIMALS


def test_concurrent_drivers_on_many_sagas_mint_exactly_once_each(world: World) -> None:
    sagas = [world.start(amount=1) for _ in range(12)]

    def drive() -> None:
        for saga_id in sagas:
            for _ in range(8):
                try:
                    if world.driver.advance(saga_id) not in ("running", "compensating"):
                        break
                except Exception:  # the other driver won this step (version conflict)
                    time.sleep(0.01)

    threads = [threading.Thread(target=drive) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = {world.run(s).status for s in sagas}
    assert statuses == {"completed"}
    assert world.supply() == 12 * 10**TOKEN_DECIMALS
    assert world.stripe.captured_cents() == 12 * 50


@pytest.mark.parametrize("boundary", [0, 1, 2, 3])
def test_driver_killed_at_each_step_boundary_resumes(world: World, boundary: int) -> None:
    saga_id = world.start(amount=4)
    for _ in range(boundary):
        world.driver.advance(saga_id)
    # the driver process dies; a new one (fresh nonces, fresh gateway) resumes from the log
    fresh_ledger = Web3Ledger(world.w3, DEV_DEPLOYER_KEY, CUSTODY_SEED)
    world.driver = new_driver(world.runtime, world.stripe, fresh_ledger)
    assert world.run(saga_id).status == "completed"
    assert world.supply() == 4 * 10**TOKEN_DECIMALS


def _set_mining(w3: Web3, automatic: bool) -> None:
    """Pause or resume block production (anvil's RPC, or eth-tester's switch)."""
    provider = w3.provider
    if isinstance(provider, InProcessEVMProvider):
        tester: Any = provider.ethereum_tester
        tester.enable_auto_mine_transactions() if automatic else tester.disable_auto_mine_transactions()
    else:
        w3.provider.make_request("evm_setAutomine", [automatic])  # type: ignore[arg-type]


def test_mint_not_mined_yet_waits_on_a_durable_timer_then_confirms(world: World) -> None:
    saga_id = world.start(amount=3)
    world.driver.advance(saga_id)  # charged
    _set_mining(world.w3, False)
    try:
        assert world.driver.advance(saga_id) == "running"  # signed, recorded, broadcast, pending
        assert _types(world, saga_id)[-2:] == ["mint_signed", "step_failed"]
        assert world.supply() == 0
    finally:
        _set_mining(world.w3, True)
    if isinstance(world.w3.provider, InProcessEVMProvider):
        tester: Any = world.w3.provider.ethereum_tester
        tester.mine_blocks()
    assert world.run(saga_id).status == "completed"
    assert world.supply() == 3 * 10**TOKEN_DECIMALS


def test_stripe_outages_and_timeouts_are_retried(world: World) -> None:
    world.stripe.fail_next(1, status=500, match="POST /v1/payment_intents")
    world.stripe.fail_next(1, status=None, match="POST /v1/payment_intents")  # a timeout
    saga_id = world.start(amount=2)
    assert world.run(saga_id).status == "completed"
    assert _types(world, saga_id).count("step_failed") == 2
    assert len(world.stripe.payment_intents()) == 1


def test_chain_node_down_is_retried_then_completes(world: World) -> None:
    saga_id = world.start(amount=2)
    world.driver.advance(saga_id)  # charged
    healthy = world.driver.ledger
    world.driver.ledger = Web3Ledger(http_web3("http://127.0.0.1:9"), DEV_DEPLOYER_KEY, CUSTODY_SEED)
    assert world.driver.advance(saga_id) == "running"  # connection refused: a durable retry
    assert _types(world, saga_id)[-1] == "step_failed"
    world.driver.ledger = healthy
    assert world.run(saga_id).status == "completed"


def _webhooks(view: dict[str, object]) -> list[dict[str, Any]]:
    intent = {"id": view["payment_id"], "object": "payment_intent",
              "metadata": {"saga_id": view["id"]}, "status": "succeeded"}
    succeeded = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": intent}}
    refunded = {"id": "evt_2", "type": "charge.refunded", "data": {"object": {
        "id": "ch_1", "object": "charge", "payment_intent": view["payment_id"], "refunded": True,
        "amount_refunded": 0, "metadata": {"saga_id": view["id"]}}}}
    return [refunded, succeeded, succeeded]


def test_http_purchase_completes(fresh_db: ConnectionInfo) -> None:
    secret = "whsec_test_secret"
    # the saga runner and token deployer run in the background, as in `one serve`
    rt = start_runtime(fresh_db, run_sagas=True, stripe_webhook_secret=secret)
    try:
        with LiveServer(rt) as live, api_client(live.url, timeout=30) as http:
            buyer = http.post("/v1/people", json={"name": "Al", "email": "al@example.com"}).json()
            token = http.post("/v1/things", json={"type": "token", "name": "Al Coin",
                                                  "properties": {"priceUsd": 2}}).json()
            wait_for_contract(http, token)
            started = http.post("/v1/token-purchases", json={
                "buyer_id": buyer["id"], "token_id": token["id"], "amount": 5,
                "payment_method": "pm_card_visa"})
            assert started.status_code == 202, started.text
            purchase = started.json()
            view = wait_for_purchase(http, purchase["id"])
            assert view["status"] == "completed" and view["usd_amount"] == 10.0
            for event in _webhooks(view):  # duplicated and out of order: harmless
                body = encode_event(event)
                hook = http.post("/v1/webhooks/stripe", content=body,
                                 headers={"Stripe-Signature": sign_webhook(body, secret)})
                assert hook.status_code == 200 and hook.json()["saga_id"] == purchase["id"]
            for stranger in (str(uuid.uuid4()), token["id"]):  # no saga, or not a saga
                body = encode_event(_webhooks({"id": stranger, "payment_id": "pi_x"})[1])
                hook = http.post("/v1/webhooks/stripe", content=body,
                                 headers={"Stripe-Signature": sign_webhook(body, secret)})
                assert hook.status_code == 200 and hook.json()["saga_id"] is None
            forged = http.post("/v1/webhooks/stripe", content=b"{}",
                               headers={"Stripe-Signature": "t=1,v1=00"})
            assert forged.status_code == 400 and forged.json()["code"] == "invalid_signature"
            assert http.get(f"/v1/token-purchases/{purchase['id']}").json()["version"] == view["version"]
            deployed = http.get("/v1/events", params={"type": "token_deployed",
                                                      "after": purchase["position"]}).json()
            assert [e["target_id"] for e in deployed["items"]] == [token["id"]]
            declined = http.post("/v1/token-purchases", json={
                "buyer_id": buyer["id"], "token_id": token["id"], "amount": 5,
                "payment_method": "pm_card_chargeDeclined"}).json()
            view = wait_for_purchase(http, declined["id"])
            assert view["status"] == "failed" and view["mint_tx"] is None
            holdings = http.get(f"/v1/holders/{buyer['id']}/tokens",
                                params={"after": rt.head()}).json()["items"]
            assert [h["balance"] for h in holdings] == [5]  # only the completed purchase
            bad = http.post("/v1/token-purchases", json={
                "buyer_id": buyer["id"], "token_id": token["id"], "amount": 0,
                "payment_method": "pm_card_visa"})
            assert bad.status_code == 422 and bad.json()["field"] == "amount"
    finally:
        rt.close()
