"""Runs every long-running process: finds due token purchase sagas and workflow instances in the
`sagas` read model and hands each to the driver of its kind.

A process is due when it is active and its wake time (a retry, timer or timeout, stored in its
stream) has come; a waiting workflow is due only at its wake time (a signal makes it running).
New processes, signals and webhook deliveries `poke` the runner so it acts at once instead of at
the next scan. Each process is advanced by at most one thread of this runner at a time.

Across processes on one database, one runner leads: it holds a PostgreSQL advisory lock (on a
connection of its own, so the lock goes when the process or its connection does) and only the
leader advances sagas and runs the chores; the others wait to take over. Taking the lead runs
`on_lead` first (the embedded default rebuilds its in-process chain from the log there). The
saga's optimistic concurrency still guards every step, should two ever overlap.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from domain.errors import DomainError
from infra.database import ConnectionInfo
from infra.locks import SAGA_LEADER
from sagas.purchase_driver import is_conflict

log = logging.getLogger(__name__)


class ProcessDriver(Protocol):
    """Runs one step of a process of its kind."""

    def advance(self, process_id: UUID) -> str:
        """Run the process's current step once; its status afterwards."""
        ...


class SagaRunner:
    """Background loop over due processes (plus any periodic `chores`, e.g. token deployment and
    scheduled jobs), with one driver per process kind (`token_purchase`, `workflow`)."""

    def __init__(
        self, drivers: Mapping[str, ProcessDriver], reads: ConnectionPool, db: ConnectionInfo,
        threads: int = 4, scan_interval_s: float = 0.2, chores: tuple[Callable[[], None], ...] = (),
        on_lead: Callable[[], object] = lambda: None, follow_interval_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.drivers = drivers
        self.clock = clock
        self.reads = reads
        self.db = db
        self.scan_interval_s = scan_interval_s
        self.follow_interval_s = follow_interval_s
        self.chores = chores
        self.on_lead = on_lead
        self._leader: psycopg.Connection[tuple[object, ...]] | None = None
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="one-saga")
        self._in_flight: set[UUID] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="one-sagas", daemon=True)

    def start(self) -> SagaRunner:
        """Start scanning."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop scanning, wait for running steps (a step is never cut in half), hand the lead."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)
        self._resign()

    @property
    def leading(self) -> bool:
        """Whether this runner is the one advancing sagas."""
        return self._leader is not None

    def poke(self, process_id: UUID | None = None, kind: str = "token_purchase") -> None:
        """Act now (a process started, a signal or webhook arrived) instead of at the next scan
        (the leader's scan finds it if this runner does not lead)."""
        if process_id is not None and self.leading:
            self._submit(process_id, kind)
        self._wake.set()

    def due(self) -> list[tuple[UUID, str]]:
        """Active processes whose next step is due now (by the runner's clock), with their kind."""
        with self.reads.connection() as conn:
            rows = conn.execute(
                "SELECT id, kind FROM sagas WHERE (status IN ('running', 'compensating')"
                " AND (retry_at IS NULL OR retry_at <= %(now)s))"
                " OR (status = 'waiting' AND retry_at <= %(now)s)"
                " ORDER BY retry_at NULLS FIRST LIMIT 200", {"now": self.clock()},
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._lead():
                    self._stop.wait(self.follow_interval_s)
                    continue
                for chore in self.chores:
                    chore()
                for process_id, kind in self.due():
                    self._submit(process_id, kind)
            except Exception:
                log.exception("saga scan failed")
            self._wake.wait(self.scan_interval_s)
            self._wake.clear()

    def _lead(self) -> bool:
        """Whether this runner leads, taking the lead if nobody holds it."""
        if self._leader is not None:
            try:
                self._leader.execute("SELECT 1")
                return True
            except psycopg.Error:
                log.warning("lost the saga runner's lock; another process may take the lead")
                self._resign()
        conn = psycopg.connect(self.db.conninfo, autocommit=True)
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (SAGA_LEADER,)).fetchone()
        if not (row and row[0]):
            conn.close()
            return False
        self._leader = conn
        log.info("this process leads the saga runner")
        self.on_lead()
        return True

    def _resign(self) -> None:
        if self._leader is not None:
            with contextlib.suppress(psycopg.Error):
                self._leader.close()
            self._leader = None

    def _submit(self, process_id: UUID, kind: str) -> None:
        with self._lock:
            if process_id in self._in_flight or self._stop.is_set():
                return
            self._in_flight.add(process_id)
        self._pool.submit(self._advance, process_id, kind)

    def _advance(self, process_id: UUID, kind: str) -> None:
        try:
            self.drivers[kind].advance(process_id)
        except DomainError as error:
            if not is_conflict(error):
                log.warning("%s %s refused a step: %s", kind, process_id, error)
        except Exception:
            log.exception("%s %s step crashed; it will be retried", kind, process_id)
        finally:
            with self._lock:
                self._in_flight.discard(process_id)
