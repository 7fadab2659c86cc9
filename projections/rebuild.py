"""Rebuild read models from position 0 of the log, and snapshot their tables for comparison."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from eventlog.store import EventLog
from infra.database import ConnectionInfo
from projections.base import Projection
from projections.engine import catch_up
from projections.positions import Checkpoints
from projections.store import ProjectionSet, reset_projection


def rebuild(event_log: EventLog, db: ConnectionInfo, projections: Sequence[Projection]) -> int:
    """Empty the given projections and replay the whole log into them; return events read.

    Run it while no runner is applying to these projections (e.g. `one serve` stopped).
    """
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        for projection in projections:
            reset_projection(conn, projection)
        writer = ProjectionSet(tuple(projections))
        read = catch_up(conn, event_log, writer, Checkpoints(dict.fromkeys(writer.names, 0)))
        with conn.cursor() as cur:
            cur.executemany("UPDATE projection_checkpoints SET version = %s WHERE name = %s",
                            [(p.version, p.name) for p in projections])
        return read


def rebuild_via_topic(
    db: ConnectionInfo, projections: Sequence[Projection], bootstrap: str, topic: str, group: str
) -> None:
    """Prepare a rebuild by replaying the Kafka topic through the Faust workers.

    Empties the projections, forgets the topic's watermarks and deletes the workers' consumer
    group, so the next `one worker` consumes the topic from its first offset. The workers must be
    stopped while this runs (Kafka refuses to delete an active group).
    """
    from kafka import KafkaAdminClient

    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        for projection in projections:
            reset_projection(conn, projection)
        conn.execute("DELETE FROM stream_watermarks WHERE topic = %s", (topic,))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="one-rebuild")
    try:
        for group_id, outcome in admin.delete_groups([group]).items():
            if outcome not in ("OK", "GroupIdNotFoundError"):  # not found: nothing committed yet
                raise RuntimeError(f"could not delete consumer group {group_id}: {outcome}")
    finally:
        admin.close()


def snapshot(db: ConnectionInfo, projections: Sequence[Projection]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the projections, in a stable order (for equality checks)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(db.conninfo) as conn:
        for projection in projections:
            for table in projection.tables:
                query = sql.SQL("SELECT * FROM {} ORDER BY 1, 2").format(sql.Identifier(table))
                tables[table] = [tuple(row) for row in conn.execute(query).fetchall()]
    return tables
