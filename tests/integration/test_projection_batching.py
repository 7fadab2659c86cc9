"""Batched application (merged inserts, one pipeline per chunk) leaves the read models exactly as
applying the log one event at a time does; re-delivery changes nothing; a bad event is parked
alone."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
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

ORG = "org-1"
TAGS = ["topic:ai", "topic:go", "skill:yoga", "goal:job", "level:1"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _log(seed: int = 3, things: int = 150, connections: int = 120, activities: int = 1500,
         sagas: int = 20) -> list[Envelope]:
    """Interleaved streams (order kept within each), with some events delivered twice."""
    rng = random.Random(seed)
    streams: list[list[tuple[str, dict[str, Any]]]] = []
    thing_ids = [str(uuid.uuid4()) for _ in range(things)]
    for i in range(things):
        events: list[tuple[str, dict[str, Any]]] = [("thing.created", {
            "type": "course", "name": f"thing {i}", "properties": {"n": i, "x": "y" * rng.randint(0, 50)},
            "status": "draft", "tags": rng.sample(TAGS, rng.randint(0, 3)),
        })]
        for _ in range(rng.randint(0, 8)):
            kind = rng.choice(["updated", "status", "tagged", "untagged", "deleted", "restored"])
            if kind == "updated":
                events.append(("thing.updated", {"name": rng.choice([None, f"renamed {i}"]),
                                                 "properties": {"n": rng.randint(0, 9), "x": None}}))
            elif kind == "status":
                events.append(("thing.status_changed", {"status": rng.choice(["published", "archived"]),
                                                        "previous": "draft"}))
            elif kind in ("tagged", "untagged"):
                events.append((f"thing.{kind}", {"tags": rng.sample(TAGS, rng.randint(1, 2))}))
            else:
                events.append((f"thing.{kind}", {}))
        streams.append(events)
    for _ in range(connections):
        a, b = rng.sample(thing_ids, 2)
        events = [("connection.created", {"from_id": a, "to_id": b, "type": "owns",
                                          "metadata": {"share": rng.random()}})]
        for _ in range(rng.randint(0, 3)):
            kind = rng.choice(["connection.metadata_updated", "connection.removed",
                               "connection.reestablished"])
            events.append((kind, {"metadata": {"share": rng.random(), "note": None}}))
        streams.append(events)
    for _ in range(sagas):
        saga: list[tuple[str, dict[str, Any]]] = [
            ("token_purchase.started", {"buyer_id": "b", "token_id": "t", "amount": 5, "usd_cents": 500,
                                        "status": "running", "step": "charge"}),
            ("token_purchase.payment_succeeded", {"status": "running", "step": "mint"}),
            ("token_purchase.step_failed", {"error": "rpc", "retry_at": START.isoformat(),
                                            "status": "running", "step": "mint"}),
            ("token_purchase.mint_confirmed", {"status": "running", "step": "record"}),
            ("token_purchase.completed", {"status": "completed", "step": "done"}),
        ]
        streams.append(saga[: rng.randint(1, 5)])
    for _ in range(activities):
        streams.append([("activity.recorded", {"type": "content_viewed",
                                               "target_id": rng.choice([*thing_ids, None]),
                                               "metadata": {"s": rng.randint(0, 99)}})])
    ids = [str(uuid.uuid4()) for _ in streams]
    next_version = [0] * len(streams)
    pending = [i for i, events in enumerate(streams) for _ in events]
    rng.shuffle(pending)  # the k-th pick of a stream takes its k-th event: stream order holds
    log: list[Envelope] = []
    for position, i in enumerate(pending, start=1):
        kind, data = streams[i][next_version[i]]
        next_version[i] += 1
        log.append(Envelope(
            position=position, stream_id=ids[i], version=next_version[i], type=kind, schema_version=2,
            occurred_at=(START + timedelta(seconds=position)).isoformat(), org_id=ORG,
            actor_id="actor-1", data=data,
        ))
    redelivered = [log[0], *rng.sample(log, 100)]
    for envelope in redelivered:  # at-least-once: the same event again, a little later
        log.insert(min(log.index(envelope) + rng.randint(1, 50), len(log)), envelope)
    return log


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
    log = _log()
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
    log = [envelope for envelope in _log(seed=5) if envelope.type == "activity.recorded"]
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
