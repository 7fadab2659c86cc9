"""Pure domain rules (no database): things, connections, people, organizations, activity,
and reading a version-1 `thing.created` back as version 2."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from domain.activity import Activity
from domain.catalog import AGGREGATES, EVENT_CLASSES
from domain.connections import Connection, connection_id, validate_revenue_share
from domain.errors import AlreadyExists, InvalidState, ValidationFailed
from domain.ontology import OntologyError
from domain.organizations import Organization, Person
from domain.things import Thing, merge_properties, normalize_tags
from eventlog.envelope import decode_notification

ORG = str(uuid.uuid4())
ACTOR = str(uuid.uuid4())


def thing(**fields: Any) -> Thing:
    args: dict[str, Any] = {"id": uuid.uuid4(), "org_id": ORG, "actor_id": ACTOR,
                            "type": "course", "name": "Yoga 101", **fields}
    return Thing.create(**args)


def event_types(aggregate: Any) -> list[str]:
    return [type(e).TYPE for e in aggregate.collect_events()]


# ---- things ------------------------------------------------------------------------------------


def test_create_validates_and_normalises() -> None:
    t = thing(type="post", name="  Hello  ", properties={"a": 1}, tags=["Topic:AI", "topic:AI"])
    assert (t.type, t.name, t.status, t.deleted) == ("blog_post", "Hello", "draft", False)
    assert t.tags == ["topic:AI"] and t.properties == {"a": 1}
    assert (t.org_id, t.version) == (ORG, 1)
    created = t.collect_events()[0]
    assert isinstance(created, Thing.Created)
    assert (created.org_id, created.actor_id, created.status) == (ORG, ACTOR, "draft")


@pytest.mark.parametrize(("fields", "field"), [
    ({"type": "spaceship"}, "type"),
    ({"type": "Creator"}, "type"),  # matching is exact
    ({"name": ""}, "name"),
    ({"name": " \t"}, "name"),
    ({"name": "x" * 501}, "name"),
    ({"status": "deleted"}, "status"),
    ({"tags": ["topic"]}, "tags[0]"),
    ({"tags": ["topic:ai", "colour:red"]}, "tags[1]"),
    ({"tags": ["topic:" + "x" * 101]}, "tags[0]"),
])
def test_create_refuses_bad_input(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(OntologyError) as error:
        thing(**fields)
    assert error.value.field == field and error.value.code == "validation_error"


def test_properties_are_copied_not_shared() -> None:
    given = {"a": 1}
    t = thing(properties=given)
    given["b"] = 2
    assert t.properties == {"a": 1}


def test_update_merges_properties_and_renames() -> None:
    t = thing(properties={"a": 1, "b": {"x": 1}, "c": 3})
    t.collect_events()
    t.update(ACTOR, " Renamed ", {"a": None, "b": {"y": 2}, "d": 4, "missing": None})
    assert t.name == "Renamed"
    assert t.properties == {"b": {"y": 2}, "c": 3, "d": 4}
    t.update(ACTOR, None, {"e": 5})
    assert t.name == "Renamed" and t.properties["e"] == 5
    assert event_types(t) == ["thing.updated", "thing.updated"]
    assert t.version == 3


def test_update_needs_something_and_a_valid_name() -> None:
    t = thing()
    with pytest.raises(ValidationFailed) as nothing:
        t.update(ACTOR, None, None)
    assert nothing.value.field == "name"
    with pytest.raises(ValidationFailed):
        t.update(ACTOR, None, {})
    with pytest.raises(OntologyError):
        t.update(ACTOR, "  ", {"a": 1})
    assert t.version == 1


def test_status_lifecycle() -> None:
    t = thing()
    t.collect_events()
    t.change_status(ACTOR, "published")
    t.change_status(ACTOR, "archived")
    events: list[Any] = list(t.collect_events())
    assert [(e.previous, e.status) for e in events] == [("draft", "published"),
                                                         ("published", "archived")]
    with pytest.raises(InvalidState) as same:
        t.change_status(ACTOR, "archived")
    assert same.value.field == "status"
    with pytest.raises(OntologyError):
        t.change_status(ACTOR, "gone")
    assert thing(status="active").status == "active"


def test_soft_delete_blocks_edits_until_restored() -> None:
    t = thing()
    t.delete(ACTOR)
    assert t.deleted
    edits: tuple[Callable[[], None], ...] = (
        lambda: t.update(ACTOR, "x", None), lambda: t.change_status(ACTOR, "published"),
        lambda: t.tag(ACTOR, ["topic:x"]), lambda: t.untag(ACTOR, ["topic:x"]),
        lambda: t.delete(ACTOR))
    for edit in edits:
        with pytest.raises(InvalidState):
            edit()
    t.restore(ACTOR)
    assert not t.deleted
    with pytest.raises(InvalidState):
        t.restore(ACTOR)
    t.update(ACTOR, "back", None)
    assert event_types(t) == ["thing.created", "thing.deleted", "thing.restored",
                              "thing.updated"]


def test_tag_and_untag_only_record_changes() -> None:
    t = thing(tags=["topic:ai"])
    t.collect_events()
    t.tag(ACTOR, ["TOPIC:ai", "skill:python", "skill:python"])
    assert t.tags == ["topic:ai", "skill:python"]
    events = list[Any](t.collect_events())
    assert len(events) == 1 and events[0].tags == ["skill:python"]
    t.tag(ACTOR, ["topic:ai"])  # already there
    t.untag(ACTOR, ["goal:job"])  # not there
    assert t.collect_events() == [] and t.version == 2
    t.untag(ACTOR, ["Topic:ai"])
    assert t.tags == ["skill:python"]
    with pytest.raises(OntologyError):
        t.tag(ACTOR, ["bad"])


def test_merge_properties_is_a_shallow_merge_patch() -> None:
    current = {"a": 1, "nested": {"x": 1, "y": 2}}
    merged = merge_properties(current, {"a": None, "nested": {"x": 3}, "b": [1], "gone": None})
    assert merged == {"nested": {"x": 3}, "b": [1]}
    assert current == {"a": 1, "nested": {"x": 1, "y": 2}}  # input untouched
    assert merge_properties({}, {}) == {}
    assert merge_properties({"f": True}, {"f": False}) == {"f": False}  # falsy is a value


def test_normalize_tags_canonical_deduplicated_in_order() -> None:
    assert normalize_tags(["Skill:Go", " topic : AI ", "skill:Go", "SKILL:Go"]) == [
        "skill:Go", "topic:AI"]
    assert normalize_tags([]) == []
    with pytest.raises(OntologyError) as error:
        normalize_tags(["skill:go", "nope"], field="collaborators")
    assert error.value.field == "collaborators[1]"


# ---- connections -------------------------------------------------------------------------------


def test_connection_ids_are_deterministic() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert connection_id(a, "following", b) == connection_id(a, "following", b)
    assert connection_id(a, "following", b) != connection_id(b, "following", a)
    assert connection_id(a, "following", b) != connection_id(a, "owns", b)
    assert isinstance(connection_id(a, "owns", b), UUID)
    c = Connection.create(org_id=ORG, actor_id=ACTOR, from_id=a, to_id=b, type="follows")
    assert c.type == "following"  # legacy name normalised before the id is derived
    assert c.id == connection_id(a, "following", b)
    assert (c.from_id, c.to_id, c.removed, c.version) == (str(a), str(b), False, 1)


def test_connection_refuses_bad_endpoints_and_types() -> None:
    a = uuid.uuid4()
    with pytest.raises(OntologyError) as same:
        Connection.create(org_id=ORG, actor_id=ACTOR, from_id=a, to_id=a, type="owns")
    assert same.value.field == "to_id"
    with pytest.raises(OntologyError) as kind:
        Connection.create(org_id=ORG, actor_id=ACTOR, from_id=a, to_id=uuid.uuid4(),
                          type="likes")
    assert kind.value.field == "type"


def test_remove_and_reestablish() -> None:
    c = Connection.create(org_id=ORG, actor_id=ACTOR, from_id=uuid.uuid4(), to_id=uuid.uuid4(),
                          type="holds_tokens", metadata={"balance": 10})
    with pytest.raises(AlreadyExists) as live:
        c.reestablish(ACTOR, {"balance": 1})
    assert live.value.field == "to_id"
    c.update_metadata(ACTOR, {"balance": 20, "note": "x"})
    c.update_metadata(ACTOR, {"note": None})
    assert c.metadata == {"balance": 20}
    c.remove(ACTOR)
    assert c.removed
    refusals: tuple[Callable[[], None], ...] = (
        lambda: c.remove(ACTOR), lambda: c.update_metadata(ACTOR, {"balance": 1}))
    for refused in refusals:
        with pytest.raises(InvalidState):
            refused()
    c.reestablish(ACTOR, {"balance": 5})
    assert (c.removed, c.metadata) == (False, {"balance": 5})  # fresh metadata, not merged
    assert event_types(c) == ["connection.created", "connection.metadata_updated",
                              "connection.metadata_updated", "connection.removed",
                              "connection.reestablished"]
    with pytest.raises(ValidationFailed):
        c.update_metadata(ACTOR, {})


@pytest.mark.parametrize("share", [0, 0.0, 0.5, 1, 1.0])
def test_revenue_share_accepts_fractions(share: float) -> None:
    validate_revenue_share({"revenueShare": share})


@pytest.mark.parametrize("share", [-0.01, 1.01, 2, True, False, "0.5", [0.5], {"v": 1}])
def test_revenue_share_refuses_non_fractions(share: Any) -> None:
    with pytest.raises(ValidationFailed) as error:
        validate_revenue_share({"revenueShare": share})
    assert error.value.field == "metadata.revenueShare"


def test_revenue_share_checked_on_every_path() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    validate_revenue_share({})  # absent is fine
    with pytest.raises(ValidationFailed):
        Connection.create(org_id=ORG, actor_id=ACTOR, from_id=a, to_id=b, type="owns",
                          metadata={"revenueShare": 1.5})
    c = Connection.create(org_id=ORG, actor_id=ACTOR, from_id=a, to_id=b, type="owns",
                          metadata={"revenueShare": 0.7})
    with pytest.raises(ValidationFailed):
        c.update_metadata(ACTOR, {"revenueShare": -1})
    c.remove(ACTOR)
    with pytest.raises(ValidationFailed):
        c.reestablish(ACTOR, {"revenueShare": "all"})
    assert c.removed and c.metadata == {"revenueShare": 0.7}


# ---- people, organizations, activity -------------------------------------------------------


def test_person_validation() -> None:
    p = Person.create(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, role="org_user", personal=None)
    assert (p.role, p.account_status, p.auth_method, p.org_id) == ("org_user", "active", "email", ORG)
    for fields, error_type, field in (
        ({"role": "admin"}, OntologyError, "role"),
        ({"account_status": "gone"}, ValidationFailed, "account_status"),
        ({"auth_method": "password"}, ValidationFailed, "primary_auth_method"),
    ):
        args: dict[str, Any] = {"id": uuid.uuid4(), "org_id": ORG, "actor_id": ACTOR,
                                "role": "customer", "personal": None, **fields}
        with pytest.raises(error_type) as error:
            Person.create(**args)
        assert error.value.field == field
    p.change_role(ACTOR, "org_owner")
    assert p.role == "org_owner"
    with pytest.raises(InvalidState):
        p.change_role(ACTOR, "org_owner")


def test_organization_validation() -> None:
    org_id = uuid.uuid4()
    org = Organization.create(id=org_id, actor_id=ACTOR, name="Acme", slug="acme-2", plan="pro")
    assert org.org_id == str(org_id)  # a tenant owns itself
    assert list[Any](org.collect_events())[0].org_id == str(org_id)
    for slug in ("Acme", "-acme", "acme-", "ac me", "", "a" * 65):
        with pytest.raises(ValidationFailed) as error:
            Organization.create(id=uuid.uuid4(), actor_id=ACTOR, name="A", slug=slug, plan="x")
        assert error.value.field == "slug"
    with pytest.raises(ValidationFailed):
        org.update(ACTOR, None, None)
    org.update(ACTOR, None, "enterprise")
    assert (org.name, org.plan) == ("Acme", "enterprise")
    org.update(ACTOR, "Acme Inc", None)
    assert (org.name, org.plan) == ("Acme Inc", "enterprise")
    assert all(e.org_id == str(org_id) for e in list[Any](org.collect_events()))


def test_activity_normalises_legacy_names() -> None:
    a = Activity.record(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, type="content_liked",
                        target_id=None, metadata={"by": "x"})
    assert (a.type, a.metadata, a.target_id) == ("content_interacted",
                                                 {"by": "x", "interactionType": "liked"}, None)
    target = uuid.uuid4()
    paid = Activity.record(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, type="payment_failed",
                           target_id=target)
    assert (paid.type, paid.metadata, paid.target_id) == ("payment_processed",
                                                          {"status": "failed"}, str(target))
    with pytest.raises(OntologyError) as error:
        Activity.record(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, type="payment_failed",
                        target_id=None, metadata={"status": "completed"})
    assert error.value.field == "metadata.status"


def _public_name(value: object) -> str:
    return str(getattr(value, "TYPE", "")) if isinstance(value, type) else ""


def test_every_public_event_type_is_unique_and_named() -> None:
    declared = [_public_name(value) for aggregate in AGGREGATES for value in vars(aggregate).values()
                if _public_name(value)]
    assert sorted(declared) == sorted(EVENT_CLASSES)  # no two classes share a public name
    assert {"thing.created", "thing.updated", "connection.reestablished", "activity.recorded",
            "person.created", "organization.created"} <= set(EVENT_CLASSES)
    assert all(name == cls.TYPE for name, cls in EVENT_CLASSES.items())


# ---- upcasting -------------------------------------------------------------------------------


def v1_thing_created(app: Application[UUID]) -> tuple[UUID, StoredEvent]:
    """A `thing.created` as version 1 stored it: no `status`, no `class_version`."""
    t = thing(name="Legacy", status="published", tags=["topic:history"])
    stored = app.mapper.to_stored_event(t.collect_events()[0])
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    assert state.pop("status") == "published"
    return t.id, StoredEvent(originator_id=stored.originator_id, originator_version=1,
                             topic=stored.topic, state=json.dumps(state).encode())


def test_v1_thing_created_is_upcast_by_the_repository_and_the_envelope() -> None:
    app: Application[UUID] = Application()  # in-memory recorder, the same mapper
    thing_id, v1 = v1_thing_created(app)
    app.recorder.insert_events([v1])

    event = app.mapper.to_domain_event(v1)
    assert isinstance(event, Thing.Created) and event.status == "draft"
    aggregate: Any = app.repository.get(thing_id)
    assert isinstance(aggregate, Thing)
    assert (aggregate.status, aggregate.name, aggregate.tags) == ("draft", "Legacy",
                                                                  ["topic:history"])
    aggregate.change_status(ACTOR, "published")  # a v1 thing lives on normally
    app.save(aggregate)
    assert app.repository.get(thing_id).status == "published"

    notifications = app.recorder.select_notifications(start=1, limit=10)
    first = decode_notification(notifications[0])
    assert (first.type, first.schema_version, first.version) == ("thing.created", 2, 1)
    assert first.data["status"] == "draft" and first.data["name"] == "Legacy"
    assert "class_version" not in first.data and "timestamp" not in first.data
    assert (first.org_id, first.actor_id, first.stream_id) == (ORG, ACTOR, str(thing_id))
    second = decode_notification(notifications[1])
    assert (second.type, second.data["previous"], second.data["status"]) == (
        "thing.status_changed", "draft", "published")


def test_v2_thing_created_is_not_upcast() -> None:
    app: Application[UUID] = Application()
    t = thing(status="published")
    app.save(t)
    envelope = decode_notification(app.recorder.select_notifications(start=1, limit=1)[0])
    assert envelope.data["status"] == "published" and envelope.schema_version == 2
    assert app.repository.get(t.id).status == "published"
