"""Set-based tag changes: a run of `TagChange`s becomes one statement per chunk.

The run is folded per (thing, tag) first (the highest version decides whether the tag ends
active; the highest attaching version decides `tagged_at`), because one statement may touch a row
only once. The statement then does what applying the changes one at a time does:
- a row moves only if its stored version is older than the change's (re-delivery is harmless);
- an attach creates the row if the thing never carried the tag;
- each organization's usage count moves by how many rows flipped between inactive and active,
  summed per tag and written in (org, tag) order, so concurrent writers lock the shared counters
  in the same order and cannot deadlock;
- every attached tag has its catalogue row, even when the attach was already applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg

from projections.base import TagChange
from projections.new_rows import MAX_ROWS

_APPLY = """
WITH batch AS (
    SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::boolean[],
                         %s::int[], %s::int[], %s::timestamptz[])
        AS b(thing_id, tag, org_id, category, value, active, version, attach_version, tagged_at)
),
before AS (
    SELECT t.thing_id, t.tag, t.active FROM thing_tags t JOIN batch b USING (thing_id, tag)
),
updated AS (
    UPDATE thing_tags t SET active = b.active, version = b.version,
        tagged_at = CASE WHEN t.version < b.attach_version THEN b.tagged_at ELSE t.tagged_at END
    FROM batch b
    WHERE t.thing_id = b.thing_id AND t.tag = b.tag AND t.version < b.version
    RETURNING t.thing_id, t.tag, t.active
),
inserted AS (
    INSERT INTO thing_tags (thing_id, tag, active, version, tagged_at)
    SELECT b.thing_id, b.tag, b.active, b.version, b.tagged_at FROM batch b
    WHERE b.attach_version IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM before o WHERE o.thing_id = b.thing_id AND o.tag = b.tag)
    ORDER BY b.thing_id, b.tag
    ON CONFLICT (thing_id, tag) DO NOTHING
    RETURNING thing_id, tag, active
),
changed AS (SELECT * FROM updated UNION ALL SELECT * FROM inserted),
counts AS (
    SELECT b.org_id, b.tag, min(b.category) AS category, min(b.value) AS value,
           coalesce(sum(c.active::int - coalesce(o.active::int, 0)), 0) AS delta,
           bool_or(b.attach_version IS NOT NULL) AS attached
    FROM batch b
    LEFT JOIN changed c USING (thing_id, tag)
    LEFT JOIN before o USING (thing_id, tag)
    GROUP BY b.org_id, b.tag
)
INSERT INTO tags (org_id, tag, category, value, usage_count)
SELECT org_id, tag, category, value, delta FROM counts WHERE attached OR delta <> 0
ORDER BY org_id, tag
ON CONFLICT (org_id, tag) DO UPDATE SET usage_count = tags.usage_count + excluded.usage_count
"""


@dataclass
class _Folded:
    """What a run of changes leaves for one (thing, tag)."""

    last: TagChange
    last_attach: TagChange | None


def apply_tag_changes(cur: psycopg.Cursor[object], changes: Sequence[TagChange]) -> None:
    """Apply a run of tag changes, as one statement per chunk of `MAX_ROWS` (thing, tag) pairs."""
    folded = fold(changes)
    keys = list(folded)
    for start in range(0, len(keys), MAX_ROWS):
        cur.execute(_APPLY, _columns(folded[key] for key in keys[start:start + MAX_ROWS]))


def fold(changes: Sequence[TagChange]) -> dict[tuple[str, str], _Folded]:
    """Per (thing, tag): the change with the highest version, and the attach with the highest."""
    folded: dict[tuple[str, str], _Folded] = {}
    for change in changes:
        key = (change.thing_id, change.tag)
        seen = folded.get(key)
        if seen is None:
            seen = folded[key] = _Folded(change, None)
        elif change.version > seen.last.version:
            seen.last = change
        if change.attached and (seen.last_attach is None or change.version > seen.last_attach.version):
            seen.last_attach = change
    return folded


def _columns(rows: Iterator[_Folded]) -> tuple[list[object], ...]:
    """The folded rows as the statement's nine column arrays."""
    table = []
    for row in rows:
        last, attach = row.last, row.last_attach
        category, _, value = last.tag.partition(":")
        table.append((last.thing_id, last.tag, last.org_id, category, value, last.attached, last.version,
                      attach.version if attach else None, attach.at if attach else None))
    return tuple(list(column) for column in zip(*table, strict=True))
