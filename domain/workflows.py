"""Long-running processes as data: workflow definitions and the event-sourced instance.

A definition (name, version, steps, retry policy) is plain data, so it can be stored in an event
and shown to clients. An instance snapshots its definition when it starts, so a newer version
never changes a journey already under way.

Step kinds (what a driver in `sagas/` does at each; the instance only decides):

- `action`: run a named action (`params.action`) once: its external call carries the key
  `<instance>:<step>`, its effects on the log are appended with the step's completion.
- `wait`: sleep for `params.seconds` on a durable timer.
- `signal`: wait for a signal named `params.name` (a user's action), optionally until
  `params.timeout_s`; its data is the step's output.
- `event`: wait for recorded activity of `params.type` whose metadata contains `params.match`.
- `payment`: a payment gate of `params.amount_cents`: waits for a `pay` signal carrying the
  payment method, charges it (key `<instance>:<step>`), and on a decline waits for another one;
  gives up after `params.timeout_s`.
- `branch`: go to `params.then` or `params.else` as `params.if` holds for the instance's state.

Every event carries the status, step and wake time the instance is in after it, decided once when
the event is triggered: the aggregate and the `sagas` read model both copy them.

    running ─step─► running … ─► completed
       │  └─ wait / signal / event / payment ─► waiting ─(timer, signal)─► running
       └─ a step keeps failing ─► parked ─► resumed (running) | skipped | cancelled
    a wait that times out ─► failed
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.base import OneAggregate
from domain.errors import InvalidState, ValidationFailed

STEP_KINDS = frozenset({"action", "wait", "signal", "event", "payment", "branch"})
WAITING_KINDS = frozenset({"wait", "signal", "event", "payment"})
ACTIVE = frozenset({"running", "waiting"})
WORKFLOW_STATUSES = frozenset({"running", "waiting", "parked", "completed", "failed", "cancelled"})
"""Every status an instance can be in."""
DONE = "done"
"""The step name of an instance that has finished."""


@dataclass(frozen=True)
class Retry:
    """How often a failing step is tried, and how long to wait between tries (the seeds'
    `defaultRetryBehavior`)."""

    max_attempts: int = 3
    initial_backoff_ms: int = 1000
    max_backoff_ms: int = 300_000

    def delay(self, attempts: int) -> timedelta:
        """The wait before try number `attempts + 1` (doubling from the initial backoff)."""
        return timedelta(milliseconds=min(self.initial_backoff_ms * 2 ** max(attempts - 1, 0),
                                          self.max_backoff_ms))


@dataclass(frozen=True)
class Step:
    """One step of a definition. `milestone` steps count in the journey's progress and stars."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""
    milestone: bool = True
    retry: Retry | None = None


@dataclass(frozen=True)
class WorkflowDefinition:
    """A named, versioned sequence of steps."""

    name: str
    version: int
    steps: tuple[Step, ...]
    retry: Retry = Retry()
    description: str = ""
    source: Mapping[str, Any] | None = None
    """What the definition was compiled from (a DSL feature and its context), if anything."""

    def __post_init__(self) -> None:
        names = [step.name for step in self.steps]
        if not self.steps:
            raise ValidationFailed("a workflow needs at least one step", "steps")
        if len(set(names)) != len(names) or DONE in names:
            raise ValidationFailed(f"step names must be unique and not '{DONE}'", "steps")
        for index, step in enumerate(self.steps):
            where = f"steps[{index}]"
            if step.kind not in STEP_KINDS:
                raise ValidationFailed(f"unknown step kind {step.kind!r}", f"{where}.kind")
            if step.kind == "branch":
                for target in (step.params.get("then"), step.params.get("else")):
                    if target is not None and target not in names:
                        raise ValidationFailed(f"branch to unknown step {target!r}", f"{where}.params")

    def step(self, name: str) -> Step:
        """The step called `name`."""
        return next(step for step in self.steps if step.name == name)

    def after(self, name: str) -> str:
        """The step that follows `name` in order (or `done`)."""
        index = [step.name for step in self.steps].index(name)
        return self.steps[index + 1].name if index + 1 < len(self.steps) else DONE

    def retry_of(self, step: Step) -> Retry:
        """The step's own retry policy, else the definition's."""
        return step.retry or self.retry

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (kept in the instance's first event)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowDefinition:
        """The inverse of `to_dict`."""
        def retry(value: Mapping[str, Any] | None) -> Retry | None:
            return None if value is None else Retry(**value)

        steps = tuple(Step(name=s["name"], kind=s["kind"], params=dict(s.get("params") or {}),
                           title=s.get("title", ""), milestone=s.get("milestone", True),
                           retry=retry(s.get("retry"))) for s in data["steps"])
        return cls(name=data["name"], version=int(data["version"]), steps=steps,
                   retry=retry(data.get("retry")) or Retry(), description=data.get("description", ""),
                   source=data.get("source"))


def stars_for(attempts: int) -> int:
    """A finished step's stars (1 to 3, the journey map's rating): three at the first try, one less
    for each further try."""
    return max(1, 4 - max(attempts, 1))


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge, "<": operator.lt,
    "<=": operator.le}


