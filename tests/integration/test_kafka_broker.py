"""A real Apache Kafka 4.1 broker (tests/support/kafka_broker.py): produce, consume, restart, crash.

No skips: if the jars cannot be fetched or the broker cannot start, these tests fail with the
broker's log tail in the error.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.serializer import DefaultSerializer, JsonSerializer

from tests.support.kafka_broker import KafkaBroker

PARTITIONS = 4
MESSAGES = 1_000
KEYS = 25


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One broker for the module; its data dir lives under pytest's tmp dir."""
    kafka = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"), partitions=PARTITIONS)
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@dataclass
class Written:
    """What a test produced: per key, the sequence numbers in send order; per partition, the count."""

    topic: str
    by_key: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    partition_of_key: dict[str, int] = field(default_factory=dict)


def _admin(broker: KafkaBroker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="test-admin")


def _create_topic(broker: KafkaBroker) -> str:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin = _admin(broker)
    try:
        admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}})
        admin.wait_for_topics([topic], timeout_ms=20_000)
        (described,) = admin.describe_topics([topic])
        assert len(described["partitions"]) == PARTITIONS
    finally:
        admin.close()
    return topic


def _produce(broker: KafkaBroker, topic: str, count: int = MESSAGES) -> Written:
    """``count`` keyed JSON messages, acks=all and idempotent; waits for every ack.

    kafka-python 3 deprecates plain callables as (de)serializers: use its Serializer classes.
    """
    written = Written(topic)
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
        key_serializer=DefaultSerializer(), value_serializer=JsonSerializer(),
    )
    try:
        futures = []
        for i in range(count):
            key = f"stream-{i % KEYS}"
            seq = len(written.by_key[key])
            written.by_key[key].append(seq)
            futures.append((key, producer.send(topic, key=key, value={"key": key, "seq": seq})))
        producer.flush(timeout=60)
        for key, future in futures:
            partition = future.get(timeout=30).partition
            assert written.partition_of_key.setdefault(key, partition) == partition
    finally:
        producer.close(timeout=10)
    return written


def _end_offsets(broker: KafkaBroker, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


@dataclass
class Read:
    """What a consumer group read back: (partition, offset, key, seq) in delivery order."""

    records: list[tuple[int, int, str, int]]

    def seqs_by_key(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for _, _, key, seq in self.records:
            out[key].append(seq)
        return dict(out)

    def next_offset_by_partition(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for partition, offset, _, _ in self.records:
            assert offset >= out.get(partition, 0), "offsets must increase within a partition"
            out[partition] = offset + 1
        return out


def _consume(broker: KafkaBroker, topic: str, group: str, expected: int, timeout: float = 60.0) -> Read:
    """Read ``expected`` records with a consumer group from the earliest offset, then commit."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False, key_deserializer=DefaultSerializer(), value_deserializer=JsonSerializer(),
    )
    records: list[tuple[int, int, str, int]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for msg in batch:
                    assert msg.value["key"] == msg.key
                    records.append((msg.partition, msg.offset, msg.key, msg.value["seq"]))
        # Nothing beyond what was written.
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend((m.partition, m.offset, m.key, m.value["seq"]) for m in batch)
        consumer.commit()
    finally:
        consumer.close()
    assert len(records) == expected, f"read {len(records)} of {expected} records from {topic}"
    return Read(records)


def _check_read(read: Read, written: Written, end_offsets: dict[int, int]) -> None:
    assert read.seqs_by_key() == dict(written.by_key), "every key complete and in send order"
    for _partition, _offset, key, _seq in read.records:
        assert written.partition_of_key[key] == _partition
    assert read.next_offset_by_partition() == {p: o for p, o in end_offsets.items() if o}
    assert sum(end_offsets.values()) == MESSAGES


@pytest.fixture(scope="module")
def written(broker: KafkaBroker) -> Written:
    """A 4-partition topic holding 1,000 keyed messages."""
    return _produce(broker, _create_topic(broker))


def test_produce_and_consume_round_trip(broker: KafkaBroker, written: Written) -> None:
    end_offsets = _end_offsets(broker, written.topic)
    assert len(end_offsets) == PARTITIONS
    assert sum(1 for o in end_offsets.values() if o) > 1, "keys spread over several partitions"
    read = _consume(broker, written.topic, f"g-{uuid.uuid4().hex[:8]}", MESSAGES)
    _check_read(read, written, end_offsets)


def test_data_and_committed_offsets_survive_restart(broker: KafkaBroker, written: Written) -> None:
    end_before = _end_offsets(broker, written.topic)
    group = f"g-{uuid.uuid4().hex[:8]}"
    _consume(broker, written.topic, group, MESSAGES)
    bootstrap = broker.bootstrap

    assert broker.restart() == bootstrap

    assert _end_offsets(broker, written.topic) == end_before
    admin = _admin(broker)
    try:
        committed = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    assert {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == written.topic} == {
        p: o for p, o in end_before.items() if o
    }
    read = _consume(broker, written.topic, f"g-{uuid.uuid4().hex[:8]}", MESSAGES)
    _check_read(read, written, end_before)


def test_kill_then_restart_keeps_acked_data(broker: KafkaBroker) -> None:
    topic = _create_topic(broker)
    acked = _produce(broker, topic)
    end_before = _end_offsets(broker, topic)

    broker.kill()
    assert not broker.is_running()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", broker.port), timeout=2):
        pass

    broker.restart()
    assert _end_offsets(broker, topic) == end_before
    read = _consume(broker, topic, f"g-{uuid.uuid4().hex[:8]}", MESSAGES)
    _check_read(read, acked, end_before)
    # The log carries every start for post-mortems.
    assert broker.log_path.read_text().count("=== kafka.Kafka start") >= 2
