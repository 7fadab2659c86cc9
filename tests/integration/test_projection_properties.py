"""Property: however the Kafka path delivers a log (streams interleaved in any order, each stream's
own order kept, events delivered again, batches cut anywhere), the read models end exactly as
applying the log one event at a time, in log order, leaves them."""

from __future__ import annotations

from functools import cache
from itertools import pairwise
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog.envelope import Envelope
from infra.database import ConnectionInfo, ensure_database
from infra.migrations import migrate
from projections.engine import apply_or_park
from projections.positions import Checkpoints
from projections.rebuild import snapshot
from projections.registry import PROJECTIONS
from projections.store import ProjectionSet, reset_projection
from streams.kafka_apply import Record, apply_records
from tests.support.event_logs import interleaved_log

Tables = dict[str, list[tuple[Any, ...]]]
EVERYTHING = list(PROJECTIONS.values())
WRITER = ProjectionSet(tuple(EVERYTHING))


@cache
def log_in_order() -> tuple[Envelope, ...]:
    """A small log: every kind of stream, no re-delivery."""
    return tuple(interleaved_log(seed=11, things=12, connections=10, activities=40, sagas=4, redelivered=0))


def _reset(conn: psycopg.Connection[object]) -> None:
    for projection in EVERYTHING:
        reset_projection(conn, projection)
    conn.execute("DELETE FROM projection_errors")


def one_at_a_time(db: ConnectionInfo) -> Tables:
    """The reference: the engine applying the log one event per transaction, in log order."""
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        _reset(conn)
        checkpoints = Checkpoints(dict.fromkeys(WRITER.names, 0))
        for envelope in log_in_order():
            apply_or_park(conn, WRITER, [envelope], checkpoints)
    return snapshot(db, EVERYTHING)


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[Envelope]]:
    """The log as a consumer might receive it: batches of envelopes whose streams interleave in
    any order (each stream in its own order), with earlier events of a stream delivered again."""
    streams: dict[str, list[Envelope]] = {}
    for envelope in log_in_order():
        streams.setdefault(envelope.stream_id, []).append(envelope)
    sent = dict.fromkeys(streams, 0)
    delivered: list[Envelope] = []
    while pending := sorted(stream for stream, count in sent.items() if count < len(streams[stream])):
        stream = draw(st.sampled_from(pending))
        if sent[stream] and draw(st.integers(0, 9)) == 0:  # a re-delivery of one already sent
            delivered.append(streams[stream][draw(st.integers(0, sent[stream] - 1))])
        delivered.append(streams[stream][sent[stream]])
        sent[stream] += 1
    cuts = sorted(set(draw(st.lists(st.integers(1, len(delivered) - 1), max_size=12))))
    bounds = [0, *cuts, len(delivered)]
    return [delivered[start:end] for start, end in pairwise(bounds)]


@pytest.fixture(scope="module")
def database(pg_server: ConnectionInfo) -> tuple[ConnectionInfo, Tables]:
    """One database for every example (tables emptied before each), and the reference tables."""
    db = ensure_database(pg_server, "t_projection_properties")
    migrate(db)
    return db, one_at_a_time(db)


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(batches=deliveries())
def test_any_delivery_through_kafka_equals_one_at_a_time(
    database: tuple[ConnectionInfo, Tables], batches: list[list[Envelope]],
) -> None:
    db, expected = database
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        _reset(conn)
        for batch in batches:
            records = [Record(0, e.to_json().encode()) for e in batch]
            assert apply_records(conn, WRITER, "one.events", records) == []
    assert snapshot(db, EVERYTHING) == expected


def test_usage_counts_are_the_active_rows_of_each_tag(database: tuple[ConnectionInfo, Tables]) -> None:
    """The reference itself is right: every tag's count is how many things carry it now, and a
    thing carries exactly the tags its own row lists."""
    _, tables = database
    things = {row[0]: row for row in tables["things"]}
    active = [(thing, tag) for thing, tag, is_active, *_ in tables["thing_tags"] if is_active]
    counted: dict[tuple[str, str], int] = {}
    for thing, tag in active:
        key = (things[thing][1], tag)
        counted[key] = counted.get(key, 0) + 1
    assert {(org, tag): count for org, tag, _, _, count in tables["tags"] if count} == counted
    assert counted and any(not is_active for _, _, is_active, *_ in tables["thing_tags"])
    for thing, row in things.items():
        assert sorted(tag for carrier, tag in active if carrier == thing) == sorted(row[6])
