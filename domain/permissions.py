"""Who may do what: the platform roles, the actions of the API, and how far each role reaches.

This module is the permission matrix (docs/permissions.md is rendered from it and checked
against it). Routes name their action; the API refuses a role whose reach is `NONE` before doing
anything, and the command handlers apply the reach to the resource they load (`SELF`: the caller
themselves or what is theirs by definition; `OWN`: what they created, own or authored; `ORG`:
anything of the organization they act in; `ANY`: any organization).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from domain.errors import Forbidden


class Reach(StrEnum):
    """How far a role's permission for an action extends."""

    NONE = "—"
    SELF = "self"
    OWN = "own"
    ORG = "org"
    ANY = "any"


PLATFORM_OWNER: Final = "platform_owner"
ORG_OWNER: Final = "org_owner"
ORG_USER: Final = "org_user"
CUSTOMER: Final = "customer"
SYSTEM: Final = "system"
"""The platform's own processes (sagas, deployer, bootstrap); never the role of a key."""

CLIENT_ROLES: Final[tuple[str, ...]] = (CUSTOMER, ORG_USER, ORG_OWNER, PLATFORM_OWNER)
"""The platform roles a person (and so a key) can have, least powerful first."""

COMMUNITY_ROLES: Final[frozenset[str]] = frozenset({"member", "moderator", "admin"})
"""Roles within a community (the Poktapok roles), carried by a `member_of` connection."""

ACCOUNT_STATUSES: Final[frozenset[str]] = frozenset(
    {"incomplete", "pending", "active", "suspended", "banned"}
)
BLOCKED_STATUSES: Final[frozenset[str]] = frozenset({"suspended", "banned"})
"""Account statuses whose keys are refused (403 account_suspended)."""

_N, _S, _W, _O, _A = Reach.NONE, Reach.SELF, Reach.OWN, Reach.ORG, Reach.ANY


def _row(customer: Reach, org_user: Reach, org_owner: Reach, platform_owner: Reach) -> Mapping[str, Reach]:
    return MappingProxyType({CUSTOMER: customer, ORG_USER: org_user, ORG_OWNER: org_owner,
                             PLATFORM_OWNER: platform_owner})


POLICY: Final[Mapping[str, Mapping[str, Reach]]] = MappingProxyType({
    # action:                  customer, org_user, org_owner, platform_owner
    "organizations.create": _row(_N, _N, _N, _A),
    "organizations.list": _row(_N, _N, _N, _A),
    "organizations.read": _row(_O, _O, _O, _A),
    "organizations.update": _row(_N, _N, _O, _A),
    "people.create": _row(_N, _N, _O, _O),
    "people.list": _row(_N, _O, _O, _O),
    "people.read": _row(_O, _O, _O, _O),
    "people.update": _row(_S, _S, _O, _O),
    "people.change_role": _row(_N, _N, _O, _O),
    "people.change_status": _row(_N, _N, _O, _O),
    "people.delete": _row(_N, _N, _O, _O),
    "people.erase": _row(_S, _S, _O, _O),
    "me.read": _row(_S, _S, _S, _S),
    "keys.create": _row(_S, _S, _O, _O),
    "keys.list": _row(_S, _S, _O, _O),
    "keys.revoke": _row(_S, _S, _O, _O),
    "things.create": _row(_N, _O, _O, _O),
    "things.update": _row(_N, _W, _O, _O),
    "things.read": _row(_O, _O, _O, _O),
    "content.create": _row(_N, _W, _O, _O),
    "connections.create": _row(_S, _W, _O, _O),
    "connections.update": _row(_S, _W, _O, _O),
    "connections.remove": _row(_S, _W, _O, _O),
    "connections.read": _row(_O, _O, _O, _O),
    "events.record": _row(_S, _O, _O, _O),
    "events.read": _row(_S, _O, _O, _O),
    "analytics.read": _row(_N, _N, _O, _O),
    "purchases.create": _row(_S, _S, _O, _O),
    "purchases.read": _row(_S, _S, _O, _O),
    "knowledge.search": _row(_O, _O, _O, _O),
    "operations.read": _row(_N, _N, _O, _A),
    "operations.manage": _row(_N, _N, _O, _A),
    "log.read": _row(_N, _N, _O, _A),
    "workflows.start": _row(_S, _S, _O, _O),
    "workflows.read": _row(_S, _S, _O, _O),
    "workflows.signal": _row(_S, _S, _O, _O),
    "schedules.read": _row(_N, _N, _O, _A),
    "schedules.manage": _row(_N, _N, _O, _A),
    "community_events.read": _row(_O, _O, _O, _O),
    "dsl.validate": _row(_N, _O, _O, _O),
    "features.register": _row(_N, _N, _O, _O),
    "clones.chat": _row(_O, _O, _O, _O),
    "clones.read": _row(_N, _O, _O, _O),
    "invitations.create": _row(_S, _S, _O, _O),
    "invitations.bulk": _row(_N, _N, _O, _O),
    "invitations.read": _row(_N, _N, _O, _O),
    "referrals.read": _row(_S, _S, _O, _O),
    "referrals.analytics": _row(_N, _N, _O, _O),
    "agents.register": _row(_N, _W, _O, _O),
    "agents.read": _row(_O, _O, _O, _O),
    "agents.execute": _row(_O, _O, _O, _O),
    "agents.executions": _row(_S, _S, _O, _O),
    "agents.usage": _row(_N, _N, _O, _O),
})
"""action → role → reach. Every authenticated route names one of these actions."""

