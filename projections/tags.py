"""Tags read model: each organization's tag catalogue with usage counts, and which thing carries
which tag.

`thing_tags` rows are guarded by the thing's stream version; a usage count moves only when a
row actually flips between inactive and active, so replays never double-count.
"""

from __future__ import annotations

from eventlog.envelope import Envelope
from projections.base import Projection, Statement

_ATTACH = """
WITH before AS (SELECT active FROM thing_tags WHERE thing_id = %(thing)s AND tag = %(tag)s),
flipped AS (
    INSERT INTO thing_tags (thing_id, tag, active, version, tagged_at)
    VALUES (%(thing)s, %(tag)s, true, %(version)s, %(at)s)
    ON CONFLICT (thing_id, tag) DO UPDATE SET active = true, version = excluded.version,
        tagged_at = excluded.tagged_at
    WHERE thing_tags.version < excluded.version
    RETURNING 1
)
INSERT INTO tags (org_id, tag, category, value, usage_count)
SELECT %(org)s, %(tag)s, %(category)s, %(value)s,
       CASE WHEN EXISTS (SELECT 1 FROM flipped) AND NOT coalesce((SELECT active FROM before), false)
            THEN 1 ELSE 0 END
ON CONFLICT (org_id, tag) DO UPDATE SET usage_count = tags.usage_count + excluded.usage_count
"""

_DETACH = """
WITH flipped AS (
    UPDATE thing_tags SET active = false, version = %(version)s
    WHERE thing_id = %(thing)s AND tag = %(tag)s AND version < %(version)s AND active
    RETURNING tag
)
UPDATE tags SET usage_count = usage_count - 1 WHERE org_id = %(org)s AND tag IN (SELECT tag FROM flipped)
"""


def _statement(sql: str, e: Envelope, tag: str) -> Statement:
    category, _, value = tag.partition(":")
    params = {"thing": e.stream_id, "tag": tag, "version": e.version, "at": e.occurred_at,
              "category": category, "value": value, "org": e.org_id}
    return sql, params


def project_tags(e: Envelope) -> list[Statement]:
    """Envelope → tag attach/detach statements."""
    sql = _DETACH if e.type == "thing.untagged" else _ATTACH
    return [_statement(sql, e, tag) for tag in e.data["tags"]]


TAGS = Projection(
    name="tags",
    tables=("tags", "thing_tags"),
    handles=frozenset({"thing.created", "thing.tagged", "thing.untagged"}),
    project=project_tags,
)
