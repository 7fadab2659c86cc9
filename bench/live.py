"""Live stream delivery: how long after a command commits its event reaches `GET /v1/stream`
clients (Server-Sent Events), for 1, 10 and 50 subscribers.

The server runs in this process (the full embedded runtime); the subscribers run in a spawned
process (asyncio, one HTTP connection each) and note the wall-clock time each event arrives. The
writer appends one command at a time at a steady rate and notes when each committed. Baseline of
the same run: a plain PostgreSQL `LISTEN` on the log's channel in the subscribers' process (what
any push from this database costs at least).

    .venv/bin/python -m bench.live [--events 500] [--rate 100] [--subscribers 1,10,50]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from typing import Any

import httpx
import psycopg

from api.runtime import Runtime
from bench.common import AUTH, Latencies, bench_settings, fmt_ms, fresh_database, print_header, print_table
from commands import models as m
from eventlog.store import EVENTS_TABLE
from tests.support.live_server import LiveServer


def subscribe(url: str, auth: dict[str, str], conninfo: str, after: int, events: int, subscribers: int,
              ready: Any, results: Any) -> None:
    """In a separate process: `subscribers` SSE clients and one LISTEN connection, each noting
    when every event arrives (position → time.time())."""
    results.put(asyncio.run(_subscribe(url, auth, conninfo, after, events, subscribers, ready)))


async def _subscribe(url: str, auth: dict[str, str], conninfo: str, after: int, events: int,
                     subscribers: int, ready: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=None) as http:
        clients = [asyncio.create_task(_client(http, after, events)) for _ in range(subscribers)]
        listener = asyncio.create_task(_listen(conninfo, events))
        await asyncio.sleep(1.0)  # every client connected and caught up to `after`
        ready.set()
        arrivals = await asyncio.gather(*clients)
        notified = await listener
    return {"sse": arrivals, "listen": notified}


async def _client(http: httpx.AsyncClient, after: int, events: int) -> dict[int, float]:
    arrived: dict[int, float] = {}
    async with http.stream("GET", "/v1/stream", params={"after": after, "limit": events}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                arrived[int(line[4:])] = time.time()
    return arrived


async def _listen(conninfo: str, events: int) -> list[float]:
    times: list[float] = []
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(f"LISTEN {EVENTS_TABLE}")
        async for _ in conn.notifies():
            times.append(time.time())
            if len(times) == events:
                break
    return times


def write(rt: Runtime, events: int, rate: float) -> dict[int, float]:
    """Append `events` single-event commands at `rate` per second; position → commit time."""
    committed: dict[int, float] = {}
    started = time.perf_counter()
    for i in range(events):
        body = rt.bus.execute(m.CreateThing(type="course", name=f"live {i}")).body
        committed[body["position"]] = time.time()
        pause = started + (i + 1) / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    return committed


def run(rt: Runtime, url: str, events: int, rate: float, subscribers: int) -> tuple[Latencies, Latencies]:
    """One round: (SSE latencies over all subscribers, LISTEN latencies)."""
    spawn = multiprocessing.get_context("spawn")
    ready, results = spawn.Event(), spawn.Queue()
    head = rt.head()
    process = spawn.Process(target=subscribe, args=(url, AUTH, rt.db.conninfo, head, events, subscribers,
                                                    ready, results))
    process.start()
    ready.wait(60)
    committed = write(rt, events, rate)
    arrivals = results.get(timeout=300)
    process.join(30)
    sse, listen = Latencies(), Latencies()
    for client in arrivals["sse"]:
        sse.values += [client[position] - at for position, at in committed.items()]
    listen.values += [t - at for t, at in zip(arrivals["listen"], committed.values(), strict=True)]
    return sse, listen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500, help="events per round (default 500)")
    parser.add_argument("--rate", type=float, default=100, help="commands per second (default 100)")
    parser.add_argument("--subscribers", default="1,10,50", help="subscriber counts (default 1,10,50)")
    args = parser.parse_args()
    with fresh_database("live") as bench_db:
        print_header("bench/live: commit → Server-Sent Event", bench_db, events=args.events, rate=args.rate)
        rt = Runtime.start(bench_settings(run_knowledge=False), bench_db.info)
        rows = []
        try:
            with LiveServer(rt) as live:
                for count in (int(n) for n in args.subscribers.split(",")):
                    sse, listen = run(rt, live.url, args.events, args.rate, count)
                    s, b = sse.summary(), listen.summary()
                    rows.append((count, f"{len(sse.values):,}", fmt_ms(s["p50"]), fmt_ms(s["p99"]),
                                 fmt_ms(s["max"]), fmt_ms(b["p50"]), fmt_ms(b["p99"]),
                                 f"{s['p99'] / max(b['p99'], 1e-9):.1f}x"))
        finally:
            rt.close()
        print_table("delivery latency, commit → client (target p99 < 100 ms)",
                    ["subscribers", "deliveries", "SSE p50 ms", "SSE p99 ms", "SSE max ms",
                     "LISTEN p50 ms", "LISTEN p99 ms", "SSE p99 / LISTEN p99"], rows)


if __name__ == "__main__":
    main()
