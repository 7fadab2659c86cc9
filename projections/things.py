"""Things read model: one row per thing, guarded by stream version."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from eventlog.envelope import Envelope
from projections.base import Change, NewRow, Projection, Statement, split_patch

_GUARD = " WHERE id = %s AND version < %s"
_STAMP = "version = %s, position = %s, updated_at = %s"


def _update(envelope: Envelope, assignments: str, *params: object) -> Statement:
    sql = f"UPDATE things SET {assignments}, {_STAMP}{_GUARD}"
    e = envelope
    return sql, (*params, e.version, e.position, e.occurred_at, e.stream_id, e.version)


def project_things(e: Envelope) -> list[Change]:
    """Envelope → upserts of the `things` table."""
    d = e.data
    if e.type == "thing.created":
        return [NewRow("things", "id", {
            "id": e.stream_id, "org_id": e.org_id, "type": d["type"], "name": d["name"],
            "properties": d["properties"], "status": d["status"], "tags": d["tags"],
            "created_by": e.actor_id, "created_at": e.occurred_at, "updated_at": e.occurred_at,
            "created_position": e.position, "version": e.version, "position": e.position,
        })]
    if e.type == "thing.updated":
        removed, values = split_patch(d["properties"])
        return [_update(
            e, "name = coalesce(%s, name), properties = (properties - %s::text[]) || %s",
            d["name"], removed, Jsonb(values),
        )]
    if e.type == "thing.status_changed":
        return [_update(e, "status = %s", d["status"])]
    if e.type == "thing.tagged":
        return [_update(
            e, "tags = tags || ARRAY(SELECT t FROM unnest(%s::text[]) t WHERE t <> ALL(tags))",
            d["tags"],
        )]
    if e.type == "thing.untagged":
        return [_update(e, "tags = ARRAY(SELECT t FROM unnest(tags) t WHERE t <> ALL(%s))", d["tags"])]
    if e.type == "thing.deleted":
        return [_update(e, "deleted_at = %s", e.occurred_at)]
    if e.type == "thing.restored":
        return [_update(e, "deleted_at = NULL")]
    return []


THINGS = Projection(
    name="things",
    tables=("things",),
    handles=frozenset({
        "thing.created", "thing.updated", "thing.status_changed", "thing.tagged",
        "thing.untagged", "thing.deleted", "thing.restored",
    }),
    project=project_things,
)
