"""Workflows: start an instance of a definition (ELEVATE, or a registered DSL feature), read its
journey, signal a user's action; operators retry, skip or cancel a parked instance."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api.auth import Authenticated, Caller, caller_of, permission
from api.deps import CleanQuery, ContextDep, RuntimeDep, send_command
from api.problems import Problem
from api.routes.operations import operate
from api.runtime import Runtime
from commands.models import StrictModel
from commands.workflows import SignalWorkflow, StartWorkflow, WorkflowSignal, WorkflowStart
from domain.workflows import WorkflowDefinition, WorkflowInstance
from sagas.dsl_runner import input_errors
from sagas.workflow_views import instance_view, load_instance

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], dependencies=[Authenticated, CleanQuery])
_INSTANCE, _FIELD = (WorkflowInstance,), "instance_id"
WorkflowName = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]


class OperatorNote(StrictModel):
    """Why the operator skips a step or cancels the instance."""

    note: str = Field(min_length=1, max_length=2000, pattern=r"\S")


def _definition(rt: Runtime, caller: Caller, name: str) -> WorkflowDefinition:
    found = rt.workflow_definition(name, caller.org_id)
    if found is None:
        raise Problem(404, "not_found", f"workflow {name} not found", "name")
    return found


@router.get("", openapi_extra=permission("workflows.read"))
def list_definitions(rt: RuntimeDep, request: Request) -> JSONResponse:
    """The workflows that can be started: name, version, description and steps."""
    definitions = rt.workflow_definitions(caller_of(request).org_id)
    return JSONResponse({"items": [d.to_dict() for d in definitions]})


@router.post("/{name}/instances", status_code=202, openapi_extra=permission("workflows.start"))
async def start_instance(name: WorkflowName, body: WorkflowStart, rt: RuntimeDep, request: Request,
                         ctx: ContextDep) -> JSONResponse:
    """Start the workflow for `subject_id` (default: the caller); it runs asynchronously."""
    definition = _definition(rt, caller_of(request), name)
    missing = input_errors(definition, body.input)
    if missing:
        raise Problem(422, "validation_error", f"the workflow needs input {', '.join(missing)}",
                      f"input.{missing[0]}")
    command = StartWorkflow(**body.model_dump(), definition=definition.to_dict())
    response = await send_command(request, ctx, command)
    poke_workflow(rt, response)
    return response


@router.get("/instances/{instance_id}", openapi_extra=permission("workflows.read"))
def get_instance(instance_id: UUID, rt: RuntimeDep, request: Request) -> JSONResponse:
    """The instance's status and every step's status, output, attempts and stars, with the
    journey's progress; a customer sees their own journeys."""
    return JSONResponse(instance_view(_visible(rt, caller_of(request), instance_id)))


@router.post("/instances/{instance_id}/signal", status_code=202, openapi_extra=permission("workflows.signal"))
async def signal_instance(instance_id: UUID, body: WorkflowSignal, rt: RuntimeDep, request: Request,
                          ctx: ContextDep) -> JSONResponse:
    """Deliver a user's action (e.g. `engage`, or `pay` with a `payment_method` at the payment
    gate); a step waiting for it runs at once, otherwise it waits for its step."""
    response = await send_command(request, ctx, SignalWorkflow(**body.model_dump(), id=instance_id))
    poke_workflow(rt, response)
    return response


@router.post("/instances/{instance_id}/retry", openapi_extra=permission("operations.manage"))
async def retry_instance(instance_id: UUID, rt: RuntimeDep, request: Request) -> JSONResponse:
    """Retry a parked instance's step from its first attempt."""
    caller = caller_of(request)
    return await operate(rt, caller, instance_id, _INSTANCE, lambda i: i.resume(caller.actor_id), _FIELD)


@router.post("/instances/{instance_id}/skip", openapi_extra=permission("operations.manage"))
async def skip_step(instance_id: UUID, body: OperatorNote, rt: RuntimeDep, request: Request) -> JSONResponse:
    """Give up on the instance's current step and go on with the next."""
    caller = caller_of(request)
    return await operate(rt, caller, instance_id, _INSTANCE, lambda i: i.skip(caller.actor_id, body.note),
                         _FIELD)


@router.post("/instances/{instance_id}/cancel", openapi_extra=permission("operations.manage"))
async def cancel_instance(instance_id: UUID, body: OperatorNote, rt: RuntimeDep,
                          request: Request) -> JSONResponse:
    """Stop the instance for good."""
    caller = caller_of(request)
    return await operate(rt, caller, instance_id, _INSTANCE,
                         lambda i: i.cancel(caller.actor_id, body.note), _FIELD)


def _visible(rt: Runtime, caller: Caller, instance_id: UUID) -> WorkflowInstance:
    instance = load_instance(rt.event_log, instance_id, caller.org_scope)
    if instance is None:
        raise Problem(404, "not_found", f"workflow instance {instance_id} not found", "instance_id")
    if caller.self_only and instance.subject_id != caller.actor_id:
        raise Problem(403, "forbidden", f"workflow instance {instance_id} is not yours", "instance_id")
    return instance


def poke_workflow(rt: Runtime, response: JSONResponse) -> None:
    """Wake this process's workflow driver for the instance a command just started (202)."""
    body: dict[str, Any] = json.loads(bytes(response.body))
    if rt.sagas is not None and response.status_code == 202:
        rt.sagas.poke(UUID(body["id"]), "workflow")
