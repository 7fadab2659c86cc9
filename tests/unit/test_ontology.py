"""Unit tests for the ONE ontology catalog and validators (domain/ontology.py)."""

from __future__ import annotations

from typing import Any

import pytest

from domain import ontology as o
from domain.errors import ValidationFailed
from domain.ontology import (
    CONNECTION_TYPES,
    EVENT_TYPES,
    LEGACY_ALIASES,
    LEGACY_VARIANTS,
    ROLES,
    TAG_CATEGORIES,
    THING_STATUSES,
    THING_TYPES,
    OntologyError,
    format_tag,
    normalize_connection,
    normalize_connection_type,
    normalize_event_type,
    normalize_thing_type,
    parse_tag,
    validate_connection_endpoints,
    validate_name,
    validate_role,
    validate_status,
)

# ------------------------------------------------------------------ catalog shape


def test_version_is_a_non_empty_string() -> None:
    assert isinstance(o.ONTOLOGY_VERSION, str)
    assert o.ONTOLOGY_VERSION


def test_catalog_sizes() -> None:
    assert len(THING_TYPES) >= 46
    assert len(THING_TYPES) == 51  # 2026.2 added `event` (community events, the Poktapok plan)
    assert len(CONNECTION_TYPES) == 37
    assert len(EVENT_TYPES) == 58
    assert len(TAG_CATEGORIES) == 9


def test_catalogs_are_frozen() -> None:
    for catalog in (
        THING_TYPES,
        CONNECTION_TYPES,
        EVENT_TYPES,
        TAG_CATEGORIES,
        THING_STATUSES,
        ROLES,
    ):
        assert isinstance(catalog, frozenset)
    with pytest.raises(TypeError):
        LEGACY_ALIASES["event"]["x"] = "y"  # type: ignore[index]


def test_names_are_lowercase_snake_case() -> None:
    for name in THING_TYPES | CONNECTION_TYPES | EVENT_TYPES | TAG_CATEGORIES:
        assert name == name.lower()
        assert name.replace("_", "").isalpha()


def test_groups_have_no_duplicates() -> None:
    for groups in (o.THING_TYPE_GROUPS, o.CONNECTION_TYPE_GROUPS, o.EVENT_TYPE_GROUPS):
        names = [n for members in groups.values() for n in members]
        assert len(names) == len(set(names))


@pytest.mark.parametrize(
    "name",
    [
        "creator",
        "ai_clone",
        "audience_member",
        "token",
        "token_contract",
        "course",
        "lesson",
        "blog_post",
        "video",
        "strategy_agent",
        "intelligence_agent",
        "livestream",
        "media_asset",
        "payment",
        "subscription",
        "lead",
        "campaign",
    ],
)
def test_known_thing_types(name: str) -> None:
    assert name in THING_TYPES
    assert normalize_thing_type(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "owns",
        "authored",
        "following",
        "holds_tokens",
        "holds",
        "part_of",
        "collaborates_with",
        "transacted",
        "engaged_with",
        "referred_by",
        "teaching",
    ],
)
def test_required_connection_types(name: str) -> None:
    assert name in CONNECTION_TYPES
    assert normalize_connection_type(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "content_viewed",
        "tokens_purchased",
        "payment_processed",
        "revenue_generated",
        "token_deployed",
        "entity_created",
        "token_transacted",
        "clone_interaction",
        "content_changed",
        "livestream_status_changed",
    ],
)
def test_required_event_types_are_canonical(name: str) -> None:
    assert name in EVENT_TYPES
    assert normalize_event_type(name) == (name, {})


def test_tags_statuses_roles() -> None:
    assert {
        "industry",
        "skill",
        "topic",
        "format",
        "goal",
        "audience",
        "technology",
        "status",
    } <= TAG_CATEGORIES
    assert {"draft", "active", "inactive", "published", "archived"} == THING_STATUSES
    assert {"platform_owner", "org_owner", "org_user", "customer"} == ROLES


# ------------------------------------------------------------------ alias tables


