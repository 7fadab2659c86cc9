"""Token purchases end to end on anvil with the Stripe test-mode sandbox (the payment fake at the
SDK's HTTP layer): purchases/s through the saga runner, and the time to compensate once a failure
is known (from `compensation_started` to `refunded`, burning the minted tokens on the way).

    .venv/bin/python -m bench.purchases [--purchases 300] [--compensations 50] [--threads 8]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from api.runtime import Runtime
from bench.common import (
    Latencies,
    bench_settings,
    fmt_ms,
    fmt_rate,
    fresh_database,
    print_header,
    print_table,
)
from commands import models as m
from providers.chain import Web3Ledger, http_web3
from providers.evm import DEV_DEPLOYER_KEY
from providers.stripe_sandbox import sandbox_gateway
from sagas.purchase_driver import DriverPolicy, PurchaseDriver
from sagas.runner import SagaRunner
from sagas.views import purchase_view
from tests.support.anvil import Anvil
from tests.support.stripe_sandbox_hooks import ObservedSandbox


def setup(rt: Runtime, ledger: Web3Ledger) -> tuple[UUID, UUID]:
    """A token with a deployed contract and an owner, and a buyer."""
    bus = rt.bus
    contract = ledger.deploy_token(name="Bench", symbol="BNCH")
    owner = UUID(bus.execute(m.CreateThing(type="creator", name="Owner")).body["id"])
    token = UUID(bus.execute(m.CreateThing(type="token", name="Bench", properties={
        "contractAddress": contract, "priceUsd": 1})).body["id"])
    bus.execute(m.CreateConnection(from_id=owner, to_id=token, type="owns",
                                   metadata={"revenueShare": 1.0}))
    buyer = UUID(bus.execute(m.CreatePerson(name="Buyer", email="b@example.com")).body["id"])
    return buyer, token


def run_sagas(rt: Runtime, driver: PurchaseDriver, threads: int, ids: list[UUID]) -> float:
    """Drive the sagas with the background runner; seconds until all are terminal."""
    runner = SagaRunner({"token_purchase": driver}, rt.reads, rt.db, threads=threads,
                        scan_interval_s=0.02).start()
    t0 = time.perf_counter()
    for saga_id in ids:
        runner.poke(saga_id)
    try:
        while True:
            with rt.reads.connection() as conn:
                row = conn.execute("SELECT count(*) FROM sagas WHERE status IN"
                                   " ('running', 'compensating')").fetchone()
            if row and row[0] == 0 and rt.projected() >= rt.head():
                return time.perf_counter() - t0
            time.sleep(0.02)
    finally:
        runner.stop()


def start_many(rt: Runtime, buyer: UUID, token: UUID, count: int) -> list[UUID]:
    """Open `count` purchases (group-committed)."""
    futures = [rt.bus.submit(m.StartTokenPurchase(buyer_id=buyer, token_id=token, amount=1,
                                                  payment_method="pm_card_visa"))
               for _ in range(count)]
    return [UUID(f.result().body["id"]) for f in futures]


def compensation_times(rt: Runtime, ids: list[UUID]) -> Latencies:
    """From `compensation_started` to `refunded`, per saga, from the saga's own stream."""
    latencies = Latencies()
    for saga_id in ids:
        view = purchase_view(rt.event_log, saga_id)
        assert view is not None and view["status"] == "compensated", view
        at = {step["type"]: datetime.fromisoformat(step["at"]) for step in view["steps"]}
        latencies.values.append((at["refunded"] - at["compensation_started"]).total_seconds())
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--purchases", type=int, default=300)
    parser.add_argument("--compensations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with fresh_database("purchases") as bench_db, Anvil() as node:
        node.start()
        print_header("bench/purchases: token purchase saga on anvil + Stripe sandbox", bench_db,
                     purchases=args.purchases, compensations=args.compensations,
                     driver_threads=args.threads)
        rt = Runtime.start(bench_settings(run_sagas=False), bench_db.info)
        try:
            ledger = Web3Ledger(http_web3(node.rpc_url), DEV_DEPLOYER_KEY, b"bench-custody-seed-0123")
            stripe = ObservedSandbox()
            owners: Callable[[str, str], dict[str, float]] = rt.token_owners
            driver = PurchaseDriver(rt.bus, rt.event_log, sandbox_gateway(stripe), ledger, owners,
                                    DriverPolicy(max_attempts=2, base_backoff_s=0))
            buyer, token = setup(rt, ledger)
            ids = start_many(rt, buyer, token, args.purchases)
            elapsed = run_sagas(rt, driver, args.threads, ids)
            statuses = {purchase_view(rt.event_log, i)["status"] for i in ids}  # type: ignore[index]
            assert statuses == {"completed"}, statuses

            def owners_unavailable(_org: str, _token: str) -> dict[str, float]:
                raise RuntimeError("owners unavailable")

            driver.owners_of = owners_unavailable  # fails after minting: burn + refund
            failing = start_many(rt, buyer, token, args.compensations)
            run_sagas(rt, driver, args.threads, failing)
            comp = compensation_times(rt, failing).summary()
            print_table("purchases end to end (charge → mint → record), anvil automine",
                        ["purchases", "seconds", "purchases/s", "target"],
                        [(f"{len(ids):,}", f"{elapsed:.1f}", fmt_rate(len(ids) / elapsed), "≥ 50/s")])
            print_table("time to compensate once the failure is known (burn + refund)",
                        ["sagas", "p50 ms", "p99 ms", "max ms", "target"],
                        [(f"{len(failing)}", fmt_ms(comp["p50"]), fmt_ms(comp["p99"]),
                          fmt_ms(comp["max"]), "< 1 s")])
            supply = ledger.total_supply(ledger_contract(rt, token))
            print(f"check: Stripe captured {stripe.captured_cents()} cents for {len(ids)} completed"
                  f" purchases of $1; token supply {supply / 10**18:,.0f}")
        finally:
            rt.close()


def ledger_contract(rt: Runtime, token: UUID) -> str:
    """The token's contract address."""
    with rt.reads.connection() as conn:
        row = conn.execute("SELECT properties->>'contractAddress' FROM things WHERE id = %s",
                           (token,)).fetchone()
    assert row is not None
    return str(row[0])


if __name__ == "__main__":
    main()
