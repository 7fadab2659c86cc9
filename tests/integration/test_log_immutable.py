"""The event log is append-only in PostgreSQL itself: UPDATE, DELETE and TRUNCATE of its table are
refused for every connection (the tests connect as a superuser), and the log is left as it was."""

from __future__ import annotations

import psycopg
import pytest

from api.runtime import Runtime
from commands import models as m
from eventlog.store import EVENTS_TABLE

CHANGES = (
    f"UPDATE {EVENTS_TABLE} SET topic = 'forged' WHERE notification_id = 1",
    f"DELETE FROM {EVENTS_TABLE} WHERE notification_id = 1",
    f"TRUNCATE {EVENTS_TABLE}",
    f"TRUNCATE {EVENTS_TABLE} CASCADE",
)


def _log(runtime: Runtime) -> list[tuple[object, ...]]:
    with psycopg.connect(runtime.db.conninfo) as conn:
        return [tuple(row) for row in conn.execute(
            f"SELECT notification_id, originator_id, topic, state FROM {EVENTS_TABLE} ORDER BY 1")]


@pytest.mark.parametrize("statement", CHANGES)
def test_the_log_refuses_to_change(runtime: Runtime, statement: str) -> None:
    runtime.bus.execute(m.CreateThing(type="course", name="kept"))
    before = _log(runtime)
    with psycopg.connect(runtime.db.conninfo) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        assert superuser == (True,)  # not a matter of privileges: the database refuses anyone
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)
    assert _log(runtime) == before and len(before) > 2


def test_appending_still_works_after_a_refusal(runtime: Runtime) -> None:
    with psycopg.connect(runtime.db.conninfo) as conn, pytest.raises(psycopg.Error):
        conn.execute(CHANGES[1])
    made = runtime.bus.execute(m.CreateThing(type="course", name="after")).body
    assert made["position"] == _log(runtime)[-1][0]
