"""Schedule commands: define, pause, resume and delete (clients); claim a tick and record its
outcome (the scheduler). Cron arithmetic (croniter, UTC) lives here, outside the domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from croniter import CroniterBadDateError, croniter
from pydantic import Field

from commands.access import load
from commands.fields import JsonObject
from commands.handlers import HANDLERS, Context, Reply, granted, handles
from commands.models import StrictModel
from commands.unit_of_work import Scope
from domain.errors import ValidationFailed, VersionConflict
from domain.schedules import JOBS, Schedule

ScheduleName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9 _.-]*$")]


def schedule_id(org_id: str, name: str) -> UUID:
    """The stream of the organization's schedule `name` (names are unique per organization)."""
    return uuid5(NAMESPACE_URL, f"one:schedule:{org_id}:{name}")


def next_tick(cron: str, after: datetime, field: str = "cron") -> datetime:
    """The first tick of `cron` (five fields, UTC) strictly after `after`."""
    if not croniter.is_valid(cron) or len(cron.split()) != 5:
        raise ValidationFailed(f"{cron!r} is not a five-field cron expression", field)
    try:
        tick: datetime = croniter(cron, after).get_next(datetime)
    except CroniterBadDateError:
        raise ValidationFailed(f"{cron!r} names a day that never comes", field) from None
    return tick


def ticks_between(cron: str, after: datetime, until: datetime) -> list[datetime]:
    """Every tick of `cron` in (after, until]."""
    ticks, tick = [], next_tick(cron, after)
    while tick <= until:
        ticks.append(tick)
        tick = next_tick(cron, tick)
    return ticks


def _cron_field(value: str) -> str:
    item = rf"(?:\*|{value}(?:-{value})?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item})*"


CRON_PATTERN = "^" + " ".join(_cron_field(v) for v in (
    r"[1-5]?[0-9]", r"(?:1?[0-9]|2[0-3])", r"(?:[1-9]|[12][0-9]|3[01])", r"(?:[1-9]|1[0-2])", r"[0-6]")) + "$"
"""Five cron fields (minute hour day-of-month month day-of-week; `*`, values, ranges, lists and
steps), UTC. A day no month has (e.g. the 30th of February) is refused at definition."""
Cron = Annotated[str, Field(max_length=200, pattern=CRON_PATTERN, examples=["0 12 * * *"])]


class LumaSyncParams(StrictModel):
    """Which Luma calendar to sync."""

    slug: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class WorkflowStartParams(StrictModel):
    """Which workflow to start, for whom (default: the platform's system person), with what."""

    workflow: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    subject_id: UUID | None = None
    input: JsonObject = Field(default_factory=dict)


class LumaSyncSchedule(StrictModel):
    """Sync a Luma calendar's events at each tick."""

    name: ScheduleName
    cron: Cron
    job: Literal["luma.sync"]
    params: LumaSyncParams


class WorkflowStartSchedule(StrictModel):
    """Start a workflow at each tick."""

    name: ScheduleName
    cron: Cron
    job: Literal["workflow.start"]
    params: WorkflowStartParams


ScheduleBody = Annotated[LumaSyncSchedule | WorkflowStartSchedule, Field(discriminator="job")]
"""A cron schedule of one of the jobs, with that job's parameters."""


class DefineSchedule(StrictModel):
    """Define the schedule as of `now` (its first tick is the next one after it)."""

    action = "schedules.manage"

    name: ScheduleName
    cron: str
    job: str
    params: dict[str, Any]
    now: datetime

    @classmethod
    def of(cls, body: LumaSyncSchedule | WorkflowStartSchedule, now: datetime) -> DefineSchedule:
        """The command for a schedule a client sent."""
        return cls(name=body.name, cron=body.cron, job=body.job, params=body.params.model_dump(mode="json"),
                   now=now)


class ChangeSchedule(StrictModel):
    """Pause, resume or delete schedule `id` (resuming as of `now`)."""

    action = "schedules.manage"

    id: UUID
    change: str = Field(pattern="^(pause|resume|delete)$")
    now: datetime


@handles(DefineSchedule)
def define_schedule(cmd: DefineSchedule, ctx: Context, scope: Scope) -> Reply:
    """Create the schedule (or define a deleted one of the same name again)."""
    if cmd.job not in JOBS:
        raise ValidationFailed(f"job must be one of {', '.join(sorted(JOBS))}", "job")
    first = next_tick(cmd.cron, cmd.now)
    stream = schedule_id(ctx.org_id, cmd.name)
    existing = scope.find(stream, Schedule)
    if existing is None:
        scope.add(Schedule.define(id=stream, org_id=ctx.org_id, actor_id=ctx.actor_id, name=cmd.name,
                                  cron=cmd.cron, job=cmd.job, params=dict(cmd.params), next_at=first))
        return Reply(stream, 201, {"next_at": first.isoformat()})
    existing.redefine(ctx.actor_id, cmd.cron, cmd.job, dict(cmd.params), first)
    return Reply(stream, 201, {"next_at": first.isoformat()})


@handles(ChangeSchedule)
def change_schedule(cmd: ChangeSchedule, ctx: Context, scope: Scope) -> Reply:
    """Pause, resume (from the next tick after now) or delete."""
    schedule = load(scope, ctx, cmd.id, Schedule)
    if cmd.change == "pause":
        schedule.pause(ctx.actor_id)
    elif cmd.change == "resume":
        schedule.resume(ctx.actor_id, next_tick(schedule.cron, cmd.now))
    else:
        schedule.delete(ctx.actor_id)
    return Reply(schedule.id, 200, {"status": schedule.status, "next_at": schedule.next_at})


@dataclass(frozen=True)
class ClaimTick:
    """Internal (the scheduler): take schedule `id`'s tick at `version` (only one process can)."""

    id: UUID
    version: int
    tick: datetime
    missed: int
    manual: bool
    now: datetime


@dataclass(frozen=True)
class RecordFiring:
    """Internal (the scheduler): the claimed tick's outcome."""

    id: UUID
    outcome: str
    detail: dict[str, Any]


def claim_tick(cmd: ClaimTick, ctx: Context, scope: Scope) -> Reply:
    """Claim under optimistic concurrency: a second process loses with a version conflict."""
    ctx = granted(ClaimTick, ctx)
    schedule = scope.get(cmd.id, Schedule)
    if schedule.version != cmd.version:
        raise VersionConflict(f"schedule moved on to version {schedule.version}", "version")
    following = None if cmd.manual else next_tick(schedule.cron, max(cmd.tick, cmd.now))
    schedule.claim(ctx.actor_id, cmd.tick, cmd.missed, following, cmd.manual)
    return Reply(schedule.id)


def record_firing(cmd: RecordFiring, ctx: Context, scope: Scope) -> Reply:
    """Record the outcome of the running tick."""
    ctx = granted(RecordFiring, ctx)
    schedule = scope.get(cmd.id, Schedule)
    schedule.fired(ctx.actor_id, cmd.outcome, cmd.detail)
    return Reply(schedule.id)


HANDLERS[ClaimTick] = claim_tick
HANDLERS[RecordFiring] = record_firing
