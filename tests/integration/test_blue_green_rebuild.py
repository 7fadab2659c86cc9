"""Blue/green rebuilds: `one projections rebuild` runs while the API and the projection runner (or,
in distributed mode, the relay and the Faust workers) keep serving a steady load of commands and
queries; no query fails, progress shows in
`/v1/projections`, the swapped-in tables keep their index names, and they equal a cold rebuild.
A projector whose declared version changed is rebuilt the same way, once."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api.runtime import Runtime
from commands import models as m
from infra.database import ConnectionInfo
from projections.blue_green import rebuild_live
from projections.rebuild import rebuild, snapshot
from projections.registry import PROJECTIONS
from tests.conftest import api_client, database_url
from tests.deployments import Deployment

ROOT = Path(__file__).resolve().parents[2]
REBUILT = ("things", "tags", "connections")


def seed(rt: Runtime, things: int) -> list[uuid.UUID]:
    """Things with tags, updates and connections, written fast through the bus."""
    ids = [uuid.uuid4() for _ in range(things)]
    wait([rt.bus.submit(m.CreateThing(id=i, type="course", name=f"c{n}", tags=[f"topic:t{n % 20}"]))
          for n, i in enumerate(ids)])
    wait([rt.bus.submit(m.UpdateThing(id=i, properties={"n": n})) for n, i in enumerate(ids[::3])])
    wait([rt.bus.submit(m.CreateConnection(from_id=a, to_id=b, type="following"))
          for a, b in zip(ids[::7], ids[1::7], strict=False)])
    return ids


def index_names(db: ConnectionInfo) -> set[tuple[str, str]]:
    with psycopg.connect(db.conninfo) as conn:
        tables = [t for n in REBUILT for t in PROJECTIONS[n].tables]
        rows = conn.execute("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"
                            " AND tablename = ANY(%s)", (tables,))
        return {(str(a), str(b)) for a, b in rows}


class Load:
    """Commands and queries against the API from two threads until stopped; what failed."""

    def __init__(self, http: httpx.Client, ids: list[uuid.UUID]) -> None:
        self.http, self.ids = http, ids
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.reads = self.writes = 0
        self.rebuilds_seen: list[dict[str, Any]] = []
        self.threads = [threading.Thread(target=self._write), threading.Thread(target=self._read)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _check(self, resp: httpx.Response) -> None:
        if resp.status_code >= 300:
            request = resp.request
            self.failures.append(f"{request.method} {request.url.path}: {resp.status_code} {resp.text}")

    def _write(self) -> None:
        n = 0
        while not self.stop.is_set():
            made = self.http.post("/v1/things", json={"type": "course", "name": f"live {n}",
                                                       "tags": [f"topic:t{n % 20}"]})
            self._check(made)
            if made.status_code == 201:
                self._check(self.http.patch(f"/v1/things/{made.json()['id']}", json={"name": f"live {n}b"}))
            self.writes, n = self.writes + 1, n + 1

    def _read(self) -> None:
        n = 0
        while not self.stop.is_set():
            thing = self.ids[n % len(self.ids)]
            for resp in (self.http.get("/v1/things", params={"limit": 20, "tag": f"topic:t{n % 20}"}),
                         self.http.get("/v1/tags"), self.http.get(f"/v1/things/{thing}"),
                         self.http.get("/v1/projections")):
                self._check(resp)
                if resp.url.path == "/v1/projections" and resp.status_code == 200 and resp.json()["rebuilds"]:
                    self.rebuilds_seen.append(resp.json()["rebuilds"][0])
            self.reads, n = self.reads + 1, n + 1




def test_rebuild_under_load_never_fails_a_query_and_equals_a_cold_rebuild(deployment: Deployment) -> None:
    runtime = deployment.runtime
    ids = seed(runtime, 6000)
    indexes = index_names(runtime.db)
    env = {**os.environ, "DATABASE_URL": database_url(runtime.db), "COLUMNS": "200"}
    with api_client(deployment.url, timeout=60) as http, Load(http, ids) as load:
        done = subprocess.run([sys.executable, "-m", "api.cli", "projections", "rebuild", *REBUILT],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        writes_during = load.writes
    assert done.returncode == 0, done.stderr
    assert "swapped them in" in done.stdout and "rebuilding" in done.stderr  # the progress bar
    assert load.failures == [] and writes_during > 0 and load.reads > 0
    assert load.rebuilds_seen
    assert {"name", "position", "target", "rate", "eta_s"} <= set(load.rebuilds_seen[0])
    assert index_names(runtime.db) == indexes

    if deployment.cluster is not None:  # the workers applied everything, then stop applying
        deployment.cluster.converge()
        deployment.cluster.stop_workers()
    else:
        runtime.wait_for_sync(runtime.head(), timeout=60)
        assert runtime.runner is not None
        runtime.runner.stop()
    chosen = [PROJECTIONS[n] for n in REBUILT]
    after_swap = snapshot(runtime.db, chosen)
    rebuild(runtime.event_log, runtime.db, chosen)
    assert snapshot(runtime.db, chosen) == after_swap
    with psycopg.connect(runtime.db.conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM projection_rebuilds").fetchone() == (0,)
        assert conn.execute("SELECT to_regnamespace('one_shadow')").fetchone() == (None,)


def test_a_projector_with_a_new_version_is_rebuilt_once(runtime: Runtime) -> None:
    seed(runtime, 300)
    runtime.wait_for_sync(runtime.head())
    tags_v2 = dataclasses.replace(PROJECTIONS["tags"], version=2)
    before = snapshot(runtime.db, [tags_v2])
    assert rebuild_live(runtime.db, runtime.event_log, [tags_v2, PROJECTIONS["things"]], only_stale=True) > 0
    assert rebuild_live(runtime.db, runtime.event_log, [tags_v2], only_stale=True) == 0  # done already
    with psycopg.connect(runtime.db.conninfo) as conn:
        rows = conn.execute("SELECT name, version FROM projection_checkpoints").fetchall()
    versions: dict[str, int] = dict(rows)
    assert versions["tags"] == 2 and versions["things"] == 1
    assert snapshot(runtime.db, [tags_v2]) == before
