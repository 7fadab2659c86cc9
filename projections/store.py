"""Apply projector statements and move checkpoints, in one transaction (transport-agnostic).

The in-process runner calls `apply_or_park` with a `Writer`; `ProjectionSet` is the writer of the
pure projections (the vector projection has its own, in `projections.knowledge`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from eventlog.envelope import Envelope
from projections.base import Projection, Rejected, Statement, Writer
from projections.personal import reveal_personal

log = logging.getLogger(__name__)


def read_checkpoints(conn: psycopg.Connection[object], names: Iterable[str]) -> dict[str, int]:
    """Position each projection has applied up to (0 if it never ran)."""
    wanted = list(names)
    rows = conn.execute(
        "SELECT name, position FROM projection_checkpoints WHERE name = ANY(%s)", (wanted,)
    ).fetchall()
    found = {str(r[0]): int(r[1]) for r in rows}  # type: ignore[index]
    return {name: found.get(name, 0) for name in wanted}


def apply_batch(
    conn: psycopg.Connection[object],
    writer: Writer,
    envelopes: Sequence[Envelope],
    checkpoints: dict[str, int],
    up_to: int | None = None,
) -> dict[str, int]:
    """Write envelopes newer than each checkpoint, park what the writer rejects, then advance the
    checkpoints to `up_to` (default: the last envelope's position), all in one transaction.
    Returns the new checkpoints."""
    if not envelopes and up_to is None:
        return checkpoints
    end = up_to if up_to is not None else envelopes[-1].position
    with conn.transaction():
        for rejected in writer.write(conn, envelopes, checkpoints):
            park(conn, rejected.envelope.to_dict(), rejected.error, writer.names)
        moved = {name: end for name in writer.names if end > checkpoints[name]}
        if moved:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO projection_checkpoints (name, position, updated_at)"
                    " VALUES (%s, %s, now()) ON CONFLICT (name) DO UPDATE"
                    " SET position = excluded.position, updated_at = now()"
                    " WHERE projection_checkpoints.position < excluded.position",
                    list(moved.items()),
                )
    return {**checkpoints, **moved}


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying as they are (the database went away), as opposed to a bad event."""
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def park(
    conn: psycopg.Connection[object], raw: dict[str, Any], error: BaseException | str,
    names: Sequence[str] = (),
) -> None:
    """Record an event that could not be applied, so it is reported instead of blocking."""
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    with conn.transaction():
        conn.execute(
            "INSERT INTO projection_errors (position, stream_id, event_type, error, envelope, projection)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (int(raw.get("position", -1)), str(raw.get("stream_id", "")), str(raw.get("type", "")),
             reason, Jsonb(raw), ",".join(names) or None),
        )
    log.error("parked event at position %s: %s", raw.get("position"), reason)


def apply_or_park(
    conn: psycopg.Connection[object],
    writer: Writer,
    envelopes: Sequence[Envelope],
    checkpoints: dict[str, int],
) -> dict[str, int]:
    """`apply_batch`; if the batch fails on a bad event, apply one by one and park the bad ones."""
    try:
        return apply_batch(conn, writer, envelopes, checkpoints)
    except Exception as error:
        if is_transient(error):
            raise
        log.warning("batch of %d failed; applying one by one", len(envelopes), exc_info=True)
    for envelope in envelopes:
        try:
            checkpoints = apply_batch(conn, writer, [envelope], checkpoints)
        except Exception as error:
            if is_transient(error):
                raise
            park(conn, envelope.to_dict(), error, writer.names)
            checkpoints = apply_batch(conn, writer, [], checkpoints, up_to=envelope.position)
    return checkpoints


