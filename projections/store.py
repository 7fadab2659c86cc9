"""Apply projector statements and move checkpoints, in one transaction (transport-agnostic).

Both the in-process runner and (in distributed mode) the Faust agents call `apply_batch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter

import psycopg

from projections.base import Projection, Statement
from streams.envelope import Envelope


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
    projections: Sequence[Projection],
    envelopes: Sequence[Envelope],
    checkpoints: dict[str, int],
    up_to: int | None = None,
) -> dict[str, int]:
    """Apply envelopes newer than each projection's checkpoint, then advance the checkpoints to
    `up_to` (default: the last envelope's position), all in one transaction. Returns the new
    checkpoints. Each projection's statements run in log order."""
    if not envelopes and up_to is None:
        return checkpoints
    end = up_to if up_to is not None else envelopes[-1].position
    with conn.transaction(), conn.cursor() as cur:
        for projection in projections:
            since = checkpoints[projection.name]
            statements = [
                statement
                for envelope in envelopes
                if envelope.position > since
                for statement in projection.apply(envelope)
            ]
            _execute_in_runs(cur, statements)
        moved = {p.name: end for p in projections if end > checkpoints[p.name]}
        if moved:
            cur.executemany(
                "INSERT INTO projection_checkpoints (name, position, updated_at)"
                " VALUES (%s, %s, now()) ON CONFLICT (name) DO UPDATE"
                " SET position = excluded.position, updated_at = now()"
                " WHERE projection_checkpoints.position < excluded.position",
                list(moved.items()),
            )
    return {**checkpoints, **moved}


def _execute_in_runs(cur: psycopg.Cursor[object], statements: list[Statement]) -> None:
    """Execute in order, sending each run of consecutive identical SQL as one executemany.

    Projections own disjoint tables, so applying them one after another (rather than envelope by
    envelope) keeps every ordering that matters while making the runs long.
    """
    for sql_text, run in groupby(statements, key=itemgetter(0)):
        cur.executemany(sql_text, [params for _, params in run])


def reset_projection(conn: psycopg.Connection[object], projection: Projection) -> None:
    """Empty a projection's tables and rewind its checkpoint to 0 (before a rebuild)."""
    with conn.transaction():
        for table in projection.tables:
            conn.execute(psycopg.sql.SQL("TRUNCATE {}").format(psycopg.sql.Identifier(table)))
        conn.execute("DELETE FROM projection_checkpoints WHERE name = %s", (projection.name,))
