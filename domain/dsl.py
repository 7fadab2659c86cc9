"""The ONE technical DSL: check a feature against the ontology, compile it to an immutable step
plan, and evaluate its ``$`` expressions at run time.

Pure module (standard library and :mod:`domain.ontology` only). A feature is JSON-like data::

    {"feature": "CreateAIClone", "input": {name: type}, "output": {name: type}, "flow": [step, ...]}

Types: ``string``, ``number``, ``boolean``, ``object``, ``Id<entities>``, ``Id<things>`` or
``Id<people>``, optionally followed by ``[]`` (a list of them), then by ``?`` (optional).

Steps. Each step is an object with exactly one primitive:

- ``validate: {inputName: {exists, type, minLength, maxLength, min, max, pattern}}``
- ``service: {provider, method, params?, output?, retry?: {times: 1..10, delay?: "500ms"|"5s"|"1m"|"1h"}}``
- ``entity: {type, name, properties?, status?}`` creates a thing
- ``connect: {type, from, to, metadata?}`` creates a connection
- ``event: {type, entity, actor?, metadata?}`` records an event
- ``query``: exactly one of ``thing: <id>``, ``things: {type?, status?, properties?, limit?}``,
  ``connections: {type?, from?, to?, limit?}``, ``events: {type?, entity?, actor?, limit?}``
- ``atomic: [entity | connect | event steps]``: all of them or none (rolled back)
- ``if: {condition, then: [steps], else?: [steps]}``: ``then`` runs when the condition is truthy
- ``return: {outputName: expression}``: ends the run; it covers every non-optional declared output

Beside its primitive a step may carry ``output: "name"`` (entity, connect, event and query: binds
the step's result) and ``onError: {return: {...}}`` (not on ``return``/``if`` nor inside ``atomic``):
when the step fails the run ends with that result. Keys outside these rules are errors.
Thing, connection and event types go through the ontology, so legacy names are accepted:
``clone_created`` compiles to ``entity_created`` with ``metadata.entityType = "ai_clone"``.

Expressions. A string is an expression when it reads ``term (+ term)*`` with at least one
reference; a term is a reference ``$name(.segment)*`` or a single-quoted literal ``'text'``, and
``+`` concatenates. Other strings are literal text, but one starting with ``$`` must be a
well-formed expression. Objects and lists are walked recursively.

References (checked statically, resolved by :func:`evaluate`):

1. ``$input.x`` names a declared input ``x``.
2. ``$name`` names a binding made by a step that runs before: earlier in the same flow or in an
   enclosing one (steps inside ``atomic`` bind for what follows it; after an ``if``, the names bound
   on every branch that does not return). Bindings are a step's ``output``; a service's
   ``output`` (a name binds the whole result, a list of names binds those keys of the result);
   and a validate rule ``exists: true`` on an input ``<x>Id`` binds ``$<x>`` to the loaded thing
   (``creatorId`` binds ``$creator``, hence ``$creator.name``).
3. ``$name`` names a *context* value: names the caller declares to :func:`validate_feature` /
   :func:`compile_feature` (name -> type) and supplies in the scope at run time. The seeds'
   CreateAIClone uses two values nothing in it produces, ``$audioSamples`` and ``$personality``:
   it is valid with them declared as context, and otherwise reports exactly those references.

A name is bound at most once and ``input`` is reserved. Error codes: ``wrong_type``,
``missing_field``, ``unknown_field``, ``bad_name``, ``bad_input_type`` (a type outside the type
language), ``empty_flow``, ``unknown_step``, ``ambiguous_step``, ``not_rollbackable``,
``unreachable_step``, ``unknown_thing_type``, ``unknown_connection_type``, ``unknown_event_type``,
``unknown_status``, ``conflicting_metadata`` (a legacy name and metadata disagree),
``unknown_reference``, ``duplicate_output``, ``bad_expression``, ``bad_retry``, ``bad_pattern``,
``ambiguous_query``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final, Literal

from domain.ontology import (
    THING_STATUSES,
    OntologyError,
    normalize_connection,
    normalize_connection_type,
    normalize_event_type,
    normalize_thing_type,
)

__all__ = [
    "Binding",
    "DslError",
    "DslInvalid",
    "DslRuntimeError",
    "FeaturePlan",
    "FieldRule",
    "Retry",
    "Step",
    "StepKind",
    "TypeSpec",
    "compile_feature",
    "evaluate",
    "validate_feature",
]

StepKind = Literal["validate", "service", "entity", "connect", "event", "query", "atomic", "if", "return"]

_PRIMITIVES: Final[tuple[StepKind, ...]] = (
    "validate", "service", "entity", "connect", "event", "query", "atomic", "if", "return"
)
_ROLLBACKABLE: Final = frozenset({"entity", "connect", "event"})
_OUTPUT_KINDS: Final = frozenset({"entity", "connect", "event", "query"})
_QUERY_SELECTORS: Final = ("thing", "things", "connections", "events")
_BASE_TYPES: Final = frozenset(
    {"string", "number", "boolean", "object", "Id<entities>", "Id<things>", "Id<people>"}
)
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TERM: Final = re.compile(r"\s*(?:(\$[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|'([^']*)')\s*")
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class DslError:
    """One problem in a feature: where (JSON path), a stable snake_case code, and why."""

    path: str
    code: str
    message: str


class DslInvalid(ValueError):
    """The feature does not validate; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[DslError]) -> None:
        self.errors = tuple(errors)
        shown = "; ".join(f"{e.path}: {e.message}" for e in self.errors[:3])
        more = f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        super().__init__(f"invalid feature: {shown}{more}")


