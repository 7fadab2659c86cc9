"""Replay the log as envelopes (JSON lines) for analysts: by position, time and type."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from eventlog.envelope import Envelope, decode_notification
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
    start = max(from_position, 1)
    while True:
        notifications = event_log.recorder.select_notifications(start=start, limit=chunk_size)
        if not notifications:
            return
        for notification in notifications:
            envelope = decode_notification(notification)
            if types and envelope.type not in types:
                continue
            if since is not None and datetime.fromisoformat(envelope.occurred_at) < since:
                continue
            yield envelope
        start = notifications[-1].id + 1
