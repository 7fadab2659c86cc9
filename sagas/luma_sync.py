"""The `luma.sync` job: fetch a Luma calendar's public page and sync its events (all or nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from commands.bus import CommandBus
from commands.community_events import SyncCalendar
from domain.community_events import FetchedEvent
from providers.luma import fetch_calendar


class LumaSync:
    """Syncs calendars from `base_url` (the real Luma site unless `LUMA_BASE_URL` says otherwise)."""

    def __init__(self, bus: CommandBus, base_url: str) -> None:
        self.bus = bus
        self.base_url = base_url

    def __call__(self, org_id: str, params: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """Sync calendar `params.slug`; raises `LumaSyncError` (nothing written) if the page is bad."""
        slug = str(params["slug"])
        events = tuple(FetchedEvent(e.title, e.properties()) for e in fetch_calendar(slug, self.base_url))
        result = self.bus.execute(SyncCalendar(org_id, slug, events, now)).body
        return {"slug": slug, "created": result["created"], "updated": result["updated"],
                "listed": result["listed"]}
