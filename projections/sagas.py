"""Sagas read model: one row per token purchase with its status, step and next retry time.

The saga driver finds its work here (active sagas whose retry time has come) and operators list
and inspect sagas from it; the saga's stream in the log stays the source of truth.
"""

from __future__ import annotations

from projections.base import Projection, Statement
from streams.envelope import Envelope

_STATUS_OF = {
    "token_purchase.payment_declined": ("failed", "done"),
    "token_purchase.completed": ("completed", "done"),
    "token_purchase.refunded": ("compensated", "done"),
    "token_purchase.resolved": ("resolved", "done"),
}
_STEP_OF = {
    "token_purchase.payment_succeeded": "mint",
    "token_purchase.mint_confirmed": "record",
    "token_purchase.burn_confirmed": "refund",
}


_RESUMED_STATUS = "CASE WHEN step IN ('burn', 'refund') THEN 'compensating' ELSE 'running' END"


def _update(
    e: Envelope, *, status: str | None = None, step: str | None = None,
    reason: str | None = None, retry_at: str | None = None, attempts: str = "0",
    status_sql: str = "coalesce(%(status)s, status)",
) -> Statement:
    """A version-guarded update; `attempts` and `status_sql` are SQL expressions."""
    return (
        f"UPDATE sagas SET status = {status_sql}, step = coalesce(%(step)s, step),"
        f" reason = coalesce(%(reason)s, reason), attempts = {attempts},"
        " retry_at = %(retry_at)s, updated_at = %(at)s, version = %(version)s,"
        " position = %(position)s WHERE id = %(id)s AND version < %(version)s",
        {"status": status, "step": step, "reason": reason, "retry_at": retry_at,
         "at": e.occurred_at, "version": e.version, "position": e.position, "id": e.stream_id},
    )


def project_sagas(e: Envelope) -> list[Statement]:
    """Envelope → saga row upserts (guarded by stream version)."""
    d = e.data
    if e.type == "token_purchase.started":
        return [(
            "INSERT INTO sagas (id, kind, org_id, buyer_id, token_id, amount, usd_cents, status,"
            " step, started_at, updated_at, version, position) VALUES (%s, 'token_purchase', %s,"
            " %s, %s, %s, %s, 'running', 'charge', %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (e.stream_id, e.org_id, d["buyer_id"], d["token_id"], d["amount"], d["usd_cents"],
             e.occurred_at, e.occurred_at, e.version, e.position),
        )]
    if e.type in _STATUS_OF:
        status, step = _STATUS_OF[e.type]
        return [_update(e, status=status, step=step, reason=d.get("decline_code") or d.get("note"))]
    if e.type in _STEP_OF:
        return [_update(e, step=_STEP_OF[e.type])]
    if e.type == "token_purchase.compensation_started":
        return [_update(e, status="compensating", reason=d["reason"])]
    if e.type == "token_purchase.step_failed":
        return [_update(e, reason=d["error"], retry_at=d["retry_at"], attempts="attempts + 1")]
    if e.type == "token_purchase.parked":
        return [_update(e, status="parked", reason=d["reason"], attempts="attempts")]
    if e.type == "token_purchase.resumed":
        return [_update(e, status_sql=_RESUMED_STATUS)]
    return [_update(e, attempts="attempts")]  # signed transactions: only the version moves


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
    }),
    project=project_sagas,
)
