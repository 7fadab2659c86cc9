"""The event envelope: the public, transport-neutral JSON form of one logged event.

Fields: position, stream_id, version, type, schema_version, occurred_at, org_id, actor_id, data.
Stored events are decoded straight from their JSON state (no domain objects are rebuilt) and
upcast to the event class's current schema version with the class's own upcast functions.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import orjson
from eventsourcing.persistence import Notification
from eventsourcing.utils import resolve_topic

_ENVELOPE_KEYS = ("timestamp", "originator_topic", "class_version", "org_id", "actor_id", "correlation_id",
                  "causation_id", "traceparent")
_LONG_NUMBER = re.compile(rb"[0-9]{19}")
"""19 digits in a row: maybe an integer beyond 64 bits, which orjson would turn into a float."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as projections, Kafka and replay see it."""

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    occurred_at: str
    org_id: str
    actor_id: str
    data: dict[str, Any]
    correlation_id: str | None = None
    """The request or process the event belongs to (None before events carried it)."""
    causation_id: str | None = None
    """The command or event that caused it."""
    traceparent: str | None = None
    """The W3C trace context of the span that made it (when tracing is on)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return asdict(self)

    def to_json(self) -> str:
        """Compact JSON text (one line)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Envelope:
        """Inverse of `to_dict` (e.g. for envelopes read back from Kafka or a replay file)."""
        return cls(**raw)


@dataclass(frozen=True)
class _EventClassInfo:
    type: str
    class_version: int
    upcasters: tuple[Any, ...]


@cache
def _class_info(topic: str) -> _EventClassInfo:
    cls = resolve_topic(topic)
    version = int(getattr(cls, "class_version", 1))
    upcasters = tuple(getattr(cls, f"upcast_v{v}_v{v + 1}") for v in range(1, version))
    return _EventClassInfo(getattr(cls, "TYPE", "") or topic, version, upcasters)


def decode_notification(notification: Notification) -> Envelope:
    """Turn a stored event (as read from the log) into an envelope, upcasting old versions."""
    info = _class_info(notification.topic)
    state = load_state(notification.state)
    stored_version = int(state.get("class_version", 1))
    for upcast in info.upcasters[stored_version - 1:]:
        upcast(state)
    timestamp = state["timestamp"]
    occurred_at = timestamp["_data_"] if isinstance(timestamp, dict) else str(timestamp)
    return Envelope(
        position=notification.id,
        stream_id=str(notification.originator_id),
        version=notification.originator_version,
        type=info.type,
        schema_version=info.class_version,
        occurred_at=occurred_at,
        org_id=str(state.get("org_id", "")),
        actor_id=str(state.get("actor_id", "")),
        data={k: v for k, v in state.items() if k not in _ENVELOPE_KEYS},
        correlation_id=state.get("correlation_id"),
        causation_id=state.get("causation_id"),
        traceparent=state.get("traceparent"),
    )


def load_state(state: bytes) -> dict[str, Any]:
    """An event's stored JSON state: parsed by orjson, or by the standard library where orjson
    would lose something (integers beyond 64 bits) or refuses what `json` accepts."""
    if _LONG_NUMBER.search(state) is None:
        try:
            return orjson.loads(state)  # type: ignore[no-any-return]
        except orjson.JSONDecodeError:
            pass
    return json.loads(state)  # type: ignore[no-any-return]


def dump_json(value: Any) -> bytes:
    """`value` (JSON data or an `Envelope`) as compact JSON, the same value `json.dumps` writes: by
    orjson, except where orjson would refuse it (integers beyond 64 bits, non-string keys) or
    change it (it writes NaN and infinities as null, so a null is checked)."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _standard_json(value)
    if b"null" in text and not _finite(value):
        return _standard_json(value)
    return text


def _standard_json(value: Any) -> bytes:
    if isinstance(value, Envelope):
        return value.to_json().encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Envelope):
        return _finite(value.data)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True
