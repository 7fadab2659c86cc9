"""Blue/green rebuilds: read models rebuilt from position 0 while the live ones keep serving.

The rebuild builds shadow tables of the same names in a schema of their own (`one_shadow`) and
fills them through the ordinary writer on a connection whose `search_path` puts that schema first,
so projectors and the engine run unchanged, with their own checkpoints beside the tables. Once
the shadow has caught up with the log, one transaction locks the live tables (readers and the
runners wait a moment; none fails), applies the events appended since, drops the live tables,
moves the shadow ones in with their indexes' names, and sets the checkpoints (and the projections'
versions) to where the shadow stands. The runners then go on from their own position: what they
apply again is a no-op (every row is guarded by its stream version), so nothing is lost.

Progress is kept in `projection_rebuilds` (position, target, rate) for `/v1/projections`,
`/metrics` and the console. One rebuild runs at a time (an advisory lock).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from eventlog.reader import read_to_end
from eventlog.store import EventLog
from infra.database import ConnectionInfo
from infra.locks import REBUILD, advisory_lock
from projections.base import Projection
from projections.engine import apply_or_park
from projections.positions import Checkpoints
from projections.registry import PROJECTIONS
from projections.store import ProjectionSet

SHADOW = "one_shadow"
SWAP_ATTEMPTS = 200
LOCK_WAIT_MS = 250
_INDEX_HEAD = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+ ")


def rebuild_live(db: ConnectionInfo, event_log: EventLog, projections: Sequence[Projection],
                 read: Callable[[int], None] | None = None, chunk_size: int = 2000,
                 stop: threading.Event | None = None, only_stale: bool = False) -> int:
    """Rebuild the projections from position 0 beside the live ones and swap them in; returns the
    position the swapped-in tables reflect (0 if nothing was rebuilt). `read` is told each
    chunk's last position; with `only_stale`, only those whose stored version differs from the
    code's (checked once the rebuild lock is held: another process may have just done them)."""
    with advisory_lock(db, REBUILD), psycopg.connect(db.conninfo, autocommit=True) as conn:
        if only_stale:
            projections = stale_projections(conn, projections)
            if not projections:
                return 0
        order = list(PROJECTIONS)  # the runners' order: tables are locked in it, never crosswise
        projections = sorted(projections, key=lambda p: order.index(p.name))
        names = [p.name for p in projections]
        tables = [table for p in projections for table in p.tables]
        writer = ProjectionSet(tuple(projections))
        target = event_log.recorder.max_notification_id() or 0
        _create_shadow(conn, tables)
        conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(SHADOW)))
        checkpoints = Checkpoints(dict.fromkeys(names, 0))
        began = time.monotonic()
        _progress(conn, names, 0, target, began)
        for chunk in read_to_end(event_log, 0, chunk_size, stop):
            apply_or_park(conn, writer, chunk, checkpoints)
            _progress(conn, names, chunk[-1].position, max(target, chunk[-1].position), began)
            if read is not None:
                read(chunk[-1].position)
        if stop is not None and stop.is_set():
            _drop_shadow(conn, names)
            return 0
        reached = _swap(conn, event_log, writer, checkpoints, tables, projections)
        _drop_shadow(conn, names)
    return reached


def _create_shadow(conn: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SHADOW)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SHADOW)))
    for table in (*tables, "projection_checkpoints"):
        conn.execute(sql.SQL("CREATE TABLE {}.{} (LIKE public.{} INCLUDING ALL)").format(
            sql.Identifier(SHADOW), sql.Identifier(table), sql.Identifier(table)))


def _swap(conn: psycopg.Connection[Any], event_log: EventLog, writer: ProjectionSet,
          checkpoints: Checkpoints, tables: Sequence[str], projections: Sequence[Projection]) -> int:
    """Catch the shadow up under the live tables' lock and put it in their place. The lock is
    tried for a short while only: a reader that holds one of the tables and waits for another
    goes first, instead of the two deadlocking (which would fail the reader)."""
    for _ in range(SWAP_ATTEMPTS):
        before = dict(checkpoints.positions)
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_MS}ms'")
                return _swap_locked(conn, event_log, writer, checkpoints, tables, projections)
        except psycopg.errors.LockNotAvailable:
            checkpoints.positions = before  # the tail applied inside was rolled back with it
            time.sleep(0.05)
    raise TimeoutError(f"could not lock {', '.join(tables)} for the swap in {SWAP_ATTEMPTS} attempts")


def _swap_locked(conn: psycopg.Connection[Any], event_log: EventLog, writer: ProjectionSet,
                 checkpoints: Checkpoints, tables: Sequence[str], projections: Sequence[Projection]) -> int:
    live = sql.SQL(", ").join(sql.SQL("public.{}").format(sql.Identifier(t)) for t in tables)
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(live))
    for chunk in read_to_end(event_log, min(checkpoints.positions.values()), 2000):
        apply_or_park(conn, writer, chunk, checkpoints)
    for table in tables:
        names = _index_names(conn, table)
        conn.execute(sql.SQL("DROP TABLE public.{}").format(sql.Identifier(table)))
        conn.execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA public").format(
            sql.Identifier(SHADOW), sql.Identifier(table)))
        for shadow_name, live_name in names.items():
            if shadow_name != live_name:
                conn.execute(sql.SQL("ALTER INDEX public.{} RENAME TO {}").format(
                    sql.Identifier(shadow_name), sql.Identifier(live_name)))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO public.projection_checkpoints (name, position, version, updated_at)"
            " VALUES (%s, %s, %s, now()) ON CONFLICT (name) DO UPDATE SET position ="
            " greatest(public.projection_checkpoints.position, excluded.position),"
            " version = excluded.version, updated_at = now()",
            [(p.name, checkpoints.positions[p.name], p.version) for p in projections])
    return min(checkpoints.positions.values())


def _index_names(conn: psycopg.Connection[Any], table: str) -> dict[str, str]:
    """The shadow table's index names → the live table's names of the same indexes."""
    def by_shape(schema: str) -> dict[str, str]:
        rows = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s"
                            " AND tablename = %s", (schema, table)).fetchall()
        return {_INDEX_HEAD.sub(lambda m: m.group(1) or "", str(d)): str(n) for n, d in rows}

    live, shadow = by_shape("public"), by_shape(SHADOW)
    return {shadow[shape]: live[shape] for shape in shadow if shape in live}


def _progress(conn: psycopg.Connection[Any], names: Sequence[str], position: int, target: int,
              began: float) -> None:
    rate = position / max(time.monotonic() - began, 1e-9)
    conn.execute(
        "INSERT INTO public.projection_rebuilds (name, position, target, rate, started_at, updated_at)"
        " SELECT unnest(%s::text[]), %s, %s, %s, now(), now() ON CONFLICT (name) DO UPDATE"
        " SET position = excluded.position, target = excluded.target, rate = excluded.rate,"
        " updated_at = now()", (list(names), position, target, rate))


def _drop_shadow(conn: psycopg.Connection[Any], names: Sequence[str]) -> None:
    conn.execute("SET search_path = public")
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SHADOW)))
    conn.execute("DELETE FROM projection_rebuilds WHERE name = ANY(%s)", (list(names),))


def stale_projections(conn: psycopg.Connection[Any], projections: Sequence[Projection]) -> list[Projection]:
    """The projections whose code declares another version than their read model was built with."""
    stored = dict(conn.execute("SELECT name, version FROM projection_checkpoints").fetchall())
    return [p for p in projections if p.name in stored and stored[p.name] != p.version]
