"""A clock the tests move by hand, injected where ONE reads the time for timers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class MovableClock:
    """Starts at the real time and moves only when told (thread-safe)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        """Move forward by `timedelta(**delta)`; the new time."""
        with self._lock:
            self._now += timedelta(**delta)
            return self._now
