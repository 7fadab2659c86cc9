"""A distributed deployment for tests: one database, one topic of a real Kafka broker, a runtime
in distributed mode, and `one relay` / `one worker` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from kafka import KafkaConsumer, TopicPartition

from api.runtime import Runtime
from infra.database import ConnectionInfo
from infra.kafka_broker import KafkaBroker
from infra.settings import Settings
from streams.watermarks import lowest_watermark
from tests.conftest import BOOTSTRAP_KEY, database_url

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4


@dataclass
class Cluster:
    """One database, one topic, a runtime in distributed mode, relay and worker subprocesses."""

    db: ConnectionInfo
    broker: KafkaBroker
    logs: Path
    topic: str = field(default_factory=lambda: f"one.events.{uuid.uuid4().hex[:8]}")
    group: str = field(default_factory=lambda: f"one-projections-{uuid.uuid4().hex[:8]}")
    relays: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    runtime: Runtime | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ, "DATABASE_URL": database_url(self.db),
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap, "ONE_KAFKA_TOPIC": self.topic,
            "ONE_KAFKA_PARTITIONS": str(PARTITIONS), "ONE_FAUST_APP_ID": self.group,
            "ONE_DATA_DIR": str(self.logs / "data"),
        }

    def settings(self) -> Settings:
        return Settings(kafka_bootstrap=self.broker.bootstrap, kafka_topic=self.topic,
                        kafka_partitions=PARTITIONS, faust_app_id=self.group,
                        read_wait_timeout_s=60.0, bootstrap_key=BOOTSTRAP_KEY,
                        data_dir=self.logs / "data")

    def start_runtime(self) -> Runtime:
        self.runtime = Runtime.start(self.settings(), self.db)
        return self.runtime

    def _spawn(self, command: str, name: str, *flags: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}-{len(self.relays) + len(self.workers)}.log", "wb")  # noqa: SIM115
        return subprocess.Popen([sys.executable, "-m", "api.cli", command, *flags], cwd=ROOT,
                                env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def start_relay(self) -> subprocess.Popen[bytes]:
        self.relays.append(self._spawn("relay", "relay"))
        return self.relays[-1]

    def start_worker(self, *flags: str) -> subprocess.Popen[bytes]:
        """A Faust worker (`--knowledge` for the vector projection's)."""
        self.workers.append(self._spawn("worker", "worker", *flags))
        return self.workers[-1]

    def projected(self) -> int:
        with psycopg.connect(self.db.conninfo) as conn:
            return lowest_watermark(conn, self.topic, PARTITIONS)

    def head(self) -> int:
        assert self.runtime is not None
        return self.runtime.head()

    def converge(self, timeout: float = 120.0) -> None:
        """Wait until the workers have projected the whole log."""
        head = self.head()
        deadline = time.monotonic() + timeout
        while self.projected() < head:
            assert time.monotonic() < deadline, f"stuck at {self.projected()} of {head}; logs: {self.logs}"
            for proc in self.relays + self.workers:
                assert proc.poll() is None or proc.returncode in (-9, -15, 0), "a process died"
            time.sleep(0.2)

    def wait_flowing(self, timeout: float = 60.0) -> None:
        """Wait until the workers have projected something (the stream is flowing)."""
        deadline = time.monotonic() + timeout
        while self.projected() == 0:
            assert time.monotonic() < deadline, f"nothing projected; logs: {self.logs}"
            time.sleep(0.2)

    def topic_values(self) -> list[bytes]:
        """Every record value on the event topic, from its first offset to its end."""
        consumer = KafkaConsumer(bootstrap_servers=self.broker.bootstrap, enable_auto_commit=False,
                                 auto_offset_reset="earliest", consumer_timeout_ms=3000)
        partitions = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        values: list[bytes] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                values += [record.value for record in records]
        consumer.close()
        return values

    def stop_workers(self) -> None:
        for proc in self.workers:
            stop(proc)
        self.workers.clear()

    def close(self) -> None:
        for proc in self.relays + self.workers:
            stop(proc)
        if self.runtime is not None:
            self.runtime.close()


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a subprocess (SIGTERM, then SIGKILL after a grace period)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
