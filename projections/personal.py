"""Personal data made readable for the people read model, and only there.

Person events carry their personal fields sealed (in the log, on Kafka, in replays). Just before
the projections apply a batch, the sealed fields are opened with the people's keys; a person
whose key was destroyed (erased) reads as `None`, so a rebuild after erasure has nothing to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import psycopg

from domain.personal_data import unseal
from eventlog.envelope import Envelope
from infra.personal_keys import load_keys

SEALED_TYPES = frozenset({"person.created", "person.updated"})


def reveal_personal(conn: psycopg.Connection[Any], envelopes: Sequence[Envelope]) -> Sequence[Envelope]:
    """The envelopes with each person event's `personal` opened (a dict, or None if erased)."""
    sealed = {e.stream_id for e in envelopes if e.type in SEALED_TYPES and e.data.get("personal")}
    if not any(e.type in SEALED_TYPES for e in envelopes):
        return envelopes
    keys = load_keys(conn, sealed) if sealed else {}
    return [_revealed(e, keys) if e.type in SEALED_TYPES else e for e in envelopes]


def _revealed(e: Envelope, keys: dict[str, bytes]) -> Envelope:
    fields: dict[str, Any] | None = dict(e.data.get("unsealed") or {})
    if e.data.get("personal"):
        opened = unseal(keys.get(e.stream_id), e.stream_id, e.data["personal"])
        fields = None if opened is None else {**(fields or {}), **opened}
    return replace(e, data={**e.data, "personal": fields})
