"""Pure projectors: an envelope in, new rows and SQL statements out (no database)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import pytest
from eventsourcing.application import Application
from psycopg.types.json import Jsonb

from domain.things import Thing
from eventlog.envelope import Envelope, decode_notification
from projections.activity import ACTIVITY, activity_of, project_activity
from projections.base import Change, NewRow, TagChange, split_patch
from projections.connections import CONNECTIONS, project_connections
from projections.new_rows import as_text
from projections.registry import PROJECTIONS
from projections.tag_changes import fold
from projections.tags import TAGS, project_tags
from projections.things import THINGS, project_things

STREAM = str(uuid.uuid4())
ORG = str(uuid.uuid4())
ACTOR = str(uuid.uuid4())
AT = "2026-01-02T03:04:05.000006+00:00"


def env(type: str, data: dict[str, Any] | None = None, *, version: int = 3,
        position: int = 42) -> Envelope:
    return Envelope(position=position, stream_id=STREAM, version=version, type=type,
                    schema_version=1, occurred_at=AT, org_id=ORG, actor_id=ACTOR,
                    data=data or {})


def unwrap(params: Any) -> Any:
    """Statement parameters with Jsonb wrappers replaced by ('jsonb', value)."""
    if isinstance(params, dict):
        return {k: unwrap(v) for k, v in params.items()}
    if isinstance(params, tuple):
        return tuple(unwrap(p) for p in params)
    if isinstance(params, Jsonb):
        return ("jsonb", params.obj)
    return params


def only(changes: Sequence[Change]) -> tuple[str, Any]:
    assert len(changes) == 1, changes
    assert isinstance(changes[0], tuple), changes
    sql, params = changes[0]
    if isinstance(params, tuple):
        assert sql.count("%s") == len(params), "one parameter per placeholder"
    return sql, unwrap(params)


def new_row(changes: Sequence[Change], table: str, key: str) -> dict[str, Any]:
    """The values of the one new row of `table` the changes hold."""
    assert len(changes) == 1 and isinstance(changes[0], NewRow), changes
    assert (changes[0].table, changes[0].key) == (table, key)
    return changes[0].values


GUARD = (3, 42, AT, STREAM, 3)  # SET version, position, updated_at; WHERE id, version <

THING_CREATED = {"type": "course", "name": "Yoga", "properties": {"a": 1}, "status": "draft",
                 "tags": ["topic:ai", "skill:go"], "originator_topic": "domain.things:Thing"}


# ---- things --------------------------------------------------------------------------------


def test_thing_created_inserts_a_row() -> None:
    row = new_row(project_things(env("thing.created", THING_CREATED, version=1)), "things", "id")
    assert row == {"id": STREAM, "org_id": ORG, "type": "course", "name": "Yoga", "properties": {"a": 1},
                   "status": "draft", "tags": ["topic:ai", "skill:go"], "created_by": ACTOR,
                   "created_at": AT, "updated_at": AT, "created_position": 42, "version": 1, "position": 42}


def test_thing_updated_splits_the_merge_patch() -> None:
    sql, params = only(project_things(env("thing.updated", {
        "name": None, "properties": {"gone": None, "kept": 2, "other": None}})))
    assert sql.startswith("UPDATE things SET name = coalesce(%s, name)")
    assert "(properties - %s::text[]) || %s" in sql
    assert sql.endswith("WHERE id = %s AND version < %s")
    assert params == (None, ["gone", "other"], ("jsonb", {"kept": 2}), *GUARD)


@pytest.mark.parametrize(("type", "data", "assignment", "values"), [
    ("thing.status_changed", {"status": "published", "previous": "draft"}, "status = %s",
     ("published",)),
    ("thing.tagged", {"tags": ["goal:job"]}, "tags = tags || ARRAY(", (["goal:job"],)),
    ("thing.untagged", {"tags": ["goal:job"]}, "tags = ARRAY(SELECT t FROM unnest(tags)",
     (["goal:job"],)),
    ("thing.deleted", {}, "deleted_at = %s", (AT,)),
    ("thing.restored", {}, "deleted_at = NULL", ()),
])
def test_thing_changes_are_version_guarded_updates(
    type: str, data: dict[str, Any], assignment: str, values: tuple[Any, ...]
) -> None:
    sql, params = only(project_things(env(type, data)))
    assert sql.startswith(f"UPDATE things SET {assignment}")
    assert "version = %s, position = %s, updated_at = %s WHERE id = %s AND version < %s" in sql
    assert params == (*values, *GUARD)


# ---- tags --------------------------------------------------------------------------------------


def test_tags_one_change_per_tag_carrying_org_version_and_time() -> None:
    changes = project_tags(env("thing.created", THING_CREATED, version=1))
    assert changes == [TagChange(ORG, STREAM, tag, True, 1, AT) for tag in ("topic:ai", "skill:go")]
    assert project_tags(env("thing.untagged", {"tags": ["goal:job"]})) == [
        TagChange(ORG, STREAM, "goal:job", False, 3, AT)]


def test_tag_changes_fold_to_the_highest_version_and_the_last_attach() -> None:
    def change(tag: str, attached: bool, version: int, thing: str = STREAM) -> TagChange:
        return TagChange(ORG, thing, tag, attached, version, f"t{version}")

    other = str(uuid.uuid4())
    folded = fold([change("a", True, 2), change("a", False, 5), change("a", True, 1),
                   change("b", False, 3), change("a", True, 2, thing=other)])
    assert (folded[(STREAM, "a")].last, folded[(STREAM, "a")].last_attach) == (
        change("a", False, 5), change("a", True, 2))
    assert (folded[(STREAM, "b")].last, folded[(STREAM, "b")].last_attach) == (change("b", False, 3), None)
    assert folded[(other, "a")].last == change("a", True, 2, thing=other)


def test_tags_ignore_things_without_tags_and_other_types() -> None:
    assert project_tags(env("thing.created", {**THING_CREATED, "tags": []})) == []
    for type in ("thing.updated", "thing.deleted", "connection.created", "activity.recorded"):
        assert TAGS.apply(env(type, {"tags": ["topic:x"]})) == []


# ---- connections -----------------------------------------------------------------------------


def test_connection_created_inserts_an_edge() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    row = new_row(project_connections(env("connection.created", {
        "from_id": a, "to_id": b, "type": "owns", "metadata": {"revenueShare": 0.5}},
        version=1)), "connections", "id")
    assert row == {"id": STREAM, "org_id": ORG, "from_id": a, "to_id": b, "type": "owns",
                   "metadata": {"revenueShare": 0.5}, "created_at": AT, "updated_at": AT,
                   "version": 1, "position": 42}


@pytest.mark.parametrize(("type", "data", "assignment", "values"), [
    ("connection.metadata_updated", {"metadata": {"balance": 5, "note": None}},
     "metadata = (metadata - %s::text[]) || %s", (["note"], ("jsonb", {"balance": 5}))),
    ("connection.removed", {}, "removed_at = %s", (AT,)),
    ("connection.reestablished", {"metadata": {"via": "ad"}},
     "removed_at = NULL, metadata = %s", (("jsonb", {"via": "ad"}),)),
])
def test_connection_changes_are_version_guarded(
    type: str, data: dict[str, Any], assignment: str, values: tuple[Any, ...]
) -> None:
    sql, params = only(project_connections(env(type, data)))
    assert sql.startswith(f"UPDATE connections SET {assignment}, version = %s")
    assert sql.endswith("WHERE id = %s AND version < %s")
    assert params == (*values, *GUARD)


# ---- activity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("type", "data", "expected"), [
    ("activity.recorded", {"type": "content_viewed", "target_id": "t1", "metadata": {"s": 3}},
     ("content_viewed", "t1", {"s": 3})),
    ("activity.recorded", {"type": "payment_processed", "target_id": None, "metadata": {}},
     ("payment_processed", None, {})),
    ("thing.created", THING_CREATED, ("entity_created", STREAM,
                                      {"entityType": "course", "tagCount": 2})),
    ("thing.status_changed", {"status": "published", "previous": "draft"},
     ("entity_published", STREAM, {"status": "published", "previous": "draft"})),
    ("thing.status_changed", {"status": "archived", "previous": "published"},
     ("entity_archived", STREAM, {"status": "archived", "previous": "published"})),
    ("thing.status_changed", {"status": "active", "previous": "draft"},
     ("entity_updated", STREAM, {"status": "active", "previous": "draft"})),
    ("thing.updated", {"name": "x", "properties": {}}, ("entity_updated", STREAM, {})),
    ("thing.deleted", {}, ("entity_deleted", STREAM, {})),
    ("thing.restored", {}, ("entity_restored", STREAM, {})),
    ("person.created", {"name": "A", "email": "a@b.c", "role": "customer"},
     ("user_joined", STREAM, {"role": "customer"})),
])
def test_activity_rows(type: str, data: dict[str, Any], expected: tuple[Any, ...]) -> None:
    assert activity_of(env(type, data)) == expected
    row = new_row(ACTIVITY.apply(env(type, data)), "activity", "position")
    kind, target, metadata = expected
    assert row == {"position": 42, "event_id": STREAM, "org_id": ORG, "type": kind, "actor_id": ACTOR,
                   "target_id": target, "metadata": metadata, "occurred_at": AT}


@pytest.mark.parametrize("type", ["organization.created", "organization.updated",
                                  "person.role_changed", "thing.tagged", "thing.untagged",
                                  "connection.created", "connection.removed"])
def test_activity_ignores_other_events(type: str) -> None:
    assert activity_of(env(type, {"tags": ["topic:x"]})) is None
    assert project_activity(env(type, {"tags": ["topic:x"]})) == []
    assert ACTIVITY.apply(env(type, {"tags": ["topic:x"]})) == []


# ---- the registry and unrelated types ---------------------------------------------------------


@pytest.mark.parametrize("type", ["organization.created", "person.created", "activity.recorded",
                                  "thing.unknown_future_event"])
def test_things_and_connections_ignore_unrelated_types(type: str) -> None:
    assert project_things(env(type)) == [] and THINGS.apply(env(type)) == []
    assert project_connections(env(type)) == [] and CONNECTIONS.apply(env(type)) == []


def test_registry_lists_each_projection_with_its_tables() -> None:
    assert set(PROJECTIONS) == {"things", "tags", "connections", "activity", "sagas",
                                "organizations", "people", "api_keys", "schedules", "agent_executions"}
    assert PROJECTIONS["tags"].tables == ("tags", "thing_tags")
    assert all(p.name == name for name, p in PROJECTIONS.items())
    handled = set().union(*(p.handles for p in PROJECTIONS.values()))
    assert {"thing.created", "connection.reestablished", "activity.recorded"} <= handled
    assert {"organization.created", "person.erased", "api_key.revoked"} <= handled
    assert "username.claimed" not in handled  # claims are write-side only


def test_split_patch() -> None:
    assert split_patch({"a": None, "b": 0, "c": False, "d": None}) == (["a", "d"],
                                                                       {"b": 0, "c": False})
    assert split_patch({}) == ([], {})


def test_projectors_accept_decoded_stored_events() -> None:
    """The envelope a real stored event decodes to is what the projectors expect."""
    app: Application[uuid.UUID] = Application()
    t = Thing.create(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, type="course", name="Yoga",
                     properties={"a": 1}, tags=["topic:ai"])
    t.update(ACTOR, None, {"a": None, "b": 2})
    app.save(t)
    created, updated = (decode_notification(n)
                        for n in app.recorder.select_notifications(start=1, limit=10))
    row = new_row(THINGS.apply(created), "things", "id")
    assert list(row.values())[:8] == [str(t.id), ORG, "course", "Yoga", {"a": 1}, "draft", ["topic:ai"],
                                      ACTOR]
    assert (row["created_position"], row["version"], row["position"]) == (1, 1, 1)
    _, params = only(THINGS.apply(updated))
    assert params[:3] == (None, ["a"], ("jsonb", {"b": 2}))
    assert params[3:5] == (2, 2)
    assert [change.tag for change in project_tags(created)] == ["topic:ai"]


# ---- new rows, set-based ------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "sql_type", "text"), [
    (None, "jsonb", None),
    ({"a": [1, "é"], "b": None}, "jsonb", '{"a":[1,"é"],"b":null}'),
    ({"wei": 10**30}, "jsonb", '{"wei":1000000000000000000000000000000}'),  # beyond 64 bits: kept
    (["topic:ai", 'say "hi"', "back\\slash", "a,b", "{x}"], "text[]",
     '{"topic:ai","say \\"hi\\"","back\\\\slash","a,b","{x}"}'),
    ([], "text[]", "{}"),
    (True, "boolean", "true"),
    (42, "bigint", "42"),
    ("2026-01-02T03:04:05+00:00", "timestamp with time zone", "2026-01-02T03:04:05+00:00"),
])
def test_new_row_values_in_postgres_text_form(value: Any, sql_type: str, text: str | None) -> None:
    assert as_text(value, sql_type) == text


def test_new_rows_go_in_chunks_within_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    from projections import new_rows

    monkeypatch.setattr(new_rows, "MAX_BYTES", 1000)
    big = {"type": "x", "target_id": None, "metadata": {"blob": "b" * 600}}
    rows = [cast(NewRow, project_activity(env("activity.recorded", big, position=p))[0]) for p in (1, 2, 3)]
    types = dict.fromkeys(rows[0].values, "text") | {"metadata": "jsonb", "position": "bigint"}
    chunks = list(new_rows.column_arrays(rows, tuple(rows[0].values), types))
    assert [chunk[0] for chunk in chunks] == [["1", "2"], ["3"]]  # the position column, split by size
    assert chunks[0][5] == [None, None]  # target_id: NULL stays NULL
