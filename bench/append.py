"""Append throughput: single-event commands (CreateThing) through the group-commit command bus.

Callers are asyncio tasks awaiting `CommandBus.execute_async` (what the HTTP handlers do), or
with `--mode threads`, threads calling `CommandBus.execute`. Measured beside baselines in the same
run and on the same database server:

- naive: `EventLog.save(Thing.create(...))`, one aggregate per transaction, sequentially;
- direct batches: `EventLog.save(*things)` of `--max-batch` aggregates, one thread (what group
  commit can reach without the bus's queueing, futures and idempotency bookkeeping);
- raw psycopg: `executemany` of rows shaped like stored events (same state bytes) into a scratch
  table with the same keys, one transaction per batch; and COPY of the same rows.

Usage: .venv/bin/python -m bench.append [--commands 10000] [--callers 1,16,64] ...
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from bench.common import (
    Latencies,
    bench_settings,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    fresh_database,
    median_run,
    note,
    print_header,
    print_table,
)
from commands.bus import CommandBus
from commands.handlers import SYSTEM_ACTOR_ID, SYSTEM_ORG_ID
from commands.models import CreateThing
from domain.things import Thing
from eventlog.store import EventLog, open_event_log
from infra.migrations import migrate

ORG, ACTOR = str(SYSTEM_ORG_ID), str(SYSTEM_ACTOR_ID)


def make_command(i: int) -> CreateThing:
    """A typical single-event command: a tagged blog post with a few properties."""
    return CreateThing(type="blog_post", name=f"Post {i}", status="published",
                       properties={"n": i, "title": f"Benchmark post {i}", "words": 800},
                       tags=["topic:fitness"])


def make_thing(i: int) -> Thing:
    """The same thing as `make_command`, as an aggregate."""
    return Thing.create(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, type="blog_post",
                        name=f"Post {i}", status="published",
                        properties={"n": i, "title": f"Benchmark post {i}", "words": 800},
                        tags=["topic:fitness"])


class Result(dict[str, Any]):
    """One row of the report."""


def run_bus_async(bus: CommandBus, callers: int, total: int, offset: int) -> Result:
    """`callers` asyncio tasks share `total` commands; each awaits its command's durability."""
    lat = Latencies()
    counter = iter(range(offset, offset + total))

    async def caller() -> None:
        for i in counter:
            cmd = make_command(i)
            t0 = time.perf_counter()
            await bus.execute_async(cmd)
            lat.values.append(time.perf_counter() - t0)

    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return time.perf_counter() - t0

    batches = bus.batches
    wall = asyncio.run(main())
    return Result(wall=wall, n=total, lat=lat, batches=bus.batches - batches)


def run_bus_threads(bus: CommandBus, callers: int, total: int, offset: int) -> Result:
    """`callers` threads share `total` commands, each blocking on `execute`."""
    lat = Latencies()
    counter = iter(range(offset, offset + total))
    lock = threading.Lock()

    def caller() -> None:
        local: list[float] = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            cmd = make_command(i)
            t0 = time.perf_counter()
            bus.execute(cmd)
            local.append(time.perf_counter() - t0)
        with lock:
            lat.values.extend(local)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    batches = bus.batches
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Result(wall=time.perf_counter() - t0, n=total, lat=lat, batches=bus.batches - batches)


def run_naive(log: EventLog, total: int) -> Result:
    """One aggregate per `save` (one transaction each), sequentially."""
    lat = Latencies()
    t0 = time.perf_counter()
    for i in range(total):
        s = time.perf_counter()
        log.save(make_thing(i))
        lat.values.append(time.perf_counter() - s)
    return Result(wall=time.perf_counter() - t0, n=total, lat=lat, batches=total)


