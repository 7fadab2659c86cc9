"""Distributed-mode figures on a real Kafka broker: relay throughput, Faust projection throughput
with 1, 2 (or any number of) workers, end-to-end latency (HTTP command → visible through Kafka and Faust),
and the fast-path rebuild rate straight from the log.

Baselines of the same run for the Faust rows: the in-process rebuild of the same log (the issue's
ratio: a worker should reach 0.8x of it), and a raw aiokafka consumer (the client Faust is built
on) reading every record of the topic and doing nothing with them (the transport's ceiling).

    .venv/bin/python -m bench.stream [--events 100000] [--latency-samples 300] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition

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
from commands import models as m
from infra.database import ConnectionInfo
from projections.rebuild import rebuild
from projections.registry import PROJECTIONS
from projections.store import reset_projection
from streams.relay import KafkaTarget, Relay, ensure_topic, open_producer
from streams.watermarks import lowest_watermark
from tests.support.kafka_broker import KafkaBroker
from tests.support.live_server import LiveServer

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 8


def write_events(rt: Runtime, count: int) -> int:
    """Append `count` single-event commands (creations with a tag, and updates) fast."""
    futures: list[Future[Any]] = []
    ids: list[uuid.UUID] = []
    for i in range(count):
        if i % 4 == 3 and ids:
            futures.append(rt.bus.submit(m.UpdateThing(id=ids[i % len(ids)], properties={"n": i})))
        else:
            thing_id = uuid.uuid4()
            ids.append(thing_id)
            futures.append(rt.bus.submit(m.CreateThing(id=thing_id, type="blog_post", name=f"p{i}",
                                                       tags=[f"topic:t{i % 50}"])))
        if len(futures) >= 20_000:
            wait(futures)
            futures.clear()
    wait(futures)
    return rt.head()


WORKER_LOGS = Path(tempfile.mkdtemp(prefix="one-bench-workers-"))
"""Where the workers' output goes (printed with the figures)."""


def spawn_worker(db: ConnectionInfo, broker: KafkaBroker, topic: str, group: str) -> subprocess.Popen[bytes]:
    """`one worker` as a separate process, like production."""
    env = {**os.environ, "DATABASE_URL": f"postgresql://{db.user}@/{db.dbname}?host={db.host}&port={db.port}",
           "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "ONE_KAFKA_TOPIC": topic,
           "ONE_KAFKA_PARTITIONS": str(PARTITIONS), "ONE_FAUST_APP_ID": group,
           "ONE_DATA_DIR": tempfile.mkdtemp(prefix="one-bench-worker-")}
    log = WORKER_LOGS / f"worker-{group}-{uuid.uuid4().hex[:4]}.log"
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "api.cli", "worker", "--loglevel", "INFO"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def project_with_workers(db: ConnectionInfo, broker: KafkaBroker, topic: str, head: int,
                         workers: int) -> tuple[float, float]:
    """Reset the read models, start `workers` Faust workers on a new group, and time the catch-up
    from the first projected watermark to the head (worker start-up excluded). Returns (events/s,
    start-up seconds)."""
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        for projection in PROJECTIONS.values():
            reset_projection(conn, projection)
        conn.execute("DELETE FROM stream_watermarks")
    group = f"bench-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    procs = [spawn_worker(db, broker, topic, group) for _ in range(workers)]
    first_seen = first_position = None
    try:
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            while (reached := lowest_watermark(conn, topic, PARTITIONS)) < head:
                progress = conn.execute("SELECT count(*) FROM things").fetchone()
                if first_seen is None and progress and progress[0] > 0:
                    first_seen, first_position = time.perf_counter(), reached
                time.sleep(0.05)
        done = time.perf_counter()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    assert first_seen is not None and first_position is not None
    return (head - first_position) / max(done - first_seen, 1e-9), first_seen - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--workers", default="1,2", help="Faust worker counts to time (default 1,2)")
    args = parser.parse_args()
    topic = f"bench.events.{uuid.uuid4().hex[:6]}"
    with fresh_database("stream") as bench_db, KafkaBroker(partitions=PARTITIONS) as broker:
        broker.start()
        print_header("bench/stream: log → Kafka → Faust → read models", bench_db,
                     events=args.events, partitions=PARTITIONS, broker="Apache Kafka 4.1 (KRaft)",
                     worker_logs=str(WORKER_LOGS))
        db = bench_db.info
        settings = bench_settings(kafka_bootstrap=broker.bootstrap, kafka_topic=topic,
                                  kafka_partitions=PARTITIONS, run_sagas=False)
        rt = Runtime.start(settings, db)
        try:
            head = write_events(rt, args.events)
            target = KafkaTarget(broker.bootstrap, topic, PARTITIONS)
            relay = Relay(rt.event_log, db, target)
            ensure_topic(target)
            producer = open_producer(target)
            t0 = time.perf_counter()
            with psycopg.connect(db.conninfo, autocommit=True) as conn:
                relay.catch_up(producer, conn)
            relay_s = time.perf_counter() - t0
            producer.close()
            rows = [("relay: log → Kafka (acks=all, idempotent)", f"{head:,}", fmt_rate(head / relay_s),
                     "target ≥ 20,000/s")]
            rebuilt = rebuild_rate(rt, db)
            rows.append(("baseline: rebuild straight from the log, in-process", f"{head:,}",
                         fmt_rate(rebuilt), "the same projections, no Kafka"))
            consumed, records = asyncio.run(raw_consume_rate(broker, topic))
            rows.append(("baseline: raw aiokafka consume, one consumer, no work", f"{records:,} records",
                         fmt_rate(consumed), "the transport's ceiling"))
            for workers in (int(n) for n in args.workers.split(",")):
                rate, start = project_with_workers(db, broker, topic, head, workers)
                rows.append((f"Faust projections, {workers} worker(s) over {PARTITIONS} partitions",
                             f"{head:,}", fmt_rate(rate),
                             f"{rate / rebuilt:.2f}x of the rebuild, {rate / consumed:.2f}x of raw consume;"
                             f" start-up {start:.1f}s excluded"))
            print_table("throughput", ["stage", "events", "events/s", "notes"], rows)
            latencies = end_to_end_latency(rt, db, broker, topic, args.latency_samples)
            s = latencies.summary()
            print_table("end-to-end latency: HTTP command accepted → visible in the read model",
                        ["samples", "p50 ms", "p99 ms", "max ms", "targets"],
                        [(len(latencies.values), fmt_ms(s["p50"]), fmt_ms(s["p99"]),
                          fmt_ms(s["max"]), "p50 < 100 ms, p99 < 500 ms")])
        finally:
            rt.close()


