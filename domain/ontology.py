"""The ONE ontology as data: type catalogs, legacy aliases and input validation.

Pure standard-library module (no I/O). The catalogs are the union of the two seed
generations (the "v1" Convex schema in the API reference and the "v2" optimised
ontology in the implementation examples). Old names that the seeds consolidate are
*aliases*: they normalise to the consolidated name, and the variant they encoded is
moved into event/connection metadata (``status``, ``action``, ``entityType`` ...).

Matching is strict: type names are exact lowercase ``snake_case`` strings. No case
folding or hyphen/space conversion is done for thing, connection and event types,
statuses or roles; only tag *categories* are case-insensitive.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from domain.errors import ValidationFailed

__all__ = [
    "CONNECTION_TYPES",
    "CONNECTION_TYPE_GROUPS",
    "EVENT_TYPES",
    "EVENT_TYPE_GROUPS",
    "LEGACY_ALIASES",
    "LEGACY_VARIANTS",
    "ONTOLOGY_VERSION",
    "ROLES",
    "TAG_CATEGORIES",
    "TAG_VALUE_MAX_LENGTH",
    "THING_STATUSES",
    "THING_TYPES",
    "THING_TYPE_GROUPS",
    "OntologyError",
    "format_tag",
    "normalize_connection",
    "normalize_connection_type",
    "normalize_event_type",
    "normalize_thing_type",
    "parse_tag",
    "validate_connection_endpoints",
    "validate_name",
    "validate_role",
    "validate_status",
]

ONTOLOGY_VERSION: Final[str] = "2026.2"
"""Version of this catalog; bump when a type, alias or rule changes."""

TAG_VALUE_MAX_LENGTH: Final[int] = 100


def _groups(data: dict[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(data)


# --------------------------------------------------------------------------- things
# Both generations list the same 50 literals (the seeds call it "46 entity types").
THING_TYPE_GROUPS: Final[Mapping[str, tuple[str, ...]]] = _groups(
    {
        "core": ("creator", "ai_clone", "audience_member"),
        "business_agents": (
            "strategy_agent",
            "research_agent",
            "marketing_agent",
            "sales_agent",
            "service_agent",
            "design_agent",
            "engineering_agent",
            "finance_agent",
            "legal_agent",
            "intelligence_agent",
        ),
        "content": (
            "blog_post",
            "video",
            "podcast",
            "social_post",
            "email",
            "course",
            "lesson",
        ),
        "products": ("digital_product", "membership", "consultation", "nft"),
        "community": ("community", "conversation", "message", "event"),
        "token": ("token", "token_contract"),
        "knowledge": ("knowledge_item", "embedding"),
        "platform": (
            "website",
            "landing_page",
            "template",
            "livestream",
            "recording",
            "media_asset",
        ),
        "business": (
            "payment",
            "subscription",
            "invoice",
            "metric",
            "insight",
            "prediction",
            "report",
        ),
        "marketing": (
            "notification",
            "email_campaign",
            "announcement",
            "referral",
            "campaign",
            "lead",
        ),
    }
)

# ---------------------------------------------------------------------- connections
CONNECTION_TYPE_GROUPS: Final[Mapping[str, tuple[str, ...]]] = _groups(
    {
        "ownership": ("owns", "created_by", "authored"),
        "ai": ("clone_of", "trained_on", "powers", "generated_by"),
        "content": (
            "published_to",
            "part_of",
            "references",
            "derived_from",
            "teaching",
            "taught_by",
        ),
        "community": (
            "member_of",
            "following",
            "engaged_with",
            "moderates",
            "participated_in",
        ),
        "business": ("manages", "collaborates_with", "assigned_to", "reports_to"),
        # holds_tokens (v1, metadata.balance) is kept: the token saga and clients use it.
        # holds (v2, metadata.assetType/amount) covers other assets (nft, stake).
        "transactional": (
            "transacted",
            "holds",
            "holds_tokens",
            "earned_from",
            "enrolled_in",
            "completed",
        ),
        # referred (v1) and referred_by (v2) point in opposite directions: both kept.
        "growth": ("referred_by", "converted_from", "referred", "notified"),
        "media_analytics": (
            "featured_in",
            "hosted_on",
            "analyzed_by",
            "optimized_by",
            "influences",
        ),
    }
)

# --------------------------------------------------------------------------- events
EVENT_TYPE_GROUPS: Final[Mapping[str, tuple[str, ...]]] = _groups(
    {
        "entity_lifecycle": (
            "entity_created",
            "entity_updated",
            "entity_deleted",
            "entity_restored",
            "entity_published",
            "entity_archived",
            "content_uploaded",
            "content_changed",  # v1 consolidated: metadata.action created/updated/deleted
        ),
        "ai_clone": (
            "clone_interaction",
            "clone_trained",
            "ai_generated",
            "voice_cloned",
            "appearance_cloned",
            "clone_generated_content",
        ),
        "agent": (
            "agent_created",
            "agent_executed",  # metadata.status: success | failed | partial
            "workflow_started",
            "workflow_completed",
        ),
        "content": (
            "content_viewed",
            "content_interacted",  # metadata.interactionType: liked | shared | commented
            "content_downloaded",
            "content_embedded",
            "content_moderated",
        ),
        "audience": ("user_joined", "user_engaged", "ugc_created", "comment_posted"),
        "learning": (
            "course_enrolled",
            "progress_updated",
            "assessment_completed",
            "certificate_earned",
        ),
        "token": (
            "token_deployed",
            "tokens_purchased",
            "token_transacted",  # metadata.action: purchased | earned | burned
            "token_staked",  # metadata.action: staked | unstaked
            "governance_action",  # metadata.actionType: vote | proposal | execution
            "nft_minted",
        ),
        "payment": (
            "payment_processed",  # metadata.status: initiated|completed|failed|refunded
            "subscription_changed",  # metadata.action: started|renewed|cancelled|upgraded
            "invoice_generated",
        ),
        "business": ("revenue_generated", "cost_incurred"),
        "growth": (
            "referral_created",
            "referral_converted",
            "referral_activity",  # v1 consolidated: metadata.action created | converted
            "invitation_created",
            "achievement_unlocked",
            "level_changed",
            "viral_shared",
            "lead_captured",
        ),
        "livestream_notification": (
            "livestream_status_changed",  # metadata.status: scheduled | started | ended
            "livestream_interaction",  # metadata.action: joined | left | message
            "notification_delivered",  # metadata.channel: email | sms | push | in_app
        ),
        "analytics": (
            "metric_calculated",
            "insight_generated",
            "prediction_made",
            "optimization_applied",
            "report_generated",
        ),
    }
)


def _flatten(groups: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    return frozenset(name for names in groups.values() for name in names)


THING_TYPES: Final[frozenset[str]] = _flatten(THING_TYPE_GROUPS)
CONNECTION_TYPES: Final[frozenset[str]] = _flatten(CONNECTION_TYPE_GROUPS)
EVENT_TYPES: Final[frozenset[str]] = _flatten(EVENT_TYPE_GROUPS)

TAG_CATEGORIES: Final[frozenset[str]] = frozenset(
    {
        "skill",
        "industry",
        "topic",
        "format",
        "goal",
        "audience",
        "technology",
        "status",
        "capability",  # agents' capabilities (seed: powers metadata.capability)
    }
)

# Soft delete is a separate flag (deleted_at), not a status.
THING_STATUSES: Final[frozenset[str]] = frozenset(
    {"draft", "active", "inactive", "published", "archived"}
)

ROLES: Final[frozenset[str]] = frozenset({"platform_owner", "org_owner", "org_user", "customer"})

# ------------------------------------------------------------------- legacy aliases
# old name -> (consolidated name, metadata entries that carry the old variant)
_Alias = tuple[str, Mapping[str, str]]


def _a(target: str, **variant: str) -> _Alias:
    return (target, MappingProxyType(dict(variant)))


_THING_ALIASES: Final[dict[str, _Alias]] = {
    # Migration guide "old model -> entity type" (lowercased).
    "post": _a("blog_post"),
    "comment": _a("message"),
}

_CONNECTION_ALIASES: Final[dict[str, _Alias]] = {
    "follows": _a("following"),
    "purchased": _a("transacted", transactionType="purchase"),
    "paid_for": _a("transacted", transactionType="purchase"),
    "subscribed_to": _a("transacted", transactionType="subscription"),
    "invoiced_to": _a("transacted", transactionType="invoice"),
    "staked_in": _a("holds", assetType="stake"),
    "content_liked": _a("engaged_with", engagementType="liked"),
    "content_shared": _a("engaged_with", engagementType="shared"),
    "content_commented": _a("engaged_with", engagementType="commented"),
}

_EVENT_ALIASES: Final[dict[str, _Alias]] = {
    # entity lifecycle
    "creator_created": _a("entity_created", entityType="creator"),
    "creator_updated": _a("entity_updated", entityType="creator"),
    "clone_created": _a("entity_created", entityType="ai_clone"),
    "course_created": _a("entity_created", entityType="course"),
    "content_published": _a("entity_published"),
    # agent
    "agent_completed": _a("agent_executed", status="success"),
    "agent_failed": _a("agent_executed", status="failed"),
    # content interactions
    "content_liked": _a("content_interacted", interactionType="liked"),
    "content_shared": _a("content_interacted", interactionType="shared"),
    "content_commented": _a("content_interacted", interactionType="commented"),
    # learning
    "lesson_completed": _a("progress_updated", status="completed", entityType="lesson"),
    "course_completed": _a("progress_updated", status="completed", entityType="course"),
    # token
    "tokens_earned": _a("token_transacted", action="earned"),
    "tokens_burned": _a("token_transacted", action="burned"),
    "tokens_staked": _a("token_staked", action="staked"),
    "tokens_unstaked": _a("token_staked", action="unstaked"),
    "governance_vote": _a("governance_action", actionType="vote"),
    # payment / subscription
    "payment_initiated": _a("payment_processed", status="initiated"),
    "payment_completed": _a("payment_processed", status="completed"),
    "payment_failed": _a("payment_processed", status="failed"),
    "payment_refunded": _a("payment_processed", status="refunded"),
    "subscription_updated": _a("subscription_changed"),
    "subscription_started": _a("subscription_changed", action="started"),
    "subscription_renewed": _a("subscription_changed", action="renewed"),
    "subscription_cancelled": _a("subscription_changed", action="cancelled"),
    "subscription_upgraded": _a("subscription_changed", action="upgraded"),
    # growth
    "referral_made": _a("referral_created"),
    "viral_share": _a("viral_shared"),
    "level_up": _a("level_changed"),
}

LEGACY_VARIANTS: Final[Mapping[str, Mapping[str, Mapping[str, str]]]] = MappingProxyType(
    {
        dimension: MappingProxyType({old: meta for old, (_, meta) in table.items()})
        for dimension, table in (
            ("thing", _THING_ALIASES),
            ("connection", _CONNECTION_ALIASES),
            ("event", _EVENT_ALIASES),
        )
    }
)
"""dimension -> old name -> metadata entries added on normalisation."""

LEGACY_ALIASES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        dimension: MappingProxyType({old: new for old, (new, _) in table.items()})
        for dimension, table in (
            ("thing", _THING_ALIASES),
            ("connection", _CONNECTION_ALIASES),
            ("event", _EVENT_ALIASES),
        )
    }
)
"""dimension ("thing", "connection", "event") -> old name -> consolidated name."""


ACCEPTED_NAMES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        dimension: tuple(sorted(canonical | LEGACY_ALIASES[dimension].keys()))
        for dimension, canonical in (
            ("thing", THING_TYPES),
            ("connection", CONNECTION_TYPES),
            ("event", EVENT_TYPES),
        )
    }
)
"""dimension -> every name a client may send (consolidated names and legacy aliases)."""

SPACE_CLASS: Final = "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What `str.strip()` removes (`str.isspace`), as a regular-expression class body."""
NOT_BLANK: Final = f"^[^\x00]*[^{SPACE_CLASS}\x00][^\x00]*$"
"""Text that is not all whitespace (and, like all text, holds no NUL: storage refuses it)."""


