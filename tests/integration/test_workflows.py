"""The workflow engine, with ELEVATE: a journey started over HTTP waits 24 hours (on a clock the
test moves), takes $100 at its payment gate (a declined card first), survives a restart of ONE,
and finishes; a crash at any step boundary resumes with every effect done once; a step that
keeps failing parks the instance for an operator."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from api.runtime import Runtime
from commands import models as m
from commands.handlers import Context
from commands.workflows import SignalWorkflow, StartWorkflow
from domain.elevate import ELEVATE
from domain.errors import DomainError
from domain.workflows import Retry, Step, WorkflowDefinition, WorkflowInstance
from infra.database import ConnectionInfo
from projections.rebuild import rebuild, snapshot
from projections.sagas import SAGAS
from providers.analysis import LOCAL_TEMPLATE, TemplateAnalyst
from providers.stripe_sandbox import sandbox_gateway
from sagas.workflow_actions import ActionCall, ActionResult, standard_actions
from sagas.workflow_driver import WorkflowDriver
from tests.conftest import served, start_runtime
from tests.support.chat_server import ChatServer
from tests.support.clock import MovableClock
from tests.support.stripe_sandbox_hooks import ObservedSandbox
from tests.support.waiting import wait_until

PROFILE = {"business": "Yoga studio", "industry": "fitness", "goals": "a paid community"}
USER_STEPS = ("engage", "sell", "nurture", "upsell", "understand", "share")


def _activity(db: ConnectionInfo, kind: str, instance: str) -> list[dict[str, Any]]:
    with psycopg.connect(db.conninfo) as conn:
        rows = conn.execute("SELECT metadata FROM activity WHERE type = %s AND metadata->>'workflowId' = %s",
                            (kind, instance)).fetchall()
    return [row[0] for row in rows]


def _instance(http: httpx.Client, instance: str) -> dict[str, Any]:
    r = http.get(f"/v1/workflows/instances/{instance}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _wait_for(http: httpx.Client, instance: str, status: str, step: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def reached() -> bool:
        found.update(_instance(http, instance))
        return bool(found["status"] == status and found["step"] == step)

    wait_until(reached, f"workflow at {step} ({status})", timeout=30)
    return found


def _serve(db: ConnectionInfo, clock: MovableClock, stripe: ObservedSandbox) -> Runtime:
    runtime = start_runtime(db)
    runtime.start_sagas(payments=sandbox_gateway(stripe), clock=clock)
    return runtime


def test_elevate_over_http_waits_pays_survives_a_restart_and_finishes(fresh_db: ConnectionInfo) -> None:
    clock, stripe = MovableClock(), ObservedSandbox()
    runtime = _serve(fresh_db, clock, stripe)
    try:
        person = str(runtime.bus.execute(m.CreatePerson(name="Ada", role="customer")).body["id"])
        with served(runtime) as http:
            assert [d["name"] for d in http.get("/v1/workflows").json()["items"]] == ["elevate"]
            r = http.post("/v1/workflows/elevate/instances", json={"subject_id": person, "input": PROFILE})
            assert r.status_code == 202, r.text
            instance = r.json()["id"]
            view = _wait_for(http, instance, "waiting", "review")
            hook = view["steps"][0]
            assert hook["status"] == "completed" and hook["stars"] == 3
            assert hook["output"]["source"] == LOCAL_TEMPLATE and "Yoga studio" in hook["output"]["analysis"]
            assert view["steps"][2]["status"] == "locked"
            assert view["progress"]["completed_steps"] == 1 and view["progress"]["total_steps"] == 9
            clock.advance(hours=23)
            runtime.sagas.poke() if runtime.sagas else None
            assert _instance(http, instance)["step"] == "review"  # 23 h: the timer has not fired
    finally:
        runtime.close()

    clock.advance(hours=2)  # ONE was down when the 24 h timer came due: it fires on restart
    runtime = _serve(fresh_db, clock, stripe)
    try:
        with served(runtime) as http:
            view = _wait_for(http, instance, "waiting", "identify")
            assert view["steps"][2]["status"] == "completed"  # the gift (insights report)
            assert len(_activity(fresh_db, "report_generated", instance)) == 1
            r = http.post(f"/v1/workflows/instances/{instance}/signal",
                          json={"name": "pay", "data": {"payment_method": "pm_card_chargeDeclined"}})
            assert r.status_code == 202, r.text
            wait_until(lambda: "declined" in (_instance(http, instance)["steps"][3]["note"] or ""),
                       "the declined card noted")
            assert _instance(http, instance)["status"] == "waiting"
            http.post(f"/v1/workflows/instances/{instance}/signal",
                      json={"name": "pay", "data": {"payment_method": "pm_card_visa"}})
            view = _wait_for(http, instance, "waiting", "engage")
            assert view["steps"][3]["output"]["amount"] == 100
            for name in USER_STEPS:
                r = http.post(f"/v1/workflows/instances/{instance}/signal",
                              json={"name": name, "data": {"stars": 2} if name == "sell" else {}})
                assert r.status_code == 202, r.text
            view = _wait_for(http, instance, "completed", "done")
    finally:
        runtime.close()
    # three stars a step, less one for the gate's second card and one for the 2-star `sell`
    assert view["progress"] == {"completed_steps": 9, "total_steps": 9, "percent": 100,
                                "stars": 25, "max_stars": 27}
    captured = [pi for pi in stripe.payment_intents() if pi["status"] == "succeeded"]
    assert [pi["amount"] for pi in captured] == [100_00]
    assert len(_activity(fresh_db, "payment_processed", instance)) == 1
    progress = _activity(fresh_db, "progress_updated", instance)
    assert sorted(p["stepId"] for p in progress) == sorted(s.name for s in ELEVATE.steps if s.milestone)


class Journey:
    """An ELEVATE instance driven step by step by drivers the test starts and drops ("kills")."""

    def __init__(self, runtime: Runtime, stripe: ObservedSandbox, clock: MovableClock) -> None:
        self.runtime, self.stripe, self.clock = runtime, stripe, clock
        self.person = UUID(str(runtime.bus.execute(m.CreatePerson(name="Bo", role="customer")).body["id"]))
        self.id = UUID(str(runtime.bus.execute(StartWorkflow(
            subject_id=self.person, input=PROFILE, definition=ELEVATE.to_dict())).body["id"]))
        self.driver = self.new_driver()

    def new_driver(self) -> WorkflowDriver:
        """A driver as a freshly started process builds it (its own gateway)."""
        rt = self.runtime
        return WorkflowDriver(rt.bus, rt.event_log, rt.reads, sandbox_gateway(self.stripe),
                              standard_actions(TemplateAnalyst()), self.clock)

    def state(self) -> WorkflowInstance:
        instance: WorkflowInstance = self.runtime.event_log.repository.get(self.id)
        return instance

    def act(self) -> None:
        """What the world does next: the driver's step, or the user's action it waits for."""
        instance = self.state()
        step = instance.current
        if instance.status == "waiting" and step.kind == "wait":
            self.clock.advance(hours=25)
        elif instance.status == "waiting" and step.kind == "payment" and instance.signal_named("pay") is None:
            self.signal("pay", {"payment_method": "pm_card_visa"})
        elif instance.status == "waiting" and step.kind == "signal":
            self.signal(str(step.params["name"]), {})
        self.driver.advance(self.id)

    def signal(self, name: str, data: dict[str, Any]) -> None:
        self.runtime.bus.execute(SignalWorkflow(id=self.id, name=name, data=data),
                                 Context(actor_id=str(self.person), role="customer"))

    def finish(self, limit: int = 40) -> WorkflowInstance:
        for _ in range(limit):
            if self.state().status in ("completed", "failed", "parked", "cancelled"):
                break
            self.act()
        return self.state()


@pytest.fixture
def runtime(fresh_db: ConnectionInfo) -> Iterator[Runtime]:
    rt = start_runtime(fresh_db)
    yield rt
    rt.close()


def _effects_once(runtime: Runtime, journey: Journey) -> None:
    db, instance = runtime.db, str(journey.id)
    runtime.wait_for_sync(runtime.head())
    assert journey.state().status == "completed"
    paid = [pi["amount"] for pi in journey.stripe.payment_intents()
            if pi["status"] == "succeeded" and pi["metadata"].get("workflow_id") == instance]
    assert paid == [100_00]
    assert len(_activity(db, "report_generated", instance)) == 1
    assert len(_activity(db, "payment_processed", instance)) == 1
    assert len(_activity(db, "progress_updated", instance)) == 9


BOUNDARIES = 20  # the events an ELEVATE journey appends before it is done


@pytest.mark.parametrize("boundary", range(0, BOUNDARIES, 2))
def test_a_driver_killed_at_each_step_boundary_resumes_with_every_effect_once(runtime: Runtime,
                                                                                 boundary: int) -> None:
    journey = Journey(runtime, ObservedSandbox(), MovableClock())
    for _ in range(boundary):
        journey.act()
    journey.driver = journey.new_driver()  # the process died here; a new one resumes from the log
    journey.finish()
    _effects_once(runtime, journey)
    assert runtime.runner is not None
    runtime.runner.stop()
    before = snapshot(runtime.db, [SAGAS])
    rebuild(runtime.event_log, runtime.db, [SAGAS])
    assert snapshot(runtime.db, [SAGAS]) == before, "rebuilding the sagas read model changed it"


def test_a_driver_dying_after_the_charge_before_recording_it_never_charges_twice(runtime: Runtime) -> None:
    journey = Journey(runtime, ObservedSandbox(), MovableClock())
    while journey.state().step != "identify":
        journey.act()
    journey.signal("pay", {"payment_method": "pm_card_visa"})
    journey.driver._begun(journey.state())  # recorded before its effect ...
    key = journey.state().key()
    sandbox_gateway(journey.stripe).charge(amount_cents=100_00, currency="usd",
                                           payment_method="pm_card_visa",
                                           idempotency_key=key,
                                           metadata={"workflow_id": str(journey.id), "step": "identify"})
    # ... charged, then died before recording the payment
    journey.driver = journey.new_driver()
    journey.finish()
    _effects_once(runtime, journey)


def test_a_step_that_keeps_failing_retries_with_backoff_then_parks_for_an_operator(runtime: Runtime) -> None:
    failures: list[str] = []

    def flaky(call: ActionCall) -> ActionResult:
        if len(failures) < 5:
            failures.append(call.key)
            raise ConnectionError("the analysis service is down")
        return ActionResult({"ok": True})

    flow = WorkflowDefinition("flaky", 1, (Step("call", "action", {"action": "flaky"}),
                                           Step("after", "signal", {"name": "go"})),
                              retry=Retry(max_attempts=3, initial_backoff_ms=1000))
    clock = MovableClock()
    person = runtime.bus.execute(m.CreatePerson(name="Cy", role="customer")).body["id"]
    started = runtime.bus.execute(StartWorkflow(subject_id=person, definition=flow.to_dict()))
    instance = UUID(str(started.body["id"]))
    driver = WorkflowDriver(runtime.bus, runtime.event_log, runtime.reads, sandbox_gateway(ObservedSandbox()),
                            {"flaky": flaky}, clock)
    state = runtime.event_log.repository.get
    assert driver.advance(instance) == "running"
    first_retry: str | None = state(instance).wake_at
    assert first_retry == (clock() + timedelta(seconds=1)).isoformat()
    clock.advance(seconds=1)
    driver.advance(instance)
    assert state(instance).wake_at == (clock() + timedelta(seconds=2)).isoformat()
    assert driver.advance(instance) == "parked"
    assert failures == [f"{instance}:call"] * 3  # one key for every try of the step
    assert "failed 3 times" in str(state(instance).reason)
    with served(runtime) as http:
        r = http.post(f"/v1/workflows/instances/{instance}/retry")
        assert r.status_code == 200, r.text
        assert driver.advance(instance) == "running"  # two more failures ...
        clock.advance(seconds=5)
        driver.advance(instance)
        clock.advance(seconds=5)
        driver.advance(instance)  # ... then the call succeeds
        assert state(instance).steps["call"]["output"] == {"ok": True}
        assert driver.advance(instance) == "waiting"  # for the `go` signal
        r = http.post(f"/v1/workflows/instances/{instance}/skip", json={"note": "no need to wait"})
        assert r.status_code == 200, r.text
        assert http.get(f"/v1/workflows/instances/{instance}").json()["status"] == "completed"
        r = http.post(f"/v1/workflows/instances/{instance}/cancel", json={"note": "too late"})
        assert r.status_code == 409 and r.json()["code"] == "invalid_state"


def test_the_hook_asks_the_configured_model_through_the_openai_sdk(fresh_db: ConnectionInfo) -> None:
    with ChatServer(responder=lambda messages: "Grow with a paid community.") as chat:
        chat.fail_next(1, status=429)  # rate limited once: the SDK retries
        runtime = start_runtime(fresh_db, openai_base_url=chat.base_url, chat_model="gpt-test-mini")
        runtime.start_sagas(payments=sandbox_gateway(ObservedSandbox()), clock=MovableClock())
        try:
            person = str(runtime.bus.execute(m.CreatePerson(name="Di", role="customer")).body["id"])
            with served(runtime) as http:
                r = http.post("/v1/workflows/elevate/instances",
                              json={"subject_id": person, "input": PROFILE})
                view = _wait_for(http, r.json()["id"], "waiting", "review")
        finally:
            runtime.close()
    hook = view["steps"][0]["output"]
    assert hook == {"analysis": "Grow with a paid community.", "source": "openai:gpt-test-mini"}
    sent = chat.requests[-1]
    assert sent["model"] == "gpt-test-mini" and "Yoga studio" in sent["messages"][-1]["content"]


def test_concurrent_drivers_never_run_a_step_twice(runtime: Runtime) -> None:
    stripe, clock = ObservedSandbox(), MovableClock()
    journeys = [Journey(runtime, stripe, clock) for _ in range(4)]
    drivers = [journeys[0].new_driver() for _ in range(3)]

    def drive(driver: WorkflowDriver) -> None:
        for _ in range(30):
            for journey in journeys:
                with contextlib.suppress(DomainError):  # another driver took this step first
                    driver.advance(journey.id)

    for journey in journeys:  # hook, then the 24 h wait begins
        journey.driver.advance(journey.id)
        journey.driver.advance(journey.id)
    clock.advance(hours=25)
    for journey in journeys:
        journey.signal("pay", {"payment_method": "pm_card_visa"})
        for name in USER_STEPS:
            journey.signal(name, {})
    threads = [threading.Thread(target=drive, args=(driver,)) for driver in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for journey in journeys:
        _effects_once(runtime, journey)
        with runtime.reads.connection() as conn:
            starts = conn.execute(
                "SELECT count(*) FROM one_events WHERE originator_id = %s AND topic LIKE %s",
                (journey.id, "%StepCompleted")).fetchone()
        assert starts is not None and starts[0] == len(ELEVATE.steps)
