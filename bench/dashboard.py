"""The analytics dashboard on a large log: how long `GET /v1/analytics/dashboard` (every figure the
page shows, in one read) takes once the read models hold `--events` events, directly and over
HTTP, against a full scan of the activity table in the same process as the baseline.

    .venv/bin/python -m bench.dashboard [--events 1000000] [--things 50000] [--reads 30]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import httpx

from api.runtime import Runtime
from bench.common import (
    AUTH,
    Latencies,
    bench_settings,
    fmt_ms,
    fresh_database,
    load_dataset,
    log_head,
    note,
    print_header,
    print_table,
)
from commands.handlers import SYSTEM_ORG_ID
from eventlog.store import open_event_log
from infra.migrations import migrate
from projections import analytics
from tests.support.live_server import LiveServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--things", type=int, default=50_000)
    parser.add_argument("--reads", type=int, default=30)
    args = parser.parse_args()
    org = str(SYSTEM_ORG_ID)
    with fresh_database("dashboard") as bench_db:
        print_header("bench/dashboard: analytics over a large log", bench_db, events=args.events,
                     things=args.things, reads=args.reads)
        migrate(bench_db.info)
        log = open_event_log(bench_db.info)
        data = load_dataset(log, args.things, args.events)
        log.close()
        note(f"loaded {data.events:,} events in {data.seconds:.0f}s; projecting")
        rt = Runtime.start(bench_settings(run_sagas=False, run_knowledge=False), bench_db.info)
        try:
            rt.wait_for_sync(log_head(bench_db.info), timeout=3600)
            since = datetime.now(UTC) - timedelta(days=30)
            with rt.reads.connection() as conn:
                conn.execute("ANALYZE")
                rows = conn.execute("SELECT count(*) FROM activity").fetchone()
                activity = int(rows[0]) if rows else 0
                board = analytics.dashboard(rt.reads, org, since, None)
                full_scan = "SELECT count(*), sum(position) FROM activity"
                scan = Latencies().measure(lambda: conn.execute(full_scan).fetchone(), args.reads)
                direct = Latencies().measure(lambda: analytics.dashboard(rt.reads, org, since, None),
                                             args.reads)
            with LiveServer(rt) as live, httpx.Client(base_url=live.url, headers=AUTH, timeout=60) as http:
                params = {"since": since.isoformat()}
                over_http = Latencies().measure(
                    lambda: http.get("/v1/analytics/dashboard", params=params).raise_for_status(), args.reads)
        finally:
            rt.close()
    rows_out = []
    for label, lat in (("full scan of activity (baseline)", scan), ("analytics.dashboard, direct", direct),
                       ("GET /v1/analytics/dashboard", over_http)):
        s = lat.summary()
        rows_out.append((label, fmt_ms(s["p50"]), fmt_ms(s["p99"]), fmt_ms(s["max"]),
                         f"{s['p50'] / scan.summary()['p50']:.2f}x"))
    print_table(f"dashboard reads over {activity:,} activity rows ({data.events:,} events)",
                ["read", "p50 ms", "p99 ms", "max ms", "vs scan p50"], rows_out)
    print(f"check: revenue total {board['revenue']['total']:,.0f} over {board['revenue']['count']:,}"
          f" completed payments; top content {len(board['top_content'])} rows")


if __name__ == "__main__":
    main()
