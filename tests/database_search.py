"""Search every table of a database for a string (in text, JSON and byte columns alike)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from infra.database import ConnectionInfo


def occurrences(db: ConnectionInfo, needle: str) -> dict[str, int]:
    """table → rows containing `needle` (case-insensitive), for every table of the public schema
    (byte columns such as the event log's are read with their ASCII as text)."""
    found: dict[str, int] = {}
    with psycopg.connect(db.conninfo) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position").fetchall()
        tables: dict[str, list[sql.Composable]] = {}
        for table, column, data_type in columns:
            as_text = (sql.SQL("encode({}, 'escape')") if data_type == "bytea"
                       else sql.SQL("{}::text")).format(sql.Identifier(column))
            tables.setdefault(table, []).append(as_text)
        for table, texts in tables.items():
            query = sql.SQL("SELECT count(*) FROM {} WHERE concat_ws(' ', {}) ILIKE %s").format(
                sql.Identifier(table), sql.SQL(", ").join(texts))
            row = conn.execute(query, (f"%{needle}%",)).fetchone()
            if row and row[0]:
                found[table] = int(row[0])
    return found
