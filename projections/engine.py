"""The projection engine: applies chunks of the log to read models for every transport.

The in-process runners, the rebuild and the Faust agents all call `apply_or_park`; they differ
only in the position store they pass (`projections.positions`). A batch is written in one
transaction with its position; if it fails on a bad event, its events are applied one by one and
the bad ones parked (`projection_errors`) with the position moving past them, so one bad event
never blocks the events behind it. Errors of the connection itself are raised, to be retried.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from eventlog.envelope import Envelope
from eventlog.reader import read_to_end
from eventlog.store import EventLog
from infra import tracing
from projections.base import Rejected, Writer
from projections.positions import Checkpoints

log = logging.getLogger(__name__)


class PositionStore(Protocol):
    """Where a transport records how far its read models are applied."""

    @property
    def since(self) -> dict[str, int] | None:
        """Per read model, the position whose events are already applied (None: apply all)."""
        ...

    def save(self, conn: psycopg.Connection[object], through: int) -> None:
        """Record, in the caller's transaction, that events through `through` are applied."""
        ...

    def saved(self, through: int) -> None:
        """The transaction that saved `through` committed."""
        ...


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying as they are (the database went away), as opposed to a bad event."""
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def park(conn: psycopg.Connection[object], raw: dict[str, Any], error: BaseException | str,
         names: Sequence[str] = ()) -> None:
    """Record an event that could not be applied, so it is reported instead of blocking."""
    reason = describe(error)
    with conn.transaction():
        conn.execute(
            "INSERT INTO projection_errors (position, stream_id, event_type, error, envelope, projection)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (int(raw.get("position", -1)), str(raw.get("stream_id", "")), str(raw.get("type", "")),
             reason, Jsonb(raw), ",".join(names) or None),
        )
    log.error("parked event at position %s: %s", raw.get("position"), reason)


def describe(error: BaseException | str) -> str:
    """An error as it is recorded with a parked event."""
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


def apply_or_park(conn: psycopg.Connection[object], writer: Writer, envelopes: Sequence[Envelope],
                  positions: PositionStore, through: int | None = None) -> list[Rejected]:
    """Apply `envelopes` and save the position `through` (default: the last envelope's) in one
    transaction; if that fails on a bad event, apply them one by one and park the bad ones.
    Returns every event parked (the writer's rejections included)."""
    end = through if through is not None else (envelopes[-1].position if envelopes else 0)
    try:
        return _apply(conn, writer, envelopes, positions, end)
    except Exception as error:
        if is_transient(error):
            raise
        log.warning("batch of %d failed; applying one by one", len(envelopes), exc_info=True)
    parked: list[Rejected] = []
    for envelope in envelopes:
        try:
            parked += _apply(conn, writer, [envelope], positions, envelope.position)
        except Exception as error:
            if is_transient(error):
                raise
            parked += _park_alone(conn, writer, envelope, error, positions)
    if end > (envelopes[-1].position if envelopes else 0):
        _apply(conn, writer, [], positions, end)
    return parked


def _apply(conn: psycopg.Connection[object], writer: Writer, envelopes: Sequence[Envelope],
           positions: PositionStore, through: int) -> list[Rejected]:
    if not tracing.enabled():
        return _apply_batch(conn, writer, envelopes, positions, through)
    with tracing.tracer().start_as_current_span(
            "project batch", links=tracing.links_to(e.traceparent for e in envelopes),
            attributes={"events": len(envelopes), "through": through, "projections": ",".join(writer.names)}):
        return _apply_batch(conn, writer, envelopes, positions, through)


def _apply_batch(conn: psycopg.Connection[object], writer: Writer, envelopes: Sequence[Envelope],
                 positions: PositionStore, through: int) -> list[Rejected]:
    with conn.transaction():
        rejected = writer.write(conn, envelopes, positions.since) if envelopes else []
        for each in rejected:
            park(conn, each.envelope.to_dict(), each.error, writer.names)
        positions.save(conn, through)
    positions.saved(through)
    if tracing.enabled():
        for envelope in envelopes:
            tracing.mark(f"project {envelope.type}", envelope.traceparent, position=envelope.position,
                         projections=",".join(writer.names))
    return rejected


def _park_alone(conn: psycopg.Connection[object], writer: Writer, envelope: Envelope,
                error: BaseException, positions: PositionStore) -> list[Rejected]:
    with conn.transaction():
        park(conn, envelope.to_dict(), error, writer.names)
        positions.save(conn, envelope.position)
    positions.saved(envelope.position)
    return [Rejected(envelope, describe(error))]


def catch_up(conn: psycopg.Connection[object], event_log: EventLog, writer: Writer,
             checkpoints: Checkpoints, chunk_size: int = 2000, stop: threading.Event | None = None) -> int:
    """Apply everything the log holds after the lowest checkpoint; return how many events were
    read."""
    read = 0
    after = min(checkpoints.positions.values(), default=0)
    for chunk in read_to_end(event_log, after, chunk_size, stop):
        apply_or_park(conn, writer, chunk, checkpoints)
        read += len(chunk)
    return read
