"""The writer of the pure projections: their changes, applied in runs.

`ProjectionSet` is the `Writer` the projection engine (`projections.engine`) drives for the core
read models (the vector projection has its own, in `projections.knowledge`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import cast

import psycopg

from eventlog.envelope import Envelope
from projections.base import Change, NewRow, Projection, Rejected, Statement, TagChange
from projections.new_rows import insert_new
from projections.personal import reveal_personal
from projections.tag_changes import apply_tag_changes

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
        """Apply every projection's changes for the envelopes (those after `since[name]`).

        Projections own disjoint tables, so applying them one after another (rather than
        envelope by envelope) keeps every ordering that matters while making the runs long. All
        statements go in one pipeline, so the database works while the next ones are built.
        Person events have their personal fields opened first, for the people read model only."""
        envelopes = reveal_personal(conn, envelopes)
        with conn.cursor() as cur, conn.pipeline():
            for projection in self.projections:
                after = since[projection.name] if since is not None else 0
                changes = [
                    change
                    for envelope in envelopes
                    if envelope.position > after
                    for change in projection.apply(envelope)
                ]
                _execute_in_runs(cur, changes)
        return []


def _execute_in_runs(cur: psycopg.Cursor[object], changes: list[Change]) -> None:
    """Execute in order, each run of consecutive like changes in one go: new rows of one table
    and tag changes set-based (`projections.new_rows`, `projections.tag_changes`), the same SQL
    statement as one executemany."""
    for _, run in groupby(changes, key=_run_of):
        items = list(run)
        if isinstance(items[0], NewRow):
            insert_new(cur, cast(list[NewRow], items))
        elif isinstance(items[0], TagChange):
            apply_tag_changes(cur, cast(list[TagChange], items))
        else:
            statements = cast(list[Statement], items)
            if len(statements) == 1:
                cur.execute(statements[0][0], statements[0][1], prepare=True)
            else:
                cur.executemany(statements[0][0], [params for _, params in statements])


def _run_of(change: Change) -> object:
    if isinstance(change, NewRow):
        return change.table, change.key, tuple(change.values)
    if isinstance(change, TagChange):
        return TagChange
    return change[0]


def reset_projection(conn: psycopg.Connection[object], projection: Projection) -> None:
    """Empty a projection's tables and rewind its checkpoint to 0 (before a rebuild)."""
    with conn.transaction():
        for table in projection.tables:
            conn.execute(psycopg.sql.SQL("TRUNCATE {}").format(psycopg.sql.Identifier(table)))
        conn.execute("DELETE FROM projection_checkpoints WHERE name = %s", (projection.name,))
