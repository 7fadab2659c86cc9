"""Scheduled jobs (`/v1/schedules`), the community events they keep current
(`/v1/community-events`), and features in the seeds' technical DSL (`/v1/dsl`: validate, register)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.auth import Authenticated, caller_of, permission
from api.deps import CleanQuery, Consistent, ContextDep, Limit, ReadDep, RuntimeDep, send_command
from api.problems import Problem, problem_response
from commands.features import FeatureBody, RegisterFeature
from commands.schedules import ChangeSchedule, DefineSchedule, ScheduleBody
from domain.community_events import EVENT_STATUSES
from domain.dsl import DslError, validate_feature
from domain.schedules import Schedule
from projections import queries as q
from sagas.scheduler import Scheduler
from sagas.views import load_process

router = APIRouter(prefix="/v1", tags=["schedules"], dependencies=[Authenticated, CleanQuery])


@router.get("/schedules", openapi_extra=permission("schedules.read"), dependencies=[Consistent])
def list_schedules(conn: ReadDep, request: Request) -> JSONResponse:
    """The organization's schedules: cron, job, status, next tick, last outcome."""
    return JSONResponse({"items": q.list_schedules(conn, caller_of(request).org_scope)})


@router.post("/schedules", status_code=201, openapi_extra=permission("schedules.manage"))
async def define_schedule(body: ScheduleBody, rt: RuntimeDep, request: Request,
                          ctx: ContextDep) -> JSONResponse:
    """Define a cron schedule (five fields, UTC) of a job; its first tick is the next one."""
    return await send_command(request, ctx, DefineSchedule.of(body, rt.clock()))


@router.post("/schedules/{schedule_id}/pause", openapi_extra=permission("schedules.manage"))
async def pause_schedule(schedule_id: UUID, rt: RuntimeDep, request: Request,
                         ctx: ContextDep) -> JSONResponse:
    """Stop firing the schedule until it is resumed."""
    return await send_command(request, ctx, ChangeSchedule(id=schedule_id, change="pause", now=rt.clock()))


@router.post("/schedules/{schedule_id}/resume", openapi_extra=permission("schedules.manage"))
async def resume_schedule(schedule_id: UUID, rt: RuntimeDep, request: Request,
                          ctx: ContextDep) -> JSONResponse:
    """Fire the schedule again, from its next tick after now."""
    return await send_command(request, ctx, ChangeSchedule(id=schedule_id, change="resume", now=rt.clock()))


@router.delete("/schedules/{schedule_id}", openapi_extra=permission("schedules.manage"))
async def delete_schedule(schedule_id: UUID, rt: RuntimeDep, request: Request,
                          ctx: ContextDep) -> JSONResponse:
    """Delete a schedule (its history stays in the log)."""
    return await send_command(request, ctx, ChangeSchedule(id=schedule_id, change="delete", now=rt.clock()))


@router.post("/schedules/{schedule_id}/run", openapi_extra=permission("schedules.manage"))
async def run_schedule(schedule_id: UUID, rt: RuntimeDep, request: Request) -> JSONResponse:
    """Run the schedule's job now (a manual tick, recorded like any other) and answer its outcome."""
    caller = caller_of(request)

    def run() -> dict[str, Any] | None:
        schedule = load_process(rt.event_log, schedule_id, Schedule, caller.org_scope)
        if schedule is None or schedule.status == "deleted":
            return None
        scheduler: Scheduler = rt.scheduler()
        return scheduler.fire(schedule_id, manual=True)

    outcome = await asyncio.to_thread(run)
    if outcome is None:
        raise Problem(404, "not_found", f"schedule {schedule_id} not found", "schedule_id")
    return JSONResponse(outcome)


EventStatus = Annotated[str | None, Query(pattern=f"^({'|'.join(EVENT_STATUSES)})$",
                                          description="upcoming, live, past or cancelled")]


@router.get("/community-events", openapi_extra=permission("community_events.read"), dependencies=[Consistent])
def list_community_events(conn: ReadDep, request: Request, status: EventStatus = None,
                          published: bool | None = None, limit: Limit = 100) -> JSONResponse:
    """Community events synced from Luma, soonest first, by status and published flag."""
    return JSONResponse({"items": q.community_events(conn, caller_of(request).org_id, status, published,
                                                     limit)})


@router.post("/dsl/validate", openapi_extra=permission("dsl.validate"))
def validate_dsl(body: FeatureBody) -> JSONResponse:
    """Check the feature against the ontology and its own references: every error with its JSON
    path and a stable code."""
    errors = validate_feature(body.feature, body.context or None)
    return JSONResponse({"valid": not errors, "errors": [_error(e) for e in errors]})


@router.post("/dsl/features", status_code=201, openapi_extra=permission("features.register"))
async def register_feature(body: FeatureBody, request: Request, ctx: ContextDep) -> JSONResponse:
    """Register a valid feature as a workflow of the organization (start it with
    `POST /v1/workflows/{feature}/instances`); an invalid one is refused with every error."""
    errors = validate_feature(body.feature, body.context or None)
    if errors:
        return problem_response(422, "validation_error", f"the feature has {len(errors)} error(s)",
                                errors[0].path, errors=[_error(e) for e in errors])
    return await send_command(request, ctx, RegisterFeature(**body.model_dump()))


def _error(error: DslError) -> dict[str, str]:
    return {"path": error.path, "code": error.code, "message": error.message}