def test_alias_tables_are_consistent() -> None:
    canonical = {"thing": THING_TYPES, "connection": CONNECTION_TYPES, "event": EVENT_TYPES}
    assert set(LEGACY_ALIASES) == set(canonical) == set(LEGACY_VARIANTS)
    for dimension, table in LEGACY_ALIASES.items():
        assert set(table) == set(LEGACY_VARIANTS[dimension])
        for old, new in table.items():
            assert old not in canonical[dimension], old
            assert new in canonical[dimension], new


@pytest.mark.parametrize(
    ("old", "new", "variant"),
    [
        ("creator_created", "entity_created", {"entityType": "creator"}),
        ("creator_updated", "entity_updated", {"entityType": "creator"}),
        ("clone_created", "entity_created", {"entityType": "ai_clone"}),
        ("payment_completed", "payment_processed", {"status": "completed"}),
        ("payment_failed", "payment_processed", {"status": "failed"}),
        ("payment_refunded", "payment_processed", {"status": "refunded"}),
        ("agent_failed", "agent_executed", {"status": "failed"}),
        ("tokens_earned", "token_transacted", {"action": "earned"}),
        ("tokens_unstaked", "token_staked", {"action": "unstaked"}),
        ("subscription_cancelled", "subscription_changed", {"action": "cancelled"}),
        ("governance_vote", "governance_action", {"actionType": "vote"}),
        ("lesson_completed", "progress_updated", {"status": "completed", "entityType": "lesson"}),
        ("subscription_updated", "subscription_changed", {}),
        ("viral_share", "viral_shared", {}),
        ("referral_made", "referral_created", {}),
    ],
)
def test_legacy_event_normalisation(old: str, new: str, variant: dict[str, str]) -> None:
    assert old not in EVENT_TYPES
    assert normalize_event_type(old) == (new, variant)
    assert LEGACY_ALIASES["event"][old] == new


def test_event_variant_merges_with_existing_metadata() -> None:
    event_type, meta = normalize_event_type("payment_failed", {"amount": 10, "status": "failed"})
    assert event_type == "payment_processed"
    assert meta == {"amount": 10, "status": "failed"}


def test_input_metadata_is_not_mutated_and_result_is_a_copy() -> None:
    original: dict[str, Any] = {"amount": 5, "nested": {"a": 1}}
    snapshot = {"amount": 5, "nested": {"a": 1}}
    _, meta = normalize_event_type("tokens_burned", original)
    assert original == snapshot
    assert meta == {"amount": 5, "nested": {"a": 1}, "action": "burned"}
    meta["extra"] = True
    assert "extra" not in original
    _, same = normalize_event_type("tokens_purchased", original)
    assert same == original and same is not original


def test_contradicting_variant_metadata_is_rejected() -> None:
    with pytest.raises(OntologyError) as err:
        normalize_event_type("payment_failed", {"status": "completed"})
    assert err.value.field == "metadata.status"
    assert err.value.code == "validation_error"


def test_non_mapping_metadata_is_rejected() -> None:
    with pytest.raises(OntologyError) as err:
        normalize_event_type("content_viewed", ["x"])  # type: ignore[arg-type]
    assert err.value.field == "metadata"


@pytest.mark.parametrize(
    ("old", "new", "variant"),
    [
        ("follows", "following", {}),
        ("purchased", "transacted", {"transactionType": "purchase"}),
        ("subscribed_to", "transacted", {"transactionType": "subscription"}),
        ("invoiced_to", "transacted", {"transactionType": "invoice"}),
        ("staked_in", "holds", {"assetType": "stake"}),
        ("content_liked", "engaged_with", {"engagementType": "liked"}),
    ],
)
def test_legacy_connection_normalisation(old: str, new: str, variant: dict[str, str]) -> None:
    assert normalize_connection_type(old) == new
    assert normalize_connection(old, {"since": 1}) == (new, {"since": 1, **variant})


def test_legacy_thing_normalisation() -> None:
    assert normalize_thing_type("post") == "blog_post"
    assert normalize_thing_type("comment") == "message"


# ------------------------------------------------------------------ unknown names


@pytest.mark.parametrize("bad", ["", "Creator", "ai-clone", " creator", "organization", "user"])
def test_unknown_thing_type(bad: str) -> None:
    with pytest.raises(OntologyError) as err:
        normalize_thing_type(bad)
    assert err.value.field == "type"
    assert err.value.code == "validation_error"
    assert "unknown thing type" in err.value.message
    assert str(err.value) == err.value.message


