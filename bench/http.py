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
- POST /v1/things and GET /v1/things/{id} on a second server of the same runtime that serves the
  same handler calls without the authentication dependency: what authentication costs (scoping
  to the organization is in both: it is part of the queries and the command handlers).

Usage: .venv/bin/python -m bench.http [--requests 6000] [--concurrency 16,64] [--repeat 2]
       [--no-idempotency] [--no-knowledge]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from dataclasses import replace
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from api.deps import CleanQuery, Consistent, ReadDep, parse_if_match, send_command
from api.routes.reads import found
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
from commands.handlers import SYSTEM_ACTOR_ID, SYSTEM_ORG_ID, Context
from commands.models import CreateThing
from projections import queries as q
from tests.support.live_server import LiveServer


def thing_body(i: int) -> bytes:
    """The JSON of a typical create-thing request (same shape as bench.append's command)."""
    return json.dumps({"type": "blog_post", "name": f"Post {i}", "status": "published",
                       "properties": {"n": i, "title": f"Benchmark post {i}", "words": 800},
                       "tags": ["topic:fitness"]}).encode()


UNAUTHENTICATED = "/unauthenticated"
"""Prefix of the measured routes without authentication, served by the same app."""


def with_unauthenticated_routes(rt: Any) -> Any:
    """The app of the runtime plus the two measured routes without authentication, under
    `/unauthenticated`: the same parameters and dependencies (query check, read-your-writes,
    read connection, If-Match, Idempotency-Key), handler calls (command bus,
    organization-scoped query), middleware and error handling, as the platform owner of the
    default organization; each placed just after its authenticated original in the routing
    table (routing through FastAPI's included routers is not free: the copy pays one router
    more than the original, which favours neither side by more than that). Only the
    authentication dependency is missing."""
    from api.app import create_app
    from api.routes import reads, writes

    owner = Context(actor_id=str(SYSTEM_ACTOR_ID), org_id=str(SYSTEM_ORG_ID), role="platform_owner")
    posts, gets = APIRouter(prefix=UNAUTHENTICATED), APIRouter(prefix=UNAUTHENTICATED)

    @posts.post("/v1/things", status_code=201, dependencies=[CleanQuery])
    async def create_thing(request: Request, body: CreateThing,
                           idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
                           if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
        ctx = replace(owner, idempotency_key=idempotency_key, expected_version=parse_if_match(if_match))
        return await send_command(request, ctx, body)

    @gets.get("/v1/things/{thing_id}", dependencies=[CleanQuery, Consistent])
    def get_thing(thing_id: UUID, conn: ReadDep, include: str | None = None) -> JSONResponse:
        thing = q.get_thing(conn, owner.org_id, thing_id, include == "connections")
        return found(thing, "thing", thing_id)

    app = create_app(rt)
    routes = app.router.routes
    for router, original in ((posts, writes.router), (gets, reads.router)):
        app.include_router(router)
        index = next(i for i, r in enumerate(routes) if getattr(r, "original_router", None) is original)
        routes.insert(index + 1, routes.pop())
    return app


def authentication_us(rt: Any, rounds: int = 9, calls: int = 3000) -> tuple[float, float]:
    """Server CPU per request (µs) of a trivial route with and without the authentication
    dependency, the ASGI app called directly (no network, no database): what authentication
    itself costs, free of the noise of a loaded 2-core machine (best of `rounds`)."""
    import asyncio

    from api.auth import Authenticated, permission

    def app_with(dependencies: list[Any]) -> Any:
        app = FastAPI()
        app.state.runtime = rt
        router = APIRouter(dependencies=dependencies)

        @router.get("/v1/things", openapi_extra=permission("things.read"))
        async def listed() -> JSONResponse:
            return JSONResponse({"items": []})

        app.include_router(router)
        return app

    headers = [(b"host", b"bench"), *((k.lower().encode(), v.encode()) for k, v in AUTH.items())]
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/v1/things",
             "raw_path": b"/v1/things", "root_path": "", "scheme": "http", "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        assert message.get("status", 200) == 200, message

    async def cpu_per_call(app: Any) -> float:
        start = time.process_time()
        for _ in range(calls):
            await app(dict(scope), receive, send)
        return (time.process_time() - start) / calls * 1e6

    with_auth, without = app_with([Authenticated, CleanQuery]), app_with([CleanQuery])
    best = [min(asyncio.run(cpu_per_call(app)) for _ in range(rounds)) for app in (with_auth, without)]
    return best[0], best[1]


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
    p.add_argument("--no-knowledge", action="store_true",
                   help="run the runtime without the knowledge runner (ONE_KNOWLEDGE=0), which\n"
                        "otherwise embeds every created thing on this machine's cores")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x]
    reps = max(1, args.repeat)

    from api.runtime import Runtime

    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with fresh_database("http") as bdb:
        print_header("bench.http — commands over real HTTP", bdb, requests_per_run=args.requests,
                     concurrency=args.concurrency, repeat=reps, server=server_stack(),
                     client="raw asyncio HTTP/1.1 keep-alive, spawned process",
                     knowledge=not args.no_knowledge)
        rt = Runtime.start(bench_settings(run_knowledge=not args.no_knowledge), bdb.info)
        try:
            ids = [rt.bus.execute(CreateThing(type="course", name=f"read {i}")).body["id"]
                   for i in range(200)]
            with LiveServer(with_unauthenticated_routes(rt)) as live, LoadClient() as client:
                counter = 0

                def posts(n: int, keyed: bool = False, prefix: str = "") -> list[Any]:
                    nonlocal counter
                    out = []
                    for _ in range(n):
                        counter += 1
                        headers = {**AUTH, "Idempotency-Key": uuid.uuid4().hex} if keyed else AUTH
                        out.append(build_request("POST", f"{prefix}/v1/things", thing_body(counter),
                                                 headers))
                    return out

                def gets(prefix: str = "") -> list[Any]:
                    return [build_request("GET", f"{prefix}/v1/things/{ids[i % len(ids)]}", None, AUTH)
                            for i in range(args.requests)]

                def measure(label: str, conc: int, make: Any, times: int = reps) -> None:
                    for _ in range(times):
                        note(f"{label} x {args.requests}, {conc} connections")
                        requests = make()
                        rt.wait_for_sync(rt.head(), timeout=600)  # no projection work left over
                        cpu = time.process_time()  # the server's process (the client is another)
                        raw = client.run(live.port, requests, conc)
                        runs.setdefault((label, conc), []).append(
                            _as_run(raw, time.process_time() - cpu))

                note("warm-up")
                client.run(live.port, posts(1000), 16, warmup=5)
                client.run(live.port, posts(1000, prefix=UNAUTHENTICATED), 16, warmup=5)
                health = [build_request("GET", "/healthz")] * args.requests
                offset = 50_000_000
                for conc in levels:
                    measure("GET /healthz (HTTP stack ceiling)", conc, lambda: health)
                    for _ in range(2 * reps):  # run by run, so drift hits both sides alike
                        measure("POST /v1/things", conc, lambda: posts(args.requests), 1)
                        measure("POST /v1/things, no authentication", conc,
                                lambda: posts(args.requests, prefix=UNAUTHENTICATED), 1)
                        measure("GET /v1/things/{id}", conc, gets, 1)
                        measure("GET /v1/things/{id}, no authentication", conc,
                                lambda: gets(UNAUTHENTICATED), 1)
                    if not args.no_idempotency:
                        measure("POST /v1/things + Idempotency-Key", conc,
                                lambda: posts(args.requests, keyed=True))
                    for _ in range(reps):
                        note(f"in-process bus x {args.requests}, {conc} callers")
                        runs.setdefault(("in-process bus.execute_async (no HTTP)", conc), []).append(
                            in_process(rt.bus, conc, args.requests, offset))
                        offset += args.requests
            t0 = time.perf_counter()
            rt.wait_for_sync(rt.head(), timeout=600)
            lag = time.perf_counter() - t0
            note("authentication alone, on the ASGI app")
            auth_us, bare_us = authentication_us(rt)
        finally:
            rt.close()
    rows = [(label, conc, median_run(done)) for (label, conc), done in runs.items()]

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
                ("path", "connections", "requests/run", "req/s (median)", "range of runs",
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
    print("\nWhat authentication costs (target: at most 5% of the throughput):")
    print(f"- by itself, on the ASGI app without network or database: {auth_us - bare_us:.1f} µs of"
          f" server CPU per request ({auth_us:.1f} vs {bare_us:.1f} µs for a trivial route).")
    for conc in levels:
        for path in ("POST /v1/things", "GET /v1/things/{id}"):
            ratio = pooled_rate(runs[(path, conc)]) / pooled_rate(runs[(f"{path}, no authentication",
                                                                        conc)])
            cpu_keyed = cpu_per_request(runs[(path, conc)])
            cpu_bare = cpu_per_request(runs[(f"{path}, no authentication", conc)])
            print(f"- {path} at {conc} connections: throughput (all runs) {fmt_ratio(ratio)} of the"
                  f" same route without it; server CPU {cpu_keyed * 1e6:,.0f} vs {cpu_bare * 1e6:,.0f} µs per"
                  f" request ({(cpu_keyed / cpu_bare - 1) * 100:+.1f}%); authentication's own"
                  f" {auth_us - bare_us:.1f} µs are {(auth_us - bare_us) / (cpu_bare * 1e6) * 100:.1f}%"
                  " of it.")
    print(f"Projections caught up {lag:.2f}s after the last request.")


def _as_run(raw: dict[str, Any], cpu_s: float) -> dict[str, Any]:
    from bench.common import Latencies

    return {"n": len(raw["latencies"]), "wall": raw["wall"], "lat": Latencies(raw["latencies"]),
            "statuses": raw["statuses"], "sample_error": raw["sample_error"], "cpu": cpu_s}


def pooled_rate(done: list[dict[str, Any]]) -> float:
    """Requests per second over all runs of a row together."""
    count: int = sum(r["n"] for r in done)
    wall: float = sum(r["wall"] for r in done)
    return count / wall


def cpu_per_request(done: list[dict[str, Any]]) -> float:
    """Server CPU seconds per request over all runs of a row (steadier than throughput on a
    shared 2-core machine)."""
    cpu: float = sum(r["cpu"] for r in done)
    count: int = sum(r["n"] for r in done)
    return cpu / count


if __name__ == "__main__":
    main()
