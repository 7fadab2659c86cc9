"""An AI clone's answered message, recorded with its reward: one transaction appends the
`clone_interaction` (message, response, tokens used) and opens the reward saga, whose id derives
from the interaction's, so a reward is minted once per interaction."""

from __future__ import annotations

from typing import Annotated
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import Field

from commands.access import visible
from commands.handlers import Context, Reply, handles
from commands.models import StrictModel
from commands.unit_of_work import Scope
from domain.activity import Activity
from domain.errors import ValidationFailed
from domain.things import Thing
from domain.token_purchase import REWARD_PREFIX, TokenPurchase

Message = Annotated[str, Field(min_length=1, max_length=4000, pattern=r"\S")]


def reward_id(interaction_id: UUID) -> UUID:
    """The reward saga of an interaction (one per interaction, ever)."""
    return uuid5(NAMESPACE_URL, f"one:clone-reward:{interaction_id}")


class CloneMessage(StrictModel):
    """A message to an AI clone (`stream`: answer as Server-Sent Events)."""

    message: Message
    stream: bool = False


class RecordCloneInteraction(StrictModel):
    """Record the clone's answer to the caller (and reward them with `reward` tokens of `token_id`)."""

    action = "clones.chat"

    interaction_id: UUID
    clone_id: UUID
    message: Message
    response: str = Field(max_length=100_000)
    tokens_used: int = Field(ge=0)
    source: str = Field(max_length=200)
    token_id: UUID
    reward: int = Field(ge=0)


@handles(RecordCloneInteraction)
def record_clone_interaction(cmd: RecordCloneInteraction, ctx: Context, scope: Scope) -> Reply:
    """The interaction, and (for a positive reward) its reward saga."""
    clone = visible(scope, ctx, cmd.clone_id, Thing, "clone_id")
    if clone.type != "ai_clone" or clone.deleted:
        raise ValidationFailed("clone_id must name a live ai_clone", "clone_id")
    token = visible(scope, ctx, cmd.token_id, Thing, "token_id")
    rewarded = cmd.reward > 0
    scope.add(Activity.record(
        id=cmd.interaction_id, org_id=clone.org_id, actor_id=ctx.actor_id, type="clone_interaction",
        target_id=clone.id, metadata={
            "role": "user", "message": cmd.message, "response": cmd.response, "tokensUsed": cmd.tokens_used,
            "source": cmd.source, "tokenId": str(token.id),
            "rewardId": str(reward_id(cmd.interaction_id)) if rewarded else None}))
    if rewarded:
        scope.add(TokenPurchase.start(
            id=reward_id(cmd.interaction_id), org_id=clone.org_id, actor_id=ctx.actor_id,
            buyer_id=ctx.actor_id, token_id=str(token.id), amount=cmd.reward, usd_cents=0,
            payment_method=f"{REWARD_PREFIX}clone_interaction", wallet="",
            contract=str(token.properties.get("contractAddress") or "")))
    return Reply(cmd.interaction_id, 201)
