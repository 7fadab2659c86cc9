"""Schemathesis hooks for tests/integration/test_fuzz_http.py (loaded through
`SCHEMATHESIS_HOOKS`): a check that no refused request appended anything to the event log.

Requests run one at a time (`--workers 1`) against a server that appends only what requests ask
for (no saga runner), so the log's head before and after a refused request must be equal. The
number of refused requests checked is written to `ONE_FUZZ_REPORT` when the run ends, so the test
knows the check ran.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any

import psycopg
import schemathesis

from eventlog.store import EVENTS_TABLE

_log = psycopg.connect(os.environ["ONE_FUZZ_DATABASE_URL"], autocommit=True)
_before: list[int] = []
_refusals_checked = [0]


def _head() -> int:
    row = _log.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}").fetchone()
    return int(row[0]) if row else 0


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """Note the log's head before each request."""
    _before[:] = [_head()]


@schemathesis.check
def refused_requests_append_nothing(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx or 5xx answer leaves the event log as it was."""
    if response.status_code < 400 or not _before:
        return None
    _refusals_checked[0] += 1
    appended = _head() - _before[0]
    if appended:
        raise AssertionError(f"a refused request ({response.status_code}) appended {appended} event(s)")
    return True


@atexit.register
def _report() -> None:
    Path(os.environ["ONE_FUZZ_REPORT"]).write_text(str(_refusals_checked[0]))
