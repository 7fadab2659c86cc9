"""Consumer lag of the projection workers, per partition, read from the broker."""

from __future__ import annotations

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec


def consumer_lag(bootstrap: str, topic: str, group: str, partitions: int) -> dict[int, int]:
    """Records on each partition not yet committed by the worker group (end offset minus committed)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="one-lag",
                             request_timeout_ms=5000)
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in wanted})
        committed = admin.list_group_offsets({group: wanted}).get(group, {})
    finally:
        admin.close()
    lag: dict[int, int] = {}
    for tp in wanted:
        done = committed.get(tp)
        done_offset = done.offset if done is not None and done.offset >= 0 else 0
        lag[tp.partition] = max(ends[tp].offset - done_offset, 0)
    return lag
