"""Replay the log for analysts: envelopes in log order, filtered by position, time, type, stream
and organization; as JSON lines (the CLI, `GET /v1/log`) or as a Parquet file."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from eventlog.envelope import Envelope, dump_json
from eventlog.reader import read_to_end
from eventlog.store import EventLog

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class LogFilter:
    """Which envelopes a replay yields: positions in (after, until], occurred at or after
    `since`, of the given types (all if empty), of one stream, one organization and one
    correlation (all if None)."""

    after: int = 0
    until: int | None = None
    since: datetime | None = None
    types: frozenset[str] = frozenset()
    stream_id: str | None = None
    org_id: str | None = None
    correlation_id: str | None = None

    def admits(self, envelope: Envelope) -> bool:
        """Whether the envelope passes every filter but the position range."""
        return ((not self.types or envelope.type in self.types)
                and (self.stream_id is None or envelope.stream_id == self.stream_id)
                and (self.correlation_id is None or envelope.correlation_id == self.correlation_id)
                and (self.org_id is None or envelope.org_id == self.org_id)
                and (self.since is None or datetime.fromisoformat(envelope.occurred_at) >= self.since))


def replay(event_log: EventLog, log_filter: LogFilter = LogFilter(), limit: int | None = None,
           chunk_size: int = 5000, read: Callable[[int], None] | None = None) -> Iterator[Envelope]:
    """Yield the envelopes the filter admits, in log order, at most `limit` of them; `read` is told
    the position of each chunk's last envelope read (for progress)."""
    yielded = 0
    for chunk in read_to_end(event_log, log_filter.after, chunk_size):
        for envelope in chunk:
            if log_filter.until is not None and envelope.position > log_filter.until:
                return
            if log_filter.admits(envelope):
                yield envelope
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
        if read is not None:
            read(chunk[-1].position)


def json_lines(envelopes: Iterable[Envelope], per_chunk: int = 500) -> Iterator[bytes]:
    """The envelopes as newline-delimited JSON, several lines per chunk of bytes."""
    lines: list[bytes] = []
    for envelope in envelopes:
        lines.append(dump_json(envelope.to_dict()))
        if len(lines) == per_chunk:
            yield b"\n".join(lines) + b"\n"
            lines.clear()
    if lines:
        yield b"\n".join(lines) + b"\n"


def write_parquet(envelopes: Iterable[Envelope], path: Path, rows_per_group: int = 50_000) -> int:
    """Write the envelopes to a Parquet file: one column per envelope field, `occurred_at` as a UTC
    timestamp, `data` as JSON text. Returns how many rows were written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("position", pa.int64()), ("stream_id", pa.string()), ("version", pa.int64()),
        ("type", pa.string()), ("schema_version", pa.int32()),
        ("occurred_at", pa.timestamp("us", tz="UTC")), ("org_id", pa.string()),
        ("actor_id", pa.string()), ("data", pa.string()), ("correlation_id", pa.string()),
        ("causation_id", pa.string()), ("traceparent", pa.string()),
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[Envelope] = []
        for envelope in envelopes:
            batch.append(envelope)
            if len(batch) == rows_per_group:
                writer.write_table(_table(batch, schema))
                written += len(batch)
                batch.clear()
        if batch or not written:
            writer.write_table(_table(batch, schema))
            written += len(batch)
    return written


def _table(batch: list[Envelope], schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    columns = {
        "position": [e.position for e in batch], "stream_id": [e.stream_id for e in batch],
        "version": [e.version for e in batch], "type": [e.type for e in batch],
        "schema_version": [e.schema_version for e in batch],
        "occurred_at": [datetime.fromisoformat(e.occurred_at) for e in batch],
        "org_id": [e.org_id for e in batch], "actor_id": [e.actor_id for e in batch],
        "data": [dump_json(e.data).decode() for e in batch],
        "correlation_id": [e.correlation_id for e in batch], "causation_id": [e.causation_id for e in batch],
        "traceparent": [e.traceparent for e in batch],
    }
    return pa.Table.from_pydict(columns, schema=schema)
