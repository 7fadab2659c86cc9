"""Runs the saga driver: finds due sagas in the `sagas` read model and advances them.

A saga is due when it is active and its retry time (a durable timer stored in its stream) has
come. New sagas and webhook deliveries `poke` the runner so it acts at once instead of at the
next scan. Each saga is advanced by at most one thread of this runner at a time; drivers in other
processes are kept honest by the saga's optimistic concurrency.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from psycopg_pool import ConnectionPool

from domain.errors import DomainError
from sagas.purchase_driver import PurchaseDriver, is_conflict

log = logging.getLogger(__name__)


class SagaRunner:
    """Background loop over due sagas (plus any periodic `chores`, e.g. token deployment)."""

    def __init__(
        self, driver: PurchaseDriver, reads: ConnectionPool, threads: int = 4,
        scan_interval_s: float = 0.2, chores: tuple[Callable[[], None], ...] = (),
    ) -> None:
        self.driver = driver
        self.reads = reads
        self.scan_interval_s = scan_interval_s
        self.chores = chores
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
        """Stop scanning and wait for running steps."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)

    def poke(self, saga_id: UUID | None = None) -> None:
        """Act now (a saga started, a webhook arrived) instead of at the next scan."""
        if saga_id is not None:
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
                for chore in self.chores:
                    chore()
                for saga_id in self.due():
                    self._submit(saga_id)
            except Exception:
                log.exception("saga scan failed")
            self._wake.wait(self.scan_interval_s)
            self._wake.clear()

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
