"""Features in the technical DSL run on the workflow engine: each top-level flow step is one
workflow step (recorded before its effect, retried, resumable), executed here.

- validate: checks the input (and loads `exists` things from the log); a failure ends the run with
  the step's `onError` result, or fails the instance.
- service: calls the configured provider with the step's idempotency key; the DSL's `retry`
  becomes the workflow step's retry policy.
- entity / connect / event: their changes are the step's effects, appended with its completion;
  a thing's id is derived from the instance and the step, so nothing is ever created twice.
- atomic: its members' effects in one transaction (all or nothing).
- query: reads the read models; if: runs the branch its condition picks; return: ends the run.

Bound values (outputs, loaded things) are kept in each step's output, so a resumed run sees
exactly what the earlier steps produced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from commands.handlers import Context
from commands.unit_of_work import Scope
from domain import dsl
from domain.activity import Activity
from domain.connections import Connection, connection_id
from domain.things import Thing
from domain.workflows import Retry, WorkflowDefinition, WorkflowInstance
from domain.workflows import Step as WorkflowStep
from eventlog.store import EventLog
from providers.services import ServiceCall, Services
from sagas.workflow_actions import ActionCall, ActionResult, Effects

DSL_ACTION = "dsl"
Effect = Callable[[WorkflowInstance, Scope, Context], None]


def feature_definition(feature: Mapping[str, Any], context: Mapping[str, str],
                       version: int) -> WorkflowDefinition:
    """The workflow that runs a valid feature: one step per top-level flow step."""
    plan = dsl.compile_feature(feature, context)
    steps = tuple(
        WorkflowStep(f"{step.index}-{step.kind}", "action", {"action": DSL_ACTION, "index": step.index},
                     title=f"{step.kind} ({step.path})", milestone=False, retry=_retry(step.retry))
        for step in plan.steps)
    return WorkflowDefinition(plan.feature, version, steps, description=f"DSL feature {plan.feature}",
                              source={"feature": dict(feature), "context": dict(context)})


def _retry(retry: dsl.Retry | None) -> Retry | None:
    """The DSL's `retry` as the workflow step's policy (tries and a fixed delay that doubles)."""
    return None if retry is None else Retry(retry.times, int(retry.delay_s * 1000))


def input_errors(definition: WorkflowDefinition, given: Mapping[str, Any]) -> list[str]:
    """The declared inputs (and context values) a start's input lacks, for a DSL feature."""
    if definition.source is None:
        return []
    plan = dsl.compile_feature(definition.source["feature"], definition.source["context"])
    required = {**plan.input, **plan.context}
    return sorted(name for name, spec in required.items() if not spec.optional and name not in given)


class StepFailed(Exception):
    """A validate step refused the input and the step has no `onError`."""


@dataclass
class _Run:
    """What executing one workflow step produced."""

    bindings: dict[str, Any] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)
    returned: dict[str, Any] | None = None


