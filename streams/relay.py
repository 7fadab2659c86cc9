"""The relay (`one relay`): publish every logged event, in log order, to Kafka.

Topic layout: one topic (default `one.events`, 8 partitions); key = stream id, so each stream's
events stay in order on one partition; value = the JSON envelope. After each chunk the relay
sends a watermark `{"watermark": P}` to every partition (key `$watermark`), where P is the last
position of the chunk, then flushes (acks=all, idempotent producer) and only then commits its
position (checkpoint `relay:<topic>`). A crash between flush and commit re-publishes that chunk;
consumers dedupe with their version/position guards. Nothing is skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass

import psycopg
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import TopicAlreadyExistsError

from eventlog.envelope import decode_notification
from eventlog.store import EVENTS_TABLE, EventLog
from infra.database import ConnectionInfo

log = logging.getLogger(__name__)
WATERMARK_KEY = b"$watermark"


@dataclass(frozen=True)
class KafkaTarget:
    """Where the log goes."""

    bootstrap: str
    topic: str = "one.events"
    partitions: int = 8

    @property
    def checkpoint_name(self) -> str:
        """The relay's checkpoint row in `projection_checkpoints`."""
        return f"relay:{self.topic}"


def ensure_topic(target: KafkaTarget) -> None:
    """Create the event topic with its partitions if it does not exist yet. It keeps every
    record (retention.ms=-1) so projections can be rebuilt by replaying it."""
    admin = KafkaAdminClient(bootstrap_servers=target.bootstrap, client_id="one-relay-admin")
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(
                {target.topic: {"num_partitions": target.partitions, "replication_factor": 1,
                                "configs": {"retention.ms": "-1"}}}
            )
        admin.wait_for_topics([target.topic], timeout_ms=60_000)
    finally:
        admin.close()


def watermark(position: int) -> bytes:
    """The value of a watermark record."""
    return json.dumps({"watermark": position}).encode()


class Relay:
    """Follows the log from its checkpoint and publishes envelopes to Kafka."""

    def __init__(
        self, event_log: EventLog, db: ConnectionInfo, target: KafkaTarget, chunk_size: int = 5000
    ) -> None:
        self.event_log = event_log
        self.db = db
        self.target = target
        self.chunk_size = chunk_size
        self.position = 0
        self.published = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask `run` to return after the current chunk."""
        self._stop.set()

    def run(self) -> None:
        """Publish until stopped; reconnects and resumes from the checkpoint after errors."""
        ensure_topic(self.target)
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:
                log.exception("relay failed; resuming from checkpoint")
                self._stop.wait(1.0)

    def _follow(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.target.bootstrap, acks="all", enable_idempotence=True,
            linger_ms=5, batch_size=256 * 1024, compression_type=None, client_id="one-relay",
            max_in_flight_requests_per_connection=5, retries=2**31 - 1,
        )
        try:
            with psycopg.connect(self.db.conninfo, autocommit=True) as conn, \
                    psycopg.connect(self.db.conninfo, autocommit=True) as listener:
                listener.execute(f"LISTEN {EVENTS_TABLE}")
                self.position = self._read_checkpoint(conn)
                while not self._stop.is_set():
                    if self.publish_chunk(producer, conn):
                        continue
                    for _ in listener.notifies(timeout=0.25, stop_after=1):
                        pass
        finally:
            producer.close(timeout=5)

    def publish_chunk(self, producer: KafkaProducer, conn: psycopg.Connection[object]) -> int:
        """Publish the next chunk after the checkpoint; return how many events were sent."""
        notifications = self.event_log.recorder.select_notifications(
            start=self.position + 1, limit=self.chunk_size
        )
        if not notifications:
            return 0
        topic = self.target.topic
        for notification in notifications:
            envelope = decode_notification(notification)
            producer.send(topic, key=envelope.stream_id.encode(), value=envelope.to_json().encode())
        last = notifications[-1].id
        mark = watermark(last)
        for partition in range(self.target.partitions):
            producer.send(topic, key=WATERMARK_KEY, value=mark, partition=partition)
        producer.flush()
        conn.execute(
            "INSERT INTO projection_checkpoints (name, position) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()",
            (self.target.checkpoint_name, last),
        )
        self.position = last
        self.published += len(notifications)
        return len(notifications)

    def _read_checkpoint(self, conn: psycopg.Connection[object]) -> int:
        row = conn.execute(
            "SELECT position FROM projection_checkpoints WHERE name = %s",
            (self.target.checkpoint_name,),
        ).fetchone()
        return int(row[0]) if row else 0  # type: ignore[index]
