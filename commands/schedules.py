"""Schedule commands: define, pause, resume and delete (clients); claim a tick and record its
outcome (the scheduler). Cron arithmetic (croniter, UTC) lives here, outside the domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from croniter import croniter
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
    tick: datetime = croniter(cron, after).get_next(datetime)
    return tick


def ticks_between(cron: str, after: datetime, until: datetime) -> list[datetime]:
    """Every tick of `cron` in (after, until]."""
    ticks, tick = [], next_tick(cron, after)
    while tick <= until:
        ticks.append(tick)
        tick = next_tick(cron, tick)
    return ticks


class ScheduleBody(StrictModel):
    """A cron schedule (five fields, UTC) running `job` (`luma.sync` {slug}, `workflow.start`
    {workflow, subject_id, input}) with `params`."""

    name: ScheduleName
    cron: str = Field(min_length=9, max_length=100)
    job: Literal["luma.sync", "workflow.start"]
    params: JsonObject = Field(default_factory=dict)


class DefineSchedule(ScheduleBody):
    """Define the schedule as of `now` (its first tick is the next one after it)."""

    action = "schedules.manage"

    now: datetime


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
    _check_params(cmd.job, cmd.params)
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


def _check_params(job: str, params: dict[str, Any]) -> None:
    if job == "luma.sync" and not (isinstance(params.get("slug"), str) and params["slug"].strip()):
        raise ValidationFailed("a luma.sync schedule needs params.slug (the calendar's slug)", "params.slug")
    if job == "workflow.start" and not isinstance(params.get("workflow"), str):
        raise ValidationFailed("a workflow.start schedule needs params.workflow", "params.workflow")


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
