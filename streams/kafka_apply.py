"""Apply records consumed from the event topic to the read models (transport-free).

A record is either an envelope or a watermark `{"watermark": P}` that the relay sends to every
partition once everything up to position P has been published. A partition's watermark is
stored in the same transaction as the envelopes before it, so `min(watermark)` over all
partitions is a position up to which every read model is complete (read-your-writes).

Projector statements are idempotent (version/position guards), so re-delivery after a crash or a
rebalance is harmless. A record whose projection fails is retried alone; if it still fails it is
parked in `projection_errors` (and returned, for the dead-letter topic) instead of blocking its
partition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from eventlog.envelope import Envelope
from projections.base import Writer
from projections.store import is_transient, park

log = logging.getLogger(__name__)


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
    """Project a batch in one transaction; on failure, record by record. Returns parked records.

    `topic` names the watermarks stored: the event topic for the core read models, a derived
    key for a writer consumed by its own group (e.g. the vector projection)."""
    try:
        return _apply(conn, writer, topic, records)
    except Exception as error:
        if is_transient(error):
            raise
        log.warning("batch of %d failed; applying record by record", len(records), exc_info=True)
    parked: list[Parked] = []
    for record in records:
        try:
            parked += _apply(conn, writer, topic, [record])
        except Exception as error:
            if is_transient(error):
                raise
            parked.append(Parked(record, f"{type(error).__name__}: {error}"))
            park(conn, _decoded(record.value), error, writer.names)
    return parked


def _decoded(value: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(value)
    except ValueError:
        raw = None
    return raw if isinstance(raw, dict) else {"undecodable": value.decode(errors="replace")}


def _apply(
    conn: psycopg.Connection[object], writer: Writer, topic: str, records: Sequence[Record],
) -> list[Parked]:
    envelopes: list[Envelope] = []
    sources: dict[int, Record] = {}
    marks: dict[int, int] = {}
    for record in records:
        mark = watermark_of(record.value)
        if mark is None:
            envelope = Envelope.from_dict(json.loads(record.value))
            envelopes.append(envelope)
            sources[envelope.position] = record
        else:
            marks[record.partition] = max(mark, marks.get(record.partition, 0))
    parked: list[Parked] = []
    with conn.transaction(), conn.cursor() as cur:
        for rejected in writer.write(conn, envelopes):
            park(conn, rejected.envelope.to_dict(), rejected.error, writer.names)
            parked.append(Parked(sources[rejected.envelope.position], rejected.error))
        if marks:
            cur.executemany(
                "INSERT INTO stream_watermarks (topic, partition, position) VALUES (%s, %s, %s)"
                " ON CONFLICT (topic, partition) DO UPDATE SET position = excluded.position,"
                " updated_at = now() WHERE stream_watermarks.position < excluded.position",
                [(topic, partition, position) for partition, position in marks.items()],
            )
    return parked
