"""Projection catch-up rate: the in-process runner applying a cold log.

Writes N events (default 200k; `--events 1000000` for the issue's full size) to the event log
with no projection running (`bench.common.load_dataset`: things, connections, thing updates and
recorded activity, as real aggregates saved in batches), then times
`InProcessRunner(...).catch_up(conn)` from empty checkpoints, for all projections together.

Baselines in the same run, over the same log:
- read only: `recorder.select_notifications` in the runner's chunk size;
- read + decode: the above plus `decode_notification` (envelopes, upcasting);
- each projection alone (tables emptied, checkpoint reset), to see which one costs what;
- raw COPY of the same read-model rows (every table the catch-up filled, copied out, then timed
  while copied into empty tables of the same shape): what a rebuild would cost if writing its
  rows were all it did. A cold catch-up is what `one projections rebuild` runs.

Usage: .venv/bin/python -m bench.projection [--events 200000] [--things N] [--chunk 2000]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from typing import Any

import psycopg

from bench.common import (
    fmt_rate,
    fmt_ratio,
    fresh_database,
    load_dataset,
    log_head,
    note,
    print_header,
    print_table,
)


def read_pass(log: Any, head: int, chunk: int, decode: bool) -> float:
    """Seconds to read (and optionally decode) the whole log in chunks."""
    from eventlog.envelope import decode_notification

    t0 = time.perf_counter()
    position = 0
    while position < head:
        notifications = log.recorder.select_notifications(start=position + 1, limit=chunk)
        if not notifications:
            break
        if decode:
            for n in notifications:
                decode_notification(n)
        position = notifications[-1].id
    return time.perf_counter() - t0


def catch_up(log: Any, db: Any, projections: list[Any], chunk: int,
             profile: bool = False) -> tuple[float, int, str]:
    """Reset the projections, then time a cold catch-up; returns (seconds, applied, profile)."""
    from projections.store import ProjectionSet, reset_projection
    from streams.inprocess import InProcessRunner

    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        for projection in projections:
            reset_projection(conn, projection)
        runner = InProcessRunner(log, db, ProjectionSet(tuple(projections)), chunk_size=chunk)
        prof = cProfile.Profile() if profile else None
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        applied = runner.catch_up(conn)
        if prof:
            prof.disable()
        seconds = time.perf_counter() - t0
    text = ""
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
        text = out.getvalue()
    return seconds, applied, text


def raw_copy(db: Any, projections: list[Any]) -> tuple[float, int]:
    """Seconds to COPY every row of the projections' tables into empty tables of the same shape,
    and the rows copied."""
    from psycopg import sql

    seconds, rows = 0.0, 0
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        for table in (t for projection in projections for t in projection.tables):
            source, target = sql.Identifier(table), sql.Identifier(f"copy_of_{table}")
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(target, source))
            data = bytearray()
            with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(source)) as out:
                for block in out:
                    data += block
            t0 = time.perf_counter()
            with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(target)) as into:
                into.write(bytes(data))
            seconds += time.perf_counter() - t0
            rows += conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()[0]  # type: ignore[index]
            conn.execute(sql.SQL("DROP TABLE {}").format(target))
    return seconds, rows


def main(argv: list[str] | None = None) -> None:
    """Parse flags, load, catch up, print the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=200_000, help="events in the log (default 200000)")
    p.add_argument("--things", type=int, default=None, help="things among them (default events/10)")
    p.add_argument("--chunk", type=int, default=2000, help="runner chunk size (default 2000)")
    p.add_argument("--no-breakdown", action="store_true",
                   help="skip the per-projection catch-ups")
    p.add_argument("--profile", action="store_true",
                   help="also print a cProfile of one full catch-up (slower; separate run)")
    args = p.parse_args(argv)
    things = args.things if args.things is not None else args.events // 10

    from eventlog.store import open_event_log
    from infra.migrations import migrate
    from projections.registry import PROJECTIONS

    rows: list[tuple[str, float, int]] = []
    profile_text = ""
    with fresh_database("projection") as bdb:
        print_header("bench.projection — cold catch-up of the in-process runner", bdb,
                     events=args.events, things=things, chunk=args.chunk)
        migrate(bdb.info)
        log = open_event_log(bdb.info)
        note(f"loading {args.events:,} events ({things:,} things), projections not running")
        data = load_dataset(log, things, args.events)
        head = log_head(bdb.info)
        with psycopg.connect(bdb.info.conninfo, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        note("read-only pass")
        read_pass(log, head, args.chunk, decode=False)  # warm the cache for every pass alike
        rows.append(("read only (select_notifications)",
                     read_pass(log, head, args.chunk, decode=False), head))
        note("read + decode pass")
        rows.append(("read + decode_notification",
                     read_pass(log, head, args.chunk, decode=True), head))
        everything = list(PROJECTIONS.values())
        note("catch-up, all projections, from cold")
        seconds, applied, _ = catch_up(log, bdb.info, everything, args.chunk)
        rows.append((f"catch_up, all {len(everything)} projections", seconds, applied))
        note("raw COPY of the read-model rows")
        copy_seconds, copied = raw_copy(bdb.info, everything)
        rows.append((f"raw COPY of the {copied:,} read-model rows", copy_seconds, applied))
        if not args.no_breakdown:
            for projection in everything:
                note(f"catch-up, {projection.name} alone")
                seconds, applied, _ = catch_up(log, bdb.info, [projection], args.chunk)
                rows.append((f"catch_up, {projection.name} alone", seconds, applied))
        if args.profile:
            note("profiled catch-up")
            _, _, profile_text = catch_up(log, bdb.info, everything, args.chunk, profile=True)
        with psycopg.connect(bdb.info.conninfo) as conn:
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                      for t in ("things", "connections", "thing_tags", "activity")}
        log.close()

    print("\n- data set: " + ", ".join(f"{k}={v:,}" for k, v in data.by_type.items())
          + f"; appended in {data.seconds:.1f}s ({data.events / data.seconds:,.0f} events/s"
          " via EventLog.save batches of 500)")
    print("- read-model rows after catch-up: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    full = next(r for r in rows if r[0].startswith("catch_up, all"))
    full_rate = full[2] / full[1]
    print_table("Cold catch-up (events/s over the whole log)",
                ("pass", "events", "seconds", "events/s", "vs full catch-up"),
                [(label, f"{n:,}", f"{s:.2f}", fmt_rate(n / s), fmt_ratio((n / s) / full_rate))
                 for label, s, n in rows])
    read_only = rows[0][2] / rows[0][1]
    copy = next(r for r in rows if r[0].startswith("raw COPY"))
    print(f"Cold catch-up (= rebuild): {fmt_rate(full_rate)} events/s;"
          f" {fmt_ratio(full_rate / read_only)} of reading the log (target 0.40x),"
          f" {fmt_ratio(copy[1] / full[1])} of raw COPY of its rows (target 0.25x).")
    if profile_text:
        print("\ncProfile of a full catch-up (top by own time):\n")
        print(profile_text)


if __name__ == "__main__":
    main()
