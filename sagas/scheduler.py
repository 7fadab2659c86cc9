"""The scheduler: fires every due schedule's tick once, runs its job, and records the outcome.

It runs as a chore of the leading process runner (one per database, by advisory lock), and each
tick is claimed by a version-guarded append before its job runs, so a tick fires once across
processes and restarts. A tick claimed but not recorded (the process died in the job) is run
again by the next leader: jobs are idempotent (the Luma sync appends nothing for an unchanged
page). Missed ticks: see `domain.schedules`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg_pool import ConnectionPool

from commands.bus import CommandBus
from commands.handlers import Context
from commands.schedules import ClaimTick, RecordFiring, ticks_between
from domain.errors import DomainError
from domain.schedules import Schedule
from eventlog.store import EventLog

log = logging.getLogger(__name__)
Job = Callable[[str, Mapping[str, Any], datetime], dict[str, Any]]
"""(organization, params, tick time) → the job's details; raises with a clear reason on failure."""


class Scheduler:
    """Fires due schedules (call it periodically; `fire` runs one on demand)."""

    def __init__(self, bus: CommandBus, event_log: EventLog, reads: ConnectionPool, jobs: Mapping[str, Job],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.bus = bus
        self.event_log = event_log
        self.reads = reads
        self.jobs = jobs
        self.clock = clock

    def __call__(self) -> None:
        """Fire every schedule whose next tick has come (or whose claimed tick never finished)."""
        for schedule_id in self.due():
            try:
                self.fire(schedule_id)
            except DomainError as error:  # another process took the tick first
                log.info("schedule %s: %s", schedule_id, error)

    def due(self) -> list[UUID]:
        """Schedules to fire now."""
        with self.reads.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM schedules WHERE (status = 'active' AND next_at <= %(now)s)"
                " OR claimed_tick IS NOT NULL ORDER BY next_at LIMIT 100", {"now": self.clock()}).fetchall()
        return [row[0] for row in rows]

    def fire(self, schedule_id: UUID, manual: bool = False) -> dict[str, Any]:
        """Claim the schedule's due tick (or, `manual`, a tick now), run its job and record the
        outcome; the outcome event's data."""
        schedule: Schedule = self.event_log.repository.get(schedule_id)
        now = self.clock()
        if schedule.claimed is None:
            if manual:
                tick, missed = now, 0
            else:
                if schedule.status != "active" or schedule.next_at is None \
                        or datetime.fromisoformat(schedule.next_at) > now:
                    return {}
                first = datetime.fromisoformat(schedule.next_at)
                later = ticks_between(schedule.cron, first, now)
                tick, missed = (later[-1] if later else first), len(later)
            self.bus.execute(ClaimTick(schedule.id, schedule.version, tick, missed, manual, now))
        claimed: Schedule = self.event_log.repository.get(schedule_id)
        tick_at = datetime.fromisoformat(str(claimed.claimed))
        try:
            detail, outcome = self.jobs[claimed.job](claimed.org_id, claimed.params, tick_at), "succeeded"
        except Exception as error:  # the job's failure is the tick's outcome; the next tick retries
            log.warning("schedule %s (%s) failed: %s", claimed.name, claimed.job, error)
            detail, outcome = {"reason": str(error) or type(error).__name__}, "failed"
        self.bus.execute(RecordFiring(schedule_id, outcome, detail), Context())
        return {"tick": tick_at.isoformat(), "outcome": outcome, "detail": detail}
