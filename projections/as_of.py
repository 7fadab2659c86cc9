"""A read-model row as it was at some point of its stream: the stream's events up to then applied by
the projection's own projector into temporary copies of its tables, read, and thrown away. Used
where folding the aggregate is not what clients read (people: personal fields opened, visibility
applied by the same view as the live row)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from eventlog.envelope import Envelope
from projections.base import Projection
from projections.store import ProjectionSet

T = TypeVar("T")


def projected_at(conn: psycopg.Connection[Any], projection: Projection, envelopes: Sequence[Envelope],
                 read: Callable[[psycopg.Connection[Any]], T]) -> T:
    """Apply `envelopes` with `projection` into temporary tables of the same names (nothing is
    kept: the transaction rolls back) and return what `read` finds there."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL search_path = pg_temp, public")
        for table in projection.tables:
            conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE public.{} INCLUDING ALL) ON COMMIT DROP")
                         .format(sql.Identifier(table), sql.Identifier(table)))
        ProjectionSet((projection,)).write(conn, envelopes)
        return read(conn)
