"""The agent marketplace over HTTP: executions/s and their latency (start, the local responder,
finish: two transactions of the log each), then the usage query over everything they recorded
and the agent listing with its execution figures. The local responder stands for the model, so
the figures are ONE's own cost per execution, not a model's.

    .venv/bin/python -m bench.agents [--agents 10] [--executions 500]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from typing import Any

import httpx

from api.runtime import Runtime
from bench.common import (
    AUTH,
    Latencies,
    bench_settings,
    fmt_ms,
    fmt_rate,
    fresh_database,
    print_header,
    print_table,
)
from tests.support.live_server import LiveServer

PRICING = {"per_execution_usd": 0.01, "per_1k_tokens_usd": 0.5}


def _timed(client: httpx.Client, requests: Iterable[tuple[str, str, dict[str, Any]]]) -> Latencies:
    """Send the requests one at a time; their latencies."""
    latencies = Latencies()
    for method, url, kwargs in requests:
        sent = time.perf_counter()
        client.request(method, url, **kwargs).raise_for_status()
        latencies.values.append(time.perf_counter() - sent)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--executions", type=int, default=500)
    args = parser.parse_args()
    with fresh_database("agents") as bench_db:
        print_header("bench/agents: the agent marketplace", bench_db, agents=args.agents,
                     executions=args.executions)
        rt = Runtime.start(bench_settings(run_sagas=False, run_knowledge=False), bench_db.info)
        try:
            with LiveServer(rt) as live, httpx.Client(base_url=live.url, timeout=60, headers=AUTH) as client:
                agents = [client.post("/v1/agents", json={
                    "type": "research_agent", "name": f"Scout {n}", "system_prompt": "You research markets.",
                    "pricing": PRICING}).json()["id"] for n in range(args.agents)]
                t0 = time.perf_counter()
                runs = _timed(client, (("POST", f"/v1/agents/{agents[n % len(agents)]}/executions",
                                        {"json": {"input": f"Question {n} about the market"}})
                                       for n in range(args.executions)))
                elapsed = time.perf_counter() - t0
                after = {"params": {"after": rt.head()}}
                queries = {url: _timed(client, [("GET", url, after)] * 50).summary()
                           for url in ("/v1/agents/usage", "/v1/agents")}
        finally:
            rt.close()
    run = runs.summary()
    print_table("executions over HTTP, one at a time (local responder)",
                ["executions", "seconds", "executions/s", "p50 ms", "p99 ms"],
                [(f"{args.executions}", f"{elapsed:.1f}", fmt_rate(args.executions / elapsed),
                  fmt_ms(run["p50"]), fmt_ms(run["p99"]))])
    print_table(f"queries over {args.executions} executions of {args.agents} agents (50 each)",
                ["query", "p50 ms", "p99 ms"],
                [(f"GET {url}", fmt_ms(lat["p50"]), fmt_ms(lat["p99"])) for url, lat in queries.items()])


if __name__ == "__main__":
    main()
