"""Invitations and referrals in the domain: single use within the hour, commissions once, tier
bonuses at 5 and 25 converted referrals (each once)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidState
from domain.invitations import (
    TIER_BONUSES_CENTS,
    Invitation,
    InvitationExpired,
    InvitationUsed,
    Referral,
    ReferralAccount,
    hash_invitation_token,
    invitation_id,
    invitee_id,
    referral_id,
)

ORG = str(uuid.uuid4())
ACTOR = str(uuid.uuid4())
NOW = datetime(2026, 12, 2, tzinfo=UTC)


def _invitation() -> Invitation:
    return Invitation.issue(org_id=ORG, actor_id=ACTOR, token_hash=hash_invitation_token("secret"),
                            email=None, role="customer", referrer_id=ACTOR, now=NOW)


def test_an_invitation_is_found_by_its_token_hash_and_accepted_once_within_the_hour() -> None:
    invitation = _invitation()
    assert invitation.id == invitation_id(hash_invitation_token("secret"))
    assert "secret" not in repr(invitation.collect_events())
    person = invitation.accept(NOW + timedelta(minutes=59))
    assert person == invitee_id(invitation.id)
    with pytest.raises(InvitationUsed):
        invitation.accept(NOW + timedelta(minutes=59))
    with pytest.raises(InvitationExpired):
        _invitation().accept(NOW + timedelta(hours=1))


def test_a_referral_converts_once_for_ten_percent() -> None:
    referred = uuid.uuid4()
    referral = Referral.create(org_id=ORG, actor_id=ACTOR, referred_id=referred, referrer_id=ACTOR,
                               invitation=uuid.uuid4())
    assert referral.id == referral_id(referred)
    assert referral.convert(ACTOR, "p1", 2500) == 250
    with pytest.raises(InvalidState):
        referral.convert(ACTOR, "p2", 9900)


def test_tier_bonuses_are_earned_at_5_and_25_conversions_only() -> None:
    account = ReferralAccount.open(org_id=ORG, actor_id=ACTOR, referrer_id=uuid.uuid4())
    tiers = [account.count_conversion(ACTOR, str(uuid.uuid4())) for _ in range(30)]
    assert [(n + 1, tier) for n, tier in enumerate(tiers) if tier is not None] == [(5, 5), (25, 25)]
    bonuses = [e for e in account.collect_events() if isinstance(e, ReferralAccount.BonusEarned)]
    assert [(b.tier, b.bonus_cents) for b in bonuses] == [(5, 50_00), (25, 500_00)]
    assert sorted(TIER_BONUSES_CENTS) == [5, 25] and account.conversions == 30
