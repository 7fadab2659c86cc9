"""The token purchase saga's state exists once: every event carries the (status, step) the
aggregate decided, and the `sagas` read model copies them. Every transition, the late-mint path
(mint confirmed after compensation began → burn → refund) included, leaves the read model where
the aggregate is."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from api.runtime import Runtime
from commands import models as m
from commands.handlers import Context
from commands.processes import AdvanceProcess
from commands.purchases import Decision
from domain.token_purchase import TokenPurchase

Step = Callable[[TokenPurchase, str], None]
TX = "0x" + "ab" * 32


def _token(runtime: Runtime, contract: str | None = "0x" + "5" * 40) -> UUID:
    properties: dict[str, Any] = {"priceUsd": 2}
    if contract:
        properties["contractAddress"] = contract
    return UUID(runtime.bus.execute(m.CreateThing(type="token", name="Coin", properties=properties))
                .body["id"])


def _start(runtime: Runtime, token: UUID) -> UUID:
    buyer = UUID(runtime.bus.execute(m.CreatePerson(name="Bea", role="customer")).body["id"])
    return UUID(runtime.bus.execute(m.StartTokenPurchase(
        buyer_id=buyer, token_id=token, amount=3, payment_method="pm_card_visa")).body["id"])


def _walk(runtime: Runtime, saga_id: UUID, steps: list[tuple[Step, tuple[str, str]]]) -> None:
    """Apply each step as the driver would; after each, the aggregate is where the step says and
    the read model is where the aggregate is."""
    runtime.wait_for_sync(runtime.head())
    walk: list[tuple[Step | None, tuple[str, str] | None]] = [(None, None), *steps]
    for step, expected in walk:
        saga: TokenPurchase = runtime.event_log.repository.get(saga_id)
        if step is not None:
            done = runtime.bus.execute(AdvanceProcess(saga_id, saga.version, _decision(step))).body
            saga = runtime.event_log.repository.get(saga_id)
            assert (saga.status, saga.step) == expected
            runtime.wait_for_sync(done["position"])
        with runtime.reads.connection() as conn:
            row = conn.execute("SELECT status, step, version FROM sagas WHERE id = %s",
                               (saga_id,)).fetchone()
        assert row == (saga.status, saga.step, saga.version)


def _decision(step: Step) -> Decision:
    def decide(saga: TokenPurchase, _: object, ctx: Context) -> None:
        step(saga, ctx.actor_id)

    return decide


def _signed(s: TokenPurchase, actor: str, kind: str = "mint") -> None:
    getattr(s, f"{kind}_signed")(actor, TX if kind == "mint" else TX[:-2] + "cd", "0x00", 7)


PATHS: dict[str, list[tuple[Step, tuple[str, str]]]] = {
    "completed": [
        (lambda s, a: s.payment_succeeded(a, "pi_1"), ("running", "mint")),
        (lambda s, a: s.step_failed(a, "rpc down", "2026-01-01T00:00:00+00:00"), ("running", "mint")),
        (_signed, ("running", "mint")),
        (lambda s, a: s.mint_confirmed(a, TX, 12), ("running", "record")),
        (lambda s, a: s.complete(a, []), ("completed", "done")),
    ],
    "declined": [(lambda s, a: s.payment_declined(a, "pi_1", "card_declined"), ("failed", "done"))],
    "late mint is burned, then refunded": [
        (lambda s, a: s.payment_succeeded(a, "pi_1"), ("running", "mint")),
        (_signed, ("running", "mint")),
        (lambda s, a: s.compensate(a, "mint timed out"), ("compensating", "refund")),
        (lambda s, a: s.mint_confirmed(a, TX, 40), ("compensating", "burn")),
        (lambda s, a: _signed(s, a, "burn"), ("compensating", "burn")),
        (lambda s, a: s.burn_confirmed(a, TX[:-2] + "cd"), ("compensating", "refund")),
        (lambda s, a: s.refunded(a, "re_1"), ("compensated", "done")),
    ],
    "parked, resumed, parked, resolved": [
        (lambda s, a: s.payment_succeeded(a, "pi_1"), ("running", "mint")),
        (lambda s, a: s.compensate(a, "mint refused"), ("compensating", "refund")),
        (lambda s, a: s.park(a, "refund keeps failing"), ("parked", "refund")),
        (lambda s, a: s.resume(a), ("compensating", "refund")),
        (lambda s, a: s.park(a, "still failing"), ("parked", "refund")),
        (lambda s, a: s.resolve(a, "refunded by hand"), ("resolved", "done")),
    ],
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_transition_leaves_the_read_model_where_the_aggregate_is(runtime: Runtime,
                                                                        path: str) -> None:
    _walk(runtime, _start(runtime, _token(runtime)), PATHS[path])


def test_a_purchase_waits_for_its_tokens_contract_or_is_abandoned(runtime: Runtime) -> None:
    waiting = _start(runtime, _token(runtime, contract=None))
    assert runtime.event_log.repository.get(waiting).step == "contract"
    _walk(runtime, waiting, [
        (lambda s, a: s.step_failed(a, "waiting", "2026-01-01T00:00:00+00:00"), ("running", "contract")),
        (lambda s, a: s.contract_found(a, "0x" + "6" * 40), ("running", "charge")),
        (lambda s, a: s.payment_succeeded(a, "pi_1"), ("running", "mint")),
    ])
    assert runtime.event_log.repository.get(waiting).contract == "0x" + "6" * 40
    _walk(runtime, _start(runtime, _token(runtime, contract=None)), [
        (lambda s, a: s.abandon(a, "the token's contract was not deployed"), ("failed", "done"))])


def _as_schema_1(app: Application[UUID], saga: TokenPurchase) -> list[StoredEvent]:
    """The saga's events as schema 1 stored them: no status, no step, no class_version."""
    stored = []
    for event in saga.collect_events():
        record = app.mapper.to_stored_event(event)
        state = json.loads(record.state)
        for key in ("class_version", "status", "step"):
            state.pop(key)
        stored.append(StoredEvent(record.originator_id, record.originator_version, record.topic,
                                  json.dumps(state).encode()))
    return stored


def test_schema_1_saga_events_replay_to_the_same_state() -> None:
    app: Application[UUID] = Application()
    saga = TokenPurchase.start(id=UUID(int=7), org_id="o", actor_id="a", buyer_id="b",
                               token_id="t", amount=1, usd_cents=100, payment_method="pm",
                               wallet="", contract="0x1")
    for act, _ in PATHS["late mint is burned, then refunded"][:4]:
        act(saga, "a")
    app.recorder.insert_events(_as_schema_1(app, saga))
    replayed: TokenPurchase = app.repository.get(saga.id)
    assert isinstance(replayed, TokenPurchase)
    assert (replayed.status, replayed.step, replayed.minted) == ("compensating", "burn", True)
