"""The PostgreSQL advisory locks ONE takes across processes (one key each), and how to hold one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from infra.database import ConnectionInfo

MIGRATIONS = 0x0_0E_00_01
"""Held while the schema is migrated."""
LOG_TABLES = 0x0_0E_00_02
"""Held while the log's tables and append-only triggers are created."""
SAGA_LEADER = 0x0_0E_00_03
"""Held by the leading saga runner for as long as it leads."""
KNOWLEDGE_INDEXES = 0x0_0E_00_04
"""Held (per transaction) while knowledge indexes are created or swapped."""
BOOTSTRAP = 0x0_0E_00_05
"""Held while a process creates the default organization, the system person and the owner key."""
REBUILD = 0x0_0E_00_06
"""Held for the whole of a blue/green rebuild: one at a time."""


@contextmanager
def advisory_lock(db: ConnectionInfo, key: int) -> Iterator[None]:
    """Hold a session advisory lock on a connection of its own: one process at a time."""
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
