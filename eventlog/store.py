"""The event log: the eventsourcing library's PostgreSQL recorder, with an after-insert hook.

The hook runs inside the transaction that appends the events, after their global positions are
known, so the idempotency record (which holds the response, positions included) commits
atomically with the events. The log is append-only in the database itself: triggers refuse
UPDATE, DELETE and TRUNCATE of its table, whoever connects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from infra.database import ConnectionInfo
from infra.locks import LOG_TABLES, advisory_lock

AfterInsert = Callable[[Cursor[DictRow], Sequence[int]], None]
EVENTS_TABLE = "one_events"
"""The log table (eventsourcing names it after the application); also its NOTIFY channel."""
_APPEND_ONLY = SQL("""
    CREATE OR REPLACE FUNCTION one_refuse_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the event log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END $$;
    CREATE OR REPLACE TRIGGER one_log_no_update_or_delete BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION one_refuse_log_change();
    CREATE OR REPLACE TRIGGER one_log_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION one_refuse_log_change();
""")


class OneRecorder(PostgresApplicationRecorder):
    """Application recorder that calls `after_insert(cursor, positions)` in the same transaction,
    and inserts events from four binary arrays instead of an array of a composite type (whose
    pure-Python dumper dominated the cost of large group commits)."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id"
        ).format(schema=Identifier(datastore.schema), table=Identifier(events_table_name))

    def create_table(self) -> None:
        """The library's tables, then the triggers that keep the log append-only."""
        super().create_table()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_APPEND_ONLY.format(table=Identifier(self.datastore.schema,
                                                              self.events_table_name)))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert in one plain transaction. The library's pipelined version never completes
        with psycopg 3.3 once a statement's parameters reach about 1 MB (large group commits)."""
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(self.insert_events_statement, (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        ), prepare=True)

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


class EventLog(Application[UUID]):
    """The write-side application: repository of aggregates over the PostgreSQL event log."""

    name = "one"


def open_event_log(db: ConnectionInfo, pool_size: int = 8) -> EventLog:
    """Connect the event log to a database, creating its tables if needed (one process at a time:
    processes starting together must not race on the same table or trigger)."""
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
    with advisory_lock(db, LOG_TABLES):
        return EventLog(env=env)
