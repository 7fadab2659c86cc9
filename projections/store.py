"""Apply projector statements and move checkpoints, in one transaction (transport-agnostic).

Both the in-process runner and (in distributed mode) the Faust agents call `apply_batch`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from projections.base import Projection, Statement
from streams.envelope import Envelope

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
        apply_statements(cur, projections, envelopes, checkpoints)
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


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying as they are (the database went away), as opposed to a bad event."""
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def park(conn: psycopg.Connection[object], raw: dict[str, Any], error: BaseException) -> None:
    """Record an event that no projection could apply, so it is reported instead of blocking."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO projection_errors (position, stream_id, event_type, error, envelope)"
            " VALUES (%s, %s, %s, %s, %s)",
            (int(raw.get("position", -1)), str(raw.get("stream_id", "")), str(raw.get("type", "")),
             f"{type(error).__name__}: {error}", Jsonb(raw)),
        )
    log.error("parked event at position %s: %s", raw.get("position"), error)


def apply_or_park(
    conn: psycopg.Connection[object],
    projections: Sequence[Projection],
    envelopes: Sequence[Envelope],
    checkpoints: dict[str, int],
) -> dict[str, int]:
    """`apply_batch`; if the batch fails on a bad event, apply one by one and park the bad ones."""
    try:
        return apply_batch(conn, projections, envelopes, checkpoints)
    except Exception as error:
        if is_transient(error):
            raise
        log.warning("batch of %d failed; applying one by one", len(envelopes), exc_info=True)
    for envelope in envelopes:
        try:
            checkpoints = apply_batch(conn, projections, [envelope], checkpoints)
        except Exception as error:
            if is_transient(error):
                raise
            park(conn, envelope.to_dict(), error)
            checkpoints = apply_batch(conn, projections, [], checkpoints, up_to=envelope.position)
    return checkpoints


def apply_statements(
    cur: psycopg.Cursor[object],
    projections: Sequence[Projection],
    envelopes: Sequence[Envelope],
    since: dict[str, int] | None = None,
) -> None:
    """Run every projection's statements for the envelopes (those after `since[name]`, if given)."""
    for projection in projections:
        after = since[projection.name] if since is not None else 0
        statements = [
            statement
            for envelope in envelopes
            if envelope.position > after
            for statement in projection.apply(envelope)
        ]
        _execute_in_runs(cur, statements)


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
