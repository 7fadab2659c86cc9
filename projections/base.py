"""What a projection is: a name, the tables it owns, and a pure projector function.

A projector turns one envelope into a list of changes: new rows (inserted unless their key exists)
and SQL statements. Both are idempotent: a statement guards on the stream version (or log
position) its row already reflects, so applying an event twice, or an older one after a newer
one, changes nothing. Projectors never touch a transport;
the in-process runner and the Faust agents both call the same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from eventlog.envelope import Envelope

Statement = tuple[str, Any]
"""SQL text and its parameters (a tuple, or a mapping for named placeholders)."""


@dataclass(frozen=True, slots=True)
class NewRow:
    """A row to insert unless its table already holds one with the same key (`ON CONFLICT (key)
    DO NOTHING`). The writer inserts a run of them set-based, in one statement per table and
    chunk; as one by one, the first row of a key wins."""

    table: str
    key: str
    values: dict[str, Any]
    """Column → value: JSON-ready values for `jsonb` columns, lists of strings for `text[]` ones."""


@dataclass(frozen=True, slots=True)
class TagChange:
    """A tag attached to (or detached from) a thing at a stream version. The writer folds a run of
    them per (thing, tag) and applies the run in one statement: the rows guarded by version, each
    organization's usage counts moved once per tag, in key order (`projections.tag_changes`)."""

    org_id: str
    thing_id: str
    tag: str
    attached: bool
    version: int
    at: str


Change = Statement | NewRow | TagChange
"""What a projector asks of the read model: a SQL statement, a new row or a tag change."""
Projector = Callable[[Envelope], Sequence[Change]]


@dataclass(frozen=True)
class Projection:
    """A named read model."""

    name: str
    tables: tuple[str, ...]
    handles: frozenset[str]
    project: Projector
    version: int = 1
    """Raised when the projector's output changes: the read model is then rebuilt (blue/green)."""

    def apply(self, envelope: Envelope) -> Sequence[Change]:
        """Changes for this envelope, or none if the projection ignores its type."""
        if envelope.type not in self.handles:
            return []
        return self.project(envelope)


@dataclass(frozen=True)
class Rejected:
    """An event a writer could only partly apply (e.g. its embedding failed): to be parked."""

    envelope: Envelope
    error: str


class Writer(Protocol):
    """Writes chunks of the log into read models, inside the caller's transaction.

    The projection engine (`projections.engine.apply_or_park`) drives writers for every transport
    (the in-process runners and the rebuild with checkpoints, the Faust agents with watermarks),
    so projection logic exists once.
    """

    @property
    def names(self) -> tuple[str, ...]:
        """The checkpoint names of the read models written."""
        ...

    def write(
        self, conn: psycopg.Connection[object], envelopes: Sequence[Envelope],
        since: dict[str, int] | None = None,
    ) -> list[Rejected]:
        """Apply the envelopes after `since[name]` (all if None); return what must be parked."""
        ...


def split_patch(patch: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """A merge patch as (keys to remove, values to set), for `(col - removed) || set` in SQL."""
    removed = [k for k, v in patch.items() if v is None]
    return removed, {k: v for k, v in patch.items() if v is not None}
