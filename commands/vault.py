"""Sealing a person's personal fields with their key, inside a command's scope.

A person's key is created with their first personal data and stored by a side write in the same
transaction as the events it sealed; it is destroyed (erasure) the same way. Keys created or
destroyed earlier in the same group commit are seen through the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from commands.unit_of_work import Scope
from domain.personal_data import new_key, seal, unseal
from infra.personal_keys import DESTROY_KEY, INSERT_KEY, SCRUB_IDEMPOTENCY, load_keys

_MISSING = object()


def _current_key(scope: Scope, person_id: UUID) -> bytes | None:
    for pending in (scope.personal_keys, scope.batch.personal_keys):
        found = pending.get(person_id, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
    with scope.batch.log.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        return load_keys(conn, [person_id]).get(str(person_id))


def seal_personal(scope: Scope, person_id: UUID, fields: Mapping[str, Any]) -> str | None:
    """`fields` sealed with the person's key (created if they have none yet); None if empty."""
    if not fields:
        return None
    key = _current_key(scope, person_id)
    if key is None:
        key = new_key()
        scope.personal_keys[person_id] = key
        scope.side_write(INSERT_KEY, (person_id, key))
    return seal(key, str(person_id), fields)


def open_personal(scope: Scope, person_id: UUID, sealed: str | None) -> dict[str, Any]:
    """The fields `sealed` with the person's key ({} if none, or if the key was destroyed)."""
    if sealed is None:
        return {}
    return unseal(_current_key(scope, person_id), str(person_id), sealed) or {}


def destroy_personal_key(scope: Scope, person_id: UUID) -> None:
    """Destroy the person's key and the fingerprints of their requests, with the erasure event."""
    scope.personal_keys[person_id] = None
    scope.side_write(DESTROY_KEY, (person_id,))
    scope.side_write(SCRUB_IDEMPOTENCY, (str(person_id),))
