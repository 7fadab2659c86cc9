"""Batched application (merged inserts, one pipeline per chunk) leaves the read models exactly as
applying the log one event at a time does; re-delivery changes nothing; a bad event is parked
alone."""

from __future__ import annotations

from typing import Any

import psycopg

from eventlog.envelope import Envelope
from infra.database import ConnectionInfo
from infra.migrations import migrate
from projections.engine import apply_or_park
from projections.positions import Checkpoints, read_checkpoints
from projections.rebuild import snapshot
from projections.registry import PROJECTIONS
from projections.store import ProjectionSet, reset_projection
from tests.support.event_logs import interleaved_log


def _apply(db: ConnectionInfo, log: list[Envelope], batched: bool) -> dict[str, list[tuple[Any, ...]]]:
    """Batched: `write` chunks of 2,000, re-delivered events included. Otherwise the engine, one
    envelope at a time (checkpoints skip what was already applied)."""
    everything = list(PROJECTIONS.values())
    writer = ProjectionSet(tuple(everything))
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        for projection in everything:
            reset_projection(conn, projection)
        checkpoints = Checkpoints(read_checkpoints(conn, writer.names))
        if batched:
            for start in range(0, len(log), 2000):
                with conn.transaction():
                    writer.write(conn, log[start:start + 2000], None)
        else:
            for envelope in log:
                apply_or_park(conn, writer, [envelope], checkpoints)
    return snapshot(db, everything)


def test_batched_equals_one_by_one_and_redelivery_is_a_no_op(fresh_db: ConnectionInfo) -> None:
    migrate(fresh_db)
    log = interleaved_log()
    one_by_one = _apply(fresh_db, log, batched=False)
    batched = _apply(fresh_db, log, batched=True)
    assert batched == one_by_one
    assert len(batched["activity"]) > 1500 and len(batched["things"]) == 150
    assert any(row[2] for row in batched["thing_tags"]) and batched["sagas"]

    everything = list(PROJECTIONS.values())
    writer = ProjectionSet(tuple(everything))
    with psycopg.connect(fresh_db.conninfo, autocommit=True) as conn, conn.transaction():
        writer.write(conn, log, None)  # the whole log delivered again, in one chunk
    assert snapshot(fresh_db, everything) == batched


def test_bad_event_in_a_merged_insert_is_parked_alone(fresh_db: ConnectionInfo) -> None:
    migrate(fresh_db)
    log = [envelope for envelope in interleaved_log(seed=5) if envelope.type == "activity.recorded"]
    log = list({envelope.position: envelope for envelope in log}.values())
    bad = log[40]
    log[40] = Envelope(**{**bad.to_dict(), "data": {**bad.data, "target_id": "not-a-uuid"}})
    writer = ProjectionSet(tuple(PROJECTIONS.values()))
    with psycopg.connect(fresh_db.conninfo, autocommit=True) as conn:
        checkpoints = Checkpoints(read_checkpoints(conn, writer.names))
        rejected = apply_or_park(conn, writer, log, checkpoints)
        parked = conn.execute("SELECT position FROM projection_errors").fetchall()
        count = conn.execute("SELECT count(*) FROM activity").fetchone()
    assert parked == [(bad.position,)]
    assert count == (len(log) - 1,)
    assert [r.envelope.position for r in rejected] == [bad.position]
    assert set(checkpoints.positions.values()) == {log[-1].position}
    with psycopg.connect(fresh_db.conninfo) as conn:
        assert set(read_checkpoints(conn, writer.names).values()) == {log[-1].position}
