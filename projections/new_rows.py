"""Set-based insertion of new rows: a run of `NewRow`s for one table becomes one
`INSERT … SELECT … FROM unnest(…) ON CONFLICT (key) DO NOTHING` per chunk, each column sent as one
text array and cast by the server to the column's type (no statement per row, no per-value
parameter adaptation). Rows go in in order, so the first row of a key wins, as one by one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from typing import Any

import psycopg
from psycopg import sql

from eventlog.envelope import dump_json
from projections.base import NewRow

MAX_ROWS = 2000
MAX_BYTES = 512 * 1024
"""Bounds of one statement: psycopg 3.3 can hang on pipelined statements of about 1 MB
(docs/benchmarks.md, finding 1)."""

_column_types: dict[str, dict[str, str]] = {}


def insert_new(cur: psycopg.Cursor[object], rows: Sequence[NewRow]) -> None:
    """Insert a run of new rows of one table (same key and columns), chunk by chunk."""
    first = rows[0]
    columns = tuple(first.values)
    types = column_types(cur.connection, first.table)
    statement = _statement(first.table, first.key, columns, tuple(types[c] for c in columns))
    for arrays in column_arrays(rows, columns, types):
        cur.execute(statement, arrays, prepare=True)


def column_types(conn: psycopg.Connection[Any], table: str) -> dict[str, str]:
    """A table's column types as SQL (`jsonb`, `text[]`, `timestamp with time zone` …), read once."""
    if table not in _column_types:
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (table,),
        ).fetchall()
        _column_types[table] = {str(name): str(kind) for name, kind in rows}
    return _column_types[table]


def column_arrays(rows: Sequence[NewRow], columns: tuple[str, ...],
                  types: dict[str, str]) -> Iterator[list[list[str | None]]]:
    """The rows as one text array per column, in chunks within `MAX_ROWS` and `MAX_BYTES`."""
    converters = [(column, text_form(types[column])) for column in columns]
    arrays: list[list[str | None]] = [[] for _ in columns]
    size = 0
    for row in rows:
        values = row.values
        for array, (column, convert) in zip(arrays, converters, strict=True):
            value = values[column]
            text = None if value is None else convert(value)
            array.append(text)
            size += len(text) + 4 if text is not None else 4
        if len(arrays[0]) == MAX_ROWS or size > MAX_BYTES:
            yield arrays
            arrays, size = [[] for _ in columns], 0
    if arrays[0]:
        yield arrays


def as_text(value: Any, sql_type: str) -> str | None:
    """A value in PostgreSQL's text input form for a column of `sql_type`."""
    return None if value is None else text_form(sql_type)(value)


def text_form(sql_type: str) -> Callable[[Any], str]:
    """How a (non-null) value of a column of `sql_type` is written in PostgreSQL's text form."""
    if sql_type in ("jsonb", "json"):
        return _json_text
    if sql_type.endswith("[]"):
        return _array_literal
    if sql_type == "boolean":
        return lambda value: "true" if value else "false"
    return str


def _array_literal(values: Iterable[Any]) -> str:
    return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _json_text(value: Any) -> str:
    return dump_json(value).decode()


@cache
def _statement(table: str, key: str, columns: tuple[str, ...], types: tuple[str, ...]) -> bytes:
    """The statement's text, composed once (rendering a `sql.Composed` costs more than sending it)."""
    return _compose(table, key, columns, types).as_bytes(None)


def _compose(table: str, key: str, columns: tuple[str, ...], types: tuple[str, ...]) -> sql.Composed:
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    casts = sql.SQL(", ").join(
        sql.SQL("r.{}::{}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(columns, types, strict=True)
    )
    arrays = sql.SQL(", ").join(sql.SQL("%b::text[]") for _ in columns)  # binary: no escaping
    return sql.SQL(
        "INSERT INTO {table} ({names}) SELECT {casts} FROM unnest({arrays}) WITH ORDINALITY"
        " AS r({names}, ord) ORDER BY r.ord ON CONFLICT ({key}) DO NOTHING"
    ).format(table=sql.Identifier(table), names=names, casts=casts, arrays=arrays,
             key=sql.SQL(", ").join(sql.Identifier(k.strip()) for k in key.split(",")))
