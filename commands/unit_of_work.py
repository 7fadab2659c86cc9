"""Per-command working sets over a batch of commands that will be saved in one transaction.

A `Batch` holds the aggregates changed by the commands accepted so far. Each command works in its
own `Scope`: it sees the batch's state (copied on first touch), and its changes join the batch
only when it succeeds, so a refused command leaves no trace in the batch. Besides events, a
command may leave *side writes* (SQL run in the same transaction as the append, e.g. a person's
personal-data key) and pending personal-data keys that later commands of the batch must see.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from domain.errors import NotFound
from eventlog.store import EventLog

A = TypeVar("A", bound=Aggregate)


@dataclass
class Batch:
    """Aggregates changed by the accepted commands of one group commit, in first-touch order."""

    log: EventLog
    aggregates: dict[UUID, Aggregate] = field(default_factory=dict)
    writes: list[tuple[str, Any]] = field(default_factory=list)
    personal_keys: dict[UUID, bytes | None] = field(default_factory=dict)
    """Keys created (bytes) or destroyed (None) by accepted commands, not yet committed."""


@dataclass
class Scope:
    """One command's view: reads through the batch, writes to private copies until `commit`."""

    batch: Batch
    working: dict[UUID, Aggregate] = field(default_factory=dict)
    start_versions: dict[UUID, int] = field(default_factory=dict)
    writes: list[tuple[str, Any]] = field(default_factory=list)
    personal_keys: dict[UUID, bytes | None] = field(default_factory=dict)

    def find(self, id: UUID, kind: type[A]) -> A | None:
        """The aggregate with `id` if it exists and is a `kind`, else None."""
        aggregate = self.working.get(id)
        if aggregate is None:
            aggregate = self._load(id)
            if aggregate is None:
                return None
            self.working[id] = aggregate
            self.start_versions[id] = aggregate.version
        return aggregate if isinstance(aggregate, kind) else None

    def get(self, id: UUID, kind: type[A], field: str = "id") -> A:
        """The aggregate with `id`, or NotFound naming `field`."""
        aggregate = self.find(id, kind)
        if aggregate is None:
            label = kind.__name__.lower()
            raise NotFound(f"{label} {id} not found", field)
        return aggregate

    def exists(self, id: UUID) -> bool:
        """Whether any stream with this id exists (cheap: one indexed read, no replay)."""
        if id in self.working or id in self.batch.aggregates:
            return True
        return bool(self.batch.log.recorder.select_events(id, limit=1))

    def add(self, aggregate: Aggregate) -> None:
        """Register a newly created aggregate."""
        self.working[aggregate.id] = aggregate
        self.start_versions[aggregate.id] = 0

    def _load(self, id: UUID) -> Aggregate | None:
        in_batch = self.batch.aggregates.get(id)
        if in_batch is not None:
            return copy.deepcopy(in_batch)
        try:
            return self.batch.log.repository.get(id)
        except AggregateNotFoundError:
            return None

    def changes(self) -> list[tuple[UUID, int]]:
        """(stream id, version) of every event this command produced."""
        return [
            (id_, version)
            for id_, aggregate in self.working.items()
            for version in range(self.start_versions[id_] + 1, aggregate.version + 1)
        ]

    def side_write(self, sql: str, params: Any) -> None:
        """Run `sql` in the transaction that appends this command's events (if it is accepted)."""
        self.writes.append((sql, params))

    def commit(self) -> None:
        """Merge this command's changed aggregates, side writes and keys into the batch."""
        for id_, aggregate in self.working.items():
            if aggregate.version > self.start_versions[id_]:
                self.batch.aggregates[id_] = aggregate
        self.batch.writes.extend(self.writes)
        self.batch.personal_keys.update(self.personal_keys)
