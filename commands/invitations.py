"""Invitation and referral commands: magic links (one or in bulk), their acceptance, and the
referral commission policy applied by the purchase saga.

The commission is decided inside the purchase saga's last step (`record_holdings`), in the same
transaction as the purchase's completion: the referral stream (id derived from the referred
person) records the conversion, so a first purchase pays its referrer exactly once and later
purchases pay nothing, whatever the retries or redeliveries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import Field

from commands.access import visible
from commands.fields import Email, PersonName, Role
from commands.handlers import Context, Reply, handles
from commands.models import StrictModel
from commands.unit_of_work import Scope
from commands.vault import open_personal, seal_personal
from domain import permissions
from domain.activity import Activity
from domain.api_keys import ApiKey
from domain.connections import Connection
from domain.errors import Forbidden, NotFound, ValidationFailed
from domain.invitations import (
    TIER_BONUSES_CENTS,
    Invitation,
    Referral,
    ReferralAccount,
    invitation_id,
    invitee_id,
    referral_account_id,
    referral_id,
)
from domain.organizations import Person
from domain.permissions import CUSTOMER, Reach
from domain.personal_data import RULES, validate_personal
from domain.workflows import Retry, Step, WorkflowDefinition, WorkflowInstance

BULK_WORKFLOW = "invitations.bulk"
BULK_ACTION = "invitations.issue_batch"
BULK_BATCH = 20
"""Invitations issued per step of a bulk job (each step is one transaction)."""


class InvitationBody(StrictModel):
    """Invite `email` with `role` (default customer), referred by `referrer_id` (default the
    caller)."""

    email: Email
    role: Role = CUSTOMER
    referrer_id: UUID | None = None


class IssueInvitation(InvitationBody):
    """Issue the invitation of a magic-link token (its hash only) at `now`."""

    action = "invitations.create"

    token_hash: str
    now: datetime


class BulkInvitationBody(StrictModel):
    """Invite every address of `emails` with `role`, referred by the caller."""

    emails: list[Email] = Field(min_length=1, max_length=1000)
    role: Role = CUSTOMER


class StartBulkInvitations(StrictModel):
    """Queue the invitations of `token_hashes` (one per address of `emails`, in order)."""

    action = "invitations.bulk"

    emails: list[str]
    role: str
    token_hashes: list[str]


class InvitationAcceptance(StrictModel):
    """A magic-link token and the invitee's name."""

    token: str = Field(min_length=1, max_length=200)
    name: PersonName


class AcceptInvitation(StrictModel):
    """Internal (authenticated by the token): register the invitee and issue their key."""

    token_hash: str
    name: str
    key_id: UUID
    key_hash: str
    now: datetime


def _referrer(scope: Scope, ctx: Context, wanted: UUID | None, role: str) -> tuple[str, str]:
    """The referrer of a new invitation and the organization it invites into: the caller (in
    the organization they act in), or (org reach) a person of theirs; only organization owners
    invite anyone but customers."""
    if ctx.reach is Reach.SELF and wanted is not None and str(wanted) != ctx.actor_id:
        raise Forbidden("you may only invite as yourself", "referrer_id")
    if ctx.reach is Reach.SELF and role != CUSTOMER:
        raise Forbidden("only organization owners invite people with another role than customer", "role")
    permissions.require_grantable(ctx.role, role)
    if wanted is None or str(wanted) == ctx.actor_id:
        return ctx.actor_id, ctx.org_id
    referrer = visible(scope, ctx, wanted, Person, "referrer_id")
    if not referrer.live:
        raise ValidationFailed(f"person {wanted} cannot refer anyone", "referrer_id")
    return str(referrer.id), referrer.org_id


def _email(email: str, field: str) -> str:
    """The canonical form of an invitee's address."""
    return RULES["email"].check(email, field)


def _sealed_email(scope: Scope, token_hash: str, email: str) -> str | None:
    """The address sealed with the key of the person the invitation will register."""
    return seal_personal(scope, invitee_id(invitation_id(token_hash)), {"email": email})


def issue(scope: Scope, *, org_id: str, actor_id: str, referrer_id: str, token_hash: str,
          email: str | None, role: str, now: datetime, channel: str) -> Invitation:
    """Issue an invitation (email already sealed) with its `invitation_created` activity."""
    invitation = Invitation.issue(org_id=org_id, actor_id=actor_id, token_hash=token_hash,
                                  email=email, role=role, referrer_id=referrer_id, now=now)
    scope.add(invitation)
    scope.add(Activity.record(id=uuid4(), org_id=org_id, actor_id=referrer_id,
                              type="invitation_created", target_id=invitation.id,
                              metadata={"referrerId": referrer_id, "channel": channel,
                                        "role": role, "expiresAt": invitation.expires_at}))
    return invitation


@handles(IssueInvitation)
def issue_invitation(cmd: IssueInvitation, ctx: Context, scope: Scope) -> Reply:
    """A magic-link invitation into the referrer's organization, valid for an hour."""
    referrer_id, org_id = _referrer(scope, ctx, cmd.referrer_id, cmd.role)
    email = _email(cmd.email, "email")
    invitation = issue(scope, org_id=org_id, actor_id=ctx.actor_id, referrer_id=referrer_id,
                       token_hash=cmd.token_hash,
                       email=_sealed_email(scope, cmd.token_hash, email), role=cmd.role,
                       now=cmd.now, channel="magic_link")
    return Reply(invitation.id, 201, {"referrer_id": invitation.referrer_id,
                                      "expires_at": invitation.expires_at})


