"""The relay's Kafka records: the same JSON envelope as `Envelope.to_json`, however it is written,
on the partition kafka-python's default partitioner would pick."""

from __future__ import annotations

import json
import math
import random
import uuid
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from kafka.partitioner.default import murmur2 as kafka_murmur2

from domain.base import caused_by
from domain.things import Thing
from eventlog.envelope import Envelope, decode_notification, dump_json
from streams.relay import encode, murmur2, partition_of, trace_headers

ORG, ACTOR = str(uuid.uuid4()), str(uuid.uuid4())
PROPERTIES: list[dict[str, Any]] = [
    {"title": "Zürich — 東京 ✓ 😀", "quote": 'say "hi"\\n\t\u2028', "empty": ""},
    {"nested": {"list": [1, [2, {"deep": [None, True, False]}]], "map": {"x": {"y": 0.1}}}},
    {"u64": 2**64 - 1, "i64": -(2**63), "float": 1e16, "tiny": 1e-7, "sum": 0.1 + 0.2},
    {"big": 2**70, "negative_big": -(2**80)},  # beyond 64 bits: the standard library writes it
]


def stored(properties: dict[str, Any]) -> Notification:
    """A `thing.created` with these properties, as the log hands it to the relay."""
    app: Application[UUID] = Application()  # in-memory recorder, the product's mapper
    app.save(Thing.create(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, type="course",
                          name="Ünïcode ☃", properties=properties))
    return app.recorder.select_notifications(start=1, limit=1)[0]


@pytest.mark.parametrize("properties", PROPERTIES)
def test_value_decodes_to_the_same_envelope_as_to_json(properties: dict[str, Any]) -> None:
    notification = stored(properties)
    envelope = decode_notification(notification)
    key, value = encode(envelope)
    assert key == str(notification.originator_id).encode()
    decoded = json.loads(value)
    assert decoded == json.loads(envelope.to_json())
    assert list(decoded) == list(envelope.to_dict())  # same keys, same order
    assert decoded["data"]["properties"] == properties
    assert Envelope.from_dict(decoded) == envelope


def test_non_finite_floats_keep_their_standard_library_spelling() -> None:
    envelope = Envelope(position=1, stream_id=str(uuid.uuid4()), version=1, type="t",
                        schema_version=1, occurred_at="2024-01-01T00:00:00+00:00", org_id=ORG,
                        actor_id=ACTOR, data={"nan": math.nan, "inf": math.inf})
    assert dump_json(envelope) == envelope.to_json().encode()
    nested = Envelope(**{**envelope.to_dict(), "data": {"a": [{"b": -math.inf}], "c": None}})
    assert dump_json(nested) == nested.to_json().encode()


def test_partition_of_maps_keys_like_kafka_pythons_default_partitioner() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(n) for n in range(64) for _ in range(50)]
    keys += [str(uuid.uuid4()).encode() for _ in range(2000)] + [b"", b"$watermark"]
    for key in keys:
        assert murmur2(key) == kafka_murmur2(key)
        for partitions in (1, 3, 8, 12):
            assert partition_of(key, partitions) == (kafka_murmur2(key) & 0x7FFFFFFF) % partitions


def test_events_carry_their_cause_into_the_envelope_and_the_kafka_headers() -> None:
    app: Application[UUID] = Application()
    with caused_by("order-7", "command:1"):
        thing = Thing.create(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, type="course", name="x")
        thing.update(ACTOR, "y", None)
    app.save(thing)
    envelopes = [decode_notification(n) for n in app.recorder.select_notifications(start=1, limit=5)]
    assert len(envelopes) == 2
    assert {(e.correlation_id, e.causation_id) for e in envelopes} == {("order-7", "command:1")}
    assert "correlation_id" not in envelopes[0].data
    assert trace_headers(envelopes[0]) == [("correlation_id", b"order-7"), ("causation_id", b"command:1")]
    outside = Thing.create(id=uuid.uuid4(), org_id=ORG, actor_id=ACTOR, type="course", name="z")
    app.save(outside)
    (later,) = [decode_notification(n) for n in app.recorder.select_notifications(start=3, limit=1)]
    assert (later.correlation_id, later.causation_id) == (None, None) and trace_headers(later) == []
