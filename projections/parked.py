"""Parked events handled in place: re-applied once their cause is fixed, or skipped by decision.

An event is parked when a projection cannot apply it (`projections.engine`); the read model moves
on without it. Retrying one re-applies its stream from that event on, in order, through the same
writer: the events after it that were applied are no-ops (every row is guarded by its stream
version), and those that changed nothing because the parked one was missing (an update of a row
never created) now take effect. A retry that fails again leaves the event open with the new
error. Skipping records who decided, when and why. Either way the row stays, as the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any

import psycopg

from eventlog.reader import read_stream
from projections.engine import describe, is_transient
from projections.registry import PROJECTIONS
from projections.store import ProjectionSet


@dataclass(frozen=True)
class RetryOutcome:
    """What retrying one stream's parked events did."""

    stream_id: str
    positions: tuple[int, ...]
    retried: bool
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The outcome as a JSON object."""
        return {"stream_id": self.stream_id, "positions": list(self.positions),
                "retried": self.retried, "error": self.error}


def retry_parked(conn: psycopg.Connection[Any], actor_id: str, org_id: str | None,
                 projection: str | None = None, position: int | None = None) -> list[RetryOutcome]:
    """Re-apply the open parked events (of one organization, or all with `org_id` None; of one
    projection; at one position), stream by stream in log order; one transaction per stream.
    Only the core read models' events: the knowledge index re-embeds its own (`one knowledge
    retry`)."""
    rows = conn.execute(
        "SELECT id, position, stream_id, coalesce(projection, '') FROM projection_errors"
        " WHERE status = 'open' AND (projection IS NULL OR string_to_array(projection, ',') && %s)"
        " AND (%s::text IS NULL OR envelope->>'org_id' = %s)"
        " AND (%s::text IS NULL OR %s = ANY(string_to_array(projection, ',')))"
        " AND (%s::bigint IS NULL OR position = %s) ORDER BY stream_id, position",
        (list(PROJECTIONS), org_id, org_id, projection, projection, position, position),
    ).fetchall()
    outcomes = [_retry_stream(conn, actor_id, str(stream), list(parked))
                for stream, parked in groupby(rows, key=lambda row: row[2])]
    return sorted(outcomes, key=lambda outcome: outcome.positions[0])


def _retry_stream(conn: psycopg.Connection[Any], actor_id: str, stream_id: str,
                  parked: list[tuple[Any, ...]]) -> RetryOutcome:
    ids = [row[0] for row in parked]
    positions = tuple(int(row[1]) for row in parked)
    names = {name for row in parked for name in str(row[3]).split(",") if name}
    writer = ProjectionSet(tuple(p for p in PROJECTIONS.values() if not names or p.name in names))
    try:
        with conn.transaction():
            writer.write(conn, read_stream(conn, stream_id, positions[0]))
            conn.execute(
                "UPDATE projection_errors SET status = 'retried', attempts = attempts + 1,"
                " resolved_by = %s, resolved_at = now() WHERE id = ANY(%s)", (actor_id, ids))
    except Exception as error:
        if is_transient(error):
            raise
        reason = describe(error)
        conn.execute("UPDATE projection_errors SET attempts = attempts + 1, error = %s WHERE id = ANY(%s)",
                     (reason, ids))
        return RetryOutcome(stream_id, positions, False, reason)
    return RetryOutcome(stream_id, positions, True)


def skip_parked(conn: psycopg.Connection[Any], position: int, note: str, actor_id: str,
                org_id: str | None) -> int:
    """Record the decision to leave the open parked event(s) at `position` unapplied; how many."""
    skipped = conn.execute(
        "UPDATE projection_errors SET status = 'skipped', note = %s, resolved_by = %s, resolved_at = now()"
        " WHERE position = %s AND status = 'open' AND (%s::text IS NULL OR envelope->>'org_id' = %s)"
        " RETURNING id", (note, actor_id, position, org_id, org_id),
    ).fetchall()
    return len(skipped)
