"""Scheduled jobs as events: a named cron schedule of an organization that runs a job (e.g. the
Luma calendar sync) at each tick.

Every firing is claimed first (`tick_claimed`, appended at the schedule's version, so of several
processes only one claims a tick) and then recorded with its outcome (`fired`). The next tick is
computed by the caller (cron arithmetic lives outside the domain) and carried by the events.

Missed ticks: a schedule whose ticks came while ONE was down fires once on restart, for the
latest missed tick, and records how many it skipped (`missed`); it does not replay every tick.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.base import OneAggregate
from domain.errors import InvalidState

JOBS = frozenset({"luma.sync", "workflow.start"})
"""The jobs a schedule can run."""
SCHEDULE_STATUSES = frozenset({"active", "paused", "deleted"})


class Schedule(OneAggregate):
    """A cron schedule running one job with its parameters."""

    if TYPE_CHECKING:
        name: str
        cron: str
        job: str
        params: dict[str, Any]
        status: str
        next_at: str | None
        claimed: str | None
        last_tick: str | None
        last_outcome: str | None

    class ScheduleEvent(OneAggregate.Event):
        """Every schedule event carries its status and next tick after it."""

        status: str
        next_at: str | None

        def apply(self, aggregate: Any) -> None:
            self.record(aggregate)
            aggregate.status, aggregate.next_at = self.status, self.next_at

        def record(self, aggregate: Any) -> None:
            """What else the event sets."""

    class Created(ScheduleEvent, OneAggregate.Created):
        """A schedule was defined."""

        TYPE = "schedule.created"
        name: str
        cron: str
        job: str
        params: dict[str, Any]

        def record(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.name, aggregate.cron, aggregate.job = self.name, self.cron, self.job
            aggregate.params = dict(self.params)
            aggregate.claimed = aggregate.last_tick = aggregate.last_outcome = None

    class Redefined(ScheduleEvent):
        """A deleted schedule of the same name was defined again."""

        TYPE = "schedule.redefined"
        cron: str
        job: str
        params: dict[str, Any]

        def record(self, aggregate: Any) -> None:
            aggregate.cron, aggregate.job, aggregate.params = self.cron, self.job, dict(self.params)
            aggregate.claimed = None

    class Paused(ScheduleEvent):
        """No tick fires until resumed."""

        TYPE = "schedule.paused"

    class Resumed(ScheduleEvent):
        """Ticks fire again, from the next one after the resume."""

        TYPE = "schedule.resumed"

    class Deleted(ScheduleEvent):
        """The schedule is gone (its history stays in the log)."""

        TYPE = "schedule.deleted"

    class TickClaimed(ScheduleEvent):
        """A process took a tick to run (only one can: the append is version-guarded)."""

        TYPE = "schedule.tick_claimed"
        tick: str
        missed: int
        manual: bool

        def record(self, aggregate: Any) -> None:
            aggregate.claimed = self.tick

    class Fired(ScheduleEvent):
        """A tick's job ran, with its outcome (`succeeded` or `failed`) and details."""

        TYPE = "schedule.fired"
        tick: str
        outcome: str
        detail: dict[str, Any]

        def record(self, aggregate: Any) -> None:
            aggregate.claimed = None
            aggregate.last_tick, aggregate.last_outcome = self.tick, self.outcome

    @classmethod
    def define(cls, *, id: Any, org_id: str, actor_id: str, name: str, cron: str, job: str,
               params: dict[str, Any], next_at: datetime) -> Schedule:
        """A new active schedule whose first tick is `next_at`."""
        return cls._create(cls.Created, id=id, org_id=org_id, actor_id=actor_id, name=name, cron=cron,
                           job=job, params=params, status="active", next_at=next_at.isoformat())

    def redefine(self, actor: str, cron: str, job: str, params: dict[str, Any], next_at: datetime) -> None:
        """Define a deleted schedule again."""
        if self.status != "deleted":
            raise InvalidState(f"schedule {self.name} already exists", "name")
        self.trigger_event(self.Redefined, actor_id=actor, cron=cron, job=job, params=params,
                           status="active", next_at=next_at.isoformat())

    def pause(self, actor: str) -> None:
        """Stop firing."""
        self._require("active")
        self.trigger_event(self.Paused, actor_id=actor, status="paused", next_at=None)

    def resume(self, actor: str, next_at: datetime) -> None:
        """Fire again from `next_at`."""
        self._require("paused")
        self.trigger_event(self.Resumed, actor_id=actor, status="active", next_at=next_at.isoformat())

    def delete(self, actor: str) -> None:
        """Remove the schedule."""
        if self.status == "deleted":
            raise InvalidState(f"schedule {self.name} is deleted", "status")
        self.trigger_event(self.Deleted, actor_id=actor, status="deleted", next_at=None)

    def claim(self, actor: str, tick: datetime, missed: int, next_at: datetime | None, manual: bool) -> None:
        """Take `tick` to run now; the schedule moves on to `next_at` (unchanged for a manual run)."""
        if self.status == "deleted" or (not manual and self.status != "active"):
            raise InvalidState(f"schedule {self.name} is {self.status}", "status")
        if self.claimed is not None:
            raise InvalidState(f"schedule {self.name} is already running tick {self.claimed}", "status")
        self.trigger_event(self.TickClaimed, actor_id=actor, tick=tick.isoformat(), missed=missed,
                           manual=manual, status=self.status,
                           next_at=self.next_at if next_at is None else next_at.isoformat())

    def fired(self, actor: str, outcome: str, detail: dict[str, Any]) -> None:
        """Record the claimed tick's outcome."""
        if self.claimed is None:
            raise InvalidState(f"schedule {self.name} has no tick running", "status")
        self.trigger_event(self.Fired, actor_id=actor, tick=self.claimed, outcome=outcome, detail=detail,
                           status=self.status, next_at=self.next_at)

    def _require(self, status: str) -> None:
        if self.status != status:
            raise InvalidState(f"schedule {self.name} is {self.status}, not {status}", "status")