def _caseless(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


_PADDING = f"[{SPACE_CLASS}]*"
_VISIBLE = f"[^{SPACE_CLASS}\x00]"
TAG_PATTERN: Final[str] = (
    f"^{_PADDING}(?:{'|'.join(_caseless(c) for c in sorted(TAG_CATEGORIES))}){_PADDING}:{_PADDING}"
    f"{_VISIBLE}(?:[^\x00]{{0,{TAG_VALUE_MAX_LENGTH - 2}}}{_VISIBLE})?{_PADDING}$"
)
"""Exactly the tags `parse_tag` accepts: a known category (any case) and a value of 1 to
TAG_VALUE_MAX_LENGTH characters, each part with optional surrounding whitespace."""


# --------------------------------------------------------------------------- errors
class OntologyError(ValidationFailed, ValueError):
    """Invalid input against the ontology; carries the field at fault and the stable code
    `validation_error` (it is a `ValidationFailed`, so callers handle one error family)."""

    field: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)

    def __repr__(self) -> str:
        return f"OntologyError(field={self.field!r}, message={self.message!r})"


# ------------------------------------------------------------------------- helpers
def _require_str(value: object, field: str, what: str) -> str:
    if not isinstance(value, str):
        raise OntologyError(field, f"{what} must be a string, got {type(value).__name__}")
    return value


