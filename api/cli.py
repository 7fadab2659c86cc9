"""The `one` command line: serve the platform, inspect the database."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from psycopg import sql
from rich.console import Console
from rich.table import Table

from commands.store import EVENTS_TABLE
from infra.database import ConnectionInfo, resolve_database
from infra.migrations import migrate, schema_version
from infra.settings import Settings
from projections.queries import projection_status

app = typer.Typer(help="ONE: event-sourced backend for the ONE Platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database and event log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
projections_app = typer.Typer(help="Read models: status and rebuild.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")
console = Console()

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the embedded PostgreSQL keeps its data."),
]


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    data_dir: DataDir = None,
) -> None:
    """Run the API with its event log and in-process projections (the main job)."""
    import uvicorn

    from api.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env(data_dir)
    where = (settings.database_url and "DATABASE_URL") or f"embedded PostgreSQL in {settings.data_dir}"
    console.print(f"[bold]ONE[/] serving on http://{host}:{port} using {where}")
    uvicorn.run(create_app(settings=settings), host=host, port=port, log_level="warning")


@db_app.command("status")
def db_status(data_dir: DataDir = None) -> None:
    """Show the database, schema version, log head and projection checkpoints."""
    db = _database(data_dir)
    with psycopg.connect(db.conninfo) as conn:
        head, streams = _log_summary(conn)
        status = projection_status(conn, head)
    console.print(f"database: {db.dbname} on {db.host}:{db.port}")
    console.print(f"schema version: {schema_version(db)}   log head: {head}   streams: {streams}")
    _print_projections(status)


@projections_app.command("status")
def projections_status(data_dir: DataDir = None) -> None:
    """Each projection's position and lag behind the log head."""
    db = _database(data_dir)
    with psycopg.connect(db.conninfo) as conn:
        head, _ = _log_summary(conn)
        _print_projections(projection_status(conn, head))


@projections_app.command("rebuild")
def projections_rebuild(
    names: Annotated[list[str] | None, typer.Argument(help="Projections to rebuild (default: all).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Drop the named read models and rebuild them from position 0 of the log (stop `one serve` first)."""
    import time

    from commands.store import open_event_log
    from projections.rebuild import rebuild
    from projections.registry import PROJECTIONS

    unknown = sorted(set(names or []) - set(PROJECTIONS))
    if unknown:
        raise typer.BadParameter(f"unknown projection(s) {unknown}; known: {sorted(PROJECTIONS)}")
    chosen = [PROJECTIONS[n] for n in names] if names else list(PROJECTIONS.values())
    db = _database(data_dir)
    event_log = open_event_log(db)
    started = time.perf_counter()
    try:
        count = rebuild(event_log, db, chosen)
    finally:
        event_log.close()
    elapsed = time.perf_counter() - started
    console.print(f"rebuilt {', '.join(p.name for p in chosen)} from {count} events in "
                  f"{elapsed:.1f}s ({count / max(elapsed, 1e-9):,.0f} events/s)")


def _database(data_dir: Path | None) -> ConnectionInfo:
    db = resolve_database(Settings.from_env(data_dir))
    migrate(db)
    return db


def _print_projections(rows: list[dict[str, Any]]) -> None:
    table = Table("projection", "position", "lag", "updated")
    for row in rows:
        table.add_row(row["name"], str(row["position"]), str(row["lag"]), str(row["updated_at"]))
    console.print(table)


def _log_summary(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(head position, number of streams) of the event log, zeros before the first write."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (EVENTS_TABLE,)).fetchone()
    if not (exists and exists[0]):
        return 0, 0
    query = sql.SQL(
        "SELECT coalesce(max(notification_id), 0), count(DISTINCT originator_id) FROM {}"
    ).format(sql.Identifier(EVENTS_TABLE))
    row = conn.execute(query).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


if __name__ == "__main__":
    app()
