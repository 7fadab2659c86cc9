"""Commands over real HTTP: POST /v1/things against uvicorn serving the full runtime
(command bus + in-process projection runner), as `one serve` does.

The server runs in this process (uvicorn in a thread, like the test fixtures); the load client
runs in a spawned process so it does not compete for this process's GIL (it still competes for
the machine's 2 cores). The client is a minimal asyncio HTTP/1.1 keep-alive client: N
connections, each sending its next request when the previous answer arrived (closed loop).
Latency is measured per request at the client.

Baselines in the same run:
- GET /healthz with the same client and concurrency: the ceiling of the HTTP stack alone;
- the same CreateThing commands through `bus.execute_async` in-process (no HTTP), same callers;
- POST /v1/things and GET /v1/things/{id} on a second server of the same runtime whose
  authentication dependency is replaced by a fixed caller: what authentication costs (scoping to
  the organization is in both: it is part of the queries and the command handlers).

Usage: .venv/bin/python -m bench.http [--requests 6000] [--concurrency 16,64] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

from api.auth import Caller, authenticate
from api.keyring import Principal
from api.live_server import LiveServer
from bench.common import (
    AUTH,
    LoadClient,
    bench_settings,
    build_request,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    fresh_database,
    median_run,
    note,
    print_header,
    print_table,
    server_stack,
)


def thing_body(i: int) -> bytes:
    """The JSON of a typical create-thing request (same shape as bench.append's command)."""
    return json.dumps({"type": "blog_post", "name": f"Post {i}", "status": "published",
                       "properties": {"n": i, "title": f"Benchmark post {i}", "words": 800},
                       "tags": ["topic:fitness"]}).encode()


def bypassed_auth_app(rt: Any) -> Any:
    """The same app with authentication replaced by a fixed platform-owner caller."""
    from api.app import create_app
    from commands.handlers import SYSTEM_ACTOR_ID, SYSTEM_ORG_ID
    from domain.permissions import Reach

    caller = Caller(Principal("bench", "bootstrap", str(SYSTEM_ACTOR_ID), str(SYSTEM_ORG_ID),
                              "platform_owner", None), str(SYSTEM_ORG_ID), Reach.ORG)

    async def fixed_caller() -> Caller:
        return caller

    app = create_app(rt)
    app.dependency_overrides[authenticate] = fixed_caller
    return app


def in_process(bus: Any, callers: int, total: int, offset: int) -> dict[str, Any]:
    """The same commands without HTTP, awaited by `callers` asyncio tasks in this process."""
    from bench.append import run_bus_async

    return dict(run_bus_async(bus, callers, total, offset))


def main(argv: list[str] | None = None) -> None:
    """Parse flags, run, print the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=6_000, help="requests per run (default 6000)")
    p.add_argument("--concurrency", default="16,64",
                   help="concurrent client connections (default 16,64)")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs per row; the median run is shown with the range (default 2)")
    p.add_argument("--no-idempotency", action="store_true",
                   help="skip the row whose requests carry a fresh Idempotency-Key each")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x]
    reps = max(1, args.repeat)

    from api.runtime import Runtime
    from commands.models import CreateThing

    rows: list[tuple[str, int, dict[str, Any]]] = []
    with fresh_database("http") as bdb:
        print_header("bench.http — commands over real HTTP", bdb, requests_per_run=args.requests,
                     concurrency=args.concurrency, repeat=reps, server=server_stack(),
                     client="raw asyncio HTTP/1.1 keep-alive, spawned process")
        rt = Runtime.start(bench_settings(), bdb.info)
        try:
            ids = [rt.bus.execute(CreateThing(type="course", name=f"read {i}")).body["id"]
                   for i in range(200)]
            with LiveServer(rt) as live, LiveServer(bypassed_auth_app(rt)) as bypassed, \
                    LoadClient() as client:
                counter = 0

                def posts(n: int, keyed: bool = False) -> list[Any]:
                    nonlocal counter
                    out = []
                    for _ in range(n):
                        counter += 1
                        headers = {**AUTH, "Idempotency-Key": uuid.uuid4().hex} if keyed else AUTH
                        out.append(build_request("POST", "/v1/things", thing_body(counter), headers))
                    return out

                gets = [build_request("GET", f"/v1/things/{ids[i % len(ids)]}", None, AUTH)
                        for i in range(args.requests)]

                def measure(label: str, port: int, conc: int, make: Any) -> None:
                    runs = []
                    for _ in range(reps):
                        note(f"{label} x {args.requests}, {conc} connections")
                        runs.append(_as_run(client.run(port, make(), conc)))
                    rows.append((label, conc, median_run(runs)))

                note("warm-up")
                client.run(live.port, posts(1000), 16, warmup=5)
                client.run(bypassed.port, posts(1000), 16, warmup=5)
                health = [build_request("GET", "/healthz")] * args.requests
                offset = 50_000_000
                for conc in levels:
                    measure("GET /healthz (HTTP stack ceiling)", live.port, conc, lambda: health)
                    measure("POST /v1/things", live.port, conc, lambda: posts(args.requests))
                    measure("POST /v1/things, authentication bypassed", bypassed.port, conc,
                            lambda: posts(args.requests))
                    measure("GET /v1/things/{id}", live.port, conc, lambda: gets)
                    measure("GET /v1/things/{id}, authentication bypassed", bypassed.port, conc,
                            lambda: gets)
                    if not args.no_idempotency:
                        measure("POST /v1/things + Idempotency-Key", live.port, conc,
                                lambda: posts(args.requests, keyed=True))
                    runs = []
                    for _ in range(reps):
                        note(f"in-process bus x {args.requests}, {conc} callers")
                        runs.append(in_process(rt.bus, conc, args.requests, offset))
                        offset += args.requests
                    rows.append(("in-process bus.execute_async (no HTTP)", conc,
                                 median_run(runs)))
            t0 = time.perf_counter()
            rt.wait_for_sync(rt.head(), timeout=600)
            lag = time.perf_counter() - t0
        finally:
            rt.close()

    table = []
    for label, conc, r in rows:
        rate = r["n"] / r["wall"]
        s = r["lat"].summary()
        base = next(b for lbl, c, b in rows if c == conc and lbl.startswith("in-process"))
        ceiling = next(b for lbl, c, b in rows if c == conc and lbl.startswith("GET /healthz"))
        errors = sum(v for k, v in r.get("statuses", {}).items() if k >= 300)
        table.append((label, conc, f"{r['n']:,}", fmt_rate(rate), r["range"], fmt_ms(s["p50"]),
                      fmt_ms(s["p99"]), str(errors),
                      fmt_ratio(rate / (base["n"] / base["wall"])),
                      fmt_ratio(rate / (ceiling["n"] / ceiling["wall"]))))
    print_table("HTTP commands (server: full runtime; client: separate process)",
                ("path", "connections", "requests/run", "req/s (median)", f"range of {reps}",
                 "p50 ms", "p99 ms", "non-2xx", "vs in-process bus", "vs /healthz"), table)
    for label, _, r in rows:
        if r.get("sample_error"):
            print(f"sample error for {label}: {r['sample_error']}")
    top = max(levels)
    main_row = next(r for lbl, c, r in rows if c == top and lbl == "POST /v1/things")
    rate, p99 = main_row["n"] / main_row["wall"], main_row["lat"].summary()["p99"]
    met = rate >= 2_000 and p99 < 50
    print(f"Issue target: >= 2,000 commands/s over HTTP with p99 < 50 ms. Measured at {top}"
          f" connections: {fmt_rate(rate)}/s, p99 {fmt_ms(p99)} ms -> {'MET' if met else 'NOT MET'}.")
    for conc in levels:
        for path in ("POST /v1/things", "GET /v1/things/{id}"):
            keyed = next(r for lbl, c, r in rows if c == conc and lbl == path)
            bare = next(r for lbl, c, r in rows if c == conc and lbl == f"{path}, authentication bypassed")
            ratio = (keyed["n"] / keyed["wall"]) / (bare["n"] / bare["wall"])
            print(f"Authentication at {conc} connections, {path}: {fmt_ratio(ratio)} of the throughput"
                  f" without it ({(1 - ratio) * 100:+.1f}% cost; target: at most 5%).")
    print(f"Projections caught up {lag:.2f}s after the last request.")


def _as_run(raw: dict[str, Any]) -> dict[str, Any]:
    from bench.common import Latencies

    return {"n": len(raw["latencies"]), "wall": raw["wall"], "lat": Latencies(raw["latencies"]),
            "statuses": raw["statuses"], "sample_error": raw["sample_error"]}


if __name__ == "__main__":
    main()
