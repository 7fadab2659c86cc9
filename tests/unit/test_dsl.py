"""Unit tests for the ONE DSL (domain/dsl.py): validation paths and codes, compilation, evaluation."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from domain.dsl import (
    Binding,
    DslError,
    DslInvalid,
    DslRuntimeError,
    FeaturePlan,
    FieldRule,
    Retry,
    Step,
    TypeSpec,
    compile_feature,
    evaluate,
    validate_feature,
)
from tests.support.dsl_examples import (
    CHAT_WITH_CLONE,
    CREATE_AI_CLONE,
    CREATE_AI_CLONE_CONTEXT,
    LAUNCH_COURSE,
)

Feature = dict[str, Any]


def mutated(change: Callable[[Feature], object], base: Feature = CREATE_AI_CLONE) -> Feature:
    feature = copy.deepcopy(base)
    change(feature)
    return feature


def codes(
    feature: object, context: Mapping[str, str] | None = CREATE_AI_CLONE_CONTEXT
) -> list[tuple[str, str]]:
    return [(error.path, error.code) for error in validate_feature(feature, context)]


def run(plan: FeaturePlan, inputs: dict[str, object], context: dict[str, object]) -> object:
    """A minimal in-memory interpreter of a plan: enough to show every expression resolves."""
    scope: dict[str, object] = {"input": inputs, **context}
    things = {"creator-1": {"id": "creator-1", "type": "creator", "name": "Ada"}}
    made: list[tuple[str, object]] = []

    def execute(steps: tuple[Step, ...]) -> object:
        for step in steps:
            args = evaluate(step.args, scope)
            assert isinstance(args, dict)
            result: object = None
            if step.kind == "return":
                return args
            if step.kind == "validate":
                result = {rule.field: things[str(inputs[rule.field])] for rule in step.rules if rule.exists}
            elif step.kind == "service":
                result = f"voice-for-{len(args['params']['samples'])}-samples"
            elif step.kind in ("entity", "connect", "event"):
                made.append((step.kind, args))
                result = f"{step.kind}-{len(made)}"
            elif step.kind == "atomic":
                execute(step.steps)
            for binding in step.outputs:
                scope[binding.name] = result if binding.key is None else result[binding.key]  # type: ignore[index]
        return None

    outcome = execute(plan.steps)
    return {"result": outcome, "made": made}


# --------------------------------------------------------------------------- the seed


def test_seed_example_validates_with_its_context() -> None:
    assert validate_feature(CREATE_AI_CLONE, CREATE_AI_CLONE_CONTEXT) == []


def test_seed_example_without_context_reports_exactly_the_two_values_it_never_produces() -> None:
    errors = validate_feature(CREATE_AI_CLONE)
    assert [(e.path, e.code) for e in errors] == [
        ("$.flow[1].service.params.samples", "unknown_reference"),
        ("$.flow[2].entity.properties.systemPrompt", "unknown_reference"),
    ]
    assert "$audioSamples" in errors[0].message
    assert "$personality" in errors[1].message


def test_seed_example_compiles_to_a_typed_plan() -> None:
    plan = compile_feature(CREATE_AI_CLONE, CREATE_AI_CLONE_CONTEXT)
    assert plan.feature == "CreateAIClone"
    assert plan.input == {
        "creatorId": TypeSpec("Id<entities>"),
        "videoUrls": TypeSpec("string", is_list=True),
    }
    assert plan.output["voiceId"] == TypeSpec("string")
    assert plan.context["personality"] == TypeSpec("object")
    assert [(s.index, s.kind) for s in plan.steps] == list(
        enumerate(["validate", "service", "entity", "connect", "event", "return"])
    )
    validate, service, entity, connect, event, result = plan.steps
    assert validate.outputs == (Binding("creator", "creatorId"),)
    assert validate.rules[0] == FieldRule("creatorId", True, "creator", None, None, None, None, None)
    assert validate.rules[1].min_length == 3
    assert validate.on_error == {"error": "InsufficientContent"}
    assert service.args == {
        "provider": "elevenlabs",
        "method": "cloneVoice",
        "params": {"samples": "$audioSamples"},
    }
    assert service.outputs == (Binding("voiceId"),)
    assert service.retry == Retry(times=3, delay_s=5.0)
    assert entity.args["name"] == "$creator.name + ' AI Clone'"
    assert entity.outputs == (Binding("cloneId"),) and entity.path == "$.flow[2]"
    assert connect.args["type"] == "owns"
    assert event.args["type"] == "entity_created"
    assert event.args["metadata"] == {"entityType": "ai_clone"}
    assert result.args == {"cloneId": "$cloneId", "voiceId": "$voiceId"}


def test_plan_is_immutable() -> None:
    plan = compile_feature(CREATE_AI_CLONE, CREATE_AI_CLONE_CONTEXT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps[0].index = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.steps[2].args["status"] = "draft"  # type: ignore[index]
    assert isinstance(plan.steps[2].args["properties"], Mapping)
    with pytest.raises(TypeError):
        plan.steps[2].args["properties"]["temperature"] = 1  # type: ignore[index]


def test_seed_example_runs_end_to_end_through_evaluate() -> None:
    plan = compile_feature(CREATE_AI_CLONE, CREATE_AI_CLONE_CONTEXT)
    outcome = run(
        plan,
        {"creatorId": "creator-1", "videoUrls": ["a", "b", "c"]},
        {"audioSamples": ["s1", "s2", "s3"], "personality": {"systemPrompt": "Be Ada."}},
    )
    assert outcome == {
        "result": {"cloneId": "entity-1", "voiceId": "voice-for-3-samples"},
        "made": [
            ("entity", {
                "type": "ai_clone",
                "name": "Ada AI Clone",
                "properties": {
                    "voiceId": "voice-for-3-samples",
                    "systemPrompt": "Be Ada.",
                    "temperature": 0.7,
                },
                "status": "active",
            }),
            ("connect", {"from": "creator-1", "to": "entity-1", "type": "owns"}),
            ("event", {"entity": "entity-1", "type": "entity_created", "actor": "creator-1",
                       "metadata": {"entityType": "ai_clone"}}),
        ],
    }


def test_compile_raises_with_every_error() -> None:
    with pytest.raises(DslInvalid) as caught:
        compile_feature(CREATE_AI_CLONE)
    assert isinstance(caught.value, ValueError)
    assert len(caught.value.errors) == 2
    assert all(isinstance(error, DslError) for error in caught.value.errors)
    assert "$.flow[1].service.params.samples" in str(caught.value)


# ----------------------------------------------------------------- targeted mutations


DROP = object()
"""As a value for `_set`: delete the key instead."""


def _set(keys: tuple[Any, ...], value: object) -> Callable[[Feature], None]:
    def change(feature: Feature) -> None:
        target: Any = feature
        for key in keys[:-1]:
            target = target[key]
        if value is DROP:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return change


def _json_path(keys: tuple[Any, ...]) -> str:
    return "$" + "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in keys)


def case(keys: tuple[Any, ...], value: object, code: str, at: tuple[Any, ...] | None = None) -> Any:
    """A mutation setting `keys` to `value`, expected to report `code` at `at` (default: `keys`)."""
    path = _json_path(keys if at is None else at)
    return pytest.param(_set(keys, value), path, code, id=f"{code}@{path}")


@pytest.mark.parametrize(
    ("change", "path", "code"),
    [
        case(("flow", 2, "entity", "type"), "ai_clon", "unknown_thing_type"),
        case(("flow", 3, "connect", "type"), "ownz", "unknown_connection_type"),
        case(("flow", 4, "event", "type"), "clone_exploded", "unknown_event_type"),
        case(("flow", 2, "entity", "status"), "alive", "unknown_status"),
        case(("flow", 3, "connect", "from"), "$nothing", "unknown_reference"),
        case(("flow", 3, "connect", "to"), "$input.cloneId", "unknown_reference"),
        case(("flow", 0, "validate", "creatorId", "type"), "creatr", "unknown_thing_type"),
        case(("flow", 0, "validate", "avatarUrl"), {"minLength": 1}, "unknown_reference"),
        case(("flow", 1, "service", "retry", "times"), 0, "bad_retry"),
        case(("flow", 1, "service", "retry", "times"), 11, "bad_retry"),
        case(("flow", 1, "service", "retry", "times"), True, "bad_retry"),
        case(("flow", 1, "service", "retry", "delay"), "soon", "bad_retry"),
        case(("flow", 1, "service", "retry"), 3, "bad_retry"),
        case(("flow", 1, "service", "method"), DROP, "missing_field"),
        case(("flow", 3), "connect", "wrong_type"),
        case(("flow", 4, "connect"), {"from": "$cloneId", "to": "$cloneId", "type": "owns"}, "ambiguous_step",
             at=("flow", 4)),
        case(("flow", 4, "emit"), {}, "unknown_step"),
        case(("flow",), [], "empty_flow"),
        case(("flow",), "steps", "wrong_type"),
        case(("flow", 2, "output"), "voiceId", "duplicate_output"),
        case(("flow", 2, "output"), "input", "duplicate_output"),
        case(("flow", 3, "output"), "creator", "duplicate_output"),
        case(("flow", 2, "output"), "clone id", "bad_name"),
        case(("flow", 2, "entity", "satus"), "active", "unknown_field"),
        case(("flow", 5, "return", "extra"), "$voiceId", "unknown_field"),
        case(("flow", 2, "entity", "name"), "$creator.name +", "bad_expression"),
        case(("flow", 2, "entity", "name"), 42, "wrong_type"),
        case(("flow", 4, "event", "entity"), DROP, "missing_field"),
        case(("input", "creatorId"), "Id<entity>", "bad_input_type"),
        case(("output", "voiceId"), "text", "bad_input_type"),
        case(("feature",), "Create AI Clone", "bad_name"),
        case(("flow", 0, "validate", "videoUrls", "min"), 3, "wrong_type"),
        case(("flow", 0, "validate", "videoUrls", "exists"), True, "wrong_type"),
        case(("flow", 0, "validate", "videoUrls", "minLength"), -1, "wrong_type"),
        case(("flow", 0, "validate", "videoUrls", "maxSize"), 3, "unknown_field"),
        case(("flow", 0, "onError"), {"retry": True}, "unknown_field", at=("flow", 0, "onError", "retry")),
        case(("flow", 5, "onError"), {"return": {}}, "unknown_field"),
        case(("flow", 4, "event", "metadata"), {"entityType": "course"}, "conflicting_metadata",
             at=("flow", 4, "event", "metadata", "entityType")),
    ],
)
def test_mistake_is_reported_at_its_path(change: Callable[[Feature], None], path: str, code: str) -> None:
    assert (path, code) in codes(mutated(change))


def test_missing_top_level_fields_are_each_reported() -> None:
    assert codes({}) == [
        ("$.feature", "missing_field"),
        ("$.input", "missing_field"),
        ("$.output", "missing_field"),
        ("$.flow", "missing_field"),
    ]
    assert codes(["not", "a", "feature"]) == [("$", "wrong_type")]


def test_a_mutation_breaks_nothing_else() -> None:
    assert codes(mutated(_set(("flow", 3, "connect", "from"), "$nothing"))) == [
        ("$.flow[3].connect.from", "unknown_reference")
    ]


def test_a_reference_to_a_later_output_names_where_it_is_bound() -> None:
    feature = mutated(_set(("flow", 1, "service", "params", "samples"), "$cloneId"))
    errors = validate_feature(feature, CREATE_AI_CLONE_CONTEXT)
    assert [(e.path, e.code) for e in errors] == [("$.flow[1].service.params.samples", "unknown_reference")]
    assert "$.flow[2].output" in errors[0].message
    assert "does not run before" in errors[0].message


def test_a_step_cannot_use_its_own_output() -> None:
    feature = mutated(_set(("flow", 2, "entity", "properties", "self"), "$cloneId"))
    assert codes(feature) == [("$.flow[2].entity.properties.self", "unknown_reference")]


def test_on_error_sees_only_what_was_bound_before_the_step() -> None:
    feature = mutated(_set(("flow", 1, "onError"), {"return": {"error": "NoVoice", "voice": "$voiceId"}}))
    assert codes(feature) == [("$.flow[1].onError.return.voice", "unknown_reference")]


def test_return_must_cover_every_declared_output() -> None:
    feature = mutated(lambda f: f["flow"][5]["return"].pop("voiceId"))
    assert codes(feature) == [("$.flow[5].return.voiceId", "missing_field")]
    optional = mutated(_set(("output", "voiceId"), "string?"), feature)
    assert codes(optional) == []


def test_a_flow_with_declared_outputs_must_return() -> None:
    assert codes(mutated(lambda f: f["flow"].pop())) == [("$.flow", "missing_field")]


def test_steps_after_a_return_are_unreachable() -> None:
    feature = mutated(lambda f: f["flow"].append({"event": {"type": "entity_updated", "entity": "$cloneId"}}))
    assert codes(feature) == [("$.flow[6]", "unreachable_step")]


def test_several_errors_are_all_reported_in_document_order() -> None:
    def change(feature: Feature) -> None:
        feature["flow"][1]["service"]["retry"]["times"] = 99
        feature["flow"][2]["entity"]["type"] = "ai_clon"
        feature["flow"][2]["entity"]["status"] = "alive"
        feature["flow"][3]["connect"]["type"] = "ownz"
        feature["flow"][3]["connect"]["from"] = "$nothing"
        feature["flow"][4]["event"]["type"] = "clone_exploded"
        del feature["flow"][5]["return"]["voiceId"]

    assert codes(mutated(change)) == [
        ("$.flow[1].service.retry.times", "bad_retry"),
        ("$.flow[2].entity.type", "unknown_thing_type"),
        ("$.flow[2].entity.status", "unknown_status"),
        ("$.flow[3].connect.type", "unknown_connection_type"),
        ("$.flow[3].connect.from", "unknown_reference"),
        ("$.flow[4].event.type", "unknown_event_type"),
        ("$.flow[5].return.voiceId", "missing_field"),
    ]


def test_step_without_primitive_and_non_rollbackable_atomic_members() -> None:
    assert ("$.flow[3]", "missing_field") in codes(mutated(_set(("flow", 3), {"output": "x"})))
    service = {"service": {"provider": "p", "method": "m"}}
    nested = mutated(_set(("flow", 1, "atomic"), [service]), LAUNCH_COURSE)
    assert codes(nested, None) == [
        ("$.flow[1].atomic[0].service", "not_rollbackable"),
        ("$.flow[3].return.courseId", "unknown_reference"),
    ]


def test_query_needs_exactly_one_selector() -> None:
    both = mutated(_set(("flow", 2, "query", "things"), {"type": "course"}), LAUNCH_COURSE)
    assert codes(both, None) == [("$.flow[2].query", "ambiguous_query")]
    bad_type = mutated(_set(("flow", 2, "query", "connections", "type"), "ownz"), LAUNCH_COURSE)
    assert codes(bad_type, None) == [("$.flow[2].query.connections.type", "unknown_connection_type")]


def test_validate_rules_apply_to_matching_input_types() -> None:
    feature = mutated(_set(("flow", 0, "validate", "videoUrls"), {"pattern": "("}), LAUNCH_COURSE)
    assert codes(feature, None) == [("$.flow[0].validate.videoUrls", "unknown_reference")]
    bad_pattern = mutated(_set(("flow", 0, "validate", "title", "pattern"), "("), LAUNCH_COURSE)
    assert codes(bad_pattern, None) == [("$.flow[0].validate.title.pattern", "bad_pattern")]
    typed_without_exists = mutated(lambda f: f["flow"][0]["validate"]["creatorId"].pop("exists"))
    assert ("$.flow[0].validate.creatorId.exists", "missing_field") in codes(typed_without_exists)


def test_context_declarations_are_checked() -> None:
    assert ("context.personality", "bad_input_type") in codes(
        CREATE_AI_CLONE, {"audioSamples": "string[]", "personality": "persona"}
    )
    reserved = {**CREATE_AI_CLONE_CONTEXT, "input": "object"}
    assert ("context.input", "bad_name") in codes(CREATE_AI_CLONE, reserved)


# ---------------------------------------------------------------- ontology: legacy names


@pytest.mark.parametrize(
    ("step", "key", "name", "expected"),
    [
        (2, "entity", "post", {"type": "blog_post"}),
        (3, "connect", "follows", {"type": "following"}),
        (3, "connect", "purchased", {"type": "transacted", "metadata": {"transactionType": "purchase"}}),
        (4, "event", "entity_created", {"type": "entity_created"}),
        (4, "event", "payment_failed", {"type": "payment_processed", "metadata": {"status": "failed"}}),
    ],
)
def test_legacy_and_canonical_names_compile_to_consolidated_types(
    step: int, key: str, name: str, expected: dict[str, object]
) -> None:
    plan = compile_feature(mutated(_set(("flow", step, key, "type"), name)), CREATE_AI_CLONE_CONTEXT)
    args = plan.steps[step].args
    assert {k: args[k] for k in expected} == expected
    assert "metadata" in expected or "metadata" not in args


# ------------------------------------------------------------------- other features


def test_atomic_and_query_feature_compiles() -> None:
    plan = compile_feature(LAUNCH_COURSE)
    atomic, query = plan.steps[1], plan.steps[2]
    assert atomic.kind == "atomic" and atomic.on_error == {"error": "CourseNotSaved"}
    assert [(s.path, s.kind) for s in atomic.steps] == [
        ("$.flow[1].atomic[0]", "entity"),
        ("$.flow[1].atomic[1]", "connect"),
        ("$.flow[1].atomic[2]", "event"),
    ]
    assert atomic.steps[2].args["metadata"] == {"entityType": "course"}
    assert query.args == {"connections": {"from": "$input.creatorId", "type": "owns", "limit": 50}}
    assert query.outputs == (Binding("owned"),)
    assert plan.input["price"] == TypeSpec("number", optional=True)
    assert plan.steps[0].rules[2].minimum == 0.0


def test_if_feature_compiles_with_both_branches() -> None:
    plan = compile_feature(CHAT_WITH_CLONE)
    branch = plan.steps[2]
    assert branch.kind == "if" and branch.args == {"condition": "$holdings"}
    assert [s.kind for s in branch.steps] == ["service", "entity", "connect", "event", "return"]
    assert branch.steps[0].retry == Retry(times=2, delay_s=0.5)
    assert branch.steps[3].args["type"] == "token_transacted"
    assert branch.steps[3].args["metadata"] == {"amount": 10, "action": "earned"}
    assert [s.path for s in branch.else_steps] == ["$.flow[2].if.else[0]"]


def test_names_bound_in_one_branch_are_not_in_scope_after_the_if() -> None:
    def branching(else_steps: list[dict[str, Any]]) -> Feature:
        return {
            "feature": "Greet",
            "input": {"fanId": "Id<entities>"},
            "output": {"noteId": "Id<entities>"},
            "flow": [
                {"query": {"thing": "$input.fanId"}, "output": "fan"},
                {"if": {"condition": "$fan", "then": [
                    {"entity": {"type": "message", "name": "hi"}, "output": "noteId"}], "else": else_steps}},
                {"return": {"noteId": "$noteId"}},
            ],
        }

    assert codes(branching([{"event": {"type": "user_engaged", "entity": "$input.fanId"}}]), None) == [
        ("$.flow[2].return.noteId", "unknown_reference")
    ]
    assert codes(branching([{"entity": {"type": "message", "name": "bye"}, "output": "noteId"}]), None) == []
    assert codes(branching([{"return": {"noteId": "$input.fanId"}}]), None) == []


# ------------------------------------------------------------------------- evaluate

SCOPE: dict[str, object] = {
    "input": {"creatorId": "creator-1", "videoUrls": ["a", "b", "c"]},
    "creator": {"name": "Ada", "properties": {"followers": 1200}},
    "personality": {"systemPrompt": "Be Ada."},
    "voiceId": "voice-9",
    "cloneId": "clone-3",
}


def test_evaluate_resolves_the_seed_expressions() -> None:
    entity = CREATE_AI_CLONE["flow"][2]["entity"]
    assert evaluate(entity["name"], SCOPE) == "Ada AI Clone"
    assert evaluate(entity["properties"], SCOPE) == {
        "voiceId": "voice-9",
        "systemPrompt": "Be Ada.",
        "temperature": 0.7,
    }
    assert evaluate(CREATE_AI_CLONE["flow"][3]["connect"], SCOPE) == {
        "from": "creator-1",
        "to": "clone-3",
        "type": "owns",
    }
    result = evaluate(CREATE_AI_CLONE["flow"][5]["return"], SCOPE)
    assert result == {"cloneId": "clone-3", "voiceId": "voice-9"}


def test_evaluate_values_literals_and_concatenation() -> None:
    assert evaluate("$input.videoUrls", SCOPE) == ["a", "b", "c"]
    assert evaluate("$input.videoUrls.1", SCOPE) == "b"
    assert evaluate("$creator.properties.followers + ' fans'", SCOPE) == "1200 fans"
    assert evaluate("'Clone of ' + $creator.name", SCOPE) == "Clone of Ada"
    assert evaluate(["$voiceId", 3, None, True], SCOPE) == ["voice-9", 3, None, True]
    assert evaluate("active", SCOPE) == "active"
    assert evaluate("costs $5", SCOPE) == "costs $5"
    assert evaluate(0.7, SCOPE) == 0.7


@pytest.mark.parametrize(
    ("expression", "reference"),
    [
        ("$missing", "$missing"),
        ("$creator.title + '!'", "$creator.title"),
        ("$input.nope", "$input.nope"),
        ({"deep": ["$cloneId", "$gone.x"]}, "$gone.x"),
        ("$creator + ' clone'", "$creator"),
        ("$creator +", "$creator +"),
    ],
)
def test_evaluate_names_what_it_cannot_resolve(expression: object, reference: str) -> None:
    with pytest.raises(DslRuntimeError) as caught:
        evaluate(expression, SCOPE)
    assert caught.value.reference == reference
    assert reference in str(caught.value)
