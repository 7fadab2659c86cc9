"""Time travel: a stream's events, and its state as it was at a version or a moment, folded from
the log by the domain's own event classes (upcasting applies), never read from a read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from eventlog.envelope import Envelope
from eventlog.reader import read_stream
from eventlog.store import EventLog


def history(conn: psycopg.Connection[Any], stream_id: str, after_version: int = 0,
            limit: int | None = None) -> list[Envelope]:
    """The stream's events after `after_version`, oldest first, at most `limit`."""
    return read_stream(conn, stream_id, after_version=after_version, limit=limit)


def version_at(conn: psycopg.Connection[Any], stream_id: str, moment: datetime) -> int:
    """The stream's version at `moment`: of its last event that occurred at or before it (0: the
    stream did not exist yet)."""
    reached = 0
    for envelope in read_stream(conn, stream_id):
        if datetime.fromisoformat(envelope.occurred_at) > moment:
            break
        reached = envelope.version
    return reached


def state_at(event_log: EventLog, stream_id: str, version: int) -> dict[str, Any] | None:
    """The stream's state folded through `version` (None if it has no such version)."""
    try:
        aggregate: Aggregate = event_log.repository.get(UUID(stream_id), version=version)
    except AggregateNotFoundError:
        return None
    if aggregate.version != version:
        return None
    return state_of(aggregate)


def state_of(aggregate: Aggregate) -> dict[str, Any]:
    """An aggregate's state as JSON-ready data: its id, version, times and public attributes."""
    public = {name: value for name, value in vars(aggregate).items() if not name.startswith("_")}
    return {"id": str(aggregate.id), "version": aggregate.version,
            "created_at": aggregate.created_on.isoformat(), "updated_at": aggregate.modified_on.isoformat(),
            **public}