@dataclass(frozen=True)
class ProjectionSet:
    """Pure projections written together: the `Writer` of the core read models."""

    projections: tuple[Projection, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Checkpoint names: the projections' names."""
        return tuple(p.name for p in self.projections)

    def write(
        self, conn: psycopg.Connection[object], envelopes: Sequence[Envelope],
        since: dict[str, int] | None = None,
    ) -> list[Rejected]:
        """Run every projection's statements for the envelopes (those after `since[name]`).

        Projections own disjoint tables, so applying them one after another (rather than
        envelope by envelope) keeps every ordering that matters while making the runs long. All
        statements go in one pipeline, so the database works while the next ones are built.
        Person events have their personal fields opened first, for the people read model only."""
        envelopes = reveal_personal(conn, envelopes)
        with conn.cursor() as cur, psycopg.RawCursor(conn) as raw, conn.pipeline():
            for projection in self.projections:
                after = since[projection.name] if since is not None else 0
                statements = [
                    statement
                    for envelope in envelopes
                    if envelope.position > after
                    for statement in projection.apply(envelope)
                ]
                _execute_in_runs(cur, raw, statements)
        return []


_INSERT_IGNORE = re.compile(
    r"(INSERT INTO [^%]+? VALUES )(\((?:[^()%]|%s)*\))( ON CONFLICT \([^()%]*\) DO NOTHING)", re.S
)
"""`INSERT ... VALUES (<one row of %s>) ON CONFLICT (...) DO NOTHING`: head, row, tail."""
_MAX_ROWS = 200
_MAX_BYTES = 256 * 1024
"""Bounds of a merged INSERT: psycopg 3.3.9 can hang on pipelined statements of ~1 MB
(docs/benchmarks.md, finding 1), so merged ones stay within the size of one large event."""


def _execute_in_runs(
    cur: psycopg.Cursor[object], raw: psycopg.RawCursor[object], statements: list[Statement]
) -> None:
    """Execute in order, sending each run of consecutive identical SQL in one go.

    A run of `INSERT ... VALUES (...) ON CONFLICT ... DO NOTHING` with positional parameters
    becomes multi-row INSERTs: within one statement, as one by one, the first row of a key wins
    and the later ones do nothing. Any other run is one executemany."""
    for sql_text, run in groupby(statements, key=itemgetter(0)):
        params = [p for _, p in run]
        insert = _INSERT_IGNORE.fullmatch(sql_text)
        if insert is None or len(params) == 1 or not isinstance(params[0], tuple):
            cur.executemany(sql_text, params)
            continue
        head, row, tail = insert.groups()
        pieces = row.split("%s")
        width = len(pieces) - 1
        for chunk in _chunks(params):
            rows = (
                "".join(f"{piece}${i * width + j + 1}" for j, piece in enumerate(pieces[:-1]))
                + pieces[-1]
                for i in range(len(chunk))
            )
            raw.execute(head + ", ".join(rows) + tail, [value for p in chunk for value in p])


def _chunks(rows: list[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    """Rows in groups within `_MAX_ROWS` and (about) `_MAX_BYTES`; JSON values are serialized
    here to measure them, and sent as they are."""
    chunk: list[tuple[Any, ...]] = []
    size = 0
    for row in rows:
        values = tuple(
            Jsonb((v.dumps or json.dumps)(v.obj), dumps=_verbatim) if isinstance(v, Jsonb) else v
            for v in row
        )
        width = sum(_size(v) for v in values)
        if chunk and (len(chunk) == _MAX_ROWS or size + width > _MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(values)
        size += width
    if chunk:
        yield chunk


def _verbatim(text: Any) -> Any:
    """A `dumps` for JSON already serialized."""
    return text


def _size(value: Any) -> int:
    """Approximate bytes of a parameter."""
    if isinstance(value, Jsonb):
        return len(value.obj)
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(_size(v) for v in value)
    return 8


def reset_projection(conn: psycopg.Connection[object], projection: Projection) -> None:
    """Empty a projection's tables and rewind its checkpoint to 0 (before a rebuild)."""
    with conn.transaction():
        for table in projection.tables:
            conn.execute(psycopg.sql.SQL("TRUNCATE {}").format(psycopg.sql.Identifier(table)))
        conn.execute("DELETE FROM projection_checkpoints WHERE name = %s", (projection.name,))
