"""Replay for analysts: `GET /v1/log` streams the log as NDJSON (scoped to the caller's
organization, filtered, resumable without gap or duplicate), and `one replay --format parquet`
writes the same envelopes as a Parquet file that reads back equal to the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from api.runtime import Runtime
from commands import models as m
from tests.conftest import OWNER, database_url, served
from tests.tenants import Tenant

ROOT = Path(__file__).resolve().parents[2]
Json = dict[str, Any]


@pytest.fixture
def http(runtime: Runtime) -> Iterator[httpx.Client]:
    with served(runtime) as client:
        yield client


def log_lines(http: httpx.Client, headers: dict[str, str], **params: Any) -> list[Json]:
    with http.stream("GET", "/v1/log", params=params, headers=headers) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in resp.iter_lines() if line]


def test_the_log_as_ndjson_scoped_filtered_and_resumable(runtime: Runtime, http: httpx.Client) -> None:
    a, b = Tenant.found(http, "A"), Tenant.found(http, "B")
    course = a.act(a.owner, "POST", "/v1/things", json={"type": "course", "name": "Yoga"})
    a.act(a.owner, "PATCH", f"/v1/things/{course['id']}", json={"name": "Yoga 2"})
    b.act(b.owner, "POST", "/v1/things", json={"type": "course", "name": "Tax"})

    everything = log_lines(http, OWNER, limit=100_000)
    assert [e["position"] for e in everything] == list(range(1, len(everything) + 1))
    assert {a.id, b.id} <= {e["org_id"] for e in everything}
    mine = log_lines(http, a.owner.headers, limit=100_000)
    assert mine == [e for e in everything if e["org_id"] == a.id]
    assert [e["data"].get("name") for e in mine if e["stream_id"] == course["id"]] == ["Yoga", "Yoga 2"]

    updates = log_lines(http, a.owner.headers, type="thing.updated")
    assert [(e["stream_id"], e["version"]) for e in updates] == [(course["id"], 2)]
    assert log_lines(http, a.owner.headers, stream_id=course["id"]) == [
        e for e in mine if e["stream_id"] == course["id"]]
    window = log_lines(http, OWNER, after=3, until=7)
    assert [e["position"] for e in window] == [4, 5, 6, 7]
    since = everything[-1]["occurred_at"]
    assert log_lines(http, OWNER, since=since)[0]["occurred_at"] >= since

    pages, after = [], 0
    while page := log_lines(http, OWNER, after=after, limit=7):
        pages += page
        after = page[-1]["position"]
    assert pages == everything

    for params in ({"type": "no.such_type"}, {"limit": 0}, {"after": -1}, {"stream_id": "x"}):
        resp = http.get("/v1/log", params=params)
        assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
    assert http.get("/v1/log", headers=a.customer.headers).status_code == 403

    tagged = http.post("/v1/things", json={"type": "course", "name": "traced"},
                       headers={**a.owner.headers, "X-Correlation-Id": "req-42"})
    assert tagged.headers["X-Correlation-Id"] == "req-42"
    (traced,) = log_lines(http, a.owner.headers, correlation_id="req-42")
    assert (traced["stream_id"], traced["causation_id"][:8]) == (tagged.json()["id"], "command:")
    assert len(http.get("/healthz").headers["X-Correlation-Id"]) == 32  # one made up when none is sent
    refused = http.post("/v1/things", json={"type": "course", "name": "x"},
                        headers={**a.owner.headers, "X-Correlation-Id": "no spaces allowed"})
    assert (refused.status_code, refused.json()["field"]) == (422, "X-Correlation-Id")


def test_replay_to_parquet_reads_back_equal_to_the_log(runtime: Runtime, tmp_path: Path) -> None:
    creator = runtime.bus.execute(m.CreateThing(type="creator", name="Ann ✨", properties={
        "big": 2**70, "nested": {"list": [1, 2.5, None, "x"]}})).body
    runtime.bus.execute(m.UpdateThing(id=creator["id"], name="Anne"))
    env = {**os.environ, "DATABASE_URL": database_url(runtime.db), "COLUMNS": "200"}

    def one(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "api.cli", "replay", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done

    expected = [json.loads(line) for line in one().stdout.splitlines()]
    out = tmp_path / "exports" / "log.parquet"
    assert f"wrote {len(expected):,} events" in one("--format", "parquet", "--out", str(out)).stdout
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == len(expected) > 2
    for row, envelope in zip(rows, expected, strict=True):
        assert row["occurred_at"] == datetime.fromisoformat(envelope["occurred_at"])
        assert json.loads(row.pop("data")) == envelope["data"]
        row.pop("occurred_at")
        assert row == {k: v for k, v in envelope.items() if k not in ("data", "occurred_at")}
    assert rows[-2]["position"] == creator["position"]
    assert json.loads(pq.read_table(out).column("data")[-2].as_py())["properties"]["big"] == 2**70

    only = tmp_path / "updates.parquet"
    one("--format", "parquet", "--out", str(only), "--type", "thing.updated")
    assert pq.read_table(only).column("type").to_pylist() == ["thing.updated"]
