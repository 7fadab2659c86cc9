"""Runs the saga driver: finds due sagas in the `sagas` read model and advances them.

A saga is due when it is active and its retry time (a durable timer stored in its stream) has
come. New sagas and webhook deliveries `poke` the runner so it acts at once instead of at the
next scan. Each saga is advanced by at most one thread of this runner at a time.

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from domain.errors import DomainError
from infra.database import ConnectionInfo
from infra.locks import SAGA_LEADER
from sagas.purchase_driver import PurchaseDriver, is_conflict

log = logging.getLogger(__name__)


class SagaRunner:
    """Background loop over due sagas (plus any periodic `chores`, e.g. token deployment)."""

    def __init__(
        self, driver: PurchaseDriver, reads: ConnectionPool, db: ConnectionInfo, threads: int = 4,
        scan_interval_s: float = 0.2, chores: tuple[Callable[[], None], ...] = (),
        on_lead: Callable[[], object] = lambda: None, follow_interval_s: float = 1.0,
    ) -> None:
        self.driver = driver
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

    def poke(self, saga_id: UUID | None = None) -> None:
        """Act now (a saga started, a webhook arrived) instead of at the next scan (the leader's
        scan finds it if this runner does not lead)."""
        if saga_id is not None and self.leading:
            self._submit(saga_id)
        self._wake.set()

    def due(self) -> list[UUID]:
        """Active sagas whose next attempt is due."""
        with self.reads.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM sagas WHERE status IN ('running', 'compensating')"
                " AND (retry_at IS NULL OR retry_at <= now()) ORDER BY retry_at NULLS FIRST"
                " LIMIT 200"
            ).fetchall()
        return [row[0] for row in rows]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._lead():
                    self._stop.wait(self.follow_interval_s)
                    continue
                for chore in self.chores:
                    chore()
                for saga_id in self.due():
                    self._submit(saga_id)
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

    def _submit(self, saga_id: UUID) -> None:
        with self._lock:
            if saga_id in self._in_flight or self._stop.is_set():
                return
            self._in_flight.add(saga_id)
        self._pool.submit(self._advance, saga_id)

    def _advance(self, saga_id: UUID) -> None:
        try:
            self.driver.advance(saga_id)
        except DomainError as error:
            if not is_conflict(error):
                log.warning("saga %s refused a step: %s", saga_id, error)
        except Exception:
            log.exception("saga %s step crashed; it will be retried", saga_id)
        finally:
            with self._lock:
                self._in_flight.discard(saga_id)