def run_direct_batches(log: EventLog, total: int, batch: int) -> Result:
    """`save(*aggregates)` of `batch` aggregates per transaction, one thread, no bus."""
    lat = Latencies()
    t0 = time.perf_counter()
    done = 0
    while done < total:
        n = min(batch, total - done)
        things = [make_thing(done + k) for k in range(n)]
        s = time.perf_counter()
        log.save(*things)
        lat.values.append(time.perf_counter() - s)  # per batch (every command in it waits this)
        done += n
    return Result(wall=time.perf_counter() - t0, n=total, lat=lat,
                  batches=-(-total // batch))


SCRATCH = """
CREATE TABLE IF NOT EXISTS bench_raw_events (
    notification_id bigserial PRIMARY KEY,
    originator_id uuid NOT NULL,
    originator_version int NOT NULL,
    topic text NOT NULL,
    state bytea NOT NULL,
    UNIQUE (originator_id, originator_version)
)
"""


def sample_row(log: EventLog) -> tuple[str, bytes]:
    """Topic and state bytes of a real stored thing.created event."""
    event = make_thing(0).collect_events()[0]
    stored = log.mapper.to_stored_event(event)
    return stored.topic, stored.state


def run_raw(conninfo: str, total: int, batch: int, topic: str, state: bytes,
            copy: bool = False) -> Result:
    """Raw psycopg: executemany (or COPY) of `batch` rows per transaction."""
    lat = Latencies()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCRATCH)
        conn.execute("TRUNCATE bench_raw_events")
        t0 = time.perf_counter()
        done = 0
        while done < total:
            n = min(batch, total - done)
            rows = [(uuid.uuid4(), 1, topic, state) for _ in range(n)]
            s = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                if copy:
                    with cur.copy("COPY bench_raw_events (originator_id, originator_version,"
                                  " topic, state) FROM STDIN") as cp:
                        for row in rows:
                            cp.write_row(row)
                else:
                    cur.executemany(
                        "INSERT INTO bench_raw_events (originator_id, originator_version, topic,"
                        " state) VALUES (%s, %s, %s, %s)", rows)
            lat.values.append(time.perf_counter() - s)
            done += n
        return Result(wall=time.perf_counter() - t0, n=total, lat=lat,
                      batches=-(-total // batch))


def run_full_runtime(info: Any, callers: int, total: int, max_batch: int) -> Result:
    """The bus inside a full `Runtime` (projection runner following the log on the same cores)."""
    from api.runtime import Runtime

    rt = Runtime.start(bench_settings(max_batch=max_batch), info)
    try:
        run_bus_async(rt.bus, callers, min(500, total), 10_000_000)  # warm-up
        result = run_bus_async(rt.bus, callers, total, 20_000_000)
        t0 = time.perf_counter()
        rt.wait_for_sync(rt.head(), timeout=600)
        result["lag_s"] = time.perf_counter() - t0
        return result
    finally:
        rt.close()


def main(argv: list[str] | None = None) -> None:
    """Parse flags, run every path, print the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--commands", type=int, default=10_000,
                   help="commands per run at each level of >1 callers (default 10000)")
    p.add_argument("--single", type=int, default=2_000,
                   help="commands per run with 1 caller (default 2000)")
    p.add_argument("--callers", default="1,16,64", help="caller counts (default 1,16,64)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per row; the median run is shown, with the range (default 3)")
    p.add_argument("--mode", choices=("async", "threads"), default="async",
                   help="async tasks + execute_async (default) or threads + execute")
    p.add_argument("--max-batch", type=int, default=512, help="bus group size (default 512)")
    p.add_argument("--naive", type=int, default=2_000,
                   help="aggregates saved one at a time for the naive baseline (default 2000)")
    p.add_argument("--raw-rows", type=int, default=50_000,
                   help="rows for the raw psycopg baselines (default 50000)")
    p.add_argument("--no-runtime", action="store_true",
                   help="skip the extra row with the full runtime (projections running)")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.callers.split(",") if x]
    top = max(levels)
    reps = max(1, args.repeat)

    with fresh_database("append") as bdb:
        print_header("bench.append — single-event commands through the command bus", bdb,
                     commands_per_run=args.commands, single_caller_commands=args.single,
                     callers=args.callers, repeat=reps, mode=args.mode,
                     max_batch=args.max_batch, naive=args.naive, raw_rows=args.raw_rows)
        migrate(bdb.info)
        log = open_event_log(bdb.info)
        bus = CommandBus(log, max_batch=args.max_batch).start()
        runner: Callable[..., Result] = run_bus_async if args.mode == "async" else run_bus_threads
        rows: list[tuple[str, int, dict[str, Any]]] = []
        try:
            note("warm-up")
            runner(bus, 16, 1000, 0)
            run_naive(log, 200)
            note(f"naive baseline: {args.naive} single saves x {reps}")
            naive = median_run([run_naive(log, args.naive) for _ in range(reps)])
            rows.append(("naive EventLog.save, 1 aggregate/txn", 1, naive))
            offset = 1_000_000
            for callers in levels:
                n = args.single if callers == 1 else args.commands
                runs = []
                for _ in range(reps):
                    note(f"bus: {callers} callers x {n} commands")
                    runs.append(runner(bus, callers, n, offset))
                    offset += n
                rows.append((f"command bus ({args.mode})", callers, median_run(runs)))
            note(f"direct EventLog.save batches of {args.max_batch} x {reps}")
            direct = median_run([run_direct_batches(log, args.commands, args.max_batch)
                                 for _ in range(reps)])
            rows.append((f"direct EventLog.save, {args.max_batch}/txn", 1, direct))
        finally:
            bus.stop()
        topic, state = sample_row(log)
        log.close()
        note("raw psycopg baselines")
        raw = median_run([run_raw(bdb.info.conninfo, args.raw_rows, args.max_batch, topic, state)
                          for _ in range(reps)])
        rows.append((f"raw psycopg executemany, {args.max_batch}/txn", 1, raw))
        copy = median_run([run_raw(bdb.info.conninfo, args.raw_rows, args.max_batch, topic,
                                   state, copy=True) for _ in range(reps)])
        rows.append((f"raw psycopg COPY, {args.max_batch}/txn", 1, copy))
        if not args.no_runtime:
            note(f"full runtime (projections running): {top} callers")
            full = run_full_runtime(bdb.another("rt"), top, args.commands, args.max_batch)
            full["range"] = "-"
            rows.append(("command bus in full Runtime (+projections)", top, full))

    naive_rate = naive["n"] / naive["wall"]
    raw_rate = raw["n"] / raw["wall"]
    table = []
    for label, callers, r in rows:
        rate = r["n"] / r["wall"]
        s = r["lat"].summary()
        per = "batch" if "txn" in label and "naive" not in label else "cmd"
        table.append((
            label, callers, f"{r['n']:,}", fmt_rate(rate), r["range"],
            f"{fmt_ms(s['p50'])} /{per}", f"{fmt_ms(s['p99'])} /{per}",
            f"{r['n'] / max(1, r['batches']):.1f}",
            fmt_ratio(rate / naive_rate), fmt_ratio(rate / raw_rate),
        ))
    print_table("Append throughput (durable: each command's transaction committed)",
                ("path", "callers", "ops/run", "ops/s (median)", f"range of {reps}",
                 "p50 ms", "p99 ms", "rows/txn", "vs naive", "vs raw executemany"), table)
    bus_top = next((r for label, c, r in rows if label.startswith("command bus (") and c == top),
                   None)
    if bus_top is not None:
        rate = bus_top["n"] / bus_top["wall"]
        met = rate >= 10_000 and rate >= 10 * naive_rate
        print(f"Issue target: >= 10,000 durable commands/s at 64 callers and >= 10x naive."
              f" Measured at {top} callers: {fmt_rate(rate)}/s, {fmt_ratio(rate / naive_rate)}"
              f" naive -> {'MET' if met else 'NOT MET'}.")
    in_runtime = next((r for label, _, r in rows if "Runtime" in label), None)
    if in_runtime is not None:
        print(f"Full runtime: projections caught up {in_runtime['lag_s']:.2f}s after the last"
              " command.")


if __name__ == "__main__":
    main()
