"""The in-process projection runner (embedded mode): follows the log, applies projectors.

It reads the log in chunks after the lowest checkpoint, applies each chunk in one transaction
together with the checkpoints, and sleeps on PostgreSQL LISTEN/NOTIFY (the event log notifies
on every append) when caught up. A crash at any point resumes from the committed checkpoints.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from eventlog.envelope import decode_notification
from eventlog.store import EVENTS_TABLE, EventLog
from infra.database import ConnectionInfo
from projections.base import Writer
from projections.store import apply_or_park, read_checkpoints

log = logging.getLogger(__name__)


class InProcessRunner:
    """Keeps the read models up to date in a background thread."""

    def __init__(
        self,
        event_log: EventLog,
        db: ConnectionInfo,
        writer: Writer,
        chunk_size: int = 2000,
        name: str = "one-projections",
    ) -> None:
        self.event_log = event_log
        self.db = db
        self.writer = writer
        self.chunk_size = chunk_size
        self.checkpoints: dict[str, int] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def position(self) -> int:
        """The log position every projection has reached."""
        return min(self.checkpoints.values(), default=0)

    def start(self) -> InProcessRunner:
        """Start following the log."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current chunk."""
        self._stop.set()
        self._thread.join(timeout=10)

    def catch_up(self, conn: psycopg.Connection[object]) -> int:
        """Apply everything currently in the log; return how many events were applied."""
        if not self.checkpoints:
            self.checkpoints = read_checkpoints(conn, self.writer.names)
        applied = 0
        while not self._stop.is_set():
            notifications = self.event_log.recorder.select_notifications(
                start=self.position + 1, limit=self.chunk_size
            )
            if not notifications:
                return applied
            envelopes = [decode_notification(n) for n in notifications]
            self.checkpoints = apply_or_park(conn, self.writer, envelopes, self.checkpoints)
            applied += len(envelopes)
        return applied

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as error:  # surfaced through /readyz; retried after a pause
                self.error = error
                log.exception("projection runner failed; retrying")
                self._stop.wait(1.0)

    def _follow(self) -> None:
        with psycopg.connect(self.db.conninfo, autocommit=True) as conn, \
                psycopg.connect(self.db.conninfo, autocommit=True) as listener:
            listener.execute(f"LISTEN {EVENTS_TABLE}")
            self.checkpoints = read_checkpoints(conn, self.writer.names)
            while not self._stop.is_set():
                if self.catch_up(conn):
                    self.error = None
                    continue
                for _ in listener.notifies(timeout=0.25, stop_after=1):
                    pass
