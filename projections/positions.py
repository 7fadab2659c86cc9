"""How far read models are applied: the two position stores the projection engine writes to.

`Checkpoints` (the in-process runners and the rebuild): one log position per read model.
`Watermarks` (the Faust agents): per topic partition, the relay's watermark, a log position up to
which the partition has delivered everything. Both are written in the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psycopg

from projections.registry import PROJECTIONS


def read_checkpoints(conn: psycopg.Connection[object], names: Iterable[str]) -> dict[str, int]:
    """Position each projection has applied up to (0 if it never ran)."""
    wanted = list(names)
    rows = conn.execute(
        "SELECT name, position FROM projection_checkpoints WHERE name = ANY(%s)", (wanted,)
    ).fetchall()
    found = {str(r[0]): int(r[1]) for r in rows}  # type: ignore[index]
    return {name: found.get(name, 0) for name in wanted}


def _code_version(name: str) -> int:
    """The version the code of read model `name` declares (1 for those outside the registry)."""
    projection = PROJECTIONS.get(name)
    return projection.version if projection is not None else 1


@dataclass
class Checkpoints:
    """One position per read model: events at or before it are skipped, and it moves forward."""

    positions: dict[str, int]

    @property
    def since(self) -> dict[str, int] | None:
        """What each read model already reflects."""
        return self.positions

    def save(self, conn: psycopg.Connection[object], through: int) -> None:
        """Move every checkpoint behind `through` to it (in the caller's transaction)."""
        moved = [(name, through, _code_version(name)) for name, position in self.positions.items()
                 if through > position]
        if moved:
            with conn.cursor() as cur:
                cur.executemany(  # a new row: the read model was built by this code, at its version
                    "INSERT INTO projection_checkpoints (name, position, version, updated_at)"
                    " VALUES (%s, %s, %s, now()) ON CONFLICT (name) DO UPDATE"
                    " SET position = excluded.position, updated_at = now()"
                    " WHERE projection_checkpoints.position < excluded.position",
                    moved,
                )

    def saved(self, through: int) -> None:
        """The transaction that saved `through` committed."""
        self.positions = {name: max(position, through) for name, position in self.positions.items()}


@dataclass
class Watermarks:
    """The watermarks a batch of consumed records carried, stored once the whole batch is applied
    (`covers`: the batch's last event position). Events are never skipped: re-delivery is
    harmless through the projectors' own guards."""

    topic: str
    marks: Mapping[int, int]
    covers: int = 0
    since: dict[str, int] | None = field(default=None, init=False)

    def save(self, conn: psycopg.Connection[object], through: int) -> None:
        """Store the partitions' watermarks once the batch is applied through its last event."""
        if self.marks and through >= self.covers:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO stream_watermarks (topic, partition, position) VALUES (%s, %s, %s)"
                    " ON CONFLICT (topic, partition) DO UPDATE SET position = excluded.position,"
                    " updated_at = now() WHERE stream_watermarks.position < excluded.position",
                    [(self.topic, partition, position) for partition, position in self.marks.items()],
                )

    def saved(self, through: int) -> None:
        """Nothing to remember: the next batch brings its own watermarks."""
