"""Connections read model: typed edges between streams, with metadata; tombstoned on removal.

No foreign keys: an edge may arrive before its endpoints (order holds per stream only).
"""

from __future__ import annotations

from psycopg.types.json import Jsonb

from eventlog.envelope import Envelope
from projections.base import Change, NewRow, Projection, Statement, split_patch


def _update(e: Envelope, assignments: str, *params: object) -> Statement:
    return (
        f"UPDATE connections SET {assignments}, version = %s, position = %s, updated_at = %s"
        " WHERE id = %s AND version < %s",
        (*params, e.version, e.position, e.occurred_at, e.stream_id, e.version),
    )


def project_connections(e: Envelope) -> list[Change]:
    """Envelope → upserts of the `connections` table."""
    d = e.data
    if e.type == "connection.created":
        return [NewRow("connections", "id", {
            "id": e.stream_id, "org_id": e.org_id, "from_id": d["from_id"], "to_id": d["to_id"],
            "type": d["type"], "metadata": d["metadata"], "created_at": e.occurred_at,
            "updated_at": e.occurred_at, "version": e.version, "position": e.position,
        })]
    if e.type == "connection.metadata_updated":
        removed, values = split_patch(d["metadata"])
        return [_update(e, "metadata = (metadata - %s::text[]) || %s", removed, Jsonb(values))]
    if e.type == "connection.removed":
        return [_update(e, "removed_at = %s", e.occurred_at)]
    if e.type == "connection.reestablished":
        return [_update(e, "removed_at = NULL, metadata = %s", Jsonb(d["metadata"]))]
    return []


CONNECTIONS = Projection(
    name="connections",
    tables=("connections",),
    handles=frozenset({
        "connection.created", "connection.metadata_updated", "connection.removed",
        "connection.reestablished",
    }),
    project=project_connections,
)
