"""Read-model queries (the seeds' query patterns). Each takes an open connection and the
organization the caller acts in, which every statement filters on (tenant isolation in SQL), and
returns JSON-ready data."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from domain import permissions

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


CURSOR_PATTERN = r"^p[0-9]{1,18}$"
"""What every cursor looks like (a position past which the next page starts)."""


def encode_cursor(value: int) -> str:
    """Pagination cursor for a position."""
    return f"p{value}"


def decode_cursor(cursor: str) -> int:
    """Inverse of `encode_cursor`; raises BadCursor."""
    if not re.match(CURSOR_PATTERN, cursor):
        raise BadCursor("cursor is not one this server issued")
    return int(cursor[1:])


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


class _Where:
    """A WHERE clause grown by filters (an organization's rows: `_Where().add("org_id = %s", …)`)."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> _Where:
        """AND a condition."""
        self.clauses.append(clause)
        self.params.extend(params)
        return self

    def equal(self, column: str, value: Any) -> _Where:
        """AND `column = value`, unless value is None (no filter)."""
        return self if value is None else self.add(f"{column} = %s", value)

    @property
    def sql(self) -> str:
        """The conditions joined."""
        return " AND ".join(self.clauses) or "true"


def _newest_first(conn: Conn, select: str, where: _Where, key: str, limit: int,
                  cursor: str | None) -> dict[str, Any]:
    """One page of `select … WHERE where`, newest first by the `key` column (keyset pagination:
    the cursor is the last key seen)."""
    if cursor is not None:
        where.add(f"{key} < %s", decode_cursor(cursor))
    rows = _rows(conn, f"{select} WHERE {where.sql} ORDER BY {key} DESC LIMIT %s",
                 (*where.params, limit + 1))
    items = rows[:limit]
    name = key.rsplit(".", 1)[-1]
    more = len(rows) > limit
    return {"items": items, "next_cursor": encode_cursor(items[-1][name]) if more else None}


def get_thing(conn: Conn, org_id: str, thing_id: UUID, with_connections: bool = False) -> Row | None:
    """One thing (deleted ones included, flagged by deleted_at), optionally with its edges."""
    found = _rows(conn, f"SELECT {_THING_COLUMNS} FROM things WHERE id = %s AND org_id = %s",
                  (thing_id, org_id))
    if not found:
        return None
    thing = found[0]
    if with_connections:
        thing["connections"] = {
            "outgoing": _rows(conn, f"SELECT {_CONNECTION_COLUMNS} FROM connections"
                              " WHERE from_id = %s AND org_id = %s AND removed_at IS NULL"
                              " ORDER BY position", (thing_id, org_id)),
            "incoming": _rows(conn, f"SELECT {_CONNECTION_COLUMNS} FROM connections"
                              " WHERE to_id = %s AND org_id = %s AND removed_at IS NULL"
                              " ORDER BY position", (thing_id, org_id)),
        }
    return thing


def list_things(
    conn: Conn, org_id: str, *, type: str | None = None, status: str | None = None,
    tag: str | None = None, include_deleted: bool = False, limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Things newest first, filtered by type/status/tag, with keyset pagination."""
    where = _Where().add("t.org_id = %s", org_id).equal("t.type", type).equal("t.status", status)
    if tag is not None:
        where.add("EXISTS (SELECT 1 FROM thing_tags g WHERE g.thing_id = t.id"
                  " AND g.tag = %s AND g.active)", tag)
    if not include_deleted:
        where.add("t.deleted_at IS NULL")
    return _newest_first(conn, f"SELECT {_T_THING_COLUMNS} FROM things t", where,
                         "t.created_position", limit, cursor)


def list_connections(
    conn: Conn, org_id: str, *, from_id: UUID | None = None, to_id: UUID | None = None,
    type: str | None = None, limit: int = 100,
) -> list[Row]:
    """Live connections by endpoint(s) and type (uses the seeds' from/to/type indexes)."""
    where = (_Where().add("org_id = %s", org_id).add("removed_at IS NULL").equal("from_id", from_id)
             .equal("to_id", to_id).equal("type", type))
    return _rows(conn, f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE {where.sql}"
                       " ORDER BY position LIMIT %s", (*where.params, limit))


def get_connection(conn: Conn, org_id: str, connection_id: UUID) -> Row | None:
    """One connection (removed ones too, flagged by removed_at)."""
    found = _rows(conn, f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE id = %s"
                        " AND org_id = %s", (connection_id, org_id))
    return found[0] if found else None


def creator_profile(conn: Conn, org_id: str, creator_id: UUID) -> Row | None:
    """A creator with the content it owns or authored, and its follower/following counts."""
    creator = get_thing(conn, org_id, creator_id)
    if creator is None:
        return None
    creator["content"] = _rows(
        conn,
        f"SELECT DISTINCT ON (t.created_position) {_T_THING_COLUMNS}"
        " FROM connections c JOIN things t ON t.id = c.to_id"
        " WHERE c.from_id = %s AND c.org_id = %s AND t.org_id = %s"
        " AND c.type IN ('owns', 'authored') AND c.removed_at IS NULL"
        " AND t.deleted_at IS NULL ORDER BY t.created_position DESC",
        (creator_id, org_id, org_id),
    )
    counts = _rows(
        conn,
        "SELECT (SELECT count(*) FROM connections WHERE to_id = %s AND org_id = %s"
        " AND type = 'following' AND removed_at IS NULL) AS followers,"
        " (SELECT count(*) FROM connections WHERE from_id = %s AND org_id = %s"
        " AND type = 'following' AND removed_at IS NULL) AS following",
        (creator_id, org_id, creator_id, org_id),
    )[0]
    creator["follower_count"] = counts["followers"]
    creator["following_count"] = counts["following"]
    return creator


def token_holdings(conn: Conn, org_id: str, holder_id: UUID) -> list[Row]:
    """Tokens a person or thing holds (holds_tokens / holds edges) with their balances."""
    return _rows(
        conn,
        "SELECT c.to_id AS token_id, t.name AS token_name, t.properties AS token_properties,"
        " c.metadata, CASE WHEN jsonb_typeof(c.metadata->'balance') = 'number'"
        " THEN (c.metadata->>'balance')::numeric ELSE 0 END AS balance,"
        " c.updated_at FROM connections c LEFT JOIN things t ON t.id = c.to_id AND t.org_id = %s"
        " WHERE c.from_id = %s AND c.org_id = %s AND c.type IN ('holds_tokens', 'holds')"
        " AND c.removed_at IS NULL ORDER BY c.position",
        (org_id, holder_id, org_id),
    )


def list_activity(
    conn: Conn, org_id: str, *, target_id: UUID | None = None, actor_id: str | None = None,
    type: str | None = None, since: datetime | None = None,
    until: datetime | None = None, limit: int = 50, cursor: str | None = None,
) -> dict[str, Any]:
    """Activity newest first (a thing's interaction history, an actor's timeline, a type)."""
    where = (_Where().add("org_id = %s", org_id).equal("target_id", target_id).equal("actor_id", actor_id)
             .equal("type", type))
    if since is not None:
        where.add("occurred_at >= %s", since)
    if until is not None:
        where.add("occurred_at < %s", until)
    return _newest_first(conn, "SELECT position, event_id, org_id, type, actor_id, target_id,"
                               " metadata, occurred_at FROM activity", where, "position", limit, cursor)


def payment_analytics(conn: Conn, org_id: str, since: datetime | None,
                      until: datetime | None) -> list[Row]:
    """payment_processed events grouped by metadata.status: count and amount totals."""
    return _rows(
        conn,
        "SELECT coalesce(metadata->>'status', 'unknown') AS status, count(*) AS count,"
        " coalesce(sum(CASE WHEN jsonb_typeof(metadata->'amount') = 'number'"
        " THEN (metadata->>'amount')::numeric END), 0) AS total_amount"
        " FROM activity WHERE type = 'payment_processed' AND org_id = %s"
        " AND (%s::timestamptz IS NULL OR occurred_at >= %s)"
        " AND (%s::timestamptz IS NULL OR occurred_at < %s)"
        " GROUP BY 1 ORDER BY 1",
        (org_id, since, since, until, until),
    )


_REFERRAL_COUNTS = (
    "count(*) FILTER (WHERE type = 'invitation_created') AS invited,"
    " count(*) FILTER (WHERE type = 'referral_created') AS registered,"
    " count(*) FILTER (WHERE type = 'referral_converted') AS converted")


def referral_funnel(conn: Conn, org_id: str, referrer_id: str) -> Row:
    """A referrer's funnel (invited → registered → converted) and what it earned them."""
    row = _rows(
        conn,
        f"SELECT {_REFERRAL_COUNTS},"
        " coalesce(sum((metadata->>'amount')::numeric) FILTER (WHERE type = 'revenue_generated'"
        " AND metadata->>'role' = 'referral_commission'), 0) AS commissions,"
        " coalesce(sum((metadata->>'amount')::numeric) FILTER (WHERE type = 'revenue_generated'"
        " AND metadata->>'role' = 'referral_bonus'), 0) AS bonuses"
        " FROM activity WHERE org_id = %s AND metadata->>'referrerId' = %s AND type IN"
        " ('invitation_created', 'referral_created', 'referral_converted', 'revenue_generated')",
        (org_id, referrer_id),
    )[0]
    return {**row, "commissions": float(row["commissions"]), "bonuses": float(row["bonuses"])}


def referral_totals(conn: Conn, org_id: str) -> Row:
    """The organization's referral counts and how many people invited anyone."""
    return _rows(
        conn,
        f"SELECT {_REFERRAL_COUNTS}, count(DISTINCT metadata->>'referrerId')"
        " FILTER (WHERE type = 'invitation_created') AS inviters"
        " FROM activity WHERE org_id = %s"
        " AND type IN ('invitation_created', 'referral_created', 'referral_converted')",
        (org_id,),
    )[0]


def list_tags(conn: Conn, org_id: str, category: str | None = None, limit: int = 100) -> list[Row]:
    """The organization's tag catalogue, most used first."""
    return _rows(conn, "SELECT tag, category, value, usage_count FROM tags WHERE org_id = %s"
                       " AND (%s::text IS NULL OR category = %s)"
                       " ORDER BY usage_count DESC, tag LIMIT %s", (org_id, category, category, limit))


def projection_status(conn: Conn, head: int) -> list[Row]:
    """Each projection's checkpoint and lag behind the log head."""
    rows = _rows(conn, "SELECT name, position, updated_at FROM projection_checkpoints ORDER BY name")
    for row in rows:
        row["lag"] = max(head - row["position"], 0)
    return rows


def rebuild_progress(conn: Conn) -> list[Row]:
    """Blue/green rebuilds under way: position reached, target, events/s and seconds to go."""
    rows = _rows(conn, "SELECT name, position, target, rate, started_at, updated_at FROM projection_rebuilds"
                       " ORDER BY name")
    for row in rows:
        remaining = max(row["target"] - row["position"], 0)
        row["eta_s"] = round(remaining / row["rate"], 1) if row["rate"] else None
    return rows


def token_owners(conn: Conn, org_id: str, token_id: str) -> dict[str, float]:
    """Owners of a token (live `owns` edges of its organization) and their revenueShare (1.0
    when unspecified)."""
    rows = _rows(conn, "SELECT from_id, metadata->'revenueShare' AS share FROM connections"
                       " WHERE to_id = %s AND org_id = %s AND type = 'owns' AND removed_at IS NULL",
                 (token_id, org_id))
    return {
        row["from_id"]: float(row["share"]) if isinstance(row["share"], int | float) else 1.0
        for row in rows
    }


def list_sagas(conn: Conn, status: str | None = None, limit: int = 50,
               org_id: str | None = None) -> list[Row]:
    """Sagas and workflow instances (`kind`), most recently updated first, optionally by status
    and organization."""
    return _rows(conn, "SELECT id, kind, org_id, buyer_id, token_id, amount, usd_cents, subject_id, workflow,"
                       " status, step, attempts, retry_at, reason, started_at, updated_at, version FROM sagas"
                       " WHERE (%s::text IS NULL OR status = %s) AND (%s::text IS NULL OR org_id = %s)"
                       " ORDER BY updated_at DESC LIMIT %s",
                 (status, status, org_id, org_id, limit))


# ---- identity ------------------------------------------------------------------------------

_PERSON_COLUMNS = (
    "id, org_id, role, account_status, primary_auth_method, personal, profile, last_login_at,"
    " created_at, updated_at, deleted_at, erased_at, created_position, version, position"
)
_PUBLIC_PERSONAL = ("name", "username", "avatar_url")
_PRIVATE_PERSONAL = ("email", "ext_wallet", "app_wallet", "privy_did")
_PROFILE_PERSONAL = ("bio", "city", "country", "country_code", "github_url", "twitter_url",
                     "linkedin_url", "telegram_handle")


def person_view(row: Row, viewer_id: str, viewer_role: str) -> Row:
    """A person as `viewer` may see them: name, username and avatar for everyone; email, wallets,
    DID and last login for themselves and the owners; the profile as its visibility allows."""
    is_self = row["id"] == viewer_id
    personal: dict[str, Any] = row["personal"]
    profile: dict[str, Any] = row["profile"]
    view: Row = {k: row[k] for k in ("id", "org_id", "role", "account_status", "created_at",
                                     "updated_at", "deleted_at", "erased_at", "version", "position")}
    view.update({k: personal.get(k) for k in _PUBLIC_PERSONAL})
    if permissions.sees_private_fields(viewer_role, is_self):
        view.update({k: personal.get(k) for k in _PRIVATE_PERSONAL})
        view["primary_auth_method"] = row["primary_auth_method"]
        view["last_login_at"] = row["last_login_at"]
    if permissions.sees_profile(profile.get("visibility", "public"), viewer_role, is_self):
        view["profile"] = {**{k: personal.get(k) for k in _PROFILE_PERSONAL}, **profile}
    else:
        view["profile"] = {"visibility": profile.get("visibility")}
    return view


def get_person(conn: Conn, org_id: str, person_id: UUID | str) -> Row | None:
    """One person of the organization, as stored (shape it with `person_view`)."""
    found = _rows(conn, f"SELECT {_PERSON_COLUMNS} FROM people WHERE id = %s AND org_id = %s",
                  (person_id, org_id))
    return found[0] if found else None


def list_people(
    conn: Conn, org_id: str, *, role: str | None = None, status: str | None = None,
    include_deleted: bool = False, limit: int = 50, cursor: str | None = None,
) -> dict[str, Any]:
    """The organization's people, newest first, by role and account status."""
    where = _Where().add("org_id = %s", org_id).equal("role", role).equal("account_status", status)
    if not include_deleted:
        where.add("deleted_at IS NULL")
    return _newest_first(conn, f"SELECT {_PERSON_COLUMNS} FROM people", where, "created_position",
                         limit, cursor)


_ORGANIZATION_COLUMNS = "id, name, slug, plan, created_at, updated_at, version, position"


def get_organization(conn: Conn, org_id: UUID | str) -> Row | None:
    """One organization."""
    found = _rows(conn, f"SELECT {_ORGANIZATION_COLUMNS} FROM organizations WHERE id = %s",
                  (org_id,))
    return found[0] if found else None


def list_organizations(conn: Conn, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """Every organization, newest first (platform owners)."""
    return _newest_first(conn, f"SELECT {_ORGANIZATION_COLUMNS} FROM organizations",
                         _Where(), "position", limit, cursor)


def list_api_keys(
    conn: Conn, org_id: str, *, person_id: str | None = None, include_revoked: bool = False,
    limit: int = 50, cursor: str | None = None,
) -> dict[str, Any]:
    """The organization's keys (or one person's), newest first; never their secrets."""
    where = _Where().add("org_id = %s", org_id).equal("person_id", person_id)
    if not include_revoked:
        where.add("revoked_at IS NULL")
    return _newest_first(conn, "SELECT id, org_id, person_id, name, kind, created_by, created_at,"
                               " expires_at, revoked_at, created_position, version, position"
                               " FROM api_keys", where, "created_position", limit, cursor)


# ---- operations -----------------------------------------------------------------------------

PARKED_STATUSES = ("open", "retried", "skipped")


def list_parked(conn: Conn, org_id: str | None, status: str | None = "open", projection: str | None = None,
                limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """Parked events, newest first: of one organization (or of all with `org_id` None), by status
    and by the projection that parked them."""
    where = _Where().equal("envelope->>'org_id'", org_id).equal("status", status)
    if projection is not None:
        where.add("%s = ANY(string_to_array(projection, ','))", projection)
    return _newest_first(
        conn, "SELECT id, position, stream_id, event_type, envelope->>'org_id' AS org_id,"
              " string_to_array(projection, ',') AS projections, error, occurred_at AS parked_at,"
              " status, attempts, note, resolved_by, resolved_at, envelope FROM projection_errors",
        where, "id", limit, cursor)


# ---- schedules and community events --------------------------------------------------------


def list_schedules(conn: Conn, org_id: str | None) -> list[Row]:
    """The organization's schedules (every organization's for None), deleted ones left out."""
    return _rows(conn, "SELECT id, org_id, name, cron, job, params, status, next_at, claimed_tick, last_tick,"
                       " last_outcome, last_detail, fired, created_at, updated_at, version FROM schedules"
                       " WHERE status <> 'deleted' AND (%s::text IS NULL OR org_id = %s) ORDER BY name",
                 (org_id, org_id))


def community_events(conn: Conn, org_id: str, status: str | None, published: bool | None,
                     limit: int) -> list[Row]:
    """The organization's community events (things of type `event`), soonest first; by event status
    (upcoming, live, past, cancelled) and published flag (the Poktapok plan's `list` and
    `getPublished`)."""
    return _rows(conn, "SELECT id, name, properties, status, tags, created_at, updated_at, version"
                       " FROM things WHERE org_id = %s AND type = 'event' AND deleted_at IS NULL"
                       " AND (%s::text IS NULL OR properties->>'eventStatus' = %s)"
                       " AND (%s::boolean IS NULL OR (properties->>'published')::boolean = %s)"
                       " ORDER BY properties->>'startDate', id LIMIT %s",
                 (org_id, status, status, published, published, limit))


# ---- AI clones -----------------------------------------------------------------------------


def clone_access_token(conn: Conn, clone_id: str, person_id: str) -> str | None:
    """A token of the clone's creator (an owner of the clone) that the person holds a positive
    balance of; None if they hold none (the token gate)."""
    row = conn.execute(
        "SELECT t.id FROM connections owner JOIN connections owned ON owned.from_id = owner.from_id"
        " AND owned.type = 'owns' AND owned.removed_at IS NULL"
        " JOIN things t ON t.id = owned.to_id AND t.type = 'token' AND t.deleted_at IS NULL"
        " JOIN connections holds ON holds.to_id = t.id AND holds.type = 'holds_tokens'"
        " AND holds.removed_at IS NULL AND holds.from_id = %s"
        " AND coalesce((holds.metadata->>'balance')::numeric, 0) > 0"
        " WHERE owner.to_id = %s AND owner.type = 'owns' AND owner.removed_at IS NULL"
        " ORDER BY t.created_position LIMIT 1", (person_id, clone_id)).fetchone()
    return None if row is None else str(row[0])


def clone_knowledge(conn: Conn, clone_id: str) -> list[str]:
    """The things the clone is trained on (`trained_on` connections from it)."""
    rows = conn.execute("SELECT to_id FROM connections WHERE from_id = %s AND type = 'trained_on'"
                        " AND removed_at IS NULL", (clone_id,)).fetchall()
    return [str(row[0]) for row in rows]


def clone_history(conn: Conn, clone_id: str, person_id: str, turns: int) -> list[tuple[str, str]]:
    """The person's last `turns` exchanges with the clone, oldest first."""
    rows = conn.execute(
        "SELECT metadata->>'message', metadata->>'response' FROM activity WHERE target_id = %s"
        " AND type = 'clone_interaction' AND actor_id = %s ORDER BY position DESC LIMIT %s",
        (clone_id, person_id, turns)).fetchall()
    return [(str(m), str(r)) for m, r in reversed(rows)]


def clone_metrics(conn: Conn, clone_id: str) -> Row:
    """The seeds' `getCloneMetrics`: interactions, unique users, tokens used, and the rewards paid
    (completed reward sagas) and pending."""
    row = conn.execute(
        "SELECT count(*), count(DISTINCT actor_id), coalesce(sum((metadata->>'tokensUsed')::bigint), 0),"
        " array_remove(array_agg(metadata->>'rewardId'), NULL) FROM activity"
        " WHERE target_id = %s AND type = 'clone_interaction'", (clone_id,)).fetchone()
    assert row is not None
    rewards = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'completed'), coalesce(sum(amount) FILTER"
        " (WHERE status = 'completed'), 0), count(*) FILTER (WHERE status IN ('running', 'parked'))"
        " FROM sagas WHERE id = ANY(%s::uuid[])", (row[3],)).fetchone()
    assert rewards is not None
    return {"clone_id": clone_id, "interactions": row[0], "unique_users": row[1], "tokens_used": int(row[2]),
            "rewards_paid": rewards[0], "reward_tokens": int(rewards[1]), "rewards_pending": rewards[2]}


# ---- agent marketplace ---------------------------------------------------------------------

_EXECUTION_COLUMNS = (
    "id, org_id, agent_id, actor_id, status, input, output, error, model, source, tokens_used, cost_usd,"
    " duration_ms, per_execution_usd, per_1k_tokens_usd, queued_at, started_at, finished_at, version"
)


def _like(text: str) -> str:
    """`text` as a literal ILIKE pattern matching it anywhere."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def list_agents(conn: Conn, org_id: str, agent_types: tuple[str, ...], *, q: str | None = None,
                owner_id: UUID | None = None, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """Live agents of `agent_types`, newest first: a keyword in the name or description, an owner;
    each with its owner and execution figures (executions, completed, failed, average duration)."""
    where = _Where().add("t.org_id = %s", org_id).add("t.type = ANY(%s)", list(agent_types))
    where.add("t.deleted_at IS NULL")
    if q is not None:
        where.add("(t.name ILIKE %s OR t.properties->>'description' ILIKE %s)", _like(q), _like(q))
    if owner_id is not None:
        where.add("EXISTS (SELECT 1 FROM connections c WHERE c.to_id = t.id AND c.from_id = %s"
                  " AND c.type = 'owns' AND c.removed_at IS NULL)", owner_id)
    select = (
        f"SELECT {_T_THING_COLUMNS},"
        " (SELECT c.from_id FROM connections c WHERE c.to_id = t.id AND c.type = 'owns'"
        "  AND c.removed_at IS NULL ORDER BY c.position LIMIT 1) AS owner_id,"
        " s.executions, s.completed, s.failed, s.average_duration_ms FROM things t"
        " CROSS JOIN LATERAL (SELECT count(*) AS executions,"
        "  count(*) FILTER (WHERE x.status = 'completed') AS completed,"
        "  count(*) FILTER (WHERE x.status = 'failed') AS failed,"
        "  round(avg(x.duration_ms))::int AS average_duration_ms"
        "  FROM agent_executions x WHERE x.agent_id = t.id) s")
    return _newest_first(conn, select, where, "t.created_position", limit, cursor)


def agent_executions(conn: Conn, agent_id: UUID, status: str | None, actor_id: str | None,
                     limit: int) -> list[Row]:
    """The seeds' "agent executions by status": an agent's executions, newest first (only
    `actor_id`'s when given)."""
    where = _Where().add("agent_id = %s", agent_id).equal("status", status).equal("actor_id", actor_id)
    return _rows(conn, f"SELECT {_EXECUTION_COLUMNS} FROM agent_executions WHERE {where.sql}"
                       " ORDER BY queued_at DESC, id LIMIT %s", (*where.params, limit))


def get_agent_execution(conn: Conn, org_id: str | None, execution_id: UUID) -> Row | None:
    """One execution (of the organization; of any for None)."""
    found = _rows(conn, f"SELECT {_EXECUTION_COLUMNS} FROM agent_executions WHERE id = %s"
                        " AND (%s::text IS NULL OR org_id = %s)", (execution_id, org_id, org_id))
    return found[0] if found else None


def agent_usage(conn: Conn, org_id: str, since: datetime | None, until: datetime | None,
                agent_id: UUID | None) -> Row:
    """Usage for billing: the organization's executions finished in [since, until) (completed and
    failed; failed ones cost nothing), with tokens and cost, in total and by agent."""
    where = _Where().add("x.org_id = %s", org_id).add("x.status IN ('completed', 'failed')")
    where.equal("x.agent_id", agent_id)
    if since is not None:
        where.add("x.finished_at >= %s", since)
    if until is not None:
        where.add("x.finished_at < %s", until)
    agents = _rows(conn, (
        "SELECT x.agent_id, t.name, t.type, count(*) AS executions,"
        " count(*) FILTER (WHERE x.status = 'completed') AS completed,"
        " count(*) FILTER (WHERE x.status = 'failed') AS failed,"
        " coalesce(sum(x.tokens_used), 0) AS tokens_used, coalesce(sum(x.cost_usd), 0) AS cost_usd"
        f" FROM agent_executions x LEFT JOIN things t ON t.id = x.agent_id WHERE {where.sql}"
        " GROUP BY x.agent_id, t.name, t.type ORDER BY cost_usd DESC, x.agent_id"), where.params)
    totals = {key: sum(a[key] for a in agents)
              for key in ("executions", "completed", "failed", "tokens_used")}
    cost = sum((Decimal(str(a["cost_usd"])) for a in agents), Decimal(0))
    return {"org_id": org_id, **totals, "cost_usd": _plain(cost), "agents": agents}
