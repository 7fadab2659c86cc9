"""The `one` CLI against a real database: replay for analysts, status, rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from api.runtime import Runtime
from commands import models as m
from infra.migrations import MIGRATIONS
from projections.rebuild import snapshot
from projections.registry import PROJECTIONS
from tests.conftest import bearer, database_url, served

ROOT = Path(__file__).resolve().parents[2]


def _one(runtime: Runtime, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url(runtime.db), "COLUMNS": "250"}
    done = subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_replay_writes_envelopes_as_json_lines(runtime: Runtime) -> None:
    creator = runtime.bus.execute(m.CreateThing(type="creator", name="Ann")).body
    runtime.bus.execute(m.UpdateThing(id=creator["id"], name="Anne"))
    lines = _one(runtime, "replay", "--type", "thing.created", "--type", "thing.updated").splitlines()
    envelopes = [json.loads(line) for line in lines]
    assert [e["type"] for e in envelopes] == ["thing.created", "thing.updated"]
    assert set(envelopes[0]) == {"position", "stream_id", "version", "type", "schema_version",
                                 "occurred_at", "org_id", "actor_id", "data", "correlation_id",
                                 "causation_id", "traceparent"}
    assert envelopes[1]["data"]["name"] == "Anne" and envelopes[1]["version"] == 2
    later = _one(runtime, "replay", "--from-position", str(envelopes[1]["position"])).splitlines()
    assert [json.loads(line)["position"] for line in later] == [envelopes[1]["position"]]


def test_status_and_rebuild(runtime: Runtime) -> None:
    made = runtime.bus.execute(m.CreateThing(type="course", name="C", tags=["topic:cli"])).body
    runtime.wait_for_sync(made["position"])
    assert runtime.runner is not None
    runtime.runner.stop()  # hold the read models still while comparing
    before = snapshot(runtime.db, list(PROJECTIONS.values()))
    assert f"schema version: {MIGRATIONS[-1].version}" in _one(runtime, "db", "status")
    assert "rebuilt things, tags" in _one(runtime, "projections", "rebuild", "things", "tags")
    assert snapshot(runtime.db, list(PROJECTIONS.values())) == before


def test_knowledge_reindex_status_and_retry(runtime: Runtime) -> None:
    for name in ("Yoga basics", "Tax filing", "Pasta at home"):
        runtime.bus.execute(m.CreateThing(type="course", name=name))
    assert "index k1 (all-MiniLM-L6-v2-int8) is active" in _one(runtime, "knowledge", "reindex")
    status = _one(runtime, "knowledge", "status")
    row = next(line for line in status.splitlines() if "k1" in line)
    assert "active" in row and "384" in row and " 3 " in row
    assert "k1: 0 re-embedded, 0 still failing" in _one(runtime, "knowledge", "retry")
    again = _one(runtime, "knowledge", "reindex")  # same model: nothing to swap
    assert "index k1" in again and "replacing" not in again


def test_a_misconfigured_embedder_stops_serve_with_the_reason(tmp_path: Path) -> None:
    for env, reason in (({"ONE_EMBEDDER": "word2vec"}, "ONE_EMBEDDER='word2vec' is not an embedder"),
                        ({"ONE_EMBEDDER": "openai", "OPENAI_API_KEY": ""}, "OPENAI_API_KEY is not set")):
        done = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--data-dir", str(tmp_path)],
                              cwd=ROOT, env={**os.environ, **env, "COLUMNS": "200"}, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 2, done.stdout + done.stderr
        assert reason in done.stdout


def test_keys_create_list_and_revoke(runtime: Runtime) -> None:
    created = _one(runtime, "keys", "create", "--role", "org_user", "--name", "ci bot")
    secret = created.strip().splitlines()[-1]
    key_id = str(uuid.UUID(secret.split("_")[1]))
    assert f"key {key_id} for person" in created and "(org_user)" in created
    with served(runtime) as http:
        me = http.get("/v1/me", headers=bearer(secret))
        assert me.status_code == 200 and me.json()["role"] == "org_user"
        runtime.wait_for_sync(runtime.head())
        assert key_id in _one(runtime, "keys", "list") and secret not in _one(runtime, "keys", "list")
        assert "revoked" in _one(runtime, "keys", "revoke", key_id)
        deadline = time.monotonic() + 5
        while http.get("/v1/me", headers=bearer(secret)).status_code != 401:
            assert time.monotonic() < deadline, "the revoked key still works"
    refused = subprocess.run([sys.executable, "-m", "api.cli", "keys", "create", "--role", "emperor"],
                             cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url(runtime.db)},
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1 and "validation_error" in refused.stdout


def test_serve_refuses_a_short_bootstrap_key(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--data-dir", str(tmp_path)],
                          cwd=ROOT, env={**os.environ, "ONE_BOOTSTRAP_KEY": "short", "ONE_KNOWLEDGE": "0",
                                         "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "ONE_BOOTSTRAP_KEY must be at least 32 characters" in done.stdout

