"""Schedules read model: one row per schedule with its status, next tick, the tick being run and
the last outcome. The scheduler finds due schedules here; the stream stays the source of truth."""

from __future__ import annotations

from typing import Any

import orjson

from eventlog.envelope import Envelope
from projections.base import Change, NewRow, Projection, Statement


def _update(e: Envelope, sets: str = "", **values: Any) -> Statement:
    d = e.data
    return (
        "UPDATE schedules SET status = %(status)s, next_at = %(next_at)s, updated_at = %(at)s,"
        f" version = %(version)s, position = %(position)s{sets} WHERE id = %(id)s AND version < %(version)s",
        {"status": d["status"], "next_at": d["next_at"], "at": e.occurred_at, "version": e.version,
         "position": e.position, "id": e.stream_id, **values},
    )


def project_schedules(e: Envelope) -> list[Change]:
    """Envelope → schedule row changes (guarded by stream version)."""
    d = e.data
    if e.type == "schedule.created":
        return [NewRow("schedules", "id", {
            "id": e.stream_id, "org_id": e.org_id, "name": d["name"], "cron": d["cron"], "job": d["job"],
            "params": d["params"], "status": d["status"], "next_at": d["next_at"],
            "created_at": e.occurred_at, "updated_at": e.occurred_at, "version": e.version,
            "position": e.position})]
    if e.type == "schedule.redefined":
        return [_update(e, ", cron = %(cron)s, job = %(job)s, params = %(params)s::jsonb,"
                           " claimed_tick = NULL", cron=d["cron"], job=d["job"], params=_json(d["params"]))]
    if e.type == "schedule.tick_claimed":
        return [_update(e, ", claimed_tick = %(tick)s", tick=d["tick"])]
    if e.type == "schedule.fired":
        return [_update(e, ", claimed_tick = NULL, last_tick = %(tick)s, last_outcome = %(outcome)s,"
                           " last_detail = %(detail)s::jsonb, fired = fired + 1",
                        tick=d["tick"], outcome=d["outcome"], detail=_json(d["detail"]))]
    return [_update(e)]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


SCHEDULES = Projection(
    name="schedules",
    tables=("schedules",),
    handles=frozenset({f"schedule.{kind}" for kind in (
        "created", "redefined", "paused", "resumed", "deleted", "tick_claimed", "fired")}),
    project=project_schedules,
)