def test_unknown_names_carry_custom_field() -> None:
    with pytest.raises(OntologyError) as err:
        normalize_thing_type("spaceship", field="things[0].type")
    assert err.value.field == "things[0].type"
    with pytest.raises(OntologyError) as err:
        normalize_connection_type("HOLDS_TOKENS", field="relationship")
    assert err.value.field == "relationship"
    with pytest.raises(OntologyError) as err:
        normalize_event_type("token-deployed", field="event_type")
    assert err.value.field == "event_type"
    with pytest.raises(OntologyError) as err:
        normalize_connection("nope", {}, field="kind")
    assert err.value.field == "kind"


def test_non_string_type_is_rejected_not_crashing() -> None:
    with pytest.raises(OntologyError) as err:
        normalize_thing_type(42)  # type: ignore[arg-type]
    assert err.value.field == "type"


def test_ontology_error_is_a_validation_failure() -> None:
    err = OntologyError("f", "msg")
    assert isinstance(err, ValueError) and isinstance(err, ValidationFailed)
    assert (err.field, err.message, err.code) == ("f", "msg", "validation_error")


# ------------------------------------------------------------------ simple validators


def test_validate_status_and_role() -> None:
    assert validate_status("published") == "published"
    assert validate_role("org_owner") == "org_owner"
    for bad in ("deleted", "Active", ""):
        with pytest.raises(OntologyError) as err:
            validate_status(bad)
        assert err.value.field == "status"
    with pytest.raises(OntologyError) as err:
        validate_role("admin", field="actor.role")
    assert err.value.field == "actor.role"


def test_validate_name() -> None:
    assert validate_name("  Jane Doe \n") == "Jane Doe"
    assert validate_name("x" * 500) == "x" * 500
    with pytest.raises(OntologyError) as err:
        validate_name("   ")
    assert err.value.field == "name"
    with pytest.raises(OntologyError) as err:
        validate_name("x" * 501)
    assert err.value.field == "name"
    with pytest.raises(OntologyError) as err:
        validate_name("abcd", field="title", max_length=3)
    assert err.value.field == "title"
    with pytest.raises(OntologyError):
        validate_name(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------ tags


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("industry:fitness", ("industry", "fitness")),
        (" Skill : Video Editing ", ("skill", "Video Editing")),
        ("FORMAT:live", ("format", "live")),
        ("topic:a:b", ("topic", "a:b")),
        ("capability:rag", ("capability", "rag")),
    ],
)
def test_parse_tag(tag: str, expected: tuple[str, str]) -> None:
    assert parse_tag(tag) == expected


@pytest.mark.parametrize(
    "bad",
    ["fitness", "colour:red", "industry:", "industry:   ", ":fitness", "industry:" + "x" * 101, ""],
)
def test_parse_tag_rejects_bad_tags(bad: str) -> None:
    with pytest.raises(OntologyError) as err:
        parse_tag(bad)
    assert err.value.field == "tags"


def test_parse_tag_value_length_boundary_and_field() -> None:
    assert parse_tag("topic:" + "y" * 100)[1] == "y" * 100
    with pytest.raises(OntologyError) as err:
        parse_tag("nope:x", field="tags[2]")
    assert err.value.field == "tags[2]"


def test_format_tag_round_trip() -> None:
    assert format_tag("Industry", " fitness ") == "industry:fitness"
    assert parse_tag(format_tag("goal", "grow audience")) == ("goal", "grow audience")
    with pytest.raises(OntologyError):
        format_tag("bogus", "x")
    with pytest.raises(OntologyError):
        format_tag("topic", "")


# ------------------------------------------------------------------ endpoints


def test_connection_endpoints() -> None:
    validate_connection_endpoints("thing-1", "thing-2")
    cases = [("", "b", "from_id"), ("  ", "b", "from_id"), ("a", "", "to_id"), ("a", "a", "to_id")]
    for from_id, to_id, field in cases:
        with pytest.raises(OntologyError) as err:
            validate_connection_endpoints(from_id, to_id)
        assert err.value.field == field
        assert err.value.code == "validation_error"
