"""Query latency on a loaded read model.

Loads N things and M events in total (default 20k / 200k; `--things 100000 --events 1000000`
for the issue's full size) through the real event log (`bench.common.load_dataset`: real
aggregates saved in batches), starts the runtime so the in-process runner projects everything
from cold, then measures p50/p99 of random queries:

- get_thing(id, with connections)   (projections.queries.get_thing(conn, id, True))
- list_things(type=…)                (first page, 50 newest of a type)
- list_things(tag=…), list_things()  (tag filter; no filter at all)
- list_activity(target_id=…)         (a thing's interaction history)

each directly on a pooled psycopg connection, and the first two over HTTP (uvicorn serving the
full runtime; client in a separate process, 1 connection for latency, 16 for throughput).
Baselines in the same run: `SELECT 1` on the same connection, GET /healthz over HTTP.

Usage: .venv/bin/python -m bench.query [--things 20000] [--events 200000] [--queries 2000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    AUTH,
    LATENCY_HEADERS,
    Latencies,
    LoadClient,
    Request,
    bench_settings,
    build_request,
    fmt_ms,
    fresh_database,
    latency_row,
    load_dataset,
    log_head,
    note,
    print_header,
    print_table,
)
from bench.common import TAGS as TAG_POOL
from bench.common import THING_TYPES as TYPE_POOL
from commands.handlers import SYSTEM_ORG_ID
from tests.support.live_server import LiveServer

ORG = str(SYSTEM_ORG_ID)
"""The organization the data set is loaded into (the platform owner's)."""


def time_queries(n: int, pick: Callable[[], Any], run: Callable[[Any], Any]) -> dict[str, Any]:
    """Run `n` queries one after another: `run(pick())`, only `run` being timed."""
    lat = Latencies()
    t0 = time.perf_counter()
    for _ in range(n):
        arg = pick()
        s = time.perf_counter()
        run(arg)
        lat.values.append(time.perf_counter() - s)
    return {"n": n, "wall": time.perf_counter() - t0, "lat": lat}


def main(argv: list[str] | None = None) -> None:
    """Parse flags, load, project, query, print the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--things", type=int, default=20_000, help="things (default 20000)")
    p.add_argument("--events", type=int, default=200_000,
                   help="events in total, things included (default 200000)")
    p.add_argument("--queries", type=int, default=2_000,
                   help="queries per target row: get_thing, list by type (default 2000)")
    p.add_argument("--extra-queries", type=int, default=500,
                   help="queries per extra row: tag, no filter, activity (default 500)")
    p.add_argument("--http-queries", type=int, default=1_000,
                   help="requests per HTTP row (default 1000)")
    p.add_argument("--no-http", action="store_true", help="skip the HTTP rows")
    args = p.parse_args(argv)

    from api.runtime import Runtime
    from eventlog.store import open_event_log
    from infra.migrations import migrate
    from projections import queries as q

    rng = random.Random(11)
    direct: list[tuple[str, dict[str, Any]]] = []
    http: list[tuple[str, int, dict[str, Any]]] = []
    with fresh_database("query") as bdb:
        print_header("bench.query — read-model query latency", bdb, things=args.things,
                     events=args.events, queries=args.queries,
                     extra_queries=args.extra_queries, http_queries=args.http_queries)
        migrate(bdb.info)
        log = open_event_log(bdb.info)
        note(f"loading {args.things:,} things / {args.events:,} events")
        data = load_dataset(log, args.things, args.events)
        log.close()
        head = log_head(bdb.info)
        note(f"loaded in {data.seconds:.1f}s; projecting from cold")
        t0 = time.perf_counter()
        rt = Runtime.start(bench_settings(), bdb.info)
        try:
            rt.wait_for_sync(head, timeout=3600)
            projected_s = time.perf_counter() - t0
            ids = data.thing_ids
            with rt.reads.connection() as conn:
                counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                          for t in ("things", "connections", "thing_tags", "activity")}
                conn.execute("ANALYZE")
                note("direct queries")
                n = args.queries
                any_id = lambda: rng.choice(ids)  # noqa: E731
                any_type = lambda: rng.choice(TYPE_POOL)  # noqa: E731
                any_tag = lambda: rng.choice(TAG_POOL)  # noqa: E731
                time_queries(200, any_id, lambda t: q.get_thing(conn, ORG, t, True))  # warm-up
                direct.append(("SELECT 1 (round-trip baseline)", time_queries(
                    n, lambda: None, lambda _: conn.execute("SELECT 1").fetchone())))
                direct.append(("get_thing(id, with connections)", time_queries(
                    n, any_id, lambda t: q.get_thing(conn, ORG, t, True))))
                direct.append(("list_things(type=…) first page", time_queries(
                    n, any_type, lambda t: q.list_things(conn, ORG, type=t))))
                extra = args.extra_queries
                direct.append(("list_things(tag=…) first page", time_queries(
                    extra, any_tag, lambda t: q.list_things(conn, ORG, tag=t))))
                direct.append(("list_things() no filter, first page", time_queries(
                    extra, lambda: None, lambda _: q.list_things(conn, ORG))))
                direct.append(("list_activity(target_id=…)", time_queries(
                    extra, any_id, lambda t: q.list_activity(conn, ORG, target_id=t))))
            if not args.no_http:
                with LiveServer(rt) as live, LoadClient() as client:
                    kinds: dict[str, Callable[[], Request]] = {
                        "GET /healthz (HTTP baseline)": lambda: build_request("GET", "/healthz"),
                        "GET /v1/things/{id}?include=connections": lambda: build_request(
                            "GET", f"/v1/things/{rng.choice(ids)}?include=connections", None, AUTH),
                        "GET /v1/things?type=…": lambda: build_request(
                            "GET", f"/v1/things?type={rng.choice(TYPE_POOL)}", None, AUTH),
                    }
                    n = args.http_queries
                    for conc in (1, 16):
                        for label, make in kinds.items():
                            note(f"HTTP {label} x {n}, {conc} connections")
                            reqs = [make() for _ in range(n)]
                            raw = client.run(live.port, reqs, conc, warmup=20)
                            http.append((label, conc, {
                                "n": len(raw["latencies"]), "wall": raw["wall"],
                                "lat": Latencies(raw["latencies"]), "statuses": raw["statuses"],
                                "sample_error": raw["sample_error"]}))
        finally:
            rt.close()

    print("\n- data set: " + ", ".join(f"{k}={v:,}" for k, v in data.by_type.items())
          + f"; {data.events:,} events appended in {data.seconds:.1f}s"
          f" ({data.events / data.seconds:,.0f} events/s via EventLog.save batches of 500)")
    print(f"- projected from cold by the runtime's runner in {projected_s:.1f}s"
          f" ({head / projected_s:,.0f} events/s)")
    print("- read-model rows: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    base = direct[0][1]["lat"].summary()["p50"]
    print_table("Direct queries (one pooled connection, sequential, random arguments)",
                ("query", *LATENCY_HEADERS, "p50 vs SELECT 1"),
                [(*latency_row(label, r), f"{r['lat'].summary()['p50'] / base:.1f}x")
                 for label, r in direct])
    if http:
        rows = []
        for label, conc, r in http:
            errors = sum(v for k, v in r["statuses"].items() if k >= 300)
            rows.append((label, conc, *latency_row(label, r)[1:], str(errors)))
        print_table("Over HTTP (full runtime; client in a separate process)",
                    ("request", "connections", *LATENCY_HEADERS, "non-2xx"), rows)
    worst = max(r["lat"].summary()["p99"] for label, r in direct[1:3])
    print(f"Issue target: p99 < 10 ms for get-thing-with-connections and list-by-type (direct)."
          f" Worst p99: {fmt_ms(worst)} ms -> {'MET' if worst < 10 else 'NOT MET'}.")
    if http:
        worst_http = max(r["lat"].summary()["p99"] for label, c, r in http
                         if c == 1 and "healthz" not in label)
        print(f"Over HTTP with 1 connection the worst p99 is {fmt_ms(worst_http)} ms"
              f" ({'within' if worst_http < 10 else 'above'} 10 ms).")


if __name__ == "__main__":
    main()
