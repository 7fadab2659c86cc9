"""Read-model queries (the seeds' query patterns). Each takes an open connection, returns JSON-ready data."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

Row = dict[str, Any]
Conn = psycopg.Connection[Any]

_THING_COLUMNS = (
    "id, org_id, type, name, properties, status, tags, created_by, created_at, updated_at,"
    " deleted_at, version, position, created_position"
)
_T_THING_COLUMNS = ", ".join(f"t.{c.strip()}" for c in _THING_COLUMNS.split(","))
_CONNECTION_COLUMNS = (
    "id, org_id, from_id, to_id, type, metadata, created_at, updated_at, removed_at, version,"
    " position"
)


class BadCursor(ValueError):
    """A pagination cursor that this server did not issue."""


def encode_cursor(value: int) -> str:
    """Opaque pagination cursor for a position."""
    return base64.urlsafe_b64encode(f"p{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Inverse of `encode_cursor`; raises BadCursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("p"):
            raise ValueError(text)
        return int(text[1:])
    except (ValueError, UnicodeDecodeError) as error:
        raise BadCursor("cursor is not one this server issued") from error


def _rows(conn: Conn, sql: str, params: Any = ()) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params, prepare=True)
        return [_jsonable(row) for row in cur.fetchall()]


def _jsonable(row: Row) -> Row:
    """Rows as plain JSON types, so routes can serialise them with `json.dumps` directly."""
    return {k: _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _page(rows: list[Row], limit: int, key: str) -> dict[str, Any]:
    more = len(rows) > limit
    items = rows[:limit]
    return {"items": items, "next_cursor": encode_cursor(items[-1][key]) if more else None}


def get_thing(conn: Conn, thing_id: UUID, with_connections: bool = False) -> Row | None:
    """One thing (deleted ones included, flagged by deleted_at), optionally with its edges."""
    found = _rows(conn, f"SELECT {_THING_COLUMNS} FROM things WHERE id = %s", (thing_id,))
    if not found:
        return None
    thing = found[0]
    if with_connections:
        thing["connections"] = {
            "outgoing": _rows(conn, f"SELECT {_CONNECTION_COLUMNS} FROM connections"
                              " WHERE from_id = %s AND removed_at IS NULL ORDER BY position",
                              (thing_id,)),
            "incoming": _rows(conn, f"SELECT {_CONNECTION_COLUMNS} FROM connections"
                              " WHERE to_id = %s AND removed_at IS NULL ORDER BY position",
                              (thing_id,)),
        }
    return thing


def list_things(
    conn: Conn, *, type: str | None = None, status: str | None = None,
    tag: str | None = None, org_id: str | None = None, include_deleted: bool = False,
    limit: int = 50, cursor: str | None = None,
) -> dict[str, Any]:
    """Things newest first, filtered by type/status/tag/org, with keyset pagination."""
    where: list[str] = ["true"]
    params: list[Any] = []
    for column, value in (("type", type), ("status", status), ("org_id", org_id)):
        if value is not None:
            where.append(f"t.{column} = %s")
            params.append(value)
    if tag is not None:
        where.append("EXISTS (SELECT 1 FROM thing_tags g WHERE g.thing_id = t.id"
                     " AND g.tag = %s AND g.active)")
        params.append(tag)
    if not include_deleted:
        where.append("t.deleted_at IS NULL")
    if cursor is not None:
        where.append("t.created_position < %s")
        params.append(decode_cursor(cursor))
    rows = _rows(conn, f"SELECT {_T_THING_COLUMNS} FROM things t WHERE {' AND '.join(where)}"
                       " ORDER BY t.created_position DESC LIMIT %s", (*params, limit + 1))
    return _page(rows, limit, "created_position")


def list_connections(
    conn: Conn, *, from_id: UUID | None = None, to_id: UUID | None = None,
    type: str | None = None, limit: int = 100,
) -> list[Row]:
    """Live connections by endpoint(s) and type (uses the seeds' from/to/type indexes)."""
    where: list[str] = ["removed_at IS NULL"]
    params: list[Any] = []
    for column, value in (("from_id", from_id), ("to_id", to_id), ("type", type)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    return _rows(conn, f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE"
                       f" {' AND '.join(where)} ORDER BY position LIMIT %s", (*params, limit))


def get_connection(conn: Conn, connection_id: UUID) -> Row | None:
    """One connection (removed ones too, flagged by removed_at)."""
    found = _rows(conn, f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE id = %s",
                  (connection_id,))
    return found[0] if found else None


def creator_profile(conn: Conn, creator_id: UUID) -> Row | None:
    """A creator with the content it owns or authored, and its follower/following counts."""
    creator = get_thing(conn, creator_id)
    if creator is None:
        return None
    creator["content"] = _rows(
        conn,
        f"SELECT DISTINCT ON (t.created_position) {_T_THING_COLUMNS}"
        " FROM connections c JOIN things t ON t.id = c.to_id"
        " WHERE c.from_id = %s AND c.type IN ('owns', 'authored') AND c.removed_at IS NULL"
        " AND t.deleted_at IS NULL ORDER BY t.created_position DESC",
        (creator_id,),
    )
    counts = _rows(
        conn,
        "SELECT (SELECT count(*) FROM connections WHERE to_id = %s AND type = 'following'"
        " AND removed_at IS NULL) AS followers,"
        " (SELECT count(*) FROM connections WHERE from_id = %s AND type = 'following'"
        " AND removed_at IS NULL) AS following",
        (creator_id, creator_id),
    )[0]
    creator["follower_count"] = counts["followers"]
    creator["following_count"] = counts["following"]
    return creator


def token_holdings(conn: Conn, holder_id: UUID) -> list[Row]:
    """Tokens a person or thing holds (holds_tokens / holds edges) with their balances."""
    return _rows(
        conn,
        "SELECT c.to_id AS token_id, t.name AS token_name, t.properties AS token_properties,"
        " c.metadata, CASE WHEN jsonb_typeof(c.metadata->'balance') = 'number'"
        " THEN (c.metadata->>'balance')::numeric ELSE 0 END AS balance,"
        " c.updated_at FROM connections c LEFT JOIN things t ON t.id = c.to_id"
        " WHERE c.from_id = %s AND c.type IN ('holds_tokens', 'holds') AND c.removed_at IS NULL"
        " ORDER BY c.position",
        (holder_id,),
    )


def list_activity(
    conn: Conn, *, target_id: UUID | None = None, actor_id: str | None = None,
    type: str | None = None, since: datetime | None = None,
    until: datetime | None = None, limit: int = 50, cursor: str | None = None,
) -> dict[str, Any]:
    """Activity newest first (a thing's interaction history, an actor's timeline, a type)."""
    where: list[str] = ["true"]
    params: list[Any] = []
    for column, value in (("target_id", target_id), ("actor_id", actor_id), ("type", type)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if since is not None:
        where.append("occurred_at >= %s")
        params.append(since)
    if until is not None:
        where.append("occurred_at < %s")
        params.append(until)
    if cursor is not None:
        where.append("position < %s")
        params.append(decode_cursor(cursor))
    rows = _rows(conn, "SELECT position, event_id, org_id, type, actor_id, target_id, metadata,"
                       f" occurred_at FROM activity WHERE {' AND '.join(where)}"
                       " ORDER BY position DESC LIMIT %s", (*params, limit + 1))
    return _page(rows, limit, "position")


def payment_analytics(conn: Conn, since: datetime | None, until: datetime | None) -> list[Row]:
    """payment_processed events grouped by metadata.status: count and amount totals."""
    return _rows(
        conn,
        "SELECT coalesce(metadata->>'status', 'unknown') AS status, count(*) AS count,"
        " coalesce(sum(CASE WHEN jsonb_typeof(metadata->'amount') = 'number'"
        " THEN (metadata->>'amount')::numeric END), 0) AS total_amount"
        " FROM activity WHERE type = 'payment_processed'"
        " AND (%s::timestamptz IS NULL OR occurred_at >= %s)"
        " AND (%s::timestamptz IS NULL OR occurred_at < %s)"
        " GROUP BY 1 ORDER BY 1",
        (since, since, until, until),
    )


def list_tags(conn: Conn, category: str | None = None, limit: int = 100) -> list[Row]:
    """The tag catalogue, most used first."""
    return _rows(conn, "SELECT tag, category, value, usage_count FROM tags"
                       " WHERE (%s::text IS NULL OR category = %s)"
                       " ORDER BY usage_count DESC, tag LIMIT %s", (category, category, limit))


def projection_status(conn: Conn, head: int) -> list[Row]:
    """Each projection's checkpoint and lag behind the log head."""
    rows = _rows(conn, "SELECT name, position, updated_at FROM projection_checkpoints ORDER BY name")
    for row in rows:
        row["lag"] = max(head - row["position"], 0)
    return rows


def token_owners(conn: Conn, token_id: str) -> dict[str, float]:
    """Owners of a token (live `owns` edges) and their revenueShare (1.0 when unspecified)."""
    rows = _rows(conn, "SELECT from_id, metadata->'revenueShare' AS share FROM connections"
                       " WHERE to_id = %s AND type = 'owns' AND removed_at IS NULL", (token_id,))
    return {
        row["from_id"]: float(row["share"]) if isinstance(row["share"], int | float) else 1.0
        for row in rows
    }


def list_sagas(conn: Conn, status: str | None = None, limit: int = 50) -> list[Row]:
    """Sagas, most recently updated first, optionally by status."""
    return _rows(conn, "SELECT id, kind, buyer_id, token_id, amount, usd_cents, status, step,"
                       " attempts, retry_at, reason, started_at, updated_at, version FROM sagas"
                       " WHERE (%s::text IS NULL OR status = %s) ORDER BY updated_at DESC LIMIT %s",
                 (status, status, limit))
