"""Where the Stripe test-mode sandbox keeps its state (payments, refunds, idempotency records).

The embedded default keeps it in its database (`payment_sandbox`, one row), read and written under
a row lock around every request, so any number of processes on one database share one sandbox:
a payment retried by another process with the same idempotency key is charged once. Tests that
need no database keep it in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb


def empty_state() -> dict[str, Any]:
    """A sandbox with no history."""
    return {"payment_intents": {}, "charges": {}, "refunds": {}, "idempotency": {}, "events": []}


class SandboxStore(Protocol):
    """The sandbox's whole state, held exclusively for one request."""

    def hold(self) -> Any:
        """A context manager yielding the state; what the block changes is kept."""
        ...


class MemoryStore:
    """State in this process only (the sandbox's own lock serialises its threads)."""

    def __init__(self) -> None:
        self._state = empty_state()

    @contextmanager
    def hold(self) -> Iterator[dict[str, Any]]:
        """The state itself."""
        yield self._state


class DatabaseStore:
    """State in the `payment_sandbox` table, locked for the duration of a request."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    @contextmanager
    def hold(self) -> Iterator[dict[str, Any]]:
        """Read the state under `FOR UPDATE`, yield it, write it back in the same transaction."""
        with psycopg.connect(self.conninfo) as conn, conn.transaction():
            conn.execute("INSERT INTO payment_sandbox (id, state) VALUES (1, %s) ON CONFLICT DO NOTHING",
                         (Jsonb(empty_state()),))
            row = conn.execute("SELECT state FROM payment_sandbox WHERE id = 1 FOR UPDATE").fetchone()
            state: dict[str, Any] = row[0] if row else empty_state()
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                conn.execute("UPDATE payment_sandbox SET state = %s WHERE id = 1", (Jsonb(state),))
