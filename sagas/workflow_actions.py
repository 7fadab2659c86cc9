"""The actions a workflow's `action` steps run, by name.

An action may call the outside world (with the step's idempotency key) and returns the step's
output plus its effects on the log, which the driver appends together with the step's
completion: one transaction, so an effect is never recorded twice nor without its step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from commands.handlers import Context
from commands.invitations import BULK_ACTION, issue
from commands.unit_of_work import Scope
from domain.activity import Activity
from domain.workflows import Step, WorkflowInstance
from providers.analysis import BusinessAnalyst

Effects = Callable[[WorkflowInstance, Scope, Context], None]


@dataclass(frozen=True)
class ActionCall:
    """What an action sees: the instance, its step, the step's idempotency key and the time."""

    instance: WorkflowInstance
    step: Step
    key: str
    now: datetime


@dataclass(frozen=True)
class ActionResult:
    """The step's output and its effects (appended with its completion); `end` finishes the
    workflow after this step, `failure` fails it (a refusal no retry can change)."""

    output: Any
    effects: Effects | None = None
    end: bool = False
    failure: str | None = None


Action = Callable[[ActionCall], ActionResult]


def record_activity(kind: str, metadata: Mapping[str, Any]) -> Effects:
    """An effect: record activity `kind` by the instance's subject."""

    def effect(instance: WorkflowInstance, scope: Scope, ctx: Context) -> None:
        scope.add(Activity.record(
            id=uuid4(), org_id=instance.org_id, actor_id=instance.subject_id, type=kind,
            target_id=None, metadata={**metadata, "workflowId": str(instance.id),
                                      "journeyType": instance.definition["name"]}))

    return effect


def activity_action(call: ActionCall) -> ActionResult:
    """`{"action": "record_activity", "type": …, "metadata": {…}}`: record it."""
    kind = str(call.step.params["type"])
    metadata = dict(call.step.params.get("metadata") or {})
    return ActionResult({"recorded": kind}, record_activity(kind, metadata))


def elevate_actions(analyst: BusinessAnalyst) -> dict[str, Action]:
    """ELEVATE's actions: the hook's analysis and the gift's insights report."""

    def analyse(call: ActionCall) -> ActionResult:
        return ActionResult(analyst.analyse(call.instance.input).as_json())

    def insights_report(call: ActionCall) -> ActionResult:
        hook = call.instance.steps["hook"].get("output") or {}
        report = {"reportType": "insights", "summary": str(hook.get("analysis", ""))[:500],
                  "source": hook.get("source")}
        return ActionResult(report, record_activity("report_generated", report))

    return {"elevate.analyse": analyse, "elevate.insights_report": insights_report}


def issue_invitations(call: ActionCall) -> ActionResult:
    """A bulk invitation job's batch: issue its invitations (valid for an hour from now), all
    with the step's completion, referred by the job's subject."""
    batch = list(call.step.params["invitations"])
    role = str(call.step.params["role"])

    def effect(instance: WorkflowInstance, scope: Scope, ctx: Context) -> None:
        for invitation in batch:
            issue(scope, org_id=instance.org_id, actor_id=ctx.actor_id, referrer_id=instance.subject_id,
                  token_hash=invitation["token_hash"], email=invitation["email"], role=role,
                  now=call.now, channel="bulk")

    return ActionResult({"issued": len(batch)}, effect)


def standard_actions(analyst: BusinessAnalyst) -> dict[str, Action]:
    """Every action the platform's workflows can name."""
    return {"record_activity": activity_action, BULK_ACTION: issue_invitations,
            **elevate_actions(analyst)}
