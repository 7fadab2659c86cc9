"""Personal data erasure by crypto-shredding: a person's fields reach the log, Kafka and replays
only sealed; destroying their key erases them everywhere, and a rebuild of every projection from
the log brings nothing back. In both modes (the topic is searched in distributed mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from eventlog.store import open_event_log
from projections.rebuild import rebuild
from projections.registry import PROJECTIONS
from tests.cluster import Cluster
from tests.conftest import OWNER, database_url
from tests.database_search import occurrences
from tests.deployments import Deployment
from tests.tenants import Tenant

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "zelda.quartermaine@erasure.example"
NAME = "Zelda Quartermaine"
CITY = "Xochimilcoville"




def projected_everywhere(deployment: Deployment) -> None:
    """Wait until every read model reflects the whole log (either mode)."""
    runtime = deployment.runtime
    runtime.wait_for_sync(runtime.head(), timeout=60)


def topic_text(cluster: Cluster) -> bytes:
    """Every record of the event topic, once everything is published, as one byte string."""
    cluster.converge()
    return b"\n".join(cluster.topic_values())


def test_erasure_leaves_no_personal_data_readable_anywhere(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.url, timeout=90, headers=OWNER) as client:
        acme = Tenant.found(client, "Acme")
        zelda = acme.person("customer", name=NAME, email=EMAIL, username="zelda_q", bio="Likes privacy",
                            profile={"city": CITY, "github_url": "https://github.com/zelda-q"})
        acme.act(zelda, "PATCH", f"/v1/people/{zelda.id}", headers={"Idempotency-Key": "bio-1"},
                 json={"bio": f"{NAME} writes about privacy", "profile": {"visibility": "members"}})
        acme.act(zelda, "POST", "/v1/events", json={"type": "content_viewed"})
        seen = acme.read(acme.owner, f"/v1/people/{zelda.id}")
        assert (seen["name"], seen["email"], seen["profile"]["city"]) == (NAME, EMAIL, CITY)
        projected_everywhere(deployment)
        db = deployment.runtime.db
        assert set(occurrences(db, EMAIL)) == {"people"}, "only the people read model holds it"
        assert set(occurrences(db, NAME)) == {"people"}
        if deployment.cluster is not None:
            on_topic = topic_text(deployment.cluster)
            assert zelda.id.encode() in on_topic and b'"personal":"v1.' in on_topic
            assert EMAIL.encode() not in on_topic and NAME.encode() not in on_topic

        erased = acme.act(acme.owner, "DELETE", f"/v1/people/{zelda.id}/personal-data")
        gone = acme.read(acme.owner, f"/v1/people/{zelda.id}")
        assert gone["erased_at"] is not None and gone["name"] is None and gone["email"] is None
        assert gone["profile"].get("city") is None and gone["profile"]["visibility"] == "members"
        assert erased["position"] > 0

    projected_everywhere(deployment)
    for needle in (EMAIL, NAME, CITY, "zelda_q", "zelda-q"):
        assert occurrences(db, needle) == {}, needle
    event_log = open_event_log(db)
    try:
        rebuild(event_log, db, list(PROJECTIONS.values()))
    finally:
        event_log.close()
    for needle in (EMAIL, NAME, CITY, "zelda_q"):
        assert occurrences(db, needle) == {}, f"{needle} came back in a rebuild"
    replay = subprocess.run([sys.executable, "-m", "api.cli", "replay"], cwd=ROOT, capture_output=True,
                            env={**os.environ, "DATABASE_URL": database_url(db)}, timeout=120, check=True)
    assert b'"type":"person.erased"' in replay.stdout
    assert EMAIL.encode() not in replay.stdout and NAME.encode() not in replay.stdout
    if deployment.cluster is not None:
        on_topic = topic_text(deployment.cluster)
        assert b'"type":"person.erased"' in on_topic
        assert EMAIL.encode() not in on_topic and NAME.encode() not in on_topic
