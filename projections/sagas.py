"""Sagas read model: one row per process (token purchase or workflow instance, by `kind`) with its
status, step and next wake time (retry, timer or timeout).

Status and step are copied from the events, which carry them (the saga's state machine exists
once, in `domain.token_purchase`).

The saga driver finds its work here (active sagas whose retry time has come) and operators list
and inspect sagas from it; the saga's stream in the log stays the source of truth.
"""

from __future__ import annotations

from eventlog.envelope import Envelope
from projections.base import Change, NewRow, Projection, Statement


def _update(e: Envelope, *, reason: str | None = None, retry_at: str | None = None,
            attempts: str = "0") -> Statement:
    """A version-guarded update copying the status and step the event carries (schema-1 events
    of some kinds carry none: the row keeps its own); `attempts` is an SQL expression."""
    d = e.data
    return (
        "UPDATE sagas SET status = coalesce(%(status)s, status), step = coalesce(%(step)s, step),"
        f" reason = coalesce(%(reason)s, reason), attempts = {attempts},"
        " retry_at = %(retry_at)s, updated_at = %(at)s, version = %(version)s,"
        " position = %(position)s WHERE id = %(id)s AND version < %(version)s",
        {"status": d.get("status"), "step": d.get("step"), "reason": reason, "retry_at": retry_at,
         "at": e.occurred_at, "version": e.version, "position": e.position, "id": e.stream_id},
    )


_REASON = ("reason", "note", "decline_code", "error")
_KEEPS_ATTEMPTS = {"token_purchase.mint_signed", "token_purchase.burn_signed",
                   "token_purchase.parked", "token_purchase.completed",
                   "token_purchase.payment_declined", "token_purchase.refunded",
                   "token_purchase.resolved", "token_purchase.abandoned"}


_WORKFLOW_RESETS = {"workflow.step_completed", "workflow.step_skipped", "workflow.resumed"}


def project_workflow(e: Envelope) -> list[Change]:
    """A workflow instance's row: its status, step and wake time as its events carry them."""
    d = e.data
    if e.type == "workflow.started":
        return [NewRow("sagas", "id", {
            "id": e.stream_id, "kind": "workflow", "org_id": e.org_id, "subject_id": d["subject_id"],
            "workflow": d["definition"]["name"], "status": d["status"], "step": d["step"],
            "retry_at": d["wake_at"], "started_at": e.occurred_at, "updated_at": e.occurred_at,
            "version": e.version, "position": e.position,
        })]
    reason = next((str(d[k]) for k in ("reason", "error") if d.get(k)), None)
    attempts = ("attempts + 1" if e.type == "workflow.step_failed" else
                "0" if e.type in _WORKFLOW_RESETS else "attempts")
    return [_update(e, reason=reason, retry_at=d["wake_at"], attempts=attempts)]


def project_sagas(e: Envelope) -> list[Change]:
    """Envelope → saga row upserts (guarded by stream version)."""
    d = e.data
    if e.type.startswith("workflow."):
        return project_workflow(e)
    if e.type == "token_purchase.started":
        return [NewRow("sagas", "id", {
            "id": e.stream_id, "kind": "token_purchase", "org_id": e.org_id, "buyer_id": d["buyer_id"],
            "token_id": d["token_id"], "amount": d["amount"], "usd_cents": d["usd_cents"],
            "status": d["status"], "step": d["step"], "started_at": e.occurred_at,
            "updated_at": e.occurred_at, "version": e.version, "position": e.position,
        })]
    reason = next((str(d[k]) for k in _REASON if d.get(k)), None)
    if e.type == "token_purchase.step_failed":
        return [_update(e, reason=reason, retry_at=d["retry_at"], attempts="attempts + 1")]
    return [_update(e, reason=reason, attempts="attempts" if e.type in _KEEPS_ATTEMPTS else "0")]


SAGAS = Projection(
    name="sagas",
    tables=("sagas",),
    handles=frozenset({
        "token_purchase.started", "token_purchase.payment_succeeded",
        "token_purchase.payment_declined", "token_purchase.mint_signed",
        "token_purchase.mint_confirmed", "token_purchase.completed",
        "token_purchase.compensation_started", "token_purchase.burn_signed",
        "token_purchase.burn_confirmed", "token_purchase.refunded", "token_purchase.step_failed",
        "token_purchase.parked", "token_purchase.resumed", "token_purchase.resolved",
        "token_purchase.contract_found", "token_purchase.abandoned",
        *(f"workflow.{kind}" for kind in (
            "started", "step_started", "step_waiting", "step_completed", "step_failed",
            "signal_received", "signal_taken", "parked", "resumed", "step_skipped", "cancelled",
            "failed")),
    }),
    project=project_sagas,
    version=2,
)
