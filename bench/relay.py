"""Relay throughput against raw kafka-python produce of the same bytes, on a real Kafka broker.

Loads N events into a fresh log (`bench.common.load_dataset`), encodes them once with the relay's
own `encode`, then, in alternating rounds on fresh topics with the relay's producer settings:

- raw produce: `producer.send` of the pre-encoded (key, value) pairs, one flush at the end: what
  kafka-python alone costs for these bytes (the baseline);
- relay: `Relay.catch_up` until the log is drained (read, decode, encode, send, watermarks,
  flush and checkpoint per chunk), as `one relay` does.

Also times read + decode + encode alone (no Kafka). Each round prints the load average it ran
under; the table shows the median round.

    .venv/bin/python -m bench.relay [--events 100000] [--rounds 3] [--chunk 5000]
        [--set linger_ms=20 --set compression_type=lz4 ...]
"""

from __future__ import annotations

import argparse
import ast
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from bench.common import fmt_rate, fresh_database, load_dataset, log_head, note, print_header, print_table
from eventlog.reader import read_to_end
from eventlog.store import EventLog, open_event_log
from infra.database import ConnectionInfo
from infra.migrations import migrate
from streams.relay import PRODUCER_SETTINGS, KafkaTarget, Relay, encode, ensure_topic, open_producer
from tests.support.kafka_broker import KafkaBroker

PARTITIONS = 8
Records = list[tuple[bytes, bytes]]


def fresh_target(broker: KafkaBroker) -> KafkaTarget:
    """A new, created topic (and so a new relay checkpoint)."""
    target = KafkaTarget(broker.bootstrap, f"bench.relay.{uuid.uuid4().hex[:8]}", PARTITIONS)
    ensure_topic(target)
    return target


def read_encoded(log: EventLog, chunk: int) -> tuple[Records, float]:
    """Every event of the log as the relay encodes it, and the seconds that took."""
    records: Records = []
    t0 = time.perf_counter()
    for envelopes in read_to_end(log, 0, chunk):
        records.extend(encode(envelope) for envelope in envelopes)
    return records, time.perf_counter() - t0


def raw_produce(broker: KafkaBroker, records: Records, overrides: dict[str, Any]) -> float:
    """Seconds to send the pre-encoded records with the relay's producer and flush once."""
    target = fresh_target(broker)
    producer = open_producer(target, **overrides)
    try:
        producer.partitions_for(target.topic)  # metadata fetched before the clock starts
        t0 = time.perf_counter()
        for key, value in records:
            producer.send(target.topic, key=key, value=value)
        producer.flush()
        return time.perf_counter() - t0
    finally:
        producer.close(timeout=5)


def relay_pass(broker: KafkaBroker, log: EventLog, db: ConnectionInfo, chunk: int,
               overrides: dict[str, Any]) -> float:
    """Seconds for `Relay.catch_up` to drain the whole log onto a fresh topic."""
    target = fresh_target(broker)
    relay = Relay(log, db, target, chunk_size=chunk)
    producer = open_producer(target, **overrides)
    try:
        producer.partitions_for(target.topic)
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            t0 = time.perf_counter()
            relay.catch_up(producer, conn)
            return time.perf_counter() - t0
    finally:
        producer.close(timeout=5)


def loadavg() -> str:
    """The 1/5/15-minute load average."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def timed(label: str, run: Callable[[], float]) -> float:
    """The seconds `run` reports, noted with the load it started under."""
    load = loadavg()
    seconds = run()
    note(f"{label}: {seconds:.2f}s (load before: {load})")
    return seconds


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """`name=value` producer overrides; values are Python literals where they parse as one."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        try:
            settings[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            settings[name] = text
    return settings


def main(argv: list[str] | None = None) -> None:
    """Parse flags, load the log, alternate raw and relay rounds, print the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--chunk", type=int, default=Relay.DEFAULT_CHUNK_SIZE)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a producer setting (both raw and relay rounds)")
    args = p.parse_args(argv)
    overrides = parse_settings(args.set)
    with fresh_database("relay") as bdb, KafkaBroker(partitions=PARTITIONS) as broker:
        broker.start()
        print_header("bench/relay: log → Kafka vs raw kafka-python produce", bdb,
                     events=args.events, rounds=args.rounds, chunk=args.chunk,
                     partitions=PARTITIONS, producer={
                         **PRODUCER_SETTINGS, "compression_type": KafkaTarget("").compression, **overrides})
        migrate(bdb.info)
        log = open_event_log(bdb.info)
        note(f"loading {args.events:,} events")
        load_dataset(log, args.events // 10, args.events)
        head = log_head(bdb.info)
        records, encode_s = read_encoded(log, args.chunk)
        raw, relay = [], []
        for _ in range(args.rounds):
            raw.append(timed("raw produce", lambda: raw_produce(broker, records, overrides)))
            relay.append(timed("relay", lambda: relay_pass(broker, log, bdb.info, args.chunk,
                                                           overrides)))
        raw_rate, relay_rate = head / statistics.median(raw), head / statistics.median(relay)
        print_table(f"throughput over {head:,} events, median of {args.rounds} rounds "
                    f"(load after: {loadavg()})", ["stage", "events/s", "notes"], [
            ("read + decode + encode (no Kafka)", fmt_rate(head / encode_s), "one pass"),
            ("(a) raw kafka-python produce of the same bytes", fmt_rate(raw_rate), "baseline"),
            ("(b) relay: Relay.catch_up", fmt_rate(relay_rate),
             f"b/a = {relay_rate / raw_rate:.2f}"),
        ])


if __name__ == "__main__":
    main()
