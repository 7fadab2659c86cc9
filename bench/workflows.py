"""The workflow engine: journeys/s through the process runner, and how fast a user's signal moves
a waiting journey on (signal accepted → the step completed in the log), against the command
bus's own rate for the same number of appends (the same process, as the baseline).

Each journey runs a definition shaped like ELEVATE without its timers: an action (recording
activity), a signal step the bench answers, an action, and a payment gate paid with the Stripe
test-mode sandbox. Every step is a try record plus a completion (with its effects).

    .venv/bin/python -m bench.workflows [--journeys 300]
"""

from __future__ import annotations

import argparse
import time
from uuid import UUID

from api.runtime import Runtime
from bench.common import (
    Latencies,
    bench_settings,
    fmt_ms,
    fmt_rate,
    fresh_database,
    print_header,
    print_table,
)
from commands import models as m
from commands.handlers import Context
from commands.workflows import SignalWorkflow, StartWorkflow
from domain.workflows import Step, WorkflowDefinition, WorkflowInstance
from providers.stripe_sandbox import sandbox_gateway
from tests.support.stripe_sandbox_hooks import ObservedSandbox

JOURNEY = WorkflowDefinition("bench", 1, (
    Step("hook", "action", {"action": "record_activity", "type": "user_engaged",
                            "metadata": {"step": "hook"}}),
    Step("engage", "signal", {"name": "engage"}),
    Step("gift", "action", {"action": "record_activity", "type": "report_generated", "metadata": {}}),
    Step("identify", "payment", {"amount_cents": 10_000, "currency": "usd"}),
))


def _statuses(rt: Runtime) -> dict[str, int]:
    with rt.reads.connection() as conn:
        rows = conn.execute("SELECT status, count(*) FROM sagas WHERE kind = 'workflow'"
                            " GROUP BY status").fetchall()
    return {str(status): int(count) for status, count in rows}


def _until(rt: Runtime, status: str, count: int) -> None:
    while _statuses(rt).get(status, 0) < count or rt.projected() < rt.head():
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--journeys", type=int, default=300)
    args = parser.parse_args()
    with fresh_database("workflows") as bench_db:
        print_header("bench/workflows: the process engine", bench_db, journeys=args.journeys)
        rt = Runtime.start(bench_settings(run_sagas=False, run_knowledge=False), bench_db.info)
        try:
            rt.start_sagas(payments=sandbox_gateway(ObservedSandbox()))
            assert rt.sagas is not None
            person = UUID(str(rt.bus.execute(m.CreatePerson(name="Bench", role="customer")).body["id"]))
            t0 = time.perf_counter()
            futures = [rt.bus.submit(StartWorkflow(subject_id=person, definition=JOURNEY.to_dict()))
                       for _ in range(args.journeys)]
            ids = [UUID(str(f.result().body["id"])) for f in futures]
            for instance in ids:
                rt.sagas.poke(instance, "workflow")
            _until(rt, "waiting", args.journeys)  # all at the signal step
            to_signal = time.perf_counter() - t0
            customer = Context(actor_id=str(person), role="customer")
            latencies = Latencies()
            t1 = time.perf_counter()
            for instance in ids:
                sent = time.perf_counter()
                rt.bus.execute(SignalWorkflow(id=instance, name="engage"), customer)
                card = {"payment_method": "pm_card_visa"}
                rt.bus.execute(SignalWorkflow(id=instance, name="pay", data=card), customer)
                rt.sagas.poke(instance, "workflow")
                while True:
                    state: WorkflowInstance = rt.event_log.repository.get(instance)
                    if state.steps["engage"]["status"] == "completed":
                        break
                    time.sleep(0.002)
                latencies.values.append(time.perf_counter() - sent)
            _until(rt, "completed", args.journeys)
            rest = time.perf_counter() - t1
            events = rt.head()
            t2 = time.perf_counter()
            done = [rt.bus.submit(m.RecordActivity(type="user_engaged", metadata={})) for _ in range(events)]
            for future in done:
                future.result()
            baseline = time.perf_counter() - t2
        finally:
            rt.close()
    total = to_signal + rest
    lat = latencies.summary()
    engine, alone = events / total, events / baseline
    print_table("journeys through the engine (4 steps: action, signal, action, payment gate)",
                ["journeys", "seconds", "journeys/s", "log events", "events/s", "bus alone events/s",
                 "ratio"],
                [(f"{args.journeys}", f"{total:.1f}", fmt_rate(args.journeys / total), f"{events:,}",
                  fmt_rate(engine), fmt_rate(alone), f"{engine / alone:.2f}x")])
    print_table("signal → its step completed (one journey at a time)",
                ["signals", "p50 ms", "p99 ms", "max ms"],
                [(f"{len(latencies.values)}", fmt_ms(lat["p50"]), fmt_ms(lat["p99"]), fmt_ms(lat["max"]))])


if __name__ == "__main__":
    main()
