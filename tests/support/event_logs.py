"""Synthetic event logs for the projection tests: many interleaved streams of every kind the core
read models handle."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from eventlog.envelope import Envelope

ORG = "org-1"
TAGS = ["topic:ai", "topic:go", "skill:yoga", "goal:job", "level:1"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def interleaved_log(seed: int = 3, things: int = 150, connections: int = 120, activities: int = 1500,
                    sagas: int = 20, redelivered: int = 100) -> list[Envelope]:
    """A log of interleaved streams (order kept within each): things, connections, purchase sagas
    and activity, with `redelivered` events delivered again a little later (at-least-once)."""
    rng = random.Random(seed)
    streams: list[list[tuple[str, dict[str, Any]]]] = []
    thing_ids = [str(uuid.uuid4()) for _ in range(things)]
    for i in range(things):
        events: list[tuple[str, dict[str, Any]]] = [("thing.created", {
            "type": "course", "name": f"thing {i}", "properties": {"n": i, "x": "y" * rng.randint(0, 50)},
            "status": "draft", "tags": rng.sample(TAGS, rng.randint(0, 3)),
        })]
        for _ in range(rng.randint(0, 8)):
            kind = rng.choice(["updated", "status", "tagged", "untagged", "deleted", "restored"])
            if kind == "updated":
                events.append(("thing.updated", {"name": rng.choice([None, f"renamed {i}"]),
                                                 "properties": {"n": rng.randint(0, 9), "x": None}}))
            elif kind == "status":
                events.append(("thing.status_changed", {"status": rng.choice(["published", "archived"]),
                                                        "previous": "draft"}))
            elif kind in ("tagged", "untagged"):
                events.append((f"thing.{kind}", {"tags": rng.sample(TAGS, rng.randint(1, 2))}))
            else:
                events.append((f"thing.{kind}", {}))
        streams.append(events)
    for _ in range(connections):
        a, b = rng.sample(thing_ids, 2)
        events = [("connection.created", {"from_id": a, "to_id": b, "type": "owns",
                                          "metadata": {"share": rng.random()}})]
        for _ in range(rng.randint(0, 3)):
            kind = rng.choice(["connection.metadata_updated", "connection.removed",
                               "connection.reestablished"])
            events.append((kind, {"metadata": {"share": rng.random(), "note": None}}))
        streams.append(events)
    for _ in range(sagas):
        saga: list[tuple[str, dict[str, Any]]] = [
            ("token_purchase.started", {"buyer_id": "b", "token_id": "t", "amount": 5, "usd_cents": 500,
                                        "status": "running", "step": "charge"}),
            ("token_purchase.payment_succeeded", {"status": "running", "step": "mint"}),
            ("token_purchase.step_failed", {"error": "rpc", "retry_at": START.isoformat(),
                                            "status": "running", "step": "mint"}),
            ("token_purchase.mint_confirmed", {"status": "running", "step": "record"}),
            ("token_purchase.completed", {"status": "completed", "step": "done"}),
        ]
        streams.append(saga[: rng.randint(1, 5)])
    for _ in range(activities):
        streams.append([("activity.recorded", {"type": "content_viewed",
                                               "target_id": rng.choice([*thing_ids, None]),
                                               "metadata": {"s": rng.randint(0, 99)}})])
    ids = [str(uuid.uuid4()) for _ in streams]
    next_version = [0] * len(streams)
    pending = [i for i, events in enumerate(streams) for _ in events]
    rng.shuffle(pending)  # the k-th pick of a stream takes its k-th event: stream order holds
    log: list[Envelope] = []
    for position, i in enumerate(pending, start=1):
        kind, data = streams[i][next_version[i]]
        next_version[i] += 1
        log.append(Envelope(
            position=position, stream_id=ids[i], version=next_version[i], type=kind, schema_version=2,
            occurred_at=(START + timedelta(seconds=position)).isoformat(), org_id=ORG,
            actor_id="actor-1", data=data,
        ))
    again = [log[0], *rng.sample(log, redelivered)] if redelivered else []
    for envelope in again:  # at-least-once: the same event again, a little later
        log.insert(min(log.index(envelope) + rng.randint(1, 50), len(log)), envelope)
    return log