def bulk_definition(invitations: list[dict[str, Any]], role: str) -> WorkflowDefinition:
    """A bulk job as a workflow: one step per batch of invitations (hash and sealed email)."""
    batches = [invitations[i:i + BULK_BATCH] for i in range(0, len(invitations), BULK_BATCH)]
    steps = tuple(Step(f"batch_{n + 1}", "action",
                       {"action": BULK_ACTION, "role": role, "invitations": batch},
                       f"Invitations {n * BULK_BATCH + 1}-{n * BULK_BATCH + len(batch)}")
                  for n, batch in enumerate(batches))
    return WorkflowDefinition(name=BULK_WORKFLOW, version=1, steps=steps,
                              retry=Retry(max_attempts=3, initial_backoff_ms=1000),
                              description="Bulk magic-link invitations, issued batch by batch.")


@handles(StartBulkInvitations)
def start_bulk_invitations(cmd: StartBulkInvitations, ctx: Context, scope: Scope) -> Reply:
    """Queue a bulk invitation job (202): a workflow instance of the caller issues the
    invitations in batches; its progress is the share of batches done."""
    if len(cmd.emails) != len(cmd.token_hashes):
        raise ValidationFailed("one token per address", "emails")
    referrer_id, org_id = _referrer(scope, ctx, None, cmd.role)
    invitations = [{"token_hash": token_hash,
                    "email": _sealed_email(scope, token_hash, _email(email, f"emails[{index}]"))}
                   for index, (email, token_hash) in enumerate(zip(cmd.emails, cmd.token_hashes,
                                                                   strict=True))]
    instance = WorkflowInstance.start(
        id=uuid4(), org_id=org_id, actor_id=ctx.actor_id,
        definition=bulk_definition(invitations, cmd.role), subject_id=referrer_id,
        input={"count": len(invitations)})
    scope.add(instance)
    return Reply(instance.id, 202, {"status": instance.status, "count": len(invitations)})


@handles(AcceptInvitation)
def accept_invitation(cmd: AcceptInvitation, ctx: Context, scope: Scope) -> Reply:
    """Register the invitee in the inviter's organization with the invited role, attribute them
    to the referrer for life (`referred_by`, `referral_created`) and issue their API key."""
    invitation = scope.find(invitation_id(cmd.token_hash), Invitation)
    if invitation is None:
        raise NotFound("no invitation has this token", "token")
    person_id = invitation.accept(cmd.now)
    personal = {**open_personal(scope, person_id, invitation.email),
                **validate_personal({"name": cmd.name})}
    person = Person.create(id=person_id, org_id=invitation.org_id, actor_id=str(person_id),
                           role=invitation.role, personal=seal_personal(scope, person_id, personal))
    referrer = UUID(invitation.referrer_id)
    referral = Referral.create(org_id=invitation.org_id, actor_id=str(person_id),
                               referred_id=person_id, referrer_id=invitation.referrer_id,
                               invitation=invitation.id)
    link = Connection.create(org_id=invitation.org_id, actor_id=str(person_id), from_id=person_id,
                             to_id=referrer, type="referred_by",
                             metadata={"invitationId": str(invitation.id), "channel": "magic_link"})
    joined = Activity.record(id=uuid4(), org_id=invitation.org_id, actor_id=invitation.referrer_id,
                             type="referral_created", target_id=person_id,
                             metadata={"referrerId": invitation.referrer_id, "referredId": str(person_id),
                                       "invitationId": str(invitation.id), "channel": "magic_link"})
    key = ApiKey.issue(id=cmd.key_id, org_id=invitation.org_id, actor_id=str(person_id),
                       person_id=str(person_id), name="invitation", kind="api",
                       secret_hash=cmd.key_hash, expires_at=None, now=cmd.now)
    for aggregate in (person, referral, link, joined, key):
        scope.add(aggregate)
    return Reply(person_id, 201, {"org_id": invitation.org_id, "role": invitation.role,
                                  "referrer_id": invitation.referrer_id, "key_id": str(key.id)})


def pay_referral(scope: Scope, actor_id: str, *, buyer_id: UUID, purchase_id: str,
                 value_cents: int, target: UUID) -> None:
    """The referral policy of a completed purchase: if the buyer was referred and has not
    converted yet, convert (10% commission to the referrer), count it on the referrer's account
    and grant a tier bonus the count reaches; otherwise nothing."""
    referral = scope.find(referral_id(buyer_id), Referral)
    if referral is None or referral.converted:
        return
    commission = referral.convert(actor_id, purchase_id, value_cents)
    referrer = UUID(referral.referrer_id)
    account = scope.find(referral_account_id(referrer), ReferralAccount)
    if account is None:
        account = ReferralAccount.open(org_id=referral.org_id, actor_id=actor_id, referrer_id=referrer)
        scope.add(account)
    tier = account.count_conversion(actor_id, str(buyer_id))
    about = {"referrerId": referral.referrer_id, "referredId": str(buyer_id), "purchaseId": purchase_id}

    def record(kind: str, metadata: dict[str, Any]) -> None:
        scope.add(Activity.record(id=uuid4(), org_id=referral.org_id, actor_id=str(buyer_id),
                                  type=kind, target_id=target, metadata={**about, **metadata}))

    record("referral_converted", {"conversionValue": value_cents / 100})
    record("revenue_generated", {"recipient": referral.referrer_id, "role": "referral_commission",
                                 "amount": commission / 100})
    if tier is not None:
        record("revenue_generated", {"recipient": referral.referrer_id, "role": "referral_bonus",
                                     "tier": tier, "amount": TIER_BONUSES_CENTS[tier] / 100})
