"""The command bus against a real PostgreSQL: group commit, atomicity, ordering, contention,
idempotency, and reading back a v1-shaped stored event through the upcaster."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from api.runtime import Runtime
from commands import models as m
from commands.bus import CommandResult, IdempotencyMismatch
from commands.handlers import Context
from domain.errors import AlreadyExists, InvalidState, NotFound, ValidationFailed, VersionConflict
from domain.ontology import OntologyError
from domain.things import Thing
from eventlog.envelope import decode_notification
from eventlog.store import EVENTS_TABLE
from tests.conftest import log_head
from tests.support.waiting import wait_until

ACTOR = str(uuid.uuid4())


def ctx(**overrides: Any) -> Context:
    return Context(**{"actor_id": ACTOR, **overrides})


def new_thing(rt: Runtime, type: str = "creator", name: str = "Ann", **fields: Any) -> UUID:
    return UUID(rt.bus.execute(m.CreateThing(type=type, name=name, **fields), ctx()).body["id"])


def stream_rows(rt: Runtime, stream_id: UUID) -> list[tuple[int, int, str]]:
    """(version, position, inserting transaction id) of each stored event of a stream."""
    with psycopg.connect(rt.db.conninfo) as conn:
        rows = conn.execute(
            f"SELECT originator_version, notification_id, xmin::text FROM {EVENTS_TABLE}"
            " WHERE originator_id = %s ORDER BY originator_version", (stream_id,)).fetchall()
    return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]


def event_count(rt: Runtime) -> int:
    """Events in the log (positions may have gaps where a transaction rolled back)."""
    with psycopg.connect(rt.db.conninfo) as conn:
        row = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
    return int(row[0]) if row else 0


@contextmanager
def writer_held(rt: Runtime) -> Iterator[Future[CommandResult]]:
    """Make the writer queue commands up: hold the log's insert lock while a blocker command waits
    on it, then release. Everything submitted inside the block is committed as one group."""
    with psycopg.connect(rt.db.conninfo) as lock:
        lock.execute(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")
        blocker = rt.bus.submit(m.RecordActivity(type="content_viewed"), ctx())
        wait_for_waiters(lock, 1)
        yield blocker
        lock.rollback()
    blocker.result(timeout=20)


def outcome(future: Future[CommandResult]) -> CommandResult | BaseException:
    error = future.exception(timeout=30)
    return error if error is not None else future.result()


# ---- group commit -----------------------------------------------------------------------------


def test_group_commit_of_300_with_invalid_commands_failing_alone(runtime: Runtime) -> None:
    rt = runtime
    target = new_thing(rt, "course", "Target")
    other = new_thing(rt, "audience_member", "Fan")
    valid: list[Any] = []
    for i in range(290):
        match i % 5:
            case 0:
                valid.append(m.CreateThing(type="lesson", name=f"lesson {i}", tags=["skill:go"]))
            case 1 | 2:
                valid.append(m.RecordActivity(type="content_viewed", target_id=target,
                                              metadata={"n": i}))
            case 3:
                valid.append(m.UpdateThing(id=target, properties={f"k{i}": i}))
            case _:
                valid.append(m.RecordActivity(type="payment_completed", metadata={"amount": i}))
    invalid: list[tuple[Any, Context, type[BaseException], str]] = [
        (m.UpdateThing(id=uuid.uuid4(), name="ghost"), ctx(), NotFound, "id"),
        (m.UpdateThing(id=target, name="stale"), ctx(expected_version=1), VersionConflict,
         "If-Match"),
        (m.RestoreThing(id=target), ctx(), InvalidState, "id"),
        (m.CreateThing(type="course", name="dup", id=target), ctx(), AlreadyExists, "id"),
        (m.UpdateThing(id=target), ctx(), ValidationFailed, "name"),
        (m.CreateConnection(from_id=uuid.uuid4(), to_id=target, type="following"), ctx(),
         NotFound, "from_id"),
        (m.CreateThing(type="spaceship", name="x"), ctx(), OntologyError, "type"),
        (m.CreateConnection(from_id=other, to_id=other, type="following"), ctx(), OntologyError,
         "to_id"),
        (m.RecordActivity(type="content_viewed", target_id=uuid.uuid4()), ctx(), NotFound,
         "target_id"),
        (m.TagThing(id=target, tags=["nocolon"]), ctx(), OntologyError, "tags[0]"),
    ]
    head, batches = log_head(rt.db), rt.bus.batches
    with writer_held(rt):
        futures: list[tuple[Future[CommandResult], Any]] = []
        for i, command in enumerate(valid):
            futures.append((rt.bus.submit(command, ctx()), None))
            if i % 29 == 0:  # spread the bad ones through the batch
                bad = invalid[i // 29]
                futures.append((rt.bus.submit(bad[0], bad[1]), bad))
    assert len(futures) == 300

    positions: list[int] = []
    for future, bad in futures:
        result = outcome(future)
        if bad is None:
            assert isinstance(result, CommandResult), result
            assert result.status == 201 or result.body["id"] == str(target)
            positions.append(result.body["position"])
        else:
            assert type(result) is bad[2], (bad[0], result)
            assert getattr(result, "field", None) == bad[3]
    assert len(set(positions)) == len(positions) == 290
    assert min(positions) > head + 1  # after the blocker
    assert log_head(rt.db) == head + 1 + 290  # one event per valid command, none for the bad
    assert rt.bus.batches - batches == 2  # the blocker's group, then everything else at once
    assert rt.bus.batches < rt.bus.commands

    updates = [c for c in valid if isinstance(c, m.UpdateThing)]
    thing: Any = rt.event_log.repository.get(target)
    assert thing.version == 1 + len(updates)
    assert thing.properties == {f"k{i}": i for i in range(3, 290, 5)}
    assert len({xmin for _, _, xmin in stream_rows(rt, target)[1:]}) == 1  # one transaction


def test_concurrent_callers_are_batched(runtime: Runtime) -> None:
    rt = runtime
    batches, commands = rt.bus.batches, rt.bus.commands
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(
            lambda i: rt.bus.execute(m.RecordActivity(type="content_viewed",
                                                      metadata={"i": i}), ctx()),
            range(400)))
    assert len({r.body["position"] for r in results}) == 400
    assert rt.bus.commands - commands == 400
    assert rt.bus.batches - batches < 400


def test_async_callers_of_one_batch_each_get_their_own_outcome(runtime: Runtime) -> None:
    """`execute_async` callers are woken once per batch: every one still gets its own result or
    refusal, from the group commit that held them all."""
    rt = runtime

    async def send_all() -> list[CommandResult | BaseException]:
        commands: list[Any] = [m.CreateThing(type="creator", name=f"async {i}") for i in range(20)]
        commands.insert(7, m.UpdateThing(id=uuid.uuid4(), name="nobody"))
        return await asyncio.gather(*(rt.bus.execute_async(c, ctx()) for c in commands),
                                    return_exceptions=True)

    with ThreadPoolExecutor(max_workers=1) as loop_thread:
        with writer_held(rt):
            pending = loop_thread.submit(asyncio.run, send_all())
            wait_until(lambda: rt.bus._queue.qsize() >= 21, "21 commands queued behind the lock")
        outcomes = pending.result(timeout=30)
    assert isinstance(outcomes.pop(7), NotFound)
    created = [o for o in outcomes if isinstance(o, CommandResult) and o.status == 201]
    positions = sorted(o.body["position"] for o in created)
    assert len(created) == 20 and positions[-1] - positions[0] == 19  # one transaction


# ---- atomicity and ordering ----------------------------------------------------------------


def test_create_content_with_a_bad_collaborator_appends_nothing(runtime: Runtime) -> None:
    rt = runtime
    creator, editor = new_thing(rt, name="Ann"), new_thing(rt, name="Bob")
    content_id = uuid.uuid4()
    bad = m.CreateContent(
        id=content_id, creator_id=creator, type="blog_post", name="Post", tags=["topic:ai"],
        collaborators=[m.Collaborator(entity_id=editor, revenue_share=0.2),
                       m.Collaborator(entity_id=uuid.uuid4(), revenue_share=0.1)])
    good = m.CreateContent(
        creator_id=creator, type="blog_post", name="Good", tags=["topic:ai"],
        collaborators=[m.Collaborator(entity_id=editor, revenue_share=0.2)])
    head = log_head(rt.db)
    with writer_held(rt):
        bad_future = rt.bus.submit(bad, ctx())
        good_future = rt.bus.submit(good, ctx())
    error = bad_future.exception(timeout=30)
    assert isinstance(error, NotFound) and error.field == "collaborators[1].entity_id"
    made = good_future.result()
    assert log_head(rt.db) == head + 1 + 4  # blocker + content, owns, authored, collaborator owns
    assert rt.event_log.recorder.select_events(content_id) == []
    for stream in [made.body["id"], *made.body["connections"]]:
        assert [v for v, _, _ in stream_rows(rt, UUID(stream))] == [1]
    assert len({x for s in made.body["connections"] for _, _, x in stream_rows(rt, UUID(s))}) == 1

    for refused, error_type in (
        (m.CreateContent(creator_id=editor, type="video", name="x",
                         collaborators=[m.Collaborator(entity_id=creator, revenue_share=0.6),
                                        m.Collaborator(entity_id=UUID(made.body["id"]),
                                                       revenue_share=0.5)]), ValidationFailed),
        (m.CreateContent(creator_id=creator, type="video", name="x", tags=["bad"],
                         collaborators=[m.Collaborator(entity_id=editor, revenue_share=0.1)]),
         OntologyError),
        (m.CreateContent(creator_id=creator, type="video", name="x", id=UUID(made.body["id"])),
         AlreadyExists),
        (m.CreateContent(creator_id=UUID(made.body["id"]), type="video", name="x"),
         ValidationFailed),
    ):
        with pytest.raises(error_type):
            rt.bus.execute(refused, ctx())
    assert log_head(rt.db) == head + 5


def test_two_updates_of_one_thing_in_one_batch_apply_in_order(runtime: Runtime) -> None:
    rt = runtime
    thing = new_thing(rt, "course", "v1", properties={"a": 1})
    with writer_held(rt):
        first = rt.bus.submit(m.UpdateThing(id=thing, name="v2", properties={"b": 2}),
                              ctx(expected_version=1))
        second = rt.bus.submit(m.UpdateThing(id=thing, name="v3", properties={"a": None}),
                               ctx(expected_version=2))
        third = rt.bus.submit(m.ChangeThingStatus(id=thing, status="published"),
                              ctx(expected_version=3))
        stale = rt.bus.submit(m.UpdateThing(id=thing, name="late"), ctx(expected_version=3))
    bodies = [f.result().body for f in (first, second, third)]
    assert [b["version"] for b in bodies] == [2, 3, 4]
    assert bodies[0]["position"] < bodies[1]["position"] < bodies[2]["position"]
    assert isinstance(stale.exception(), VersionConflict)
    rows = stream_rows(rt, thing)
    assert [v for v, _, _ in rows] == [1, 2, 3, 4]
    assert len({xmin for _, _, xmin in rows[1:]}) == 1  # committed together
    aggregate: Any = rt.event_log.repository.get(thing)
    assert (aggregate.name, aggregate.properties, aggregate.status) == ("v3", {"b": 2},
                                                                         "published")
    rt.wait_for_sync(bodies[-1]["position"])
    with rt.reads.connection() as conn:
        row = conn.execute("SELECT name, properties, status, version FROM things WHERE id = %s",
                           (thing,)).fetchone()
    assert row == ("v3", {"b": 2}, "published", 4)


def test_activity_recording_never_contends_with_edits(runtime: Runtime) -> None:
    rt = runtime
    thing = new_thing(rt, "video", "Clip")
    edits = 25

    def edit_in_sequence() -> list[int]:
        versions = []
        for i in range(edits):  # each edit insists on the version it last saw
            result = rt.bus.execute(m.UpdateThing(id=thing, properties={"edit": i}),
                                    ctx(expected_version=1 + i))
            versions.append(result.body["version"])
        return versions

    def view(i: int) -> CommandResult:
        return rt.bus.execute(m.RecordActivity(type="content_viewed", target_id=thing,
                                               metadata={"i": i}), ctx())

    with ThreadPoolExecutor(max_workers=12) as pool:
        editor = pool.submit(edit_in_sequence)
        views = list(pool.map(view, range(200)))
        versions = editor.result()
    assert versions == list(range(2, edits + 2))
    assert all(v.status == 201 and v.body["version"] == 1 for v in views)
    assert rt.event_log.repository.get(thing).version == edits + 1
    rt.wait_for_sync(max(v.body["position"] for v in views))
    with rt.reads.connection() as conn:
        count = conn.execute("SELECT count(*) FROM activity WHERE target_id = %s"
                             " AND type = 'content_viewed'", (thing,)).fetchone()
    assert count == (200,)


def waiting_on_log_lock(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted"
                       f" AND relation = '{EVENTS_TABLE}'::regclass").fetchone()
    return int(row[0]) if row else 0


def wait_for_waiters(conn: psycopg.Connection[Any], count: int) -> None:
    deadline = time.monotonic() + 10
    while waiting_on_log_lock(conn) < count:
        assert time.monotonic() < deadline, f"expected {count} writers waiting on the log lock"
        time.sleep(0.002)


def test_conflict_with_another_writer_fails_only_the_command_at_fault(
    runtime: Runtime,
) -> None:
    """Another process appends to a stream after our batch validated it but before it inserts:
    the batch is re-run one by one, and only the command on that stream fails."""
    rt = runtime
    contested = uuid.uuid4()
    theirs = rt.event_log.mapper.to_stored_event(Thing.create(
        id=contested, org_id=ACTOR, actor_id=ACTOR, type="course", name="theirs",
    ).collect_events()[0])
    count = event_count(rt)
    with psycopg.connect(rt.db.conninfo) as first, \
            psycopg.connect(rt.db.conninfo) as other, \
            psycopg.connect(rt.db.conninfo, autocommit=True) as watcher, \
            ThreadPoolExecutor(max_workers=1) as pool:
        first.execute(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")
        blocker = rt.bus.submit(m.RecordActivity(type="content_viewed"), ctx())
        wait_for_waiters(watcher, 1)
        ours = [rt.bus.submit(m.CreateThing(type="course", name=f"ours {i}"), ctx())
                for i in range(5)]
        ours_contested = rt.bus.submit(m.CreateThing(type="course", name="ours", id=contested),
                                       ctx())
        ours += [rt.bus.submit(m.RecordActivity(type="content_viewed"), ctx()) for i in range(5)]
        other_locked = pool.submit(
            other.execute, f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")  # queued 2nd
        wait_for_waiters(watcher, 2)
        first.rollback()
        other_locked.result(timeout=20)  # the blocker committed; the other writer holds the lock
        blocker.result(timeout=20)
        other.execute(
            f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state)"
            " VALUES (%s, %s, %s, %s)",
            (theirs.originator_id, theirs.originator_version, theirs.topic, theirs.state))
        wait_for_waiters(watcher, 1)  # our batch validated (it cannot see the insert) and waits
        other.commit()

    error = ours_contested.exception(timeout=30)
    assert isinstance(error, AlreadyExists | VersionConflict), repr(error)
    assert all(isinstance(outcome(f), CommandResult) for f in ours), [outcome(f) for f in ours]
    assert event_count(rt) == count + 1 + 1 + 10  # blocker, theirs, ours but the contested one
    assert [v for v, _, _ in stream_rows(rt, contested)] == [1]
    assert rt.event_log.repository.get(contested).name == "theirs"


# ---- idempotency ------------------------------------------------------------------------------


def test_idempotent_replay_across_batches(runtime: Runtime) -> None:
    rt = runtime
    key = ctx(idempotency_key="create-1", request_hash="h1")
    first = rt.bus.execute(m.CreateThing(type="course", name="Once"), key)
    assert not first.replayed
    head = log_head(rt.db)
    rt.bus.execute(m.RecordActivity(type="content_viewed"), ctx())  # another batch in between
    again = rt.bus.execute(m.CreateThing(type="course", name="Once"), key)
    assert again.replayed and again.body == first.body and again.status == first.status
    assert log_head(rt.db) == head + 1
    with pytest.raises(IdempotencyMismatch) as mismatch:
        rt.bus.execute(m.CreateThing(type="course", name="Twice"),
                       ctx(idempotency_key="create-1", request_hash="h2"))
    assert mismatch.value.field == "Idempotency-Key"
    elsewhere = rt.bus.execute(m.CreateThing(type="course", name="Once"),
                               Context(actor_id=str(uuid.uuid4()), idempotency_key="create-1",
                                       request_hash="h1"))
    assert elsewhere.body["id"] != first.body["id"]  # keys belong to one actor


def test_concurrent_duplicate_keys_append_once(runtime: Runtime) -> None:
    rt = runtime
    thing = new_thing(rt, "course", "Course")
    head = log_head(rt.db)
    key = ctx(idempotency_key="dup", request_hash="same")
    with writer_held(rt):  # all ten land in one group
        futures = [rt.bus.submit(m.UpdateThing(id=thing, properties={"x": 1}), key)
                   for _ in range(10)]
    results = [f.result(timeout=30) for f in futures]
    assert {json.dumps(r.body, sort_keys=True) for r in results} == {
        json.dumps(results[0].body, sort_keys=True)}
    assert [r.replayed for r in results].count(False) == 1
    assert results[0].body["version"] == 2
    assert log_head(rt.db) == head + 2  # the blocker and a single update
    assert rt.event_log.repository.get(thing).version == 2

    with ThreadPoolExecutor(max_workers=10) as pool:  # spread over however many batches
        spread = list(pool.map(
            lambda _: rt.bus.execute(m.RecordActivity(type="content_viewed", target_id=thing),
                                     ctx(idempotency_key="view", request_hash="v")),
            range(30)))
    assert len({r.body["id"] for r in spread}) == 1
    assert [r.replayed for r in spread].count(False) == 1
    assert log_head(rt.db) == head + 3


def test_refused_command_records_no_idempotency(runtime: Runtime) -> None:
    rt = runtime
    key = ctx(idempotency_key="retry", request_hash="h")
    with pytest.raises(NotFound):
        rt.bus.execute(m.UpdateThing(id=uuid.uuid4(), name="x"), key)
    with psycopg.connect(rt.db.conninfo) as conn:
        stored = conn.execute("SELECT count(*) FROM idempotency_keys WHERE key = 'retry'")
        assert stored.fetchone() == (0,)


# ---- upcasting a v1 stored event -----------------------------------------------------------


def test_v1_thing_created_is_read_back_as_v2(runtime: Runtime) -> None:
    rt = runtime
    thing = Thing.create(id=uuid.uuid4(), org_id=str(uuid.uuid4()), actor_id=ACTOR,
                         type="course", name="Legacy", properties={"old": True},
                         status="published", tags=["topic:history"])
    stored = rt.event_log.mapper.to_stored_event(thing.collect_events()[0])
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2 and state.pop("status") == "published"
    v1 = StoredEvent(originator_id=stored.originator_id, originator_version=1,
                     topic=stored.topic, state=json.dumps(state).encode())
    positions = rt.event_log.recorder.insert_events([v1])
    assert positions is not None and len(positions) == 1
    position = positions[0]

    aggregate: Any = rt.event_log.repository.get(thing.id)
    assert isinstance(aggregate, Thing)
    assert (aggregate.status, aggregate.name, aggregate.tags) == ("draft", "Legacy",
                                                                  ["topic:history"])

    notification = rt.event_log.recorder.select_notifications(start=position, limit=1)[0]
    envelope = decode_notification(notification)
    assert envelope.type == "thing.created" and envelope.schema_version == 2
    assert envelope.data["status"] == "draft" and envelope.data["name"] == "Legacy"
    assert envelope.position == position and envelope.version == 1

    rt.wait_for_sync(position)
    with rt.reads.connection() as conn:
        row = conn.execute("SELECT status, name FROM things WHERE id = %s",
                           (thing.id,)).fetchone()
    assert row == ("draft", "Legacy")
    published = rt.bus.execute(m.ChangeThingStatus(id=thing.id, status="published"),
                               ctx(expected_version=1))
    assert published.body["version"] == 2
    assert rt.event_log.repository.get(thing.id).status == "published"
