"""Apply records consumed from the event topic to the read models (transport-free).

A record is either an envelope or a watermark `{"watermark": P}` that the relay sends to every
partition once everything up to position P has been published. A partition's watermark is
stored in the same transaction as the envelopes before it, so `min(watermark)` over all
partitions is a position up to which every read model is complete (read-your-writes).

Projector statements are idempotent (version/position guards), so re-delivery after a crash or a
rebalance is harmless. Batches go through the projection engine (`projections.engine`) like the
log's: a record whose projection fails is retried alone; if it still fails it is parked in
`projection_errors` (and returned, for the dead-letter topic) instead of blocking its partition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from eventlog.envelope import Envelope, load_state
from infra.database import ConnectionInfo
from projections.base import Writer
from projections.engine import apply_or_park, describe, park
from projections.positions import Watermarks


@dataclass(frozen=True)
class Record:
    """One consumed message: its partition and raw JSON value."""

    partition: int
    value: bytes


@dataclass(frozen=True)
class Parked:
    """A record that could not be projected, with the reason."""

    record: Record
    error: str


def watermark_of(value: bytes) -> int | None:
    """The position of a watermark record, or None for an envelope."""
    if value.startswith(b'{"watermark"'):
        return int(json.loads(value)["watermark"])
    return None


def apply_records(
    conn: psycopg.Connection[object], writer: Writer, topic: str, records: Sequence[Record],
) -> list[Parked]:
    """Project a batch through the projection engine, storing its watermarks with it. Returns the
    parked records (undecodable ones, and those the engine parked), for the dead-letter topic.

    `topic` names the watermarks stored: the event topic for the core read models, a derived
    key for a writer consumed by its own group (e.g. the vector projection). Envelopes are applied
    in log order (which keeps every stream's order across partitions)."""
    sources: dict[int, tuple[Envelope, Record]] = {}
    marks: dict[int, int] = {}
    parked: list[Parked] = []
    for record in records:
        mark = watermark_of(record.value)
        if mark is not None:
            marks[record.partition] = max(mark, marks.get(record.partition, 0))
            continue
        try:
            envelope = Envelope.from_dict(load_state(record.value))
        except (ValueError, TypeError) as error:
            park(conn, _decoded(record.value), error, writer.names)
            parked.append(Parked(record, describe(error)))
            continue
        sources.setdefault(envelope.position, (envelope, record))  # a re-delivered copy is the same
    envelopes = [sources[position][0] for position in sorted(sources)]
    covers = envelopes[-1].position if envelopes else 0
    rejected = apply_or_park(conn, writer, envelopes, Watermarks(topic, marks, covers))
    return parked + [Parked(sources[r.envelope.position][1], r.error) for r in rejected]


def _decoded(value: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(value)
    except ValueError:
        raw = None
    return raw if isinstance(raw, dict) else {"undecodable": value.decode(errors="replace")}


class BatchApplier:
    """`apply_records` on a connection of its own that is opened again whenever it was lost.

    A batch whose transaction failed for a transient reason (a deadlock with another worker
    updating the same counters, the database restarting) raises `is_transient` errors; the
    caller waits and calls `apply` again with the same records, which is harmless."""

    def __init__(self, db: ConnectionInfo, writer: Writer, topic: str) -> None:
        self.db, self.writer, self.topic = db, writer, topic
        self._conn: psycopg.Connection[object] | None = None

    def apply(self, records: Sequence[Record]) -> list[Parked]:
        """Project one batch (see `apply_records`)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.db.conninfo, autocommit=True)
        return apply_records(self._conn, self.writer, self.topic, records)


def retry_delay(attempt: int) -> float:
    """Seconds to wait before applying a batch again after its `attempt`-th transient failure."""
    return min(0.05 * 2.0**attempt, 5.0)

