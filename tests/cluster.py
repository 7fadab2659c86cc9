"""A distributed deployment for tests: one database, one topic of a real Kafka broker, a runtime
in distributed mode, and `one relay` / `one worker` subprocesses."""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from api.runtime import Runtime
from infra.database import ConnectionInfo
from infra.settings import Settings
from streams.watermarks import lowest_watermark
from tests.conftest import BOOTSTRAP_KEY, database_url
from tests.support.kafka_broker import KafkaBroker
from tests.support.processes import ManagedProcess
from tests.support.waiting import wait_until

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
    relays: list[ManagedProcess] = field(default_factory=list)
    workers: list[ManagedProcess] = field(default_factory=list)
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

    def _spawn(self, command: str, *flags: str) -> ManagedProcess:
        process = ManagedProcess(f"one {command}",
                                 self.logs / f"{command}-{len(self.relays) + len(self.workers)}.log")
        process.start([sys.executable, "-m", "api.cli", command, *flags], cwd=ROOT, env=self.env)
        return process

    def start_relay(self) -> ManagedProcess:
        self.relays.append(self._spawn("relay"))
        return self.relays[-1]

    def start_worker(self, *flags: str) -> ManagedProcess:
        """A Faust worker (`--knowledge` for the vector projection's)."""
        self.workers.append(self._spawn("worker", *flags))
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
        wait_until(lambda: self.assert_alive() and self.projected() >= head,
                   f"the workers to project up to {head} (logs: {self.logs})", timeout, interval=0.2)

    def wait_progress(self, events: int, timeout: float = 120.0) -> None:
        """Wait until the workers have projected `events` more events than now (relay, broker and
        workers all work)."""
        target = self.projected() + events
        wait_until(lambda: self.assert_alive() and self.projected() >= target,
                   f"the workers to project up to {target} (logs: {self.logs})", timeout, interval=0.1)

    def wait_group(self, members: int, timeout: float = 120.0) -> None:
        """Wait until the workers' consumer group is stable with `members` members."""
        admin = KafkaAdminClient(bootstrap_servers=self.broker.bootstrap, client_id="one-tests")

        def settled() -> bool:
            group = admin.describe_groups([self.group])[self.group]
            return group["group_state"] == "Stable" and len(group["members"]) == members

        try:
            wait_until(lambda: self.assert_alive() and settled(),
                       f"a stable consumer group of {members} (logs: {self.logs})", timeout, interval=0.2)
        finally:
            admin.close()

    def assert_alive(self) -> bool:
        """True; fails if a relay or worker died without being stopped."""
        for process in self.relays + self.workers:
            assert process.died is None, f"{process.name} died ({process.died}):\n{process.tail()}"
        return True

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
        for process in self.workers:
            process.stop(grace=30)
        self.workers.clear()

    def close(self) -> None:
        for process in self.relays + self.workers:
            process.stop(grace=30)
        if self.runtime is not None:
            self.runtime.close()
