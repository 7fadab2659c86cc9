"""Bearer keys resolved to principals: read from the event log on a miss, cached until the log
says otherwise.

The log is the authority (a key issued a moment ago works at once, in any process and either
mode). Each API process caches the principal of every key that authenticated, follows the log for
the events that change what a key may do — a key revoked or re-hashed; a person's role or account
status changed, a person deleted or erased — and drops the affected entries, normally within
milliseconds of the append. If
the follower has not caught up for half a second (the database is slow, the connection broke),
the cache is bypassed, so a revocation takes effect everywhere within a second in any case.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from domain.api_keys import ApiKey, key_id_of, token_matches
from domain.errors import AccountSuspended
from domain.organizations import Organization, Person
from domain.permissions import BLOCKED_STATUSES
from eventlog.store import EVENTS_TABLE, EventLog
from infra.database import ConnectionInfo

log = logging.getLogger(__name__)

STALE_AFTER_S = 0.5
"""Beyond this the follower is not trusted: entries are read from the log again."""
_MAX_ENTRIES = 100_000
_KEY_TOPICS = tuple(get_topic(c) for c in (ApiKey.Revoked, ApiKey.Rehashed))
_PERSON_TOPICS = tuple(get_topic(c) for c in (Person.RoleChanged, Person.StatusChanged,
                                               Person.Deleted, Person.Erased))


class Unauthenticated(Exception):
    """No key, or a key that is unknown, malformed, revoked or expired (401)."""


@dataclass(frozen=True)
class Principal:
    """Who a key acts as."""

    key_id: str
    key_kind: str
    person_id: str
    org_id: str
    role: str
    expires_at: datetime | None


class KeyRing:
    """Authenticates bearer keys for one API process."""

    def __init__(self, event_log: EventLog, db: ConnectionInfo,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.event_log = event_log
        self.db = db
        self.clock = clock
        self._granted: dict[UUID, tuple[str, Principal]] = {}
        """key id → (its hash, its principal), for keys that authenticated."""
        self._keys_of: dict[str, set[UUID]] = {}
        """person id → their granted key ids (to forget them when the person changes)."""
        self._orgs: set[str] = set()
        self._lock = threading.Lock()
        self._epoch = 0
        self._fresh_at = -math.inf
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="one-keyring", daemon=True)

    # ---- authentication ------------------------------------------------------------------

    def cached(self, token: str) -> Principal | None:
        """The principal of a key that authenticated before and has not changed since (checked
        against its hash and expiry), or None: then call `authenticate`."""
        if time.monotonic() - self._fresh_at > STALE_AFTER_S:
            return None
        entry = self._granted.get(key_id_of(token))
        if entry is None or not token_matches(token, entry[0]):
            return None
        principal = entry[1]
        if principal.expires_at is not None and principal.expires_at <= self.clock():
            return None
        return principal

    def authenticate(self, token: str) -> Principal:
        """The principal of a presented key, read from the log; Unauthenticated or
        AccountSuspended otherwise."""
        key_id = key_id_of(token)
        epoch = self._epoch
        key = self._aggregate(key_id)
        if not isinstance(key, ApiKey) or not token_matches(token, key.secret_hash):
            raise Unauthenticated("the key is not valid")
        if key.revoked:
            raise Unauthenticated("the key was revoked")
        if key.expired(self.clock()):
            raise Unauthenticated("the key has expired")
        holder = self._aggregate(UUID(key.person_id))
        if not isinstance(holder, Person) or not holder.live:
            raise Unauthenticated("the key's person no longer exists")
        if holder.account_status in BLOCKED_STATUSES:
            raise AccountSuspended(f"the account is {holder.account_status}", "Authorization")
        expires = None if key.expires_at is None else datetime.fromisoformat(key.expires_at)
        principal = Principal(str(key_id), key.kind, key.person_id, holder.org_id, holder.role, expires)
        with self._lock:
            if self._epoch == epoch:  # nothing was invalidated while we read: safe to keep
                if len(self._granted) >= _MAX_ENTRIES:
                    self._granted.clear()
                    self._keys_of.clear()
                self._granted[key_id] = (key.secret_hash, principal)
                self._keys_of.setdefault(key.person_id, set()).add(key_id)
        return principal

    def organization_exists(self, org_id: str) -> bool:
        """Whether an organization has this id (organizations are never deleted)."""
        if org_id in self._orgs:
            return True
        found = isinstance(self._aggregate(UUID(org_id)), Organization)
        if found:
            self._orgs.add(org_id)
        return found

    def forget(self, *stream_ids: UUID) -> None:
        """Drop what is cached about these keys or people (this process just changed them)."""
        with self._lock:
            self._epoch += 1
            for stream_id in stream_ids:
                self._granted.pop(stream_id, None)
                for key_id in self._keys_of.pop(str(stream_id), ()):
                    self._granted.pop(key_id, None)

    def _aggregate(self, stream_id: UUID) -> object:
        try:
            return self.event_log.repository.get(stream_id)
        except AggregateNotFoundError:
            return None

    # ---- following the log ---------------------------------------------------------------

    def start(self) -> KeyRing:
        """Follow the log from its head."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:  # the cache is bypassed while stale; reconnect after a pause
                log.exception("key ring lost the log; retrying")
                self._stop.wait(0.2)

    def _follow(self) -> None:
        recorder = self.event_log.recorder
        with psycopg.connect(self.db.conninfo, autocommit=True) as listener:
            listener.execute(f"LISTEN {EVENTS_TABLE}")
            position = recorder.max_notification_id() or 0
            with self._lock:  # what was cached before we listened may be stale
                self._epoch += 1
                self._granted.clear()
                self._keys_of.clear()
            while not self._stop.is_set():
                position = self._poll(position)
                for _ in listener.notifies(timeout=0.2, stop_after=1):
                    pass
                self._stop.wait(0.02)  # coalesce bursts of appends into one poll

    def _poll(self, position: int) -> int:
        """Forget what changed after `position`; return the head that was read up to."""
        recorder = self.event_log.recorder
        head = recorder.max_notification_id() or 0
        while position < head:
            changed = recorder.select_notifications(start=position + 1, stop=head, limit=1000,
                                                    topics=_KEY_TOPICS + _PERSON_TOPICS)
            if not changed:
                break
            self.forget(*(UUID(str(n.originator_id)) for n in changed))
            position = changed[-1].id
        self._fresh_at = time.monotonic()
        return max(position, head)
