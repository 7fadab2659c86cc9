"""Tests wait on facts, not on the clock: poll a condition until it holds, bounded by a deadline
that fails with what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0,
               interval: float = 0.05) -> None:
    """Poll `condition()` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