PUBLIC: Final = "public"
"""The action of routes that authenticate otherwise (a signature, a Privy token)."""

ACTION_SUMMARIES: Final[Mapping[str, str]] = MappingProxyType({
    "organizations.create": "found an organization",
    "organizations.list": "list all organizations",
    "organizations.read": "read an organization",
    "organizations.update": "rename or re-plan an organization",
    "people.create": "register a person (granting a role)",
    "people.list": "list the people of the organization",
    "people.read": "read a person (profile visibility applies)",
    "people.update": "edit a person's fields and profile",
    "people.change_role": "change a person's platform role",
    "people.change_status": "activate, suspend or ban an account",
    "people.delete": "soft-delete a person",
    "people.erase": "erase a person's personal data (crypto-shredding)",
    "me.read": "read the caller's own person, organization and key",
    "keys.create": "issue an API key",
    "keys.list": "list API keys (never their secrets)",
    "keys.revoke": "revoke an API key",
    "things.create": "create a thing",
    "things.update": "edit, re-status, tag, delete or restore a thing",
    "things.read": "read things, creators, holdings and tags",
    "content.create": "create content for a creator (with ownership and authorship)",
    "connections.create": "connect two things or people",
    "connections.update": "merge a connection's metadata",
    "connections.remove": "remove a connection",
    "connections.read": "read connections",
    "events.record": "record an activity",
    "events.read": "read the activity table",
    "analytics.read": "read payment analytics",
    "purchases.create": "buy tokens",
    "purchases.read": "read a token purchase",
    "knowledge.search": "search things and fetch RAG context",
    "operations.read": "read projection positions, lag, parked events and sagas",
    "operations.manage": "re-apply or skip parked events; retry or resolve parked sagas; retry, skip or"
                         " cancel workflow instances",
    "log.read": "replay the event log (NDJSON) or follow it live (Server-Sent Events)",
    "workflows.start": "start a workflow (e.g. an ELEVATE journey) for a person",
    "workflows.read": "list workflows and read a workflow instance's journey",
    "workflows.signal": "signal a user's action to a waiting workflow step (or pay at its gate)",
    "schedules.read": "list scheduled jobs with their next tick and last outcome",
    "schedules.manage": "define, pause, resume, delete or run a scheduled job",
    "community_events.read": "list community events (synced from Luma)",
    "dsl.validate": "validate a feature written in the technical DSL",
    "features.register": "register a DSL feature as a workflow of the organization",
    "clones.chat": "chat with an AI clone (holding its creator's token; rewarded in tokens)",
    "clones.read": "read an AI clone's metrics (interactions, users, tokens used, rewards)",
    "invitations.create": "invite someone by magic link (customers and org users invite customers,"
                          " as themselves)",
    "invitations.bulk": "queue a bulk invitation job (100+ magic links)",
    "invitations.read": "read a bulk invitation job's progress",
    "referrals.read": "read a referrer's funnel (invited, registered, converted, commissions)",
    "referrals.analytics": "read the organization's referral K-factor",
    "agents.register": "register a business agent (system prompt, model, pricing) owned by a person or thing",
    "agents.read": "list and search the marketplace's business agents",
    "agents.execute": "run a business agent on an input (recorded with its tokens, cost and duration)",
    "agents.executions": "read agent executions (a customer or org user: their own)",
    "agents.usage": "read the organization's agent usage over a period (executions, tokens, cost)",
})

