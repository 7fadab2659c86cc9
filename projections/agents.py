"""Agent executions read model: one row per execution with its status, input, output or failure,
tokens, cost and duration; the marketplace's executions-by-status and usage-for-billing queries
read it."""

from __future__ import annotations

from eventlog.envelope import Envelope
from projections.base import Change, NewRow, Projection, Statement


def _update(e: Envelope, sets: str, **values: object) -> Statement:
    return (f"UPDATE agent_executions SET {sets}, version = %(version)s, position = %(position)s"
            " WHERE id = %(id)s AND version < %(version)s",
            {"version": e.version, "position": e.position, "id": e.stream_id, "at": e.occurred_at, **values})


def project_agent_executions(e: Envelope) -> list[Change]:
    """Envelope → execution row changes (guarded by stream version)."""
    d = e.data
    if e.type == "agent_execution.queued":
        return [NewRow("agent_executions", "id", {
            "id": e.stream_id, "org_id": e.org_id, "agent_id": d["agent_id"], "actor_id": e.actor_id,
            "status": "queued", "input": d["input"], "model": d["model"],
            "per_execution_usd": d["per_execution_usd"], "per_1k_tokens_usd": d["per_1k_tokens_usd"],
            "queued_at": e.occurred_at, "version": e.version, "position": e.position})]
    if e.type == "agent_execution.started":
        return [_update(e, "status = 'running', started_at = %(at)s")]
    if e.type == "agent_execution.completed":
        return [_update(e, "status = 'completed', finished_at = %(at)s, output = %(output)s,"
                           " tokens_used = %(tokens)s, cost_usd = %(cost)s, duration_ms = %(ms)s,"
                           " source = %(source)s", output=d["output"], tokens=d["tokens_used"],
                        cost=d["cost_usd"], ms=d["duration_ms"], source=d["source"])]
    return [_update(e, "status = 'failed', finished_at = %(at)s, error = %(reason)s, duration_ms = %(ms)s",
                    reason=d["reason"], ms=d["duration_ms"])]


AGENT_EXECUTIONS = Projection(
    name="agent_executions",
    tables=("agent_executions",),
    handles=frozenset({f"agent_execution.{kind}" for kind in ("queued", "started", "completed", "failed")}),
    project=project_agent_executions,
)
