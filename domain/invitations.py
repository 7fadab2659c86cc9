"""Invitations and referrals (the seeds' week 6: magic links, referral tracking, commissions).

A magic link carries a random token; only its SHA-256 is kept, and the invitation's stream id
is derived from that hash, so a presented token finds its invitation with one read and the
log never holds a usable secret. The invitee's email is sealed with the key of the person the
invitation will register (whose id is derived from the invitation): erasing that person makes
it unreadable too.

A `Referral` is keyed by the referred person (lifetime attribution: one referrer, ever); its
conversion carries the commission, so the commission is paid at most once by construction.
A `ReferralAccount` (keyed by the referrer) counts conversions and grants the tier bonuses.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import OneAggregate
from domain.errors import Gone, InvalidState

INVITATION_TTL: Final = timedelta(hours=1)
COMMISSION_RATE: Final = 0.10
"""The referrer's share of the referred person's first completed transaction."""
TIER_BONUSES_CENTS: Final[dict[int, int]] = {5: 50_00, 25: 500_00}
"""Converted referrals → the one-time bonus the referrer earns on reaching that many."""


class InvitationUsed(InvalidState):
    """The magic link was already accepted (single use)."""

    code = "invitation_used"


class InvitationExpired(Gone):
    """The magic link's hour has passed."""

    code = "invitation_expired"


def hash_invitation_token(token: str) -> str:
    """What is kept of a magic-link token: its hex SHA-256 (tokens are high-entropy)."""
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_id(token_hash: str) -> UUID:
    """The invitation stream of a token hash."""
    return uuid5(NAMESPACE_URL, f"one:invitation:{token_hash}")


def invitee_id(invitation: UUID) -> UUID:
    """The person an invitation registers (derived, so an acceptance cannot create two)."""
    return uuid5(NAMESPACE_URL, f"one:invitee:{invitation}")


def referral_id(referred_id: UUID) -> UUID:
    """The referral (and commission) stream of a referred person."""
    return uuid5(NAMESPACE_URL, f"one:referral:{referred_id}")


def referral_account_id(referrer_id: UUID) -> UUID:
    """The referral account (conversions and tier bonuses) of a referrer."""
    return uuid5(NAMESPACE_URL, f"one:referral-account:{referrer_id}")


def commission_cents(value_cents: int) -> int:
    """The commission on a first transaction of `value_cents`."""
    return round(value_cents * COMMISSION_RATE)


class Invitation(OneAggregate):
    """A magic-link invitation: issued once, accepted at most once within its hour."""

    if TYPE_CHECKING:
        token_hash: str
        email: str | None
        role: str
        referrer_id: str
        expires_at: str
        accepted_by: str | None

    class Issued(OneAggregate.Created):
        """An invitation was made (the token's hash and the sealed email, never the token)."""

        TYPE = "invitation.issued"
        token_hash: str
        email: str | None
        role: str
        referrer_id: str
        expires_at: str

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.token_hash = self.token_hash
            aggregate.email = self.email
            aggregate.role = self.role
            aggregate.referrer_id = self.referrer_id
            aggregate.expires_at = self.expires_at
            aggregate.accepted_by = None

    class Accepted(OneAggregate.Event):
        """The invitee registered through the link."""

        TYPE = "invitation.accepted"
        person_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.accepted_by = self.person_id

    @classmethod
    def issue(cls, *, org_id: str, actor_id: str, token_hash: str, email: str | None, role: str,
              referrer_id: str, now: datetime) -> Invitation:
        """Issue the invitation of `token_hash`, valid for an hour from `now`."""
        return cls._create(cls.Issued, id=invitation_id(token_hash), org_id=org_id,
                           actor_id=actor_id, token_hash=token_hash, email=email, role=role,
                           referrer_id=referrer_id, expires_at=(now + INVITATION_TTL).isoformat())

    def accept(self, now: datetime) -> UUID:
        """Accept once, before expiry; the person it registers."""
        if self.accepted_by is not None:
            raise InvitationUsed("this invitation was already used", "token")
        if datetime.fromisoformat(self.expires_at) <= now:
            raise InvitationExpired("this invitation has expired", "token")
        person = invitee_id(self.id)
        self.trigger_event(self.Accepted, actor_id=str(person), person_id=str(person))
        return person


class Referral(OneAggregate):
    """Who referred a person (for their lifetime) and whether they converted."""

    if TYPE_CHECKING:
        referrer_id: str
        invitation_id: str
        converted: bool

    class Created(OneAggregate.Created):
        """A person joined through a referrer's invitation."""

        TYPE = "referral.created"
        referrer_id: str
        invitation_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.referrer_id = self.referrer_id
            aggregate.invitation_id = self.invitation_id
            aggregate.converted = False

    class Converted(OneAggregate.Event):
        """The referred person's first completed transaction: the referrer's commission."""

        TYPE = "referral.converted"
        purchase_id: str
        value_cents: int
        commission_cents: int

        def apply(self, aggregate: Any) -> None:
            aggregate.converted = True

    @classmethod
    def create(cls, *, org_id: str, actor_id: str, referred_id: UUID, referrer_id: str,
               invitation: UUID) -> Referral:
        """Attribute `referred_id` to `referrer_id`."""
        return cls._create(cls.Created, id=referral_id(referred_id), org_id=org_id,
                           actor_id=actor_id, referrer_id=referrer_id, invitation_id=str(invitation))

    def convert(self, actor_id: str, purchase_id: str, value_cents: int) -> int:
        """Record the first transaction (once; later ones pay nothing): the commission in cents."""
        if self.converted:
            raise InvalidState("the referral has already converted", "id")
        commission = commission_cents(value_cents)
        self.trigger_event(self.Converted, actor_id=actor_id, purchase_id=purchase_id,
                           value_cents=value_cents, commission_cents=commission)
        return commission


class ReferralAccount(OneAggregate):
    """A referrer's conversions and the tier bonuses they earned (each tier once)."""

    if TYPE_CHECKING:
        referrer_id: str
        conversions: int
        tiers: list[int]

    class Opened(OneAggregate.Created):
        """The referrer's first conversion opened their account."""

        TYPE = "referral_account.opened"
        referrer_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            aggregate.referrer_id = self.referrer_id
            aggregate.conversions = 0
            aggregate.tiers = []

    class ConversionCounted(OneAggregate.Event):
        """One more referred person converted."""

        TYPE = "referral_account.conversion_counted"
        referred_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.conversions += 1

    class BonusEarned(OneAggregate.Event):
        """The referrer reached a tier."""

        TYPE = "referral_account.bonus_earned"
        tier: int
        bonus_cents: int

        def apply(self, aggregate: Any) -> None:
            aggregate.tiers = [*aggregate.tiers, self.tier]

    @classmethod
    def open(cls, *, org_id: str, actor_id: str, referrer_id: UUID) -> ReferralAccount:
        """The account of `referrer_id`."""
        return cls._create(cls.Opened, id=referral_account_id(referrer_id), org_id=org_id,
                           actor_id=actor_id, referrer_id=str(referrer_id))

    def count_conversion(self, actor_id: str, referred_id: str) -> int | None:
        """Count a conversion; the tier reached by it (its bonus is earned now), if any."""
        self.trigger_event(self.ConversionCounted, actor_id=actor_id, referred_id=referred_id)
        tier = self.conversions
        if tier not in TIER_BONUSES_CENTS or tier in self.tiers:
            return None
        self.trigger_event(self.BonusEarned, actor_id=actor_id, tier=tier,
                           bonus_cents=TIER_BONUSES_CENTS[tier])
        return tier