class DslRuntimeError(Exception):
    """An expression could not be evaluated; ``reference`` is the text at fault."""

    def __init__(self, reference: str, message: str) -> None:
        super().__init__(message)
        self.reference = reference


@dataclass(frozen=True)
class TypeSpec:
    """A parsed type: ``base`` (e.g. ``"Id<entities>"``), whether it is a list, whether optional."""

    base: str
    is_list: bool = False
    optional: bool = False


@dataclass(frozen=True)
class Retry:
    """How often a service call is attempted again after a failure, and the pause between tries."""

    times: int
    delay_s: float


@dataclass(frozen=True)
class Binding:
    """Binds ``$name`` to the step's result (``key`` None) or to the result's entry ``key``."""

    name: str
    key: str | None = None


@dataclass(frozen=True)
class FieldRule:
    """The checks a validate step applies to one input (None: not checked)."""

    field: str
    exists: bool
    thing_type: str | None
    min_length: int | None
    max_length: int | None
    minimum: float | None
    maximum: float | None
    pattern: str | None


@dataclass(frozen=True)
class Step:
    """One executable step. ``args`` are frozen and still symbolic (evaluate them at run time);
    ``steps`` are an atomic group's members or an ``if``'s then-branch, ``else_steps`` its else."""

    index: int
    path: str
    kind: StepKind
    args: Mapping[str, object]
    outputs: tuple[Binding, ...] = ()
    retry: Retry | None = None
    on_error: Mapping[str, object] | None = None
    rules: tuple[FieldRule, ...] = ()
    steps: tuple[Step, ...] = ()
    else_steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class FeaturePlan:
    """A compiled feature: its typed interface, the context it needs and its steps in order."""

    feature: str
    input: Mapping[str, TypeSpec]
    output: Mapping[str, TypeSpec]
    context: Mapping[str, TypeSpec]
    steps: tuple[Step, ...]


# --------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class _Ref:
    text: str
    name: str
    path: tuple[str, ...]


def _parse(text: str) -> tuple[_Ref | str, ...] | None:
    """Terms of an expression (references and literal texts), or None for literal text."""
    terms: list[_Ref | str] = []
    position = 0
    while (match := _TERM.match(text, position)) is not None:
        reference, literal = match.groups()
        if reference is None:
            terms.append(literal)
        else:
            name, *path = reference[1:].split(".")
            terms.append(_Ref(reference, name, tuple(path)))
        position = match.end()
        if position == len(text) or text[position] != "+":
            break
        position += 1
    else:  # a term was expected (at the start or after a "+") and is missing
        position = -1
    if position != len(text) or not any(isinstance(term, _Ref) for term in terms):
        if text.lstrip().startswith("$"):
            raise ValueError(f"malformed expression {text!r}")
        return None
    return tuple(terms)


