"""Analytics over the activity read model (the seeds' week 8): revenue metrics, revenue and volume
over time, the ELEVATE funnel, top content, engagement by interaction type and revenue per
creator. Every query is one organization's, over a period; the dashboard and the CSV export read
them."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from domain.elevate import ELEVATE

Conn = psycopg.Connection[Any]
Row = dict[str, Any]
PAYMENT_STATUSES = ("initiated", "completed", "failed", "refunded")
PANELS_AT_ONCE = 3
"""How many of the dashboard's panels are read at once (each on a pooled read connection)."""


def _amount(alias: str = "") -> str:
    """An activity's numeric `metadata.amount` (NULL otherwise)."""
    return (f"CASE WHEN jsonb_typeof({alias}metadata->'amount') = 'number'"
            f" THEN ({alias}metadata->>'amount')::numeric END")


def _in_period(alias: str = "") -> str:
    """The organization's activity within the period (either end may be open)."""
    return (f"{alias}org_id = %(org)s AND (%(since)s::timestamptz IS NULL OR {alias}occurred_at >= %(since)s)"
            f" AND (%(until)s::timestamptz IS NULL OR {alias}occurred_at < %(until)s)")


_AMOUNT, _PERIOD = _amount(), _in_period()


def _rows(conn: Conn, sql: str, params: dict[str, Any]) -> list[Row]:
    """Rows as plain JSON values. The aggregates run without PostgreSQL's JIT compilation, which
    costs more than it saves on queries of this size (hundreds of milliseconds each)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET LOCAL jit = off")
        cur.execute(sql, params)
        return [{k: _plain(v) for k, v in row.items()} for row in cur.fetchall()]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "is_finite"):  # Decimal
        return float(value)
    return value


def _period(org_id: str, since: datetime | None, until: datetime | None, **more: Any) -> dict[str, Any]:
    return {"org": org_id, "since": since, "until": until, **more}


def revenue_metrics(conn: Conn, org_id: str, since: datetime | None, until: datetime | None) -> Row:
    """The seeds' `getRevenueMetrics`: completed total, platform fees, count, average order value,
    and the payments by status (initiated, completed, failed, refunded)."""
    params = _period(org_id, since, until)
    by_status = {row["status"]: row for row in _rows(conn, (
        f"SELECT metadata->>'status' AS status, count(*) AS count, coalesce(sum({_AMOUNT}), 0) AS amount"
        f" FROM activity WHERE type = 'payment_processed' AND {_PERIOD} GROUP BY 1"), params)}
    fees = _rows(conn, (f"SELECT coalesce(sum({_AMOUNT}), 0) AS fees FROM activity"
                        " WHERE type = 'revenue_generated' AND metadata->>'role' = 'platform'"
                        f" AND {_PERIOD}"),
                 params)[0]["fees"]
    completed = by_status.get("completed", {"count": 0, "amount": 0.0})
    count, total = int(completed["count"]), float(completed["amount"])
    return {"total": total, "platform_fees": float(fees), "count": count,
            "average_order_value": round(total / count, 2) if count else 0.0,
            "by_status": {status: {"count": int(by_status.get(status, {}).get("count", 0)),
                                   "amount": float(by_status.get(status, {}).get("amount", 0))}
                          for status in PAYMENT_STATUSES}}


def revenue_over_time(conn: Conn, org_id: str, since: datetime | None, until: datetime | None) -> list[Row]:
    """Completed revenue and the number of transactions per day."""
    return _rows(conn, (
        f"SELECT date_trunc('day', occurred_at) AS day, coalesce(sum({_AMOUNT}), 0) AS revenue,"
        " count(*) AS transactions FROM activity WHERE type = 'payment_processed'"
        f" AND metadata->>'status' = 'completed' AND {_PERIOD} GROUP BY 1 ORDER BY 1"),
        _period(org_id, since, until))


def elevate_funnel(conn: Conn, org_id: str, since: datetime | None, until: datetime | None) -> Row:
    """The seeds' `getElevateAnalytics`: people who finished each ELEVATE step (from
    `progress_updated`), the journeys and the conversion from hook to share."""
    counts = {row["step"]: int(row["people"]) for row in _rows(conn, (
        "SELECT metadata->>'stepId' AS step, count(DISTINCT actor_id) AS people FROM activity"
        f" WHERE type = 'progress_updated' AND metadata->>'journeyType' = 'elevate' AND {_PERIOD}"
        " GROUP BY 1"), _period(org_id, since, until))}
    steps = [{"step": s.name, "people": counts.get(s.name, 0)} for s in ELEVATE.steps if s.milestone]
    hook = counts.get("hook", 0)
    return {"steps": steps, "journeys": hook,
            "conversion_rate": round(counts.get("share", 0) / hook, 4) if hook else 0.0}


def top_content(conn: Conn, org_id: str, since: datetime | None, until: datetime | None,
                limit: int = 10) -> list[Row]:
    """The most viewed things, with their interactions."""
    return _rows(conn, (
        "SELECT top.id::text AS id, t.name, t.type, top.views, top.interactions FROM ("
        " SELECT target_id AS id, count(*) FILTER (WHERE type = 'content_viewed') AS views,"
        " count(*) FILTER (WHERE type = 'content_interacted') AS interactions FROM activity"
        f" WHERE type IN ('content_viewed', 'content_interacted') AND target_id IS NOT NULL AND {_PERIOD}"
        " GROUP BY 1 ORDER BY views DESC, interactions DESC, id LIMIT %(limit)s) top"
        " LEFT JOIN things t ON t.id = top.id ORDER BY top.views DESC, top.interactions DESC, top.id"),
        _period(org_id, since, until, limit=limit))


def engagement(conn: Conn, org_id: str, since: datetime | None, until: datetime | None) -> list[Row]:
    """Engagement by interaction type (content_interacted's `interactionType`, and the other
    engagement events by their own type)."""
    return _rows(conn, (
        "SELECT CASE WHEN type = 'content_interacted' THEN coalesce(metadata->>'interactionType', 'other')"
        " ELSE type END AS interaction, count(*) AS count FROM activity"
        " WHERE type IN ('content_interacted', 'content_viewed', 'user_engaged', 'comment_posted',"
        f" 'clone_interaction', 'content_downloaded') AND {_PERIOD} GROUP BY 1 ORDER BY 2 DESC, 1"),
        _period(org_id, since, until))


def revenue_per_creator(conn: Conn, org_id: str, since: datetime | None, until: datetime | None) -> list[Row]:
    """Revenue shares paid to each owner (creator) of the tokens sold."""
    return _rows(conn, (
        "SELECT a.metadata->>'recipient' AS creator_id, t.name,"
        f" coalesce(sum({_amount('a.')}), 0) AS revenue,"
        " count(*) AS payouts FROM activity a LEFT JOIN things t ON t.id::text = a.metadata->>'recipient'"
        f" WHERE a.type = 'revenue_generated' AND a.metadata->>'role' = 'owner' AND {_in_period('a.')}"
        " GROUP BY 1, 2 ORDER BY revenue DESC, 1"), _period(org_id, since, until))


Report = Callable[[Conn, str, "datetime | None", "datetime | None"], list[Row]]
REPORTS: dict[str, Report] = {
    "revenue_over_time": revenue_over_time,
    "top_content": top_content,
    "engagement": engagement,
    "revenue_per_creator": revenue_per_creator,
    "elevate_funnel": lambda conn, org, since, until: elevate_funnel(conn, org, since, until)["steps"],
}
"""The tabular reports, by name (the CSV export's `report`)."""


_PANELS: dict[str, Callable[[Conn, str, datetime | None, datetime | None], Any]] = {
    "revenue": revenue_metrics, "revenue_over_time": revenue_over_time, "elevate_funnel": elevate_funnel,
    "top_content": top_content, "engagement": engagement, "revenue_per_creator": revenue_per_creator}


def dashboard(pool: ConnectionPool, org_id: str, since: datetime | None, until: datetime | None) -> Row:
    """Everything the dashboard shows, its panels read at once on connections of their own."""

    def panel(name: str) -> Any:
        with pool.connection() as conn:
            return _PANELS[name](conn, org_id, since, until)

    with ThreadPoolExecutor(PANELS_AT_ONCE, thread_name_prefix="one-dashboard") as panels:
        return dict(zip(_PANELS, panels.map(panel, _PANELS), strict=True))
