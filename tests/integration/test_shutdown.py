"""SIGTERM and SIGINT stop `one serve` cleanly under a write load: exit 0, the embedded PostgreSQL
it started is stopped (no orphaned process), every acknowledged command is there after a restart,
and the restart is clean."""

from __future__ import annotations

import signal
import threading
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import api_client
from tests.support.one_serve import OneServe
from tests.support.waiting import wait_until

WRITERS = 4
ACKED_BEFORE_SIGNAL = 40


def _write_until(stop: threading.Event, base: str, acked: list[str]) -> None:
    """Create things until `stop`; keep the id of every creation the server acknowledged."""
    with api_client(base, timeout=10) as http:
        while not stop.is_set():
            thing_id = str(uuid.uuid4())
            try:
                created = http.post("/v1/things", json={"id": thing_id, "type": "creator",
                                                        "name": f"writer {thing_id[:8]}"})
            except httpx.HTTPError:
                continue  # the server is stopping: refused or cut connections are expected
            if created.status_code == 201:
                acked.append(thing_id)


def _stop_gracefully(server: OneServe, sig: signal.Signals) -> list[psutil.Process]:
    """Send `sig`; check it exits 0; return the processes it had started (now to be gone)."""
    pid = server.process.pid
    assert pid is not None
    started: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    postmaster = server.data_dir / "pgdata" / "postmaster.pid"
    started.append(psutil.Process(int(postmaster.read_text().split()[0])))
    assert server.process.signal(sig, timeout=60) == 0, server.process.tail()
    assert "ONE stopped" in server.process.output()
    return started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_under_load(tmp_path: Path, sig: signal.Signals) -> None:
    server = OneServe(tmp_path, tmp_path / "data", {"DATABASE_URL": ""}).start()
    try:
        acked: list[str] = []
        stop = threading.Event()
        writers = [threading.Thread(target=_write_until, args=(stop, server.url, acked))
                   for _ in range(WRITERS)]
        for writer in writers:
            writer.start()
        try:
            wait_until(lambda: len(acked) >= ACKED_BEFORE_SIGNAL, "writes acknowledged")
            started = _stop_gracefully(server, sig)
        finally:
            stop.set()
            for writer in writers:
                writer.join(timeout=30)
        alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"left running after {sig.name}: {alive}"

        server.start()  # the same data dir: the embedded PostgreSQL starts again
        with api_client(server.url) as http:
            head = http.get("/readyz").json()["head"]
            wait_until(lambda: http.get("/readyz").json()["projected"] >= head, "projections to catch up")
            missing = [t for t in acked if http.get(f"/v1/things/{t}").status_code != 200]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost"
        assert server.process.signal(signal.SIGTERM, timeout=60) == 0, server.process.tail()
    finally:
        server.process.stop()