def _lookup(ref: _Ref, scope: Mapping[str, object]) -> object:
    if ref.name not in scope:
        raise DslRuntimeError(ref.text, f"{ref.text}: nothing is bound to {ref.name!r}")
    value = scope[ref.name]
    for segment in ref.path:
        if isinstance(value, Mapping) and segment in value:
            value = value[segment]
        elif isinstance(value, list | tuple) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            raise DslRuntimeError(ref.text, f"{ref.text}: no {segment!r} in the value")
    return value


def _text(term: _Ref | str, scope: Mapping[str, object]) -> str:
    if isinstance(term, str):
        return term
    value = _lookup(term, scope)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise DslRuntimeError(term.text, f"{term.text}: cannot concatenate a {type(value).__name__}")


def evaluate(expression: object, scope: Mapping[str, object]) -> object:
    """Resolve ``expression`` against ``scope`` (bound names, context, and ``input``).

    A lone reference yields its value unchanged; a concatenation yields a string; objects and
    lists are evaluated item by item; anything else is returned as is. Raises
    :class:`DslRuntimeError` naming a reference that does not resolve (or a malformed expression).
    """
    if isinstance(expression, str):
        try:
            terms = _parse(expression)
        except ValueError as error:
            raise DslRuntimeError(expression, str(error)) from None
        if terms is None:
            return expression
        if len(terms) == 1 and isinstance(terms[0], _Ref):
            return _lookup(terms[0], scope)
        return "".join(_text(term, scope) for term in terms)
    if isinstance(expression, Mapping):
        return {key: evaluate(value, scope) for key, value in expression.items()}
    if isinstance(expression, list | tuple):
        return [evaluate(value, scope) for value in expression]
    return expression


# ----------------------------------------------------------------------------- checking
def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if _NAME.fullmatch(key) else f"{path}[{key!r}]"


