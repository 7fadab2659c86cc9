"""Replay the log as envelopes (JSON lines) for analysts: by position, time and type."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from eventlog.envelope import Envelope
from eventlog.reader import read_to_end
from eventlog.store import EventLog


def replay(
    event_log: EventLog,
    from_position: int = 1,
    since: datetime | None = None,
    types: frozenset[str] = frozenset(),
    chunk_size: int = 5000,
) -> Iterator[Envelope]:
    """Yield envelopes in log order from `from_position`, optionally only after `since` and of
    the given `types`."""
    for chunk in read_to_end(event_log, max(from_position, 1) - 1, chunk_size):
        for envelope in chunk:
            if types and envelope.type not in types:
                continue
            if since is not None and datetime.fromisoformat(envelope.occurred_at) < since:
                continue
            yield envelope