def _resolve(
    name: object,
    canonical: frozenset[str],
    aliases: Mapping[str, _Alias],
    what: str,
    field: str,
) -> _Alias:
    text = _require_str(name, field, what)
    if text in canonical:
        return (text, MappingProxyType({}))
    alias = aliases.get(text)
    if alias is None:
        raise OntologyError(field, f"unknown {what} {text!r}")
    return alias


def _merge_variant(
    metadata: Mapping[str, Any] | None,
    variant: Mapping[str, str],
    legacy_name: str,
) -> dict[str, Any]:
    if metadata is None:
        merged: dict[str, Any] = {}
    elif isinstance(metadata, Mapping):
        merged = dict(metadata)
    else:
        raise OntologyError("metadata", "metadata must be an object")
    for key, value in variant.items():
        if key in merged and merged[key] != value:
            raise OntologyError(
                f"metadata.{key}",
                f"metadata.{key}={merged[key]!r} contradicts {legacy_name!r} "
                f"(which implies {value!r})",
            )
        merged[key] = value
    return merged


# ------------------------------------------------------------------ normalisation
def normalize_thing_type(name: str, field: str = "type") -> str:
    """Return the consolidated thing type for ``name`` (exact name or legacy alias)."""
    return _resolve(name, THING_TYPES, _THING_ALIASES, "thing type", field)[0]


