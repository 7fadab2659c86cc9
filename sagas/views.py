"""How a saga is shown to clients and operators: its state and every step, from its stream."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Notification

from domain.base import OneAggregate
from domain.token_purchase import TokenPurchase
from eventlog.envelope import decode_notification
from eventlog.store import EventLog

_HIDDEN = {"raw"}  # signed transaction bytes: kept in the log, not needed by clients


P = TypeVar("P", bound=OneAggregate)


def load_process(event_log: EventLog, process_id: UUID, kind: type[P], org_id: str | None = None) -> P | None:
    """The process `process_id` of type `kind` (in `org_id`, when given), from its stream; or None."""
    try:
        found: object = event_log.repository.get(process_id)
    except AggregateNotFoundError:
        return None
    if not isinstance(found, kind) or org_id not in (None, found.org_id):
        return None
    return found


def is_purchase(event_log: EventLog, saga_id: UUID) -> bool:
    """Whether `saga_id` names a token purchase saga."""
    try:
        return isinstance(event_log.repository.get(saga_id), TokenPurchase)
    except AggregateNotFoundError:
        return False


def purchase_view(event_log: EventLog, saga_id: UUID, org_id: str | None = None) -> dict[str, Any] | None:
    """The saga's current state and its history of steps, or None if there is no such saga (in
    `org_id`, when given)."""
    saga = load_process(event_log, saga_id, TokenPurchase, org_id)
    if saga is None:
        return None
    stored = event_log.recorder.select_events(saga_id)
    steps = []
    for event in stored:
        # select_events has no global position; 0 stands in (only type, time and data are shown)
        envelope = decode_notification(Notification(
            id=0, originator_id=event.originator_id, originator_version=event.originator_version,
            topic=event.topic, state=event.state,
        ))
        steps.append({"version": envelope.version, "type": envelope.type.split(".", 1)[1],
                      "at": envelope.occurred_at,
                      "data": {k: v for k, v in envelope.data.items() if k not in _HIDDEN}})
    return {
        "id": str(saga.id), "status": saga.status, "step": saga.step, "buyer_id": saga.buyer_id,
        "token_id": saga.token_id, "amount": saga.amount, "usd_amount": saga.usd_cents / 100,
        "payment_id": saga.payment_id, "refund_id": saga.refund_id,
        "mint_tx": saga.mint_tx["tx_hash"] if saga.mint_tx else None,
        "burn_tx": saga.burn_tx["tx_hash"] if saga.burn_tx else None,
        "minted": saga.minted, "burned": saga.burned,
        "reason": saga.reason, "version": saga.version, "steps": steps,
    }
