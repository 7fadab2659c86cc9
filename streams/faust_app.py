"""The Faust projection workers (`one worker`): consume the event topic, run the projectors.

The agent takes records in batches and hands each batch to `streams.kafka_apply.apply_records`,
the same projection engine the in-process runner uses, in one database transaction; a batch that
fails for a transient reason (a deadlock with another worker, the database away) is applied
again with backoff until it commits. The agent acknowledges the batch only after that
transaction commits (a worker stopped mid-batch acknowledges nothing), so committed offsets never
run ahead of the read models; Faust's exactly-once mode is not used. Records that cannot be projected go
to the dead-letter topic `<topic>.dlq` (and `projection_errors`) instead of blocking a partition.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import faust
import psycopg

from infra.database import ConnectionInfo
from infra.settings import Settings
from projections.base import Writer
from projections.engine import is_transient
from projections.registry import PROJECTIONS
from projections.store import ProjectionSet
from providers.factory import embedder_spec
from streams.kafka_apply import BatchApplier, Parked, Record, retry_delay
from streams.knowledge_runner import (
    ActiveIndexWriter,
    embedder_cache,
    ensure_active,
    retry_failed_embeddings,
    text_fields,
)
from streams.relay import KafkaTarget, ensure_topic
from streams.watermarks import knowledge_watermarks

log = logging.getLogger(__name__)


def create_faust_app(settings: Settings, db: ConnectionInfo, batch_size: int = 1000,
                     knowledge: bool = False) -> faust.App:
    """Build the Faust app for the configured broker and topic: the core read models, or (with
    `knowledge`) the vector projection in its own consumer group, so embedding never holds back
    the other read models."""
    assert settings.kafka_bootstrap, "KAFKA_BOOTSTRAP_SERVERS is not set"
    writer: Writer
    if knowledge:
        writer, watermark_key = knowledge_writer(settings, db), knowledge_watermarks(settings.kafka_topic)
    else:
        writer, watermark_key = ProjectionSet(tuple(PROJECTIONS.values())), settings.kafka_topic
    datadir = settings.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level itself
    app = faust.App(
        settings.faust_app_id + ("-knowledge" if knowledge else ""),
        datadir=str(datadir),
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.2,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        stream_wait_empty=False,
    )
    topic = app.topic(settings.kafka_topic, key_type=bytes, value_type=bytes,
                      partitions=settings.kafka_partitions)
    dead_letters = app.topic(f"{settings.kafka_topic}.dlq", key_type=bytes, value_type=bytes)
    applier = BatchApplier(db, writer, watermark_key)

    async def apply(records: list[Record]) -> list[Parked]:
        """Apply a batch until it commits: a transient failure (a deadlock with another worker,
        the database away) is retried with backoff, never dropped and never fatal to the agent."""
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(applier.apply, records)
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning("batch of %d records failed (%s); applying it again", len(records), error)
                await asyncio.sleep(retry_delay(attempt))
                attempt += 1

    @app.agent(topic)
    async def project(stream: faust.StreamT[bytes]) -> None:
        # `noack_take` (not `take_events`): a batch is acknowledged here, after its transaction
        # commits. `take_events` acknowledges in a `finally`, so a worker stopped (or a partition
        # revoked) while a batch is being applied would commit offsets of events never projected.
        batches: Any = stream  # `noack_take` is Stream's (faust-streaming), not in StreamT's stub
        async for events in batches.noack_take(batch_size, within=0.01):
            for item in await apply([Record(e.message.partition, e.value) for e in events]):
                await dead_letters.send(value=json.dumps({
                    "error": item.error, "partition": item.record.partition,
                    "value": item.record.value.decode(errors="replace"),
                }).encode())
            for event in events:
                await stream.ack(event)

    if isinstance(writer, ActiveIndexWriter):
        retry = writer.retry_failed

        async def retry_failed() -> None:
            await asyncio.to_thread(retry_failed_embeddings, retry, db)

        app.timer(settings.knowledge_retry_s)(retry_failed)

    return app


def knowledge_writer(settings: Settings, db: ConnectionInfo) -> ActiveIndexWriter:
    """The knowledge workers' writer; activates an index for the configured embedder if none is."""
    embedder_for = embedder_cache(settings)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        ensure_active(conn, embedder_spec(settings), embedder_for)
    return ActiveIndexWriter(embedder_for, text_fields(settings))


def run_worker(settings: Settings, db: ConnectionInfo, loglevel: str = "WARNING",
               knowledge: bool = False) -> None:
    """Run one worker until stopped (SIGTERM/SIGINT).

    The topic is created first if missing: Faust ignores a topic that does not exist when it
    subscribes, and would never consume it."""
    assert settings.kafka_bootstrap, "KAFKA_BOOTSTRAP_SERVERS is not set"
    ensure_topic(KafkaTarget(settings.kafka_bootstrap, settings.kafka_topic,
                             settings.kafka_partitions))
    app = create_faust_app(settings, db, batch_size=200 if knowledge else 1000, knowledge=knowledge)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
