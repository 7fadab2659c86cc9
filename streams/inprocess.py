"""The in-process projection runner (embedded mode): follows the log, applies projectors.

It follows the log (`eventlog.reader.follow`: chunks after the lowest checkpoint, then LISTEN/NOTIFY
on every append) and hands each chunk to the projection engine, which applies it in one
transaction together with the checkpoints. A crash at any point resumes from the committed
checkpoints.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from eventlog.reader import follow
from eventlog.store import EventLog
from infra.database import ConnectionInfo
from projections.base import Writer
from projections.engine import apply_or_park, catch_up
from projections.positions import Checkpoints, read_checkpoints

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
        self.error: BaseException | None = None
        self._positions = Checkpoints({})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def checkpoints(self) -> dict[str, int]:
        """Where each read model of the writer stands (as committed)."""
        return self._positions.positions

    @checkpoints.setter
    def checkpoints(self, positions: dict[str, int]) -> None:
        self._positions = Checkpoints(dict(positions))

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
        """Apply everything currently in the log; return how many events were read."""
        if not self.checkpoints:
            self.checkpoints = read_checkpoints(conn, self.writer.names)
        return catch_up(conn, self.event_log, self.writer, self._positions, self.chunk_size, self._stop)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as error:  # surfaced through /readyz; retried after a pause
                self.error = error
                log.exception("projection runner failed; retrying")
                self._stop.wait(1.0)

    def _follow(self) -> None:
        with psycopg.connect(self.db.conninfo, autocommit=True) as conn:
            self.checkpoints = read_checkpoints(conn, self.writer.names)
            for chunk in follow(self.event_log, self.db, self.position, self._stop, self.chunk_size):
                apply_or_park(conn, self.writer, chunk, self._positions)
                self.error = None
