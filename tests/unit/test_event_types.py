"""The log's event types, read off the domain's classes, are every type the projections handle."""

from __future__ import annotations

from domain.event_types import LOG_EVENT_TYPES
from projections.registry import PROJECTIONS


def test_every_type_a_projection_handles_is_a_log_event_type() -> None:
    handled = {kind for projection in PROJECTIONS.values() for kind in projection.handles}
    assert handled <= LOG_EVENT_TYPES
    assert {"token_purchase.parked", "username.claimed", "api_key.issued"} <= LOG_EVENT_TYPES
