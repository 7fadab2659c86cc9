"""How a workflow instance is shown: each step's status, output, attempts and stars, and the
journey's progress (the seeds' journey map), from its stream."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.workflows import WorkflowInstance
from eventlog.store import EventLog
from sagas.views import load_process


def load_instance(event_log: EventLog, instance_id: UUID, org_id: str | None) -> WorkflowInstance | None:
    """The instance (in `org_id`, when given), or None."""
    return load_process(event_log, instance_id, WorkflowInstance, org_id)


def instance_view(instance: WorkflowInstance) -> dict[str, Any]:
    """The instance for clients: later steps are `locked` until the journey reaches them."""
    plan = instance.plan
    reached = [step.name for step in plan.steps].index(instance.step) if instance.step in instance.steps \
        else len(plan.steps)
    steps = []
    for index, step in enumerate(plan.steps):
        state = instance.steps[step.name]
        steps.append({
            "name": step.name, "title": step.title, "kind": step.kind, "milestone": step.milestone,
            "status": "locked" if index > reached and state["status"] == "pending" else state["status"],
            "attempts": state.get("attempts", 0), "output": state.get("output"),
            "stars": state.get("stars"), "note": state.get("note"), "error": state.get("error"),
            "started_at": state.get("started_at"), "completed_at": state.get("completed_at"),
            "deadline": state.get("deadline"),
        })
    return {
        "id": str(instance.id), "workflow": plan.name, "workflow_version": plan.version,
        "subject_id": instance.subject_id, "status": instance.status, "step": instance.step,
        "wake_at": instance.wake_at, "reason": instance.reason, "input": instance.input,
        "waiting_signals": [signal["name"] for signal in instance.inbox],
        "progress": instance.progress(), "result": _result(instance), "steps": steps,
        "version": instance.version,
    }


def _result(instance: WorkflowInstance) -> Any:
    """What a finished DSL feature returned (None for other workflows)."""
    outputs = [state.get("output") for state in instance.steps.values()]
    returned = [o["returned"] for o in outputs if isinstance(o, dict) and o.get("returned") is not None]
    return returned[0] if returned else None
