"""API keys: bearer secrets that act as one person in one organization.

A key is `one_<key id as 32 hex>_<43 url-safe base64 characters of 32 random bytes>`. Only its
SHA-256 is kept (in the `api_key.issued` event); the id part is public and names the key's
stream, so a presented key is found with one indexed read and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import NAMESPACE_URL, UUID, uuid5

from domain import ontology
from domain.base import OneAggregate
from domain.errors import InvalidState, ValidationFailed

_TOKEN = re.compile(r"^one_([0-9a-f]{32})_[A-Za-z0-9_-]{43}$")
KEY_KINDS: Final[frozenset[str]] = frozenset({"api", "session", "bootstrap"})
BOOTSTRAP_KEY_ID: Final[UUID] = uuid5(NAMESPACE_URL, "one:api-key:bootstrap")
"""The stream of the `ONE_BOOTSTRAP_KEY` key (any value of the operator's choosing)."""
OWNER_KEY_ID: Final[UUID] = uuid5(NAMESPACE_URL, "one:api-key:owner")
"""The stream of the platform-owner key `one serve` writes to the data dir on first start."""
MIN_BOOTSTRAP_LENGTH: Final = 32


def new_token(key_id: UUID) -> str:
    """A new secret for the key `key_id` (shown once, never stored)."""
    return f"one_{key_id.hex}_{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> UUID:
    """The key a presented token claims to be: its embedded id, or the bootstrap key for any
    other value (the operator chose its format)."""
    match = _TOKEN.match(token)
    return UUID(match.group(1)) if match else BOOTSTRAP_KEY_ID


def hash_token(token: str) -> str:
    """What is stored of a key: the hex SHA-256 of the whole token (tokens are high-entropy)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, secret_hash: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(hash_token(token), secret_hash)


class ApiKey(OneAggregate):
    """One key of one person; revocation is final."""

    if TYPE_CHECKING:
        person_id: str
        name: str
        kind: str
        secret_hash: str
        expires_at: str | None
        revoked: bool

    class Issued(OneAggregate.Created):
        """A key was issued (its hash, never its secret)."""

        TYPE = "api_key.issued"
        person_id: str
        name: str
        kind: str
        secret_hash: str
        expires_at: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.person_id = self.person_id
            aggregate.name = self.name
            aggregate.kind = self.kind
            aggregate.secret_hash = self.secret_hash
            aggregate.expires_at = self.expires_at
            aggregate.revoked = False

    class Revoked(OneAggregate.Event):
        """The key stops working everywhere."""

        TYPE = "api_key.revoked"

        def apply(self, aggregate: Any) -> None:
            aggregate.revoked = True

    class Rehashed(OneAggregate.Event):
        """The bootstrap key's value changed (`ONE_BOOTSTRAP_KEY` was rotated)."""

        TYPE = "api_key.rehashed"
        secret_hash: str

        def apply(self, aggregate: Any) -> None:
            aggregate.secret_hash = self.secret_hash

    @classmethod
    def issue(
        cls, *, id: UUID, org_id: str, actor_id: str, person_id: str, name: str, kind: str,
        secret_hash: str, expires_at: datetime | None, now: datetime,
    ) -> ApiKey:
        """Issue a key; an expiry must lie in the future."""
        if kind not in KEY_KINDS:
            raise ValidationFailed(f"unknown key kind {kind!r}", "kind")
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise ValidationFailed("expires_at needs a time zone", "expires_at")
            if expires_at <= now:
                raise ValidationFailed("expires_at must be in the future", "expires_at")
        return cls._create(
            cls.Issued, id=id, org_id=org_id, actor_id=actor_id, person_id=person_id,
            name=ontology.validate_name(name, "name", 100), kind=kind, secret_hash=secret_hash,
            expires_at=None if expires_at is None else expires_at.isoformat(),
        )

    def expired(self, now: datetime) -> bool:
        """Whether the key's expiry has passed."""
        return self.expires_at is not None and datetime.fromisoformat(self.expires_at) <= now

    def revoke(self, actor_id: str) -> None:
        """Revoke the key (once)."""
        if self.revoked:
            raise InvalidState(f"key {self.id} is already revoked", "id")
        self.trigger_event(self.Revoked, actor_id=actor_id)

    def rehash(self, actor_id: str, secret_hash: str) -> None:
        """Replace the stored hash (bootstrap key rotation)."""
        if secret_hash != self.secret_hash:
            self.trigger_event(self.Rehashed, actor_id=actor_id, secret_hash=secret_hash)