def evaluate_condition(condition: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """`{"path": "steps.hook.output.score", "op": ">=", "value": 50}` against the instance's
    state (`input`, `steps.<name>.output`); ops: ==, !=, >, >=, <, <=, exists."""
    value: Any = state
    for part in str(condition.get("path", "")).split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    op, expected = str(condition.get("op", "==")), condition.get("value")
    if op == "exists":
        return value is not None
    if op not in _COMPARISONS:
        raise ValidationFailed(f"unknown condition op {op!r}", "if.op")
    try:
        return bool(_COMPARISONS[op](value, expected))
    except TypeError:  # e.g. a missing value compared with a number
        return False


Move = tuple[str, str, str | None]
"""(status, step, wake_at) after an event."""


class WorkflowEvent(OneAggregate.Event):
    """An instance's event, with the move it makes (status, step, wake time)."""

    status: str
    step: str
    wake_at: str | None

    def apply(self, aggregate: Any) -> None:
        self.record(aggregate)
        aggregate.status, aggregate.step, aggregate.wake_at = self.status, self.step, self.wake_at
        aggregate.traceparent = getattr(self, "traceparent", None)

    def record(self, aggregate: Any) -> None:
        """What else the event sets on the instance."""


class WorkflowInstance(OneAggregate):
    """One run of a workflow definition for a subject (e.g. the person on an ELEVATE journey)."""

    if TYPE_CHECKING:
        definition: dict[str, Any]
        subject_id: str
        input: dict[str, Any]
        status: str
        step: str
        wake_at: str | None
        steps: dict[str, dict[str, Any]]
        inbox: list[dict[str, Any]]
        reason: str | None
        correlation_id: str | None
        traceparent: str | None

    class Started(WorkflowEvent, OneAggregate.Created):
        """A workflow was started for a subject with an input."""

        TYPE = "workflow.started"
        definition: dict[str, Any]
        subject_id: str
        input: dict[str, Any]

        def record(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.definition, aggregate.subject_id = self.definition, self.subject_id
            aggregate.input = dict(self.input)
            aggregate.steps = {s["name"]: {"status": "pending", "attempts": 0, "output": None}
                               for s in self.definition["steps"]}
            aggregate.inbox, aggregate.reason = [], None
            aggregate.correlation_id = getattr(self, "correlation_id", None)

    class StepStarted(WorkflowEvent):
        """A try of a step began; recorded before its effect. `key` makes its external calls
        idempotent."""

        TYPE = "workflow.step_started"
        name: str
        attempt: int
        key: str

        def record(self, aggregate: Any) -> None:
            state = aggregate.steps[self.name]
            state.update(status="running", attempts=self.attempt, key=self.key)
            state.setdefault("started_at", self.timestamp.isoformat())

    class StepWaiting(WorkflowEvent):
        """A step waits: for its timer, a signal, an activity or a payment (`note` says which)."""

        TYPE = "workflow.step_waiting"
        name: str
        note: str
        deadline: str | None

        def record(self, aggregate: Any) -> None:
            state = aggregate.steps[self.name]
            state.update(status="waiting", note=self.note, deadline=self.deadline)
            state.setdefault("started_at", self.timestamp.isoformat())

    class StepCompleted(WorkflowEvent):
        """A step finished with an output (and, for a milestone, its stars)."""

        TYPE = "workflow.step_completed"
        name: str
        output: Any
        stars: int | None
        consumed: str | None

        def record(self, aggregate: Any) -> None:
            if self.consumed:
                aggregate.inbox = _without_first(aggregate.inbox, self.consumed)
            aggregate.steps[self.name].update(status="completed", output=self.output, stars=self.stars,
                                              completed_at=self.timestamp.isoformat(), note=None)

    class StepFailed(WorkflowEvent):
        """A try of a step failed; it is retried at `wake_at` (or the instance parks)."""

        TYPE = "workflow.step_failed"
        name: str
        error: str

        def record(self, aggregate: Any) -> None:
            aggregate.steps[self.name].update(status="failed", error=self.error)
            aggregate.reason = self.error

    class SignalReceived(WorkflowEvent):
        """A user's action reached the instance (kept until a step takes it)."""

        TYPE = "workflow.signal_received"
        name: str
        data: dict[str, Any]

        def record(self, aggregate: Any) -> None:
            aggregate.inbox = [*aggregate.inbox, {"name": self.name, "data": self.data}]

    class SignalTaken(WorkflowEvent):
        """A step took a signal from the inbox (e.g. a payment method that was then declined)."""

        TYPE = "workflow.signal_taken"
        name: str
        outcome: str

        def record(self, aggregate: Any) -> None:
            aggregate.inbox = _without_first(aggregate.inbox, self.name)
            state = aggregate.steps[aggregate.step]
            state.update(status="waiting", note=self.outcome, tries=int(state.get("tries", 0)) + 1,
                         deadline=self.wake_at)

    class Parked(WorkflowEvent):
        """A step kept failing: an operator decides (retry, skip, cancel)."""

        TYPE = "workflow.parked"
        reason: str

        def record(self, aggregate: Any) -> None:
            aggregate.reason = self.reason

    class Resumed(WorkflowEvent):
        """An operator retries the parked step."""

        TYPE = "workflow.resumed"
        operator: str

        def record(self, aggregate: Any) -> None:
            aggregate.steps[self.step]["attempts"] = 0
            aggregate.reason = None

    class StepSkipped(WorkflowEvent):
        """An operator skipped a step."""

        TYPE = "workflow.step_skipped"
        name: str
        operator: str
        note: str

        def record(self, aggregate: Any) -> None:
            aggregate.steps[self.name].update(status="skipped", note=self.note)
            aggregate.reason = None

    class Cancelled(WorkflowEvent):
        """An operator (or the subject) stopped the instance."""

        TYPE = "workflow.cancelled"
        operator: str
        reason: str

        def record(self, aggregate: Any) -> None:
            aggregate.reason = self.reason

    class Failed(WorkflowEvent):
        """The instance cannot go on (e.g. a wait timed out)."""

        TYPE = "workflow.failed"
        reason: str

        def record(self, aggregate: Any) -> None:
            aggregate.reason = self.reason
            aggregate.steps[aggregate.step]["status"] = "failed"

    # ---- decisions ----------------------------------------------------------------------------

    @classmethod
    def start(cls, *, id: Any, org_id: str, actor_id: str, definition: WorkflowDefinition,
              subject_id: str, input: dict[str, Any]) -> WorkflowInstance:
        """Start `definition` at its first step."""
        first = definition.steps[0].name
        return cls._create(cls.Started, id=id, org_id=org_id, actor_id=actor_id,
                           definition=definition.to_dict(), subject_id=subject_id, input=input,
                           status="running", step=first, wake_at=None)

    @property
    def plan(self) -> WorkflowDefinition:
        """The definition this instance runs."""
        return WorkflowDefinition.from_dict(self.definition)

    @property
    def active(self) -> bool:
        """Whether a driver still has work here."""
        return self.status in ACTIVE

    @property
    def current(self) -> Step:
        """The step the instance is at."""
        return self.plan.step(self.step)

    def key(self) -> str:
        """The idempotency key of the current step's external calls (a payment gate's key also
        counts the payment methods it has tried, so a new card is a new charge)."""
        tries = int(self.steps[self.step].get("tries", 0))
        return f"{self.id}:{self.step}" + (f":{tries}" if tries else "")

    def begin_step(self, actor: str) -> None:
        """Record a try of the current step before its effect."""
        self._require_active()
        attempt = int(self.steps[self.step]["attempts"]) + 1
        self.trigger_event(self.StepStarted, actor_id=actor, name=self.step, attempt=attempt,
                           key=self.key(), status="running", step=self.step, wake_at=None)

    def wait(self, actor: str, note: str, until: datetime | None, deadline: datetime | None) -> None:
        """The current step waits: woken at `until` (a timer or a poll), given up at `deadline`."""
        self._require_active()
        self.trigger_event(self.StepWaiting, actor_id=actor, name=self.step, note=note,
                           deadline=_iso(deadline), status="waiting", step=self.step, wake_at=_iso(until))

    def complete_step(self, actor: str, output: Any, *, stars: int | None = None,
                      next_step: str | None = None, consumed: str | None = None) -> None:
        """The current step is done (taking signal `consumed`, if it used one): move to
        `next_step` (default: the one after it)."""
        self._require_active()
        step = self.current
        target = next_step or self.plan.after(step.name)
        if step.milestone and stars is None:
            stars = stars_for(int(self.steps[step.name]["attempts"]))
        self.trigger_event(self.StepCompleted, actor_id=actor, name=step.name, output=output,
                           stars=stars if step.milestone else None, consumed=consumed,
                           status="completed" if target == DONE else "running", step=target,
                           wake_at=None)

    def step_failed(self, actor: str, error: str, now: datetime) -> None:
        """A try failed: retry after the backoff, or park after the last attempt."""
        self._require_active()
        step = self.current
        attempts = int(self.steps[step.name]["attempts"])
        retry = self.plan.retry_of(step)
        if attempts >= retry.max_attempts:
            self.trigger_event(self.Parked, actor_id=actor,
                               reason=f"{step.name} failed {attempts} times: {error}",
                               status="parked", step=step.name, wake_at=None)
            return
        self.trigger_event(self.StepFailed, actor_id=actor, name=step.name, error=error,
                           status="running", step=step.name,
                           wake_at=(now + retry.delay(attempts)).isoformat())

    def fail(self, actor: str, reason: str) -> None:
        """The instance cannot go on."""
        self._require_active()
        self.trigger_event(self.Failed, actor_id=actor, reason=reason, status="failed",
                           step=self.step, wake_at=None)

    def signal(self, actor: str, name: str, data: dict[str, Any]) -> None:
        """Deliver a user's action; a step waiting for it runs now."""
        if self.status not in (*ACTIVE, "parked"):
            raise InvalidState(f"the workflow is {self.status}", "status")
        wakes = self.status == "waiting" and self.waits_for(name)
        self.trigger_event(self.SignalReceived, actor_id=actor, name=name, data=data,
                           status="running" if wakes else self.status, step=self.step,
                           wake_at=None if wakes else self.wake_at)

    def waits_for(self, name: str) -> bool:
        """Whether the current step takes signal `name`."""
        step = self.current
        return (step.kind == "signal" and step.params.get("name") == name) or (
            step.kind == "payment" and name == "pay")

    def signal_named(self, name: str) -> dict[str, Any] | None:
        """The first waiting signal called `name` (its data), if any."""
        return next((s["data"] for s in self.inbox if s["name"] == name), None)

    def take_signal(self, actor: str, name: str, outcome: str, deadline: datetime | None) -> None:
        """Consume a signal without finishing the step (e.g. a declined payment method); the
        step waits for the next one until `deadline`."""
        self._require_active()
        self.trigger_event(self.SignalTaken, actor_id=actor, name=name, outcome=outcome,
                           status="waiting", step=self.step, wake_at=_iso(deadline))

    def resume(self, operator: str) -> None:
        """Operator: retry the parked step from its first attempt."""
        self._require_parked()
        self.trigger_event(self.Resumed, actor_id=operator, operator=operator, status="running",
                           step=self.step, wake_at=None)

    def skip(self, operator: str, note: str) -> None:
        """Operator: give up on the current step and go on with the next."""
        if self.status not in (*ACTIVE, "parked"):
            raise InvalidState(f"the workflow is {self.status}", "status")
        target = self.plan.after(self.step)
        self.trigger_event(self.StepSkipped, actor_id=operator, name=self.step, operator=operator,
                           note=note, status="completed" if target == DONE else "running",
                           step=target, wake_at=None)

    def cancel(self, operator: str, reason: str) -> None:
        """Stop the instance for good."""
        if self.status not in (*ACTIVE, "parked"):
            raise InvalidState(f"the workflow is {self.status}", "status")
        self.trigger_event(self.Cancelled, actor_id=operator, operator=operator, reason=reason,
                           status="cancelled", step=self.step, wake_at=None)

    def progress(self) -> dict[str, Any]:
        """The journey map: milestones done, percent and stars."""
        milestones = [s for s in self.plan.steps if s.milestone]
        finished = [s for s in milestones if self.steps[s.name]["status"] in ("completed", "skipped")]
        stars = sum(int(self.steps[s.name].get("stars") or 0) for s in milestones)
        return {"completed_steps": len(finished), "total_steps": len(milestones),
                "percent": round(100 * len(finished) / len(milestones)) if milestones else 100,
                "stars": stars, "max_stars": 3 * len(milestones)}

    def _require_active(self) -> None:
        if not self.active:
            raise InvalidState(f"the workflow is {self.status}", "status")

    def _require_parked(self) -> None:
        if self.status != "parked":
            raise InvalidState(f"the workflow is {self.status}, not parked", "status")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _without_first(inbox: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    index = next((i for i, s in enumerate(inbox) if s["name"] == name), None)
    return inbox if index is None else inbox[:index] + inbox[index + 1:]
