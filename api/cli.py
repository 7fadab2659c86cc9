"""The `one` command line: serve the platform, inspect the database."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.settings import Settings

app = typer.Typer(help="ONE: event-sourced backend for the ONE Platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database and event log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
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
    import psycopg

    from infra.database import resolve_database
    from infra.migrations import migrate, schema_version
    from projections.queries import projection_status

    settings = Settings.from_env(data_dir)
    db = resolve_database(settings)
    migrate(db)
    with psycopg.connect(db.conninfo) as conn:
        head_row = conn.execute(
            "SELECT coalesce(max(notification_id), 0), count(DISTINCT originator_id)"
            " FROM stored_events"
        ).fetchone() if _has_log(conn) else (0, 0)
        head, streams = head_row if head_row else (0, 0)
        status = projection_status(conn, head)
    console.print(f"database: {db.dbname} on {db.host}:{db.port}")
    console.print(f"schema version: {schema_version(db)}   log head: {head}   streams: {streams}")
    table = Table("projection", "position", "lag", "updated")
    for row in status:
        table.add_row(row["name"], str(row["position"]), str(row["lag"]), str(row["updated_at"]))
    console.print(table)


def _has_log(conn: object) -> bool:
    import psycopg

    assert isinstance(conn, psycopg.Connection)
    row = conn.execute("SELECT to_regclass('stored_events') IS NOT NULL").fetchone()
    return bool(row and row[0])


if __name__ == "__main__":
    app()
