"""The event log: the eventsourcing library's PostgreSQL recorder, with an after-insert hook.

The hook runs inside the transaction that appends the events, after their global positions are
known, so the idempotency record (which holds the response, positions included) commits
atomically with the events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from psycopg import Cursor
from psycopg.rows import DictRow

from domain.catalog import AGGREGATES
from infra.database import ConnectionInfo

AfterInsert = Callable[[Cursor[DictRow], Sequence[int]], None]
EVENTS_TABLE = "one_events"
"""The log table (eventsourcing names it after the application); also its NOTIFY channel."""


class OneRecorder(PostgresApplicationRecorder):
    """Application recorder that calls `after_insert(cursor, positions)` in the same transaction."""

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        after_insert: AfterInsert | None = kwargs.get("after_insert")
        if after_insert is not None and positions is not None:
            after_insert(curs, positions)
        return positions


class OneFactory(PostgresFactory):
    """Infrastructure factory that builds `OneRecorder`."""

    application_recorder_class = OneRecorder


class EventLog(Application):
    """The write-side application: repository of aggregates over the PostgreSQL event log."""

    name = "one"


def open_event_log(db: ConnectionInfo, pool_size: int = 8) -> EventLog:
    """Connect the event log to a database, creating its tables if needed."""
    env = {
        "PERSISTENCE_MODULE": f"{OneFactory.__module__}:{OneFactory.__qualname__}",
        "POSTGRES_DBNAME": db.dbname,
        "POSTGRES_HOST": db.host,
        "POSTGRES_PORT": db.port,
        "POSTGRES_USER": db.user,
        "POSTGRES_PASSWORD": db.password,
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        "POSTGRES_LOCK_TIMEOUT": "10",
        "CREATE_TABLE": "y",
    }
    return EventLog(env=env)


def aggregate_topics() -> dict[str, type[Any]]:
    """Topic of each aggregate class (as stored with creation events) → class."""
    from eventsourcing.utils import get_topic

    return {get_topic(cls): cls for cls in AGGREGATES}
