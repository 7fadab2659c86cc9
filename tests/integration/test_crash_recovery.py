"""Kill `one serve` during a write load: the log keeps exactly what was acknowledged (and only
what was sent), multi-aggregate commands are whole, and after restart the projections equal a
rebuild from position 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from api.live_server import free_port
from commands.store import EVENTS_TABLE, open_event_log
from infra.database import ConnectionInfo
from projections.rebuild import rebuild, snapshot
from projections.registry import PROJECTIONS
from tests.conftest import OWNER, api_client

ROOT = Path(__file__).resolve().parents[2]


def _serve(db: ConnectionInfo, port: int) -> subprocess.Popen[bytes]:
    url = f"postgresql://{db.user}@/{db.dbname}?host={db.host}&port={db.port}"
    env = {**os.environ, "DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("one serve did not become ready")


def _load(base: str, creator: str, sent: list[str], acked: list[str], stop: threading.Event) -> None:
    with api_client(base, timeout=5) as http:
        while not stop.is_set():
            content_id = str(uuid.uuid4())
            sent.append(content_id)
            try:
                r = http.post("/v1/content", json={
                    "id": content_id, "creator_id": creator, "type": "blog_post",
                    "name": f"post {content_id[:8]}", "tags": ["topic:crash"],
                })
            except httpx.HTTPError:
                return
            if r.status_code == 201:
                acked.append(content_id)


def _content_in_log(db: ConnectionInfo) -> set[str]:
    with psycopg.connect(db.conninfo) as conn:
        rows = conn.execute(
            f"SELECT originator_id FROM {EVENTS_TABLE} WHERE originator_version = 1"
            " AND topic = 'domain.things:Thing.Created'"
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_kill_during_writes_then_recover(fresh_db: ConnectionInfo) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(fresh_db, port)
    try:
        creator = httpx.post(f"{base}/v1/things", json={"type": "creator", "name": "C"},
                             headers=OWNER).json()["id"]
        sent: list[str] = []
        acked: list[str] = []
        stop = threading.Event()
        workers = [threading.Thread(target=_load, args=(base, creator, sent, acked, stop))
                   for _ in range(8)]
        for worker in workers:
            worker.start()
        time.sleep(2.0)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()

    in_log = _content_in_log(fresh_db) - {creator}
    assert len(acked) > 50, "the load should have been acknowledged many times before the kill"
    assert set(acked) <= in_log, "an acknowledged command was lost"
    assert in_log <= set(sent), "the log holds something nobody sent"
    assert len(in_log) - len(acked) <= 8 * 2, "more unacknowledged commits than in-flight requests"

    server = _serve(fresh_db, port)
    try:
        head = httpx.get(f"{base}/readyz").json()["head"]
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/readyz").json()["projected"] < head:
            assert time.monotonic() < deadline, "projections did not catch up after restart"
            time.sleep(0.1)
        for content_id in acked[:20]:
            edges = httpx.get(f"{base}/v1/connections", params={"to_id": content_id},
                              headers=OWNER).json()
            assert {e["type"] for e in edges["items"]} == {"owns", "authored"}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)

    projections = list(PROJECTIONS.values())
    caught_up = snapshot(fresh_db, projections)
    event_log = open_event_log(fresh_db)
    try:
        rebuild(event_log, fresh_db, projections)
    finally:
        event_log.close()
    rebuilt = snapshot(fresh_db, projections)
    assert caught_up["things"], "expected rows to compare"
    for table, rows in rebuilt.items():
        assert caught_up[table] == rows, f"{table} differs from its rebuild"