def normalize_connection_type(name: str, field: str = "type") -> str:
    """Return the consolidated connection type for ``name`` (variant metadata dropped)."""
    return _resolve(name, CONNECTION_TYPES, _CONNECTION_ALIASES, "connection type", field)[0]


def normalize_connection(
    name: str, metadata: Mapping[str, Any] | None = None, field: str = "type"
) -> tuple[str, dict[str, Any]]:
    """Return (consolidated connection type, copy of metadata plus the alias variant)."""
    target, variant = _resolve(
        name, CONNECTION_TYPES, _CONNECTION_ALIASES, "connection type", field
    )
    return target, _merge_variant(metadata, variant, name)


def normalize_event_type(
    name: str, metadata: Mapping[str, Any] | None = None, field: str = "type"
) -> tuple[str, dict[str, Any]]:
    """Return (consolidated event type, copy of metadata plus the alias variant).

    E.g. ``payment_failed`` -> ``("payment_processed", {..., "status": "failed"})``.
    The input mapping is never mutated. A metadata value contradicting the variant
    implied by a legacy name raises :class:`OntologyError` on ``metadata.<key>``.
    """
    target, variant = _resolve(name, EVENT_TYPES, _EVENT_ALIASES, "event type", field)
    return target, _merge_variant(metadata, variant, name)


# --------------------------------------------------------------------- validation
def validate_status(status: str, field: str = "status") -> str:
    """Return ``status`` if it is a known thing status."""
    text = _require_str(status, field, "status")
    if text not in THING_STATUSES:
        raise OntologyError(field, f"unknown status {text!r}")
    return text


def validate_role(role: str, field: str = "role") -> str:
    """Return ``role`` if it is a known person role."""
    text = _require_str(role, field, "role")
    if text not in ROLES:
        raise OntologyError(field, f"unknown role {text!r}")
    return text


def validate_name(name: str, field: str = "name", max_length: int = 500) -> str:
    """Return ``name`` stripped; it must not be blank and be at most ``max_length`` chars."""
    raw = _require_str(name, field, "name")
    text = raw.strip()
    if not text:
        raise OntologyError(field, f"{field} must not be empty")
    if len(raw) > max_length:
        raise OntologyError(field, f"{field} must be at most {max_length} characters")
    return text


def _check_tag_parts(category: object, value: object, field: str) -> tuple[str, str]:
    cat = _require_str(category, field, "tag category").strip().lower()
    if cat not in TAG_CATEGORIES:
        raise OntologyError(field, f"unknown tag category {cat!r}")
    val = _require_str(value, field, "tag value").strip()
    if not val:
        raise OntologyError(field, "tag value must not be empty")
    if len(val) > TAG_VALUE_MAX_LENGTH:
        raise OntologyError(field, f"tag value must be at most {TAG_VALUE_MAX_LENGTH} characters")
    return cat, val


def parse_tag(tag: str, field: str = "tags") -> tuple[str, str]:
    """Split ``'category:value'`` into (lowercased category, stripped value)."""
    text = _require_str(tag, field, "tag")
    category, sep, value = text.partition(":")
    if not sep:
        raise OntologyError(field, f"tag {text!r} must look like 'category:value'")
    return _check_tag_parts(category, value, field)


def format_tag(category: str, value: str) -> str:
    """Build the canonical ``'category:value'`` string (validated like :func:`parse_tag`)."""
    cat, val = _check_tag_parts(category, value, "tags")
    return f"{cat}:{val}"


def validate_connection_endpoints(from_id: str, to_id: str) -> None:
    """Check both endpoint ids are non-empty strings and differ (no self-connections)."""
    for value, field in ((from_id, "from_id"), (to_id, "to_id")):
        if not isinstance(value, str) or not value.strip():
            raise OntologyError(field, f"{field} must be a non-empty id")
    if from_id == to_id:
        raise OntologyError("to_id", "a thing cannot be connected to itself")
