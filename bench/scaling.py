"""Past one machine: 1, 2 and 4 `one serve` processes appending to one PostgreSQL.

Each process runs as the distributed deployment runs its API (`KAFKA_BOOTSTRAP_SERVERS` set, so it
only appends: the relay and the workers, not started here, would build the read models; no saga
driver, no vector projection). The same closed-loop load of `POST /v1/things` is spread evenly
over the processes' ports, each share sent by its own client process. Printed per process count:
commands/s, p50/p99, the ratio to one process, and the share of samples in which a PostgreSQL
backend waited on a lock (the log's table lock serialises appends across processes), beside
`GET /healthz` of one process in the same run as the baseline.

Usage: .venv/bin/python -m bench.scaling [--processes 1,2,4] [--requests 4000] [--connections 16]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from bench.common import (
    AUTH,
    BENCH_KEY,
    Latencies,
    LoadClient,
    Request,
    build_request,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    fresh_database,
    print_header,
    print_table,
)
from infra.database import ConnectionInfo
from tests.support.one_serve import OneServe

UNREACHABLE_BROKER = "127.0.0.1:9"
"""Distributed mode without a broker: `one serve` then only appends (nothing here consumes)."""


def thing_posts(count: int, offset: int) -> list[Request]:
    """`POST /v1/things` requests with distinct names."""
    return [build_request("POST", "/v1/things", json.dumps({
        "type": "blog_post", "name": f"Post {offset + i}", "status": "published", "tags": ["topic:ai"],
        "properties": {"content": "Short text about scaling."}}).encode(), AUTH) for i in range(count)]


@contextlib.contextmanager
def api_processes(db: ConnectionInfo, count: int, logs: Path) -> Iterator[list[OneServe]]:
    """`count` append-only `one serve` processes on `db`, started together, stopped afterwards."""
    env = {"DATABASE_URL": f"postgresql://{db.user}@/{db.dbname}?host={db.host}&port={db.port}",
           "ONE_BOOTSTRAP_KEY": BENCH_KEY, "KAFKA_BOOTSTRAP_SERVERS": UNREACHABLE_BROKER,
           "ONE_RUN_SAGAS": "0", "ONE_KNOWLEDGE": "0"}
    servers = [OneServe(logs, Path(tempfile.mkdtemp(prefix="one-bench-serve-")), env) for _ in range(count)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.process.stop()


class LockSampler:
    """Samples `pg_stat_activity` every 10 ms: how often some backend waits on a lock."""

    def __init__(self, db: ConnectionInfo) -> None:
        self.db = db
        self.samples = 0
        self.waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def share(self) -> float:
        """Fraction of samples with at least one backend waiting on a lock."""
        return self.waiting / self.samples if self.samples else 0.0

    def _run(self) -> None:
        with psycopg.connect(self.db.conninfo, autocommit=True) as conn:
            while not self._stop.wait(0.01):
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                                   " AND wait_event_type = 'Lock'", (self.db.dbname,)).fetchone()
                self.samples += 1
                self.waiting += bool(row and row[0])


def spread(clients: Sequence[LoadClient], servers: Sequence[OneServe], requests: list[Request],
           connections: int) -> dict[str, Any]:
    """The requests split evenly over the servers, each share over its part of the connections,
    all sent at once; returns the combined wall time and latencies."""
    n = len(servers)
    shares = [requests[i::n] for i in range(n)]
    with ThreadPoolExecutor(n) as pool:
        runs = list(pool.map(lambda i: clients[i].run(servers[i].port, shares[i], max(1, connections // n),
                                                      warmup=2), range(n)))
    statuses: dict[int, int] = {}
    for run in runs:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    assert set(statuses) == {201}, (statuses, [r["sample_error"] for r in runs])
    return {"n": len(requests), "wall": max(r["wall"] for r in runs),
            "lat": Latencies([lat for r in runs for lat in r["latencies"]])}


def main() -> None:
    """Run the scaling bench and print its table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", default="1,2,4", help="process counts to measure (default 1,2,4)")
    p.add_argument("--requests", type=int, default=4000, help="POST /v1/things per count (default 4000)")
    p.add_argument("--connections", type=int, default=16, help="connections in all (default 16)")
    args = p.parse_args()
    counts = [int(c) for c in args.processes.split(",")]
    logs = Path(tempfile.mkdtemp(prefix="one-bench-scaling-"))
    with fresh_database("scaling") as bdb, contextlib.ExitStack() as stack:
        print_header("bench.scaling — API processes appending to one PostgreSQL", bdb,
                     requests=args.requests, connections=args.connections, processes=args.processes)
        clients = [stack.enter_context(LoadClient()) for _ in range(max(counts))]
        rows: list[tuple[str, ...]] = []
        single: float | None = None
        offset = 0
        for count in counts:
            with api_processes(bdb.info, count, logs) as servers:
                health = clients[0].run(servers[0].port, [build_request("GET", "/healthz")] * args.requests,
                                        args.connections, warmup=2)
                posts = thing_posts(args.requests, offset)
                offset += args.requests
                with LockSampler(bdb.info) as locks:
                    run = spread(clients, servers, posts, args.connections)
                rate = run["n"] / run["wall"]
                single = single or rate
                summary = run["lat"].summary()
                rows.append((str(count), fmt_rate(rate), fmt_ms(summary["p50"]), fmt_ms(summary["p99"]),
                             fmt_ratio(rate / single), f"{locks.share:.0%}",
                             fmt_rate(args.requests / health["wall"])))
        print_table("POST /v1/things spread over N append-only API processes",
                    ("processes", "commands/s", "p50 ms", "p99 ms", "vs 1 process", "lock waits",
                     "GET /healthz/s (one process)"), rows)


if __name__ == "__main__":
    main()