class DslSteps:
    """The `dsl` action: executes the flow step a workflow step stands for."""

    def __init__(self, event_log: EventLog, reads: ConnectionPool, services: Services) -> None:
        self.event_log = event_log
        self.reads = reads
        self.services = services

    def __call__(self, call: ActionCall) -> ActionResult:
        """Run flow step `params.index` of the instance's feature."""
        instance = call.instance
        source = instance.definition["source"]
        plan = dsl.compile_feature(source["feature"], source["context"])
        step = plan.steps[int(call.step.params["index"])]
        scope = self._scope(instance, plan)
        run = _Run()
        try:
            self._run(step, scope, run, call.key, instance)
        except StepFailed as refusal:
            if step.on_error is None:
                return ActionResult({"bindings": {}}, failure=f"{step.path}: {refusal}")
            run.returned = {**_plain(dsl.evaluate(dict(step.on_error), scope)), "reason": str(refusal)}
        return ActionResult({"bindings": run.bindings, "returned": run.returned}, _together(run.effects),
                            end=run.returned is not None)

    def _scope(self, instance: WorkflowInstance, plan: dsl.FeaturePlan) -> dict[str, Any]:
        scope: dict[str, Any] = {"input": instance.input}
        scope.update({name: instance.input[name] for name in plan.context if name in instance.input})
        for state in instance.steps.values():
            output = state.get("output")
            if state["status"] == "completed" and isinstance(output, dict):
                scope.update(output.get("bindings") or {})
        return scope

    def _run(self, step: dsl.Step, scope: dict[str, Any], run: _Run, key: str,
             instance: WorkflowInstance) -> None:
        kind = step.kind
        if kind == "validate":
            self._validate(step, scope, run, instance.org_id)
        elif kind == "service":
            args = _plain(dsl.evaluate(dict(step.args), scope))
            result = self.services.call(ServiceCall(str(args["provider"]), str(args["method"]),
                                                    dict(args.get("params") or {}), f"{key}:{step.path}"))
            self._bind(step, result, scope, run)
        elif kind in ("entity", "connect", "event"):
            self._change(step, scope, run, instance)
        elif kind == "atomic":
            for member in step.steps:
                self._change(member, scope, run, instance)
        elif kind == "query":
            self._bind(step, self._query(step, scope, instance.org_id), scope, run)
        elif kind == "if":
            branch = step.steps if dsl.evaluate(step.args["condition"], scope) else step.else_steps
            for inner in branch:
                self._run(inner, scope, run, key, instance)
                if run.returned is not None:
                    return
        else:  # return
            run.returned = _plain(dsl.evaluate(dict(step.args), scope))

    def _validate(self, step: dsl.Step, scope: dict[str, Any], run: _Run, org_id: str) -> None:
        given: Mapping[str, Any] = scope["input"]
        for rule in step.rules:
            value = given.get(rule.field)
            if rule.exists:
                thing = self._thing(value, org_id)
                if thing is None or (rule.thing_type and thing["type"] != rule.thing_type):
                    raise StepFailed(f"{rule.field} must name an existing {rule.thing_type or 'thing'}")
            _check_bounds(rule, value)
        for binding in step.outputs:
            thing = self._thing(given.get(binding.key or ""), org_id)
            run.bindings[binding.name] = scope[binding.name] = thing

    def _thing(self, value: Any, org_id: str) -> dict[str, Any] | None:
        try:
            thing: object = self.event_log.repository.get(UUID(str(value)))
        except (ValueError, AggregateNotFoundError):
            return None
        if not isinstance(thing, Thing) or thing.org_id != org_id or thing.deleted:
            return None
        return {"id": str(thing.id), "type": thing.type, "name": thing.name, "status": thing.status,
                "properties": dict(thing.properties)}

    def _change(self, step: dsl.Step, scope: dict[str, Any], run: _Run, instance: WorkflowInstance) -> None:
        args = _plain(dsl.evaluate(dict(step.args), scope))
        if step.kind == "entity":
            thing_id = uuid5(NAMESPACE_URL, f"one:dsl:{instance.id}:{step.path}")
            self._bind(step, str(thing_id), scope, run)
            run.effects.append(lambda i, s, ctx: s.add(Thing.create(
                id=thing_id, org_id=i.org_id, actor_id=i.subject_id, type=args["type"], name=args["name"],
                properties=args.get("properties") or {}, status=args.get("status") or "draft")))
        elif step.kind == "connect":
            source, target = UUID(str(args["from"])), UUID(str(args["to"]))
            self._bind(step, str(connection_id(source, args["type"], target)), scope, run)
            run.effects.append(lambda i, s, ctx: _connect(s, i, source, target, args))
        else:
            activity = uuid5(NAMESPACE_URL, f"one:dsl:{instance.id}:{step.path}")
            self._bind(step, str(activity), scope, run)
            run.effects.append(lambda i, s, ctx: s.add(Activity.record(
                id=activity, org_id=i.org_id, actor_id=str(args.get("actor") or i.subject_id),
                type=args["type"], target_id=UUID(str(args["entity"])), metadata=args.get("metadata") or {})))

    def _query(self, step: dsl.Step, scope: dict[str, Any], org_id: str) -> Any:
        args = _plain(dsl.evaluate(dict(step.args), scope))
        if "thing" in args:
            return self._thing(args["thing"], org_id)
        (selector, filters), = args.items()
        table, columns = {"things": ("things", ("type", "status")),
                          "connections": ("connections", ("type", "from_id", "to_id")),
                          "events": ("activity", ("type", "target_id", "actor_id"))}[selector]
        aliases = {"from": "from_id", "to": "to_id", "entity": "target_id", "actor": "actor_id"}
        wanted = {aliases.get(k, k): v for k, v in filters.items() if aliases.get(k, k) in columns}
        where = "".join(f" AND {column}::text = %({column})s" for column in wanted)
        with self.reads.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT * FROM {table} WHERE org_id = %(org)s{where} LIMIT %(limit)s",
                        {**{k: str(v) for k, v in wanted.items()}, "org": org_id,
                         "limit": int(filters.get("limit") or 100)})
            return [_plain(_jsonable(row)) for row in cur.fetchall()]

    @staticmethod
    def _bind(step: dsl.Step, result: Any, scope: dict[str, Any], run: _Run) -> None:
        for binding in step.outputs:
            value = result if binding.key is None else (result or {}).get(binding.key)
            run.bindings[binding.name] = scope[binding.name] = value


def _connect(scope: Scope, instance: WorkflowInstance, source: UUID, target: UUID,
             args: Mapping[str, Any]) -> None:
    if scope.find(connection_id(source, str(args["type"]), target), Connection) is None:
        scope.add(Connection.create(
            org_id=instance.org_id, actor_id=instance.subject_id, from_id=source, to_id=target,
            type=str(args["type"]), metadata=args.get("metadata") or {}))


def _check_bounds(rule: dsl.FieldRule, value: Any) -> None:
    size = len(value) if isinstance(value, str | list) else None
    checks = ((rule.min_length, size is not None and size >= (rule.min_length or 0), "at least"),
              (rule.max_length, size is not None and size <= (rule.max_length or 0), "at most"))
    for bound, ok, words in checks:
        if bound is not None and not ok:
            raise StepFailed(f"{rule.field} must hold {words} {bound} items")
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if rule.minimum is not None and (number is None or number < rule.minimum):
        raise StepFailed(f"{rule.field} must be at least {rule.minimum}")
    if rule.maximum is not None and (number is None or number > rule.maximum):
        raise StepFailed(f"{rule.field} must be at most {rule.maximum}")


def _together(effects: Sequence[Effect]) -> Effects | None:
    if not effects:
        return None

    def all_of(instance: WorkflowInstance, scope: Scope, ctx: Context) -> None:
        for effect in effects:
            effect(instance, scope, ctx)

    return all_of


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool | dict | list) or v is None else str(v)
            for k, v in row.items()}


def _plain(value: Any) -> Any:
    """Evaluated DSL values as plain JSON (mapping proxies and tuples become dicts and lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
