"""Features in the technical DSL: the seeds' CreateAIClone registers over HTTP, runs on the workflow
engine with its voice-cloning service stubbed at the HTTP layer (a 503 retried with the same
idempotency key), creates the clone, its ownership and its event once even when the driver is
killed at any step boundary; `onError` ends a run with its result; an `atomic` group whose last
change is refused leaves nothing behind and parks the instance."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from api.runtime import Runtime
from commands import models as m
from commands.workflows import StartWorkflow
from domain.connections import connection_id
from domain.things import Thing
from domain.workflows import WorkflowInstance
from infra.database import ConnectionInfo
from providers.services import HttpServices
from providers.stripe_sandbox import sandbox_gateway
from sagas.dsl_runner import DSL_ACTION, DslSteps, feature_definition
from sagas.workflow_driver import WorkflowDriver
from tests.conftest import served, start_runtime
from tests.support.clock import MovableClock
from tests.support.dsl_examples import CREATE_AI_CLONE, CREATE_AI_CLONE_CONTEXT
from tests.support.service_stub import ServiceStub
from tests.support.stripe_sandbox_hooks import ObservedSandbox
from tests.support.waiting import wait_until

VIDEOS = ["https://v/1.mp4", "https://v/2.mp4", "https://v/3.mp4"]


def _voice(body: dict[str, Any]) -> str:
    return f"voice-{len(body['samples'])}"


@pytest.fixture
def elevenlabs() -> Iterator[ServiceStub]:
    with ServiceStub({"cloneVoice": _voice}) as stub:
        yield stub


@pytest.fixture
def runtime(fresh_db: ConnectionInfo) -> Iterator[Runtime]:
    rt = start_runtime(fresh_db)
    yield rt
    rt.close()


def _input(creator: str, videos: list[str] = VIDEOS) -> dict[str, Any]:
    return {"creatorId": creator, "videoUrls": videos, "audioSamples": ["a.wav", "b.wav"],
            "personality": {"systemPrompt": "Speak like Ada."}}


def test_create_ai_clone_registers_and_runs_end_to_end_over_http(runtime: Runtime,
                                                                 elevenlabs: ServiceStub) -> None:
    runtime.start_sagas(services=HttpServices({"elevenlabs": elevenlabs.url}))
    elevenlabs.fail_next(1)  # the provider is briefly down: the step is retried
    with served(runtime) as http:
        broken = {**CREATE_AI_CLONE, "flow": [{"entity": {"type": "ai_clon", "name": "x"}}]}
        r = http.post("/v1/dsl/features", json={"feature": broken})
        assert r.status_code == 422 and r.json()["field"] == "$.flow[0].entity.type"
        assert {e["code"] for e in r.json()["errors"]} >= {"unknown_thing_type"}
        context = CREATE_AI_CLONE_CONTEXT
        r = http.post("/v1/dsl/features", json={"feature": CREATE_AI_CLONE, "context": context})
        assert r.status_code == 201, r.text
        assert r.json()["feature_version"] == 1
        assert "CreateAIClone" in [d["name"] for d in http.get("/v1/workflows").json()["items"]]
        creator = http.post("/v1/things", json={"type": "creator", "name": "Ada"}).json()["id"]
        r = http.post("/v1/workflows/CreateAIClone/instances", json={"input": {"creatorId": creator}})
        assert r.status_code == 422 and r.json()["field"] == "input.audioSamples"
        r = http.post("/v1/workflows/CreateAIClone/instances", json={"input": _input(creator)})
        assert r.status_code == 202, r.text
        instance = r.json()["id"]
        view: dict[str, Any] = {}

        def finished() -> bool:
            view.update(http.get(f"/v1/workflows/instances/{instance}").json())
            return bool(view["status"] == "completed")

        wait_until(finished, "the feature to finish", timeout=60)
        clone = view["result"]["cloneId"]
        assert view["result"]["voiceId"] == "voice-2"
        thing = http.get(f"/v1/things/{clone}", params={"after": runtime.head()}).json()
        assert thing["type"] == "ai_clone" and thing["name"] == "Ada AI Clone"
        assert thing["properties"] == {"voiceId": "voice-2", "systemPrompt": "Speak like Ada.",
                                       "temperature": 0.7}
        owns = http.get(f"/v1/connections/{connection_id(UUID(creator), 'owns', UUID(clone))}").json()
        assert owns["type"] == "owns"
        keys = {key for _, key, _ in elevenlabs.calls}
        assert len(elevenlabs.calls) == 2 and len(keys) == 1, "the retry must reuse the step's key"

        short = http.post("/v1/workflows/CreateAIClone/instances",
                          json={"input": _input(creator, VIDEOS[:2])})
        wait_until(lambda: http.get(f"/v1/workflows/instances/{short.json()['id']}").json()["status"]
                   == "completed", "the refused run to end")
        result = http.get(f"/v1/workflows/instances/{short.json()['id']}").json()["result"]
        assert result["error"] == "InsufficientContent" and "videoUrls" in result["reason"]


def _driver(runtime: Runtime, stub: ServiceStub) -> WorkflowDriver:
    """A driver as a freshly started process builds it."""
    return WorkflowDriver(runtime.bus, runtime.event_log, runtime.reads, sandbox_gateway(ObservedSandbox()),
                          {DSL_ACTION: DslSteps(runtime.event_log, runtime.reads,
                                                HttpServices({"elevenlabs": stub.url}))}, MovableClock())


def _start(runtime: Runtime, feature: dict[str, Any], context: dict[str, str], given: dict[str, Any]) -> UUID:
    definition = feature_definition(feature, context, 1)
    person = runtime.bus.execute(m.CreatePerson(name="Op", role="org_owner")).body["id"]
    return UUID(str(runtime.bus.execute(StartWorkflow(subject_id=person, input=given,
                                                      definition=definition.to_dict())).body["id"]))


@pytest.mark.parametrize("boundary", range(8))
def test_a_driver_killed_at_each_step_boundary_creates_the_clone_once(
        runtime: Runtime, elevenlabs: ServiceStub, boundary: int) -> None:
    creator = str(runtime.bus.execute(m.CreateThing(type="creator", name="Bo")).body["id"])
    instance = _start(runtime, CREATE_AI_CLONE, CREATE_AI_CLONE_CONTEXT, _input(creator))
    driver = _driver(runtime, elevenlabs)
    for _ in range(boundary):
        driver.advance(instance)
    driver = _driver(runtime, elevenlabs)  # the process died; a new one resumes from the log
    for _ in range(20):
        if driver.advance(instance) != "running":
            break
    state: WorkflowInstance = runtime.event_log.repository.get(instance)
    assert state.status == "completed"
    clone = UUID(state.steps["2-entity"]["output"]["bindings"]["cloneId"])
    thing: Thing = runtime.event_log.repository.get(clone)
    assert thing.name == "Bo AI Clone" and thing.version == 1
    assert len({key for _, key, _ in elevenlabs.calls}) == 1
    runtime.wait_for_sync(runtime.head())
    with runtime.reads.connection() as conn:
        clones = conn.execute("SELECT count(*) FROM things WHERE type = 'ai_clone'").fetchone()
        events = conn.execute("SELECT count(*) FROM activity WHERE target_id = %s AND type = 'entity_created'"
                              " AND actor_id = %s", (clone, creator)).fetchone()
    assert clones is not None and clones[0] == 1
    assert events is not None and events[0] == 1


ATOMIC = {
    "feature": "LaunchWithPartner",
    "input": {"partnerId": "Id<things>"},
    "output": {"courseId": "Id<things>"},
    "flow": [
        {"atomic": [
            {"entity": {"type": "course", "name": "Joint course", "status": "draft"}, "output": "courseId"},
            {"connect": {"from": "$input.partnerId", "to": "$courseId", "type": "owns",
                         "metadata": {"revenueShare": 5}}},
        ]},
        {"return": {"courseId": "$courseId"}},
    ],
}


def test_an_atomic_group_is_all_or_nothing(runtime: Runtime, elevenlabs: ServiceStub) -> None:
    partner = str(runtime.bus.execute(m.CreateThing(type="creator", name="Partner")).body["id"])
    instance = _start(runtime, ATOMIC, {}, {"partnerId": partner})
    driver = _driver(runtime, elevenlabs)
    clock = driver.clock
    for _ in range(3):
        driver.advance(instance)
        assert isinstance(clock, MovableClock)
        clock.advance(minutes=10)
    state: WorkflowInstance = runtime.event_log.repository.get(instance)
    assert state.status == "parked" and "revenueShare" in str(state.reason)
    runtime.wait_for_sync(runtime.head())
    with runtime.reads.connection() as conn:
        courses = conn.execute("SELECT count(*) FROM things WHERE type = 'course'").fetchone()
    assert courses is not None and courses[0] == 0, "the course was created without its ownership"
