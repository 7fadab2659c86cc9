"""Activity read model: the queryable events table (the ontology's events dimension).

Recorded activities appear as they are; lifecycle events of things and people appear under
their ontology names (entity_created, entity_published, user_joined, ...). Rows are keyed by log
position, so re-delivery is a no-op.
"""

from __future__ import annotations

from typing import Any

from eventlog.envelope import Envelope
from projections.base import Change, NewRow, Projection

_STATUS_EVENTS = {"published": "entity_published", "archived": "entity_archived"}
_LIFECYCLE = {
    "thing.updated": "entity_updated",
    "thing.deleted": "entity_deleted",
    "thing.restored": "entity_restored",
}


def activity_of(e: Envelope) -> tuple[str, str | None, dict[str, Any]] | None:
    """(ontology event type, target id, metadata) for an envelope, or None if not an activity."""
    d = e.data
    if e.type == "activity.recorded":
        return d["type"], d["target_id"], d["metadata"]
    if e.type == "thing.created":
        return "entity_created", e.stream_id, {"entityType": d["type"], "tagCount": len(d["tags"])}
    if e.type == "thing.status_changed":
        kind = _STATUS_EVENTS.get(d["status"], "entity_updated")
        return kind, e.stream_id, {"status": d["status"], "previous": d["previous"]}
    if e.type in _LIFECYCLE:
        return _LIFECYCLE[e.type], e.stream_id, {}
    if e.type == "person.created":
        return "user_joined", e.stream_id, {"role": d["role"]}
    return None


def project_activity(e: Envelope) -> list[Change]:
    """Envelope → at most one activity row."""
    found = activity_of(e)
    if found is None:
        return []
    kind, target, metadata = found
    return [NewRow("activity", "position", {
        "position": e.position, "event_id": e.stream_id, "org_id": e.org_id, "type": kind,
        "actor_id": e.actor_id, "target_id": target, "metadata": metadata, "occurred_at": e.occurred_at,
    })]


ACTIVITY = Projection(
    name="activity",
    tables=("activity",),
    handles=frozenset({"activity.recorded", "thing.created", "thing.status_changed",
                       "person.created", *_LIFECYCLE}),
    project=project_activity,
)
