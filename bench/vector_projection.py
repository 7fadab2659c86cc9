"""Vector projection throughput (embedded mode, local model) and time to findable.

Writes M things (default 2000) through the command bus with no projection running: generated
sentences as their text properties, `--long-share` of them (10%) with a ~600-word text that the
projection splits into several chunks. Then times, from checkpoint 0 on a fresh knowledge index,
`InProcessRunner(event_log, db, KnowledgeWriter(index, LocalMiniLM(), TextFields())).catch_up(conn)`
(chunk size as the runtime's knowledge runner: 500 events), and as a baseline in the same run the
raw `LocalMiniLM().embed` rate over the same chunk texts, grouped as the projection groups them.

Time to findable: a Runtime with run_knowledge=True (sagas off) on the same database; ~50 single
`CreateThing` commands one after another, each timed from submission until
`rt.wait_for_sync(position, knowledge=True)` returns (the knowledge index reflects it).

Usage: .venv/bin/python -m bench.vector_projection [--things 2000] [--long-share 0.1] [--findable 50]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from bench.common import (
    THING_TYPES,
    Latencies,
    bench_settings,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    fresh_database,
    log_head,
    note,
    percentile,
    print_header,
    print_table,
)
from bench.search import make_sentences
from commands.models import CreateThing
from domain.knowledge import TextFields

# ---- things ---------------------------------------------------------------------------------


def long_text(rng: random.Random, pool: Sequence[str], words: int) -> str:
    """About `words` words of generated sentences."""
    out: list[str] = []
    while sum(len(s.split()) for s in out) < words:
        out.append(rng.choice(pool) + ".")
    return " ".join(out)


def make_command(i: int, rng: random.Random, pool: Sequence[str], long_share: float) -> CreateThing:
    """A thing whose first text property is a sentence; some get a ~600-word last text property."""
    fields = TextFields()
    kind = THING_TYPES[i % len(THING_TYPES)]
    props = fields.for_type(kind)
    properties: dict[str, Any] = {props[0]: rng.choice(pool), "n": i}
    if rng.random() < long_share:
        properties[props[-1]] = long_text(rng, pool, 600)
    return CreateThing(type=kind, name=f"{kind} {i}", status="published", properties=properties,
                       tags=[f"topic:{rng.choice(('fitness', 'finance', 'music', 'ai', 'cooking'))}"])


def write_things(bus: Any, count: int, long_share: float, seed: int) -> float:
    """Submit `count` CreateThing commands (group commit) and wait for all; seconds."""
    rng = random.Random(seed)
    pool = [s.text for s in make_sentences(3000, seed=seed)]
    commands = [make_command(i, rng, pool, long_share) for i in range(count)]
    t0 = time.perf_counter()
    futures = [bus.submit(c) for c in commands]
    for f in futures:
        f.result()
    return time.perf_counter() - t0


# ---- catch-up and baseline ------------------------------------------------------------------


@dataclass
class CatchUp:
    """What one cold catch-up of the vector projection did."""

    seconds: float
    events: int
    documents: int
    chunks: int
    failed: int


def catch_up(log: Any, db: Any, index: Any, embedder: Any, chunk: int) -> CatchUp:
    """Time the vector projection from checkpoint 0 on `index`."""
    from projections.knowledge.indexes import index_stats
    from projections.knowledge.writer import KnowledgeWriter
    from streams.inprocess import InProcessRunner

    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        runner = InProcessRunner(log, db, KnowledgeWriter(index, embedder, TextFields()), chunk_size=chunk)
        t0 = time.perf_counter()
        applied = runner.catch_up(conn)
        seconds = time.perf_counter() - t0
        stats = index_stats(conn, index)
    return CatchUp(seconds, applied, int(stats["documents"]), int(stats["chunks"]),  # type: ignore[call-overload]
                   int(stats["failed"]))  # type: ignore[call-overload]


def chunk_groups(db: Any, index: Any, chunk: int) -> list[list[str]]:
    """The stored chunk texts, grouped as the projection embedded them (one call per `chunk` events)."""
    with psycopg.connect(db.conninfo) as conn:
        rows = conn.execute(sql.SQL(
            "SELECT d.position, c.text FROM {chunks} c JOIN {docs} d USING (thing_id)"
            " ORDER BY d.position, c.chunk_no").format(chunks=index.chunks, docs=index.documents)).fetchall()
    groups: dict[int, list[str]] = {}
    for position, text in rows:
        groups.setdefault((int(position) - 1) // chunk, []).append(text)
    return list(groups.values())


def embed_pass(embedder: Any, groups: Sequence[Sequence[str]]) -> float:
    """Seconds for `embedder.embed` over each group, one call per group."""
    t0 = time.perf_counter()
    for texts in groups:
        embedder.embed(list(texts))
    return time.perf_counter() - t0


# ---- time to findable -----------------------------------------------------------------------


@dataclass
class Findable:
    """Per-creation delays: submission→commit, and submission→knowledge index reflects it."""

    commit: Latencies
    findable: Latencies
    missing: int


def time_to_findable(db: Any, count: int, seed: int) -> Findable:
    """Create `count` things one after another through a running Runtime; time each until findable."""
    from api.runtime import Runtime

    rng = random.Random(seed)
    pool = [s.text for s in make_sentences(500, seed=seed)]
    rt = Runtime.start(bench_settings(run_knowledge=True, run_sagas=False), db)
    out = Findable(Latencies(), Latencies(), 0)
    try:
        rt.wait_for_sync(rt.head(), timeout=600, knowledge=True)  # idle, caught up
        for i in range(3):  # warm-up: the runtime's embedder loads its model on first use
            warm = rt.bus.execute(make_command(20_000_000 + i, rng, pool, 0.0))
            rt.wait_for_sync(warm.body["position"], timeout=60, knowledge=True)
        ids = []
        for i in range(count):
            command = make_command(10_000_000 + i, rng, pool, 0.0)
            t0 = time.perf_counter()
            result = rt.bus.execute(command)
            out.commit.values.append(time.perf_counter() - t0)
            rt.wait_for_sync(result.body["position"], timeout=60, knowledge=True)
            out.findable.values.append(time.perf_counter() - t0)
            ids.append(result.body["id"])
            time.sleep(0.05)  # the runner goes back to waiting on LISTEN, as between real requests
        out.missing = count - found(rt, ids)
    finally:
        rt.close()
    return out


def found(rt: Any, ids: Sequence[str]) -> int:
    """How many of `ids` have chunks in the active knowledge index."""
    from projections.knowledge.indexes import active_index

    with rt.reads.connection() as conn:
        index = active_index(conn)
        assert index is not None
        row = conn.execute(sql.SQL("SELECT count(DISTINCT thing_id) FROM {} WHERE thing_id = ANY(%s::uuid[])")
                           .format(index.chunks), (list(ids),)).fetchone()
    return int(row[0]) if row else 0


# ---- report ---------------------------------------------------------------------------------


def print_throughput(done: CatchUp, embed_s: float, embedded: int) -> None:
    """things/s, chunks/s, events/s of the projection beside the raw embedding rate."""
    raw_rate = embedded / embed_s
    proj_rate = done.chunks / done.seconds
    print_table("Vector projection, cold catch-up (local model, one thread)",
                ("pass", "seconds", "things/s", "chunks/s", "events/s", "raw embed / projection"),
                [("catch_up: InProcessRunner + KnowledgeWriter", f"{done.seconds:.1f}",
                  fmt_rate(done.documents / done.seconds), fmt_rate(proj_rate),
                  fmt_rate(done.events / done.seconds), fmt_ratio(raw_rate / proj_rate)),
                 ("baseline: LocalMiniLM().embed over the same chunk texts", f"{embed_s:.1f}", "-",
                  fmt_rate(raw_rate), "-", "1.00x")])
    overhead = max(0.0, done.seconds - embed_s)
    print(f"- projection time not spent embedding: ~{overhead:.1f}s of {done.seconds:.1f}s"
          f" ({overhead / done.seconds:.0%}): log reads, decoding, folding, chunking, writes,"
          " HNSW/GIN inserts")


def print_findable(f: Findable) -> None:
    """p50/p99 of commit latency and time to findable."""
    rows = []
    for label, lat in (("command committed (bus.execute)", f.commit),
                       ("findable: knowledge index reflects the position", f.findable)):
        s = sorted(lat.values)
        rows.append((label, f"{len(s):,}", fmt_ms(percentile(s, 50) * 1e3), fmt_ms(percentile(s, 95) * 1e3),
                     fmt_ms(percentile(s, 99) * 1e3), fmt_ms(s[-1] * 1e3)))
    print_table("Time to findable: one CreateThing at a time through a running Runtime (ms from submission)",
                ("step", "n", "p50", "p95", "p99", "max"), rows)
    print(f"- things without chunks after their wait: {f.missing} (0 expected);"
          " wait_for_sync polls every 5 ms")


def main(argv: list[str] | None = None) -> None:
    """Parse flags, write, catch up, embed, time findability, print the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--things", type=int, default=2_000, help="things written before the catch-up (2000)")
    p.add_argument("--long-share", type=float, default=0.1, help="share of ~600-word things (0.1)")
    p.add_argument("--chunk", type=int, default=500, help="runner chunk size in events (500, as the runtime)")
    p.add_argument("--findable", type=int, default=50, help="single creations timed to findable (50)")
    args = p.parse_args(argv)

    from commands.bus import CommandBus
    from eventlog.store import open_event_log
    from infra.migrations import migrate
    from projections.knowledge.indexes import create_index
    from providers.local_embeddings import LocalMiniLM

    with fresh_database("vecproj") as bdb:
        print_header("bench.vector_projection — vector projection throughput and time to findable", bdb,
                     things=args.things, long_share=args.long_share, chunk=args.chunk, findable=args.findable)
        migrate(bdb.info)
        log = open_event_log(bdb.info)
        bus = CommandBus(log).start()
        note(f"writing {args.things:,} things through the command bus")
        write_s = write_things(bus, args.things, args.long_share, seed=5)
        bus.stop()
        head = log_head(bdb.info)
        model = LocalMiniLM()
        model.embed(["warm-up"] * 8)
        with psycopg.connect(bdb.info.conninfo, autocommit=True) as conn:
            index = create_index(conn, model.spec, model.dimension)
        note("vector projection catch-up from checkpoint 0")
        done = catch_up(log, bdb.info, index, model, args.chunk)
        groups = chunk_groups(bdb.info, index, args.chunk)
        note("raw embedding pass over the same chunk texts")
        embed_s = embed_pass(model, groups)
        log.close()
        note(f"time to findable x {args.findable}")
        findable = time_to_findable(bdb.info, args.findable, seed=6)

    print(f"\n- log: {head:,} events ({args.things:,} thing.created) written through the command bus in"
          f" {write_s:.2f}s; index {index.name}: {done.documents:,} documents, {done.chunks:,} chunks"
          f" ({done.chunks / max(done.documents, 1):.2f} per thing), {done.failed} failed")
    print_throughput(done, embed_s, sum(len(g) for g in groups))
    print_findable(findable)
    print(f"- load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
