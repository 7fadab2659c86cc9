"""ELEVATE in both modes: embedded (in-process projections) and distributed (the sagas read model
built by Faust workers from the Kafka topic), with two process runners on the database (one leads;
the other takes over if it goes) driving the journey: every effect happens once."""

from __future__ import annotations

from typing import Any

import psycopg

from api.runtime import Runtime
from tests.conftest import api_client
from tests.deployments import Deployment
from tests.integration.test_workflows import PROFILE, USER_STEPS
from tests.support.clock import MovableClock
from tests.support.waiting import wait_until


def _view(http: Any, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"/v1/workflows/instances/{instance}").json()
    return body


def test_elevate_runs_once_with_two_runners_in_each_mode(deployment: Deployment) -> None:
    clock = MovableClock()
    first = deployment.runtime
    second = Runtime.start(first.settings, first.db)
    try:
        first.start_sagas(clock=clock)
        second.start_sagas(clock=clock)
        assert [first.sagas is not None and first.sagas.leading, second.sagas is not None
                and second.sagas.leading].count(True) <= 1
        with api_client(deployment.url) as http:
            me = http.get("/v1/me").json()["person_id"]
            instance = http.post("/v1/workflows/elevate/instances",
                                 json={"subject_id": me, "input": PROFILE}).json()["id"]
            wait_until(lambda: _view(http, instance)["step"] == "review"
                       and _view(http, instance)["status"] == "waiting", "the 24 h wait", timeout=60)
            clock.advance(hours=25)
            wait_until(lambda: _view(http, instance)["step"] == "identify", "the payment gate", timeout=60)
            http.post(f"/v1/workflows/instances/{instance}/signal",
                      json={"name": "pay", "data": {"payment_method": "pm_card_visa"}})
            for name in USER_STEPS:
                http.post(f"/v1/workflows/instances/{instance}/signal", json={"name": name})
            wait_until(lambda: _view(http, instance)["status"] == "completed", "the journey", timeout=90)
        first.wait_for_sync(first.head())
        with psycopg.connect(first.db.conninfo) as conn:
            rows = conn.execute("SELECT type, count(*) FROM activity WHERE metadata->>'workflowId' = %s"
                                " GROUP BY type", (instance,)).fetchall()
        assert dict(rows) == {"progress_updated": 9, "report_generated": 1, "payment_processed": 1}
    finally:
        second.close()
