"""The workflow driver: runs each instance's current step once and records the outcome.

Like the purchase driver, it loads the instance from the log, decides from it, and appends the
decision through the command bus at the version it acted on: a second driver acting on the same
instance loses with a version conflict instead of running the step twice.

Crash safety: an `action` or `payment` step records `step_started` (with the idempotency key
`<instance>:<step>`) before calling out; after a crash the same key is sent again, so the call is
not repeated at the provider, and the step's effects on the log are appended in the same
transaction as its completion. Timers (waits, retries, timeouts) are the instance's `wake_at`,
kept in its stream and in the `sagas` read model where the runner finds due work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

from psycopg_pool import ConnectionPool

from commands.bus import CommandBus
from commands.handlers import Context
from commands.processes import AdvanceProcess
from commands.unit_of_work import Scope
from domain.errors import DomainError
from domain.workflows import DONE, Step, WorkflowInstance, evaluate_condition
from eventlog.store import EventLog
from infra import tracing
from infra.tracing import Traced
from providers.payments import PaymentError, PaymentGateway, PaymentUnavailable
from sagas.purchase_driver import is_conflict
from sagas.workflow_actions import Action, ActionCall, Effects, record_activity

log = logging.getLogger(__name__)
Decide = Callable[[WorkflowInstance, Scope, Context], None]
EVENT_POLL = timedelta(seconds=5)
PAYMENT_POLL = timedelta(seconds=30)


class WorkflowDriver:
    """Advances workflow instances one step at a time."""

    def __init__(self, bus: CommandBus, event_log: EventLog, reads: ConnectionPool,
                 payments: PaymentGateway, actions: Mapping[str, Action],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.bus = bus
        self.event_log = event_log
        self.reads = reads
        self.payments = cast(PaymentGateway, Traced(payments, "payments"))
        self.actions = actions
        self.clock = clock

    def advance(self, instance_id: UUID) -> str:
        """Run the instance's current step once; return its status afterwards."""
        instance: WorkflowInstance = self.event_log.repository.get(instance_id)
        if not instance.active:
            return instance.status
        with tracing.tracer().start_as_current_span(
                f"workflow {instance.definition['name']}.{instance.step}",
                context=tracing.context_from(instance.traceparent),
                attributes={"workflow_id": str(instance_id), "version": instance.version}):
            step = instance.current
            run = {"action": self._action, "wait": self._wait, "signal": self._signal,
                   "event": self._event, "payment": self._payment, "branch": self._branch}[step.kind]
            run(instance, step)
        return str(self.event_log.repository.get(instance_id).status)

    # ---- step kinds -------------------------------------------------------------------------

    def _action(self, instance: WorkflowInstance, step: Step) -> None:
        instance = self._begun(instance)
        call = ActionCall(instance, step, instance.key(), self.clock())
        try:
            result = self.actions[str(step.params["action"])](call)
        except Exception as error:  # any failure of the call is a failed try, retried or parked
            log.warning("workflow %s step %s failed: %s", instance.id, step.name, error)
            self._failed_try(instance, _reason(error))
            return
        if result.failure is not None:
            reason = result.failure
            self._apply(instance, lambda i, _, ctx: i.fail(ctx.actor_id, reason))
            return
        try:
            self._complete(instance, result.output, effects=result.effects,
                           next_step=DONE if result.end else None)
        except DomainError as error:  # its effects were refused (nothing was appended): a failed try
            if is_conflict(error):
                raise
            self._failed_try(instance, f"{error.code}: {error}")

    def _wait(self, instance: WorkflowInstance, step: Step) -> None:
        now = self.clock()
        if instance.steps[step.name]["status"] != "waiting":
            until = now + timedelta(seconds=float(step.params["seconds"]))
            note = f"until {until.isoformat()}"
            self._apply(instance, lambda i, _, ctx: i.wait(ctx.actor_id, note, until, None))
        elif _due(instance.wake_at, now):
            self._complete(instance, {"waited_until": instance.wake_at})

    def _signal(self, instance: WorkflowInstance, step: Step) -> None:
        name = str(step.params["name"])
        data = instance.signal_named(name)
        if data is not None:
            stars = data.get("stars")
            rating = min(3, max(1, stars)) if isinstance(stars, int) and not isinstance(stars, bool) else 3
            self._complete(instance, data, stars=rating, consumed=name)
        else:
            self._await(instance, step, f"waiting for the {name} signal", None)

    def _event(self, instance: WorkflowInstance, step: Step) -> None:
        found = self._matching_activity(instance, step)
        if found is not None:
            self._complete(instance, found)
        else:
            self._await(instance, step, f"waiting for a {step.params['type']} event", EVENT_POLL)

    def _payment(self, instance: WorkflowInstance, step: Step) -> None:
        method = instance.signal_named("pay")
        if method is None:
            self._await(instance, step, "waiting for payment", None)
            return
        instance = self._begun(instance)
        timeout = step.params.get("timeout_s")
        deadline = _deadline(instance, step) or (
            None if timeout is None else self.clock() + timedelta(seconds=float(timeout)))
        try:
            payment = self.payments.charge(
                amount_cents=int(step.params["amount_cents"]),
                currency=str(step.params.get("currency", "usd")),
                payment_method=str(method.get("payment_method", "")), idempotency_key=instance.key(),
                metadata={"workflow_id": str(instance.id), "step": step.name})
        except PaymentUnavailable as error:
            self._failed_try(instance, f"payments unavailable: {error}")
            return
        except PaymentError as error:
            self._declined(instance, error.code or "payment_error", deadline)
            return
        if payment.status == "succeeded":
            usd = int(step.params["amount_cents"]) / 100
            self._complete(instance, {"payment_id": payment.id, "amount": usd}, consumed="pay",
                           effects=record_activity("payment_processed", {
                               "status": "completed", "amount": usd, "paymentId": payment.id}))
        elif payment.status in ("declined", "canceled"):
            self._declined(instance, payment.decline_code or payment.status, deadline)
        else:
            until = self.clock() + PAYMENT_POLL
            note = f"payment {payment.id} is {payment.status}"
            self._apply(instance, lambda i, _, ctx: i.wait(ctx.actor_id, note, until, deadline))

    def _branch(self, instance: WorkflowInstance, step: Step) -> None:
        state = {"input": instance.input, "steps": instance.steps}
        holds = evaluate_condition(step.params.get("if") or {}, state)
        target = step.params.get("then" if holds else "else")
        self._complete(instance, {"condition": holds, "next": target},
                       next_step=None if target is None else str(target))

    # ---- helpers ----------------------------------------------------------------------------

    def _begun(self, instance: WorkflowInstance) -> WorkflowInstance:
        """The instance with the current try recorded (before any effect)."""
        if instance.steps[instance.step]["status"] == "running":
            return instance  # begun before a crash: the same key is used again
        self._apply(instance, lambda i, _, ctx: i.begin_step(ctx.actor_id))
        reloaded: WorkflowInstance = self.event_log.repository.get(instance.id)
        return reloaded

    def _await(self, instance: WorkflowInstance, step: Step, note: str, poll: timedelta | None) -> None:
        """Wait for the step (woken by a signal, by the poll interval, or by its timeout, after
        which the instance fails)."""
        now = self.clock()
        if instance.steps[step.name]["status"] != "waiting":
            timeout = step.params.get("timeout_s")
            deadline = None if timeout is None else now + timedelta(seconds=float(timeout))
            until = _earliest(deadline, None if poll is None else now + poll)
            self._apply(instance, lambda i, _, ctx: i.wait(ctx.actor_id, note, until, deadline))
            return
        deadline = _deadline(instance, step)
        if deadline is not None and now >= deadline:
            self._apply(instance, lambda i, _, ctx: i.fail(
                ctx.actor_id, f"{step.name} timed out at {deadline.isoformat()} ({note})"))
        elif poll is not None and _due(instance.wake_at, now):
            until = _earliest(deadline, now + poll)
            self._apply(instance, lambda i, _, ctx: i.wait(ctx.actor_id, note, until, deadline))

    def _failed_try(self, instance: WorkflowInstance, reason: str) -> None:
        """Retry the step after its backoff, or park the instance after its last attempt."""
        now = self.clock()
        self._apply(instance, lambda i, _, ctx: i.step_failed(ctx.actor_id, reason, now))

    def _declined(self, instance: WorkflowInstance, code: str, deadline: datetime | None) -> None:
        self._apply(instance, lambda i, _, ctx: i.take_signal(
            ctx.actor_id, "pay", f"payment declined ({code}): waiting for another payment method", deadline))

    def _complete(self, instance: WorkflowInstance, output: Any, *, stars: int | None = None,
                  next_step: str | None = None, consumed: str | None = None,
                  effects: Effects | None = None) -> None:
        """Finish the step with its effects; a milestone also records the journey's progress."""
        step = instance.current

        def decide(i: WorkflowInstance, scope: Scope, ctx: Context) -> None:
            if effects is not None:
                effects(i, scope, ctx)
            i.complete_step(ctx.actor_id, output, stars=stars, next_step=next_step, consumed=consumed)
            if step.milestone:
                done = i.steps[step.name]
                record_activity("progress_updated", {
                    "stepId": step.name, "status": "completed", "stars": done.get("stars"),
                    "progress": i.progress()["percent"]})(i, scope, ctx)

        self._apply(instance, decide)

    def _matching_activity(self, instance: WorkflowInstance, step: Step) -> dict[str, Any] | None:
        """Activity of the step's type (and metadata match) recorded since the step began."""
        since = instance.steps[step.name].get("started_at") or instance.steps[step.name].get("deadline")
        with self.reads.connection() as conn:
            row = conn.execute(
                "SELECT position, actor_id, metadata FROM activity WHERE org_id = %s AND type = %s"
                " AND metadata @> %s::jsonb AND (%s::timestamptz IS NULL OR occurred_at >= %s::timestamptz)"
                " ORDER BY position LIMIT 1",
                (instance.org_id, step.params["type"], json.dumps(step.params.get("match") or {}), since,
                 since),
            ).fetchone()
        return None if row is None else {"position": row[0], "actor_id": row[1], "metadata": row[2]}

    def _apply(self, instance: WorkflowInstance, decide: Decide) -> None:
        """Append the decision at the version it was based on, in the instance's correlation."""
        cause = Context(correlation_id=instance.correlation_id,
                        causation_id=f"{instance.id}@{instance.version}")
        self.bus.execute(AdvanceProcess(instance.id, instance.version, decide), cause)


def _due(wake_at: str | None, now: datetime) -> bool:
    return wake_at is None or datetime.fromisoformat(wake_at) <= now


def _deadline(instance: WorkflowInstance, step: Step) -> datetime | None:
    value = instance.steps[step.name].get("deadline")
    return None if not value else datetime.fromisoformat(str(value))


def _earliest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]
