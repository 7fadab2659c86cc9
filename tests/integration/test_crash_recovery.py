"""Kill `one serve` during a write load: the log keeps exactly what was acknowledged (and only
what was sent), multi-aggregate commands are whole, and after restart the projections equal a
rebuild from position 0."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx
import psycopg

from eventlog.store import EVENTS_TABLE, open_event_log
from infra.database import ConnectionInfo
from projections.rebuild import rebuild, snapshot
from projections.registry import PROJECTIONS
from tests.conftest import api_client, database_url
from tests.support.one_serve import OneServe
from tests.support.waiting import wait_until


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


ACKED_BEFORE_KILL = 100


def test_kill_during_writes_then_recover(fresh_db: ConnectionInfo, tmp_path: Path) -> None:
    server = OneServe(tmp_path, tmp_path / "data", {"DATABASE_URL": database_url(fresh_db)}).start()
    try:
        with api_client(server.url) as http:
            creator = http.post("/v1/things", json={"type": "creator", "name": "C"}).json()["id"]
        sent: list[str] = []
        acked: list[str] = []
        stop = threading.Event()
        workers = [threading.Thread(target=_load, args=(server.url, creator, sent, acked, stop))
                   for _ in range(8)]
        for worker in workers:
            worker.start()
        try:
            wait_until(lambda: len(acked) >= ACKED_BEFORE_KILL, f"{ACKED_BEFORE_KILL} acknowledged writes")
            server.process.kill()
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=10)

        in_log = _content_in_log(fresh_db) - {creator}
        assert set(acked) <= in_log, "an acknowledged command was lost"
        assert in_log <= set(sent), "the log holds something nobody sent"
        assert len(in_log) - len(acked) <= 8 * 2, "more unacknowledged commits than in-flight requests"

        server.start()
        with api_client(server.url) as http:
            head = http.get("/readyz").json()["head"]
            wait_until(lambda: http.get("/readyz").json()["projected"] >= head,
                       "projections to catch up after the restart")
            for content_id in acked[:20]:
                edges = http.get("/v1/connections", params={"to_id": content_id}).json()
                assert {e["type"] for e in edges["items"]} == {"owns", "authored"}
    finally:
        server.process.stop()

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