def end_to_end_latency(rt: Runtime, db: ConnectionInfo, broker: KafkaBroker, topic: str,
                       samples: int) -> Latencies:
    """POST a command, then GET it with ?after=<position>: the time until it is visible."""
    relay = Relay(rt.event_log, db, KafkaTarget(broker.bootstrap, topic, PARTITIONS))
    relay_thread = threading.Thread(target=relay.run, daemon=True)
    relay_thread.start()
    worker = spawn_worker(db, broker, topic, f"bench-latency-{uuid.uuid4().hex[:6]}")
    latencies = Latencies()
    try:
        with LiveServer(rt) as live, httpx.Client(base_url=live.url, timeout=30, headers=AUTH) as http:
            warm = http.post("/v1/things", json={"type": "course", "name": "warm-up"}).json()
            rt.wait_for_sync(warm["position"], timeout=600)  # the new group replays the topic first
            for i in range(samples):
                t0 = time.perf_counter()
                made = http.post("/v1/things", json={"type": "course", "name": f"c{i}"}).json()
                got = http.get(f"/v1/things/{made['id']}", params={"after": made["position"]})
                latencies.values.append(time.perf_counter() - t0)
                assert got.status_code == 200, got.text
    finally:
        relay.stop()
        worker.terminate()
        worker.wait(timeout=30)
    return latencies


def rebuild_rate(rt: Runtime, db: ConnectionInfo) -> float:
    """The fast path: replay the whole log into empty read models in-process; events/s."""
    t0 = time.perf_counter()
    count = rebuild(rt.event_log, db, list(PROJECTIONS.values()))
    return count / (time.perf_counter() - t0)


async def raw_consume_rate(broker: KafkaBroker, topic: str) -> tuple[float, int]:
    """Read every record of the topic with one plain aiokafka consumer, from the first record to
    the end offsets; (records/s, records)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=5000)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        total, remaining, started = sum(ends.values()), dict(ends), None
        while any(remaining.values()):
            for partition, batch in (await consumer.getmany(timeout_ms=1000)).items():
                started = started or time.perf_counter()
                remaining[partition] = ends[partition] - (batch[-1].offset + 1)
        return total / (time.perf_counter() - (started or time.perf_counter())), total
    finally:
        await consumer.stop()


if __name__ == "__main__":
    main()
