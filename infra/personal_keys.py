"""The personal-data keys of people, kept outside the event log (table `person_keys`).

Destroying a person's row makes their sealed personal fields unreadable wherever the log went.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row

INSERT_KEY = "INSERT INTO person_keys (person_id, key) VALUES (%s, %s)"
DESTROY_KEY = "DELETE FROM person_keys WHERE person_id = %s"
SCRUB_IDEMPOTENCY = (
    "UPDATE idempotency_keys SET request_hash = 'erased' WHERE response->>'id' = %s"
)
"""Idempotency records of a person's commands keep no fingerprint of their personal data."""


def load_keys(conn: psycopg.Connection[Any], person_ids: Iterable[UUID | str]) -> dict[str, bytes]:
    """The live keys of the given people (an erased person has none)."""
    ids = [str(p) for p in person_ids]
    if not ids:
        return {}
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT person_id::text, key FROM person_keys WHERE person_id = ANY(%s::uuid[])",
                    (ids,))
        return {str(person): bytes(key) for person, key in cur.fetchall()}