def _freeze(value: object) -> object:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _frozen_map(value: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType({key: _freeze(item) for key, item in value.items()})


def _parse_type(text: str) -> TypeSpec | None:
    optional = text.endswith("?")
    core = text[:-1] if optional else text
    is_list = core.endswith("[]")
    base = core[:-2] if is_list else core
    return TypeSpec(base, is_list, optional) if base in _BASE_TYPES else None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_id(spec: TypeSpec) -> bool:
    return spec.base.startswith("Id<") and not spec.is_list


def _has_length(spec: TypeSpec) -> bool:
    return spec.is_list or spec.base == "string"


def _is_numeric(spec: TypeSpec) -> bool:
    return spec.base == "number" and not spec.is_list


def _is_text(spec: TypeSpec) -> bool:
    return spec.base == "string" and not spec.is_list


_Rule = tuple[Callable[[object], bool], str, Callable[[TypeSpec], bool], str]
_RULES: Final[Mapping[str, _Rule]] = {
    "exists": (lambda value: value is True, "true", _is_id, "an Id<...> input"),
    "type": (_is_str, "a thing type", _is_id, "an Id<...> input"),
    "minLength": (_is_count, "a non-negative integer", _has_length, "a string or list input"),
    "maxLength": (_is_count, "a non-negative integer", _has_length, "a string or list input"),
    "min": (_is_number, "a number", _is_numeric, "a number input"),
    "max": (_is_number, "a number", _is_numeric, "a number input"),
    "pattern": (_is_str, "a regular expression", _is_text, "a string input"),
}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


_Scope = dict[str, str]
"""Names in scope at a point of the flow -> the path that bound them."""


class _Checker:
    """One walk over a feature: collects every error and builds the plan alongside."""

    def __init__(self) -> None:
        self.errors: list[DslError] = []
        self.unbound: list[tuple[int, str, str]] = []  # (error index, reference text, name)
        self.bound_at: dict[str, str] = {}  # every name bound anywhere -> its first binding path
        self.inputs: dict[str, TypeSpec] = {}
        self.outputs: dict[str, TypeSpec] = {}

    def error(self, path: str, code: str, message: str) -> None:
        self.errors.append(DslError(path, code, message))

    # ------------------------------------------------------------------ feature level
    def feature(self, raw: object, context: Mapping[str, str]) -> FeaturePlan | None:
        contexts = self.types(context, "context", required=False)
        if not isinstance(raw, Mapping):
            self.error("$", "wrong_type", "a feature must be an object")
            return None
        self.keys(raw, "$", {"feature", "input", "output", "flow"})
        name = raw.get("feature")
        if "feature" not in raw:
            self.error("$.feature", "missing_field", "a feature needs a name")
        elif not isinstance(name, str):
            self.error("$.feature", "wrong_type", "the feature name must be a string")
        elif not _NAME.fullmatch(name):
            self.error("$.feature", "bad_name", f"{name!r} is not an identifier")
        self.inputs = self.types(raw.get("input"), "$.input", required="input" in raw)
        self.outputs = self.types(raw.get("output"), "$.output", required="output" in raw)
        for key in ("input", "output", "flow"):
            if key not in raw:
                self.error(f"$.{key}", "missing_field", f"a feature needs {key!r}")
        scope: _Scope = {}
        for context_name in contexts:
            self.bind(context_name, f"context.{context_name}", scope)
        steps: tuple[Step, ...] = ()
        if "flow" in raw:
            steps, returns = self.flow(raw["flow"], "$.flow", scope, atomic=False)
            required = [key for key, spec in self.outputs.items() if not spec.optional]
            if steps and not returns and required:
                self.error("$.flow", "missing_field", f"the flow must end with a return of {required}")
        for index, text, missing in self.unbound:
            where = self.bound_at.get(missing)
            why = (
                f"${missing} (in {text}) is bound only at {where}, which does not run before this point"
                if where
                else f"nothing binds ${missing} (in {text}): bind it in an earlier step or as context"
            )
            self.errors[index] = replace(self.errors[index], message=why)
        return FeaturePlan(
            name if isinstance(name, str) else "",
            MappingProxyType(self.inputs),
            MappingProxyType(self.outputs),
            MappingProxyType(contexts),
            steps,
        )

    def types(self, raw: object, path: str, *, required: bool) -> dict[str, TypeSpec]:
        specs: dict[str, TypeSpec] = {}
        if not isinstance(raw, Mapping):
            if required:
                self.error(path, "wrong_type", "expected an object of name -> type")
            return specs
        for name, text in raw.items():
            where = _join(path, str(name))
            if not isinstance(name, str) or not _NAME.fullmatch(name) or name == "input":
                self.error(where, "bad_name", f"{name!r} is not a usable name")
            elif not isinstance(text, str):
                self.error(where, "bad_input_type", "a type must be a string")
            elif (spec := _parse_type(text)) is None:
                self.error(where, "bad_input_type", f"unknown type {text!r}")
            else:
                specs[name] = spec
        return specs

    def keys(self, raw: Mapping[str, object], path: str, allowed: set[str]) -> None:
        for key in raw:
            if key not in allowed:
                message = f"unexpected {key!r}: allowed {sorted(allowed)}"
                self.error(_join(path, str(key)), "unknown_field", message)

    def need(self, raw: Mapping[str, object], path: str, key: str) -> bool:
        if key not in raw:
            self.error(_join(path, key), "missing_field", f"{key!r} is required")
            return False
        return True

    def bind(self, name: str, path: str, scope: _Scope) -> None:
        if name == "input" or name in scope:
            where = f" (already bound at {scope[name]})" if name in scope else ""
            self.error(path, "duplicate_output", f"{name!r} cannot be bound here{where}")
            return
        scope[name] = path
        self.bound_at.setdefault(name, path)

    # ---------------------------------------------------------------------- expressions
    def refs(self, value: object, path: str, scope: _Scope) -> None:
        if isinstance(value, str):
            try:
                terms = _parse(value)
            except ValueError as error:
                self.error(path, "bad_expression", str(error))
                return
            for term in terms or ():
                if isinstance(term, _Ref):
                    self.reference(term, path, scope)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str):
                    self.refs(item, _join(path, key), scope)
                else:
                    self.error(path, "wrong_type", f"object keys must be strings, got {key!r}")
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                self.refs(item, f"{path}[{index}]", scope)
        elif value is not None and not isinstance(value, bool | int | float):
            self.error(path, "wrong_type", f"{type(value).__name__} is not JSON data")

    def reference(self, ref: _Ref, path: str, scope: _Scope) -> None:
        if ref.name == "input":
            if not ref.path or ref.path[0] not in self.inputs:
                self.error(path, "unknown_reference", f"{ref.text} does not name a declared input")
        elif ref.name not in scope:
            self.unbound.append((len(self.errors), ref.text, ref.name))
            self.error(path, "unknown_reference", ref.text)

    def text(self, raw: Mapping[str, object], path: str, key: str, scope: _Scope, *, required: bool) -> None:
        """Check an optional or required string field that may hold an expression."""
        if key not in raw:
            if required:
                self.need(raw, path, key)
            return
        if isinstance(raw[key], str):
            self.refs(raw[key], _join(path, key), scope)
        else:
            self.error(_join(path, key), "wrong_type", f"{key!r} must be a string or expression")

    def data(self, raw: Mapping[str, object], path: str, key: str, scope: _Scope) -> None:
        """Check an optional object field whose values may hold expressions."""
        if key in raw:
            if isinstance(raw[key], Mapping):
                self.refs(raw[key], _join(path, key), scope)
            else:
                self.error(_join(path, key), "wrong_type", f"{key!r} must be an object")

    def limit(self, raw: Mapping[str, object], path: str) -> None:
        value = raw.get("limit", 1)
        if not _is_count(value) or value == 0:
            self.error(_join(path, "limit"), "wrong_type", "limit must be a positive integer")

    # --------------------------------------------------------------------------- types
    def thing_type(self, raw: Mapping[str, object], path: str, *, required: bool) -> str | None:
        if "type" not in raw:
            if required:
                self.need(raw, path, "type")
            return None
        try:
            return normalize_thing_type(_str(raw["type"]) or "")
        except OntologyError:
            self.error(_join(path, "type"), "unknown_thing_type", f"unknown thing type {raw['type']!r}")
            return None

    def status(self, raw: Mapping[str, object], path: str) -> None:
        if "status" in raw and not (isinstance(raw["status"], str) and raw["status"] in THING_STATUSES):
            self.error(_join(path, "status"), "unknown_status", f"unknown status {raw['status']!r}")

    def linked_type(
        self,
        dimension: Literal["connection", "event"],
        raw: Mapping[str, object],
        path: str,
        *,
        required: bool,
    ) -> dict[str, object]:
        """Normalise a connection/event ``type``: returns ``{type, metadata?}`` (legacy variant)."""
        if "type" not in raw:
            if required:
                self.need(raw, path, "type")
            return {}
        name = _str(raw["type"]) or ""
        metadata = raw.get("metadata", {})
        try:
            if dimension == "connection":
                normalize_connection_type(name)
            else:
                normalize_event_type(name)
        except OntologyError:
            message = f"unknown {dimension} type {raw['type']!r}"
            self.error(_join(path, "type"), f"unknown_{dimension}_type", message)
            return {}
        if not isinstance(metadata, Mapping):
            return {}
        try:
            normalize = normalize_connection if dimension == "connection" else normalize_event_type
            target, merged = normalize(name, metadata)
        except OntologyError as error:
            self.error(f"{path}.{error.field}", "conflicting_metadata", error.message)
            return {}
        return {"type": target, "metadata": merged} if merged else {"type": target}

    # --------------------------------------------------------------------------- flows
    def flow(self, raw: object, path: str, scope: _Scope, *, atomic: bool) -> tuple[tuple[Step, ...], bool]:
        """Check a list of steps, binding into ``scope``; returns the steps and whether it returns."""
        if not isinstance(raw, list | tuple):
            self.error(path, "wrong_type", "expected a list of steps")
            return (), False
        if not raw:
            self.error(path, "empty_flow", "a flow needs at least one step")
        steps: list[Step] = []
        returns = False
        for index, item in enumerate(raw):
            where = f"{path}[{index}]"
            if returns:
                self.error(where, "unreachable_step", "no step can follow a return")
                break
            step, returns = self.step(item, where, index, scope, atomic=atomic)
            if step is not None:
                steps.append(step)
        return tuple(steps), returns

    def step(
        self, raw: object, path: str, index: int, scope: _Scope, *, atomic: bool
    ) -> tuple[Step | None, bool]:
        if not isinstance(raw, Mapping):
            self.error(path, "wrong_type", "a step must be an object")
            return None, False
        kinds = [kind for kind in _PRIMITIVES if kind in raw]
        for key in raw:
            if key not in _PRIMITIVES and key not in ("output", "onError"):
                self.error(_join(path, str(key)), "unknown_step", f"{key!r} is not a primitive")
        if len(kinds) != 1:
            if len(kinds) > 1:
                self.error(path, "ambiguous_step", f"a step holds one primitive, not {kinds}")
            elif all(key in ("output", "onError") for key in raw):
                self.error(path, "missing_field", f"a step needs one primitive of {_PRIMITIVES}")
            return None, False
        kind = kinds[0]
        body, where = raw[kind], _join(path, kind)
        if atomic and kind not in _ROLLBACKABLE:
            self.error(where, "not_rollbackable", f"atomic holds entity, connect and event steps, not {kind}")
            return None, False
        if "output" in raw and kind not in _OUTPUT_KINDS:
            self.error(_join(path, "output"), "unknown_field", f"a {kind} step has no step-level output")
        on_error = None
        if "onError" in raw:
            if atomic or kind in ("if", "return"):
                self.error(_join(path, "onError"), "unknown_field", "onError is not allowed here")
            else:
                on_error = self.on_error(raw["onError"], _join(path, "onError"), scope)
        step, returns = self.primitive(kind, body, where, scope)
        step = replace(step, index=index, path=path, on_error=on_error)
        if kind in _OUTPUT_KINDS and "output" in raw:
            name = raw["output"]
            if isinstance(name, str) and _NAME.fullmatch(name):
                self.bind(name, _join(path, "output"), scope)
                step = replace(step, outputs=(Binding(name),))
            else:
                self.error(_join(path, "output"), "bad_name", f"output must be an identifier, got {name!r}")
        return step, returns

    def on_error(self, raw: object, path: str, scope: _Scope) -> Mapping[str, object] | None:
        if not isinstance(raw, Mapping):
            self.error(path, "wrong_type", "onError must be an object like {return: {...}}")
            return None
        self.keys(raw, path, {"return"})
        result = raw.get("return")
        if not self.need(raw, path, "return"):
            return None
        if not isinstance(result, Mapping):
            self.error(_join(path, "return"), "wrong_type", "onError.return must be an object")
            return None
        self.refs(result, _join(path, "return"), scope)
        return _frozen_map(result)

    def primitive(self, kind: StepKind, body: object, path: str, scope: _Scope) -> tuple[Step, bool]:
        """Check one primitive's body (``path`` points at it) and build its step."""
        if kind == "atomic":
            members, _ = self.flow(body, path, scope, atomic=True)
            return Step(0, path, kind, MappingProxyType({}), steps=members), False
        if kind == "if":
            return self.branch(body, path, scope)
        if not isinstance(body, Mapping):
            self.error(path, "wrong_type", f"{kind} must be an object")
            return Step(0, path, kind, MappingProxyType({})), kind == "return"
        args: dict[str, object] = dict(body)
        if kind == "validate":
            rules, bindings = self.validate(body, path, scope)
            return Step(0, path, kind, MappingProxyType({}), outputs=bindings, rules=rules), False
        if kind == "service":
            return self.service(body, path, scope), False
        if kind == "return":
            self.result(body, path, scope)
        elif kind == "entity":
            self.keys(body, path, {"type", "name", "properties", "status"})
            args["type"] = self.thing_type(body, path, required=True)
            self.text(body, path, "name", scope, required=True)
            self.data(body, path, "properties", scope)
            self.status(body, path)
        elif kind == "connect":
            self.keys(body, path, {"type", "from", "to", "metadata"})
            args.update(self.linked_type("connection", body, path, required=True))
            for key in ("from", "to"):
                self.text(body, path, key, scope, required=True)
            self.data(body, path, "metadata", scope)
        elif kind == "event":
            self.keys(body, path, {"type", "entity", "actor", "metadata"})
            args.update(self.linked_type("event", body, path, required=True))
            self.text(body, path, "entity", scope, required=True)
            self.text(body, path, "actor", scope, required=False)
            self.data(body, path, "metadata", scope)
        else:
            args = self.query(body, path, scope)
        return Step(0, path, kind, _frozen_map(args)), kind == "return"

    def validate(
        self, body: Mapping[str, object], path: str, scope: _Scope
    ) -> tuple[tuple[FieldRule, ...], tuple[Binding, ...]]:
        if not body:
            self.error(path, "missing_field", "validate needs at least one input")
        rules: list[FieldRule] = []
        bindings: list[Binding] = []
        for field, checks in body.items():
            where = _join(path, str(field))
            spec = self.inputs.get(field)
            if spec is None:
                self.error(where, "unknown_reference", f"{field!r} is not a declared input")
                continue
            if not isinstance(checks, Mapping):
                self.error(where, "wrong_type", "rules must be an object")
                continue
            for name, value in checks.items():
                rule = _RULES.get(name)
                if rule is None:
                    self.error(_join(where, str(name)), "unknown_field", f"unknown rule {name!r}")
                    continue
                accepts, expected, applies, subject = rule
                if not accepts(value):
                    self.error(_join(where, name), "wrong_type", f"{name} must be {expected}")
                elif not applies(spec):
                    self.error(_join(where, name), "wrong_type", f"{name} applies to {subject}")
                elif name == "pattern":
                    try:
                        re.compile(str(value))
                    except re.error as error:
                        self.error(_join(where, name), "bad_pattern", f"invalid pattern: {error}")
            thing_type = None
            if isinstance(checks.get("type"), str):
                thing_type = self.thing_type(checks, where, required=False)
                if checks.get("exists") is not True:
                    self.error(_join(where, "exists"), "missing_field", "a type check needs exists: true")
            rules.append(
                FieldRule(
                    field,
                    checks.get("exists") is True,
                    thing_type,
                    _int(checks.get("minLength")),
                    _int(checks.get("maxLength")),
                    _number(checks.get("min")),
                    _number(checks.get("max")),
                    _str(checks.get("pattern")),
                )
            )
            if checks.get("exists") is True and field.endswith("Id") and len(field) > 2:
                bindings.append(Binding(field[:-2], field))
                self.bind(field[:-2], where, scope)
        return tuple(rules), tuple(bindings)

    def service(self, body: Mapping[str, object], path: str, scope: _Scope) -> Step:
        self.keys(body, path, {"provider", "method", "params", "output", "retry"})
        for key in ("provider", "method"):
            value = body.get(key)
            if self.need(body, path, key) and (not isinstance(value, str) or not value.strip()):
                self.error(_join(path, key), "wrong_type", f"{key} must be a non-empty string")
        self.data(body, path, "params", scope)
        retry = self.retry(body["retry"], _join(path, "retry")) if "retry" in body else None
        bindings: list[tuple[Binding, str]] = []
        output = body.get("output")
        if isinstance(output, str):
            bindings.append((Binding(output), _join(path, "output")))
        elif isinstance(output, list | tuple) and output:
            for i, name in enumerate(output):
                bindings.append((Binding(str(name), str(name)), f"{path}.output[{i}]"))
        elif "output" in body:
            self.error(_join(path, "output"), "wrong_type", "output must be a name or a list of names")
        for binding, where in bindings:
            if _NAME.fullmatch(binding.name):
                self.bind(binding.name, where, scope)
            else:
                self.error(where, "bad_name", f"{binding.name!r} is not an identifier")
        args = {key: body[key] for key in ("provider", "method") if key in body}
        args["params"] = body.get("params", {})
        return Step(0, path, "service", _frozen_map(args), outputs=tuple(b for b, _ in bindings), retry=retry)

    def retry(self, raw: object, path: str) -> Retry | None:
        if not isinstance(raw, Mapping):
            self.error(path, "bad_retry", "retry must be an object like {times: 3, delay: '5s'}")
            return None
        self.keys(raw, path, {"times", "delay"})
        times, delay = raw.get("times"), raw.get("delay", "0s")
        if not self.need(raw, path, "times"):
            times = None
        elif not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 10:
            self.error(_join(path, "times"), "bad_retry", f"times must be an integer 1..10, not {times!r}")
            times = None
        match = _DURATION.fullmatch(delay) if isinstance(delay, str) else None
        if match is None:
            self.error(_join(path, "delay"), "bad_retry", f"delay must be like '5s', not {delay!r}")
        if not isinstance(times, int) or match is None:
            return None
        return Retry(times, float(match[1]) * _SECONDS[match[2]])

    def result(self, body: Mapping[str, object], path: str, scope: _Scope) -> None:
        for name, spec in self.outputs.items():
            if name not in body and not spec.optional:
                self.error(_join(path, name), "missing_field", f"declared output {name!r} is not returned")
        for name in body:
            if name not in self.outputs:
                self.error(_join(path, str(name)), "unknown_field", f"{name!r} is not a declared output")
        self.refs(body, path, scope)

    def query(self, body: Mapping[str, object], path: str, scope: _Scope) -> dict[str, object]:
        self.keys(body, path, set(_QUERY_SELECTORS))
        selected = [key for key in _QUERY_SELECTORS if key in body]
        if len(selected) != 1:
            code = "ambiguous_query" if selected else "missing_field"
            self.error(path, code, f"a query selects exactly one of {_QUERY_SELECTORS}")
            return {}
        selector = selected[0]
        raw, where = body[selector], _join(path, selector)
        if selector == "thing":
            self.text(body, path, "thing", scope, required=True)
            return {selector: raw}
        if not isinstance(raw, Mapping):
            self.error(where, "wrong_type", f"{selector} filters must be an object")
            return {}
        filters: dict[str, object] = dict(raw)
        self.limit(raw, where)
        if selector == "things":
            self.keys(raw, where, {"type", "status", "properties", "limit"})
            if "type" in raw:
                filters["type"] = self.thing_type(raw, where, required=False)
            self.status(raw, where)
            self.data(raw, where, "properties", scope)
        else:
            dimension: Literal["connection", "event"] = "connection" if selector == "connections" else "event"
            ends = ("from", "to") if selector == "connections" else ("entity", "actor")
            self.keys(raw, where, {"type", "limit", *ends})
            filters.update(self.linked_type(dimension, raw, where, required=False))
            for key in ends:
                self.text(raw, where, key, scope, required=False)
        return {selector: filters}

    def branch(self, body: object, path: str, scope: _Scope) -> tuple[Step, bool]:
        if not isinstance(body, Mapping):
            self.error(path, "wrong_type", "if must be an object like {condition, then, else}")
            return Step(0, path, "if", MappingProxyType({})), False
        self.keys(body, path, {"condition", "then", "else"})
        condition = body.get("condition")
        if self.need(body, path, "condition"):
            if isinstance(condition, str) and condition.lstrip().startswith("$"):
                self.refs(condition, _join(path, "condition"), scope)
            else:
                self.error(_join(path, "condition"), "bad_expression", "the condition must be a $ expression")
        then_scope, else_scope = dict(scope), dict(scope)
        then_steps: tuple[Step, ...] = ()
        then_returns = else_returns = False
        if self.need(body, path, "then"):
            then_steps, then_returns = self.flow(body["then"], _join(path, "then"), then_scope, atomic=False)
        else_steps: tuple[Step, ...] = ()
        if "else" in body:
            else_steps, else_returns = self.flow(body["else"], _join(path, "else"), else_scope, atomic=False)
        if then_returns != else_returns:
            scope.update(else_scope if then_returns else then_scope)
        else:
            scope.update({name: then_scope[name] for name in then_scope.keys() & else_scope.keys()})
        args = MappingProxyType({"condition": condition})
        step = Step(0, path, "if", args, steps=then_steps, else_steps=else_steps)
        return step, then_returns and else_returns


def validate_feature(feature: object, context: Mapping[str, str] | None = None) -> list[DslError]:
    """Every problem in ``feature`` (empty when valid). ``context`` declares the names (-> type)
    the caller will supply at run time besides the inputs; bad context entries are reported too."""
    checker = _Checker()
    checker.feature(feature, context or {})
    return checker.errors


def compile_feature(feature: object, context: Mapping[str, str] | None = None) -> FeaturePlan:
    """Validate ``feature`` and compile it into an immutable :class:`FeaturePlan`.

    Raises :class:`DslInvalid` carrying every error when the feature does not validate.
    """
    checker = _Checker()
    plan = checker.feature(feature, context or {})
    if plan is None or checker.errors:
        raise DslInvalid(checker.errors)
    return plan
