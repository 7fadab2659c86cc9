"""Commands of workflow instances from clients: start one for a person, signal a user's action.
(Drivers and operators advance instances with `commands.processes.AdvanceProcess`.)"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import Field

from commands.access import load, visible
from commands.fields import JsonObject
from commands.handlers import Context, Reply, handles, new_id
from commands.models import StrictModel
from commands.unit_of_work import Scope
from domain.errors import Forbidden
from domain.organizations import Person
from domain.permissions import Reach
from domain.workflows import WorkflowDefinition, WorkflowInstance

SignalName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]


class WorkflowStart(StrictModel):
    """Start a workflow for `subject_id` (a person; default the caller) with an input."""

    subject_id: UUID | None = None
    input: JsonObject = Field(default_factory=dict)
    id: UUID | None = None


class StartWorkflow(WorkflowStart):
    """Start the workflow `definition` (resolved by name from the catalog by the caller)."""

    action = "workflows.start"

    definition: dict[str, Any]


class WorkflowSignal(StrictModel):
    """A user's action for a waiting step (`pay` carries `payment_method` at a payment gate)."""

    name: SignalName
    data: JsonObject = Field(default_factory=dict)


class SignalWorkflow(WorkflowSignal):
    """Signal instance `id`."""

    action = "workflows.signal"

    id: UUID


@handles(StartWorkflow)
def start_workflow(cmd: StartWorkflow, ctx: Context, scope: Scope) -> Reply:
    """Open an instance at the definition's first step (202: it runs asynchronously)."""
    subject = cmd.subject_id or UUID(ctx.actor_id)
    if ctx.reach is Reach.SELF and str(subject) != ctx.actor_id:
        raise Forbidden("you may only start a workflow for yourself", "subject_id")
    person = visible(scope, ctx, subject, Person, "subject_id")
    instance = WorkflowInstance.start(
        id=new_id(scope, cmd.id), org_id=person.org_id, actor_id=ctx.actor_id,
        definition=WorkflowDefinition.from_dict(cmd.definition), subject_id=str(subject),
        input=dict(cmd.input),
    )
    scope.add(instance)
    return Reply(instance.id, 202, {"status": instance.status, "step": instance.step})


@handles(SignalWorkflow)
def signal_workflow(cmd: SignalWorkflow, ctx: Context, scope: Scope) -> Reply:
    """Deliver the signal; a step waiting for it runs at once."""
    instance = load(scope, ctx, cmd.id, WorkflowInstance)
    instance.signal(ctx.actor_id, cmd.name, dict(cmd.data))
    return Reply(instance.id, 202, {"status": instance.status, "step": instance.step})
