"""The writer of the pure projections: their statements, executed in runs.

`ProjectionSet` is the `Writer` the projection engine (`projections.engine`) drives for the core
read models (the vector projection has its own, in `projections.knowledge`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from eventlog.envelope import Envelope
from projections.base import Projection, Rejected, Statement
from projections.personal import reveal_personal

log = logging.getLogger(__name__)


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