SYSTEM_EVENT_TYPES: Final[frozenset[str]] = frozenset({
    # written by the purchase saga and the token deployer
    "payment_processed", "tokens_purchased", "token_transacted", "token_deployed",
    "revenue_generated", "nft_minted", "token_staked", "subscription_changed",
    "invoice_generated", "cost_incurred", "referral_converted",
    # written by the invitation commands (the referral funnel counts them)
    "invitation_created", "referral_created",
    # derived by the activity projection from the log itself
    "user_joined", "entity_created", "entity_updated", "entity_deleted", "entity_restored",
    "entity_published", "entity_archived",
})
"""Facts only the system states: `POST /v1/events` refuses them to every client."""

SYSTEM_CONNECTION_TYPES: Final[frozenset[str]] = frozenset(
    {"holds_tokens", "holds", "transacted", "earned_from", "referred_by", "referred"}
)
"""Balances and transactions (only the sagas create or change these connections) and referral
attribution (made by accepting an invitation)."""

CLAIM_CONNECTION_TYPES: Final[frozenset[str]] = frozenset(
    {"owns", "authored", "created_by", "manages", "moderates"}
)
"""Connections that claim the target: the caller must own the target too (not only the source)."""

SELF_SERVICE_CONNECTION_TYPES: Final[frozenset[str]] = frozenset(
    {"following", "engaged_with", "member_of", "participated_in"}
)
"""What a customer may connect themselves to (always from their own person)."""


def reach(role: str, action: str) -> Reach:
    """How far `role` may perform `action`; `Forbidden` if not at all."""
    if role == SYSTEM:
        return Reach.ANY
    found = POLICY[action].get(role, Reach.NONE)
    if found is Reach.NONE:
        raise Forbidden(f"a {role} may not {ACTION_SUMMARIES[action]}", "Authorization")
    return found


def require_grantable(actor_role: str, role: str, field: str = "role") -> None:
    """Only platform owners (and the system) grant `platform_owner`; nobody grants more than
    they have."""
    if role == PLATFORM_OWNER and actor_role not in (PLATFORM_OWNER, SYSTEM):
        raise Forbidden("only a platform owner can grant platform_owner", field)


def require_manageable(actor_role: str, target_role: str, field: str = "id") -> None:
    """An org owner manages the people of their org, except its platform owners."""
    if target_role == PLATFORM_OWNER and actor_role not in (PLATFORM_OWNER, SYSTEM):
        raise Forbidden("only a platform owner can manage a platform owner", field)


def require_client_fact(kind: str, *, event: bool, field: str = "type") -> None:
    """Refuse events and connections that only the system may state."""
    system_only = SYSTEM_EVENT_TYPES if event else SYSTEM_CONNECTION_TYPES
    if kind in system_only:
        what = "event" if event else "connection"
        raise Forbidden(f"{kind} {what}s are recorded by the platform itself, not by clients", field)


def sees_private_fields(viewer_role: str, is_self: bool) -> bool:
    """Email, wallets, DID and last login: the person themselves and the organization's owners."""
    return is_self or viewer_role in (ORG_OWNER, PLATFORM_OWNER, SYSTEM)


def sees_profile(visibility: str, viewer_role: str, is_self: bool) -> bool:
    """Profile visibility: public (everyone in the organization), members (all but customers),
    private (the person and the organization's owners)."""
    if sees_private_fields(viewer_role, is_self) or visibility == "public":
        return True
    return visibility == "members" and viewer_role != CUSTOMER
