"""Commands of the token purchase saga: start it (from clients) and advance it (from the driver)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from commands import models as m
from commands.access import visible
from commands.handlers import Context, Reply, handles
from commands.invitations import pay_referral
from commands.unit_of_work import Scope
from domain.activity import Activity
from domain.base import OneAggregate
from domain.connections import Connection, connection_id
from domain.errors import Forbidden, ValidationFailed
from domain.organizations import Person
from domain.permissions import Reach
from domain.things import Thing
from domain.token_purchase import REWARD_PREFIX, Share, TokenPurchase


@handles(m.StartTokenPurchase)
def start_token_purchase(cmd: m.StartTokenPurchase, ctx: Context, scope: Scope) -> Reply:
    """Validate buyer and token, price the purchase, and open the saga (202: it runs async; for a
    token whose contract is still being deployed, it first waits for the deployment).

    The price is the token's `priceUsd` times the amount; a client may pay more (`usd_amount`), never
    less, and a token without a price is not for sale."""
    token = visible(scope, ctx, cmd.token_id, Thing, "token_id")
    if token.type != "token" or token.deleted:
        raise ValidationFailed("token_id must name a live thing of type token", "token_id")
    contract = str(token.properties.get("contractAddress") or "")
    if ctx.reach is Reach.SELF and str(cmd.buyer_id) != ctx.actor_id:
        raise Forbidden("you may only buy tokens for yourself", "buyer_id")
    wallet = _buyer_wallet(scope, ctx, cmd.buyer_id)
    price = token.properties.get("priceUsd")
    if isinstance(price, bool) or not isinstance(price, int | float) or price <= 0:
        raise ValidationFailed("the token has no positive priceUsd: it is not for sale", "token_id")
    floor_cents = round(cmd.amount * price * 100)
    usd_cents = floor_cents if cmd.usd_amount is None else round(cmd.usd_amount * 100)
    if usd_cents < floor_cents:
        raise ValidationFailed(f"usd_amount is below the token's price ({floor_cents / 100:.2f})",
                               "usd_amount")
    saga = TokenPurchase.start(
        id=uuid4(), org_id=token.org_id, actor_id=ctx.actor_id, buyer_id=str(cmd.buyer_id),
        token_id=str(cmd.token_id), amount=cmd.amount, usd_cents=usd_cents,
        payment_method=cmd.payment_method, wallet=wallet, contract=contract,
    )
    scope.add(saga)
    _payment(scope, saga, ctx, "initiated")
    return Reply(saga.id, 202, {"status": saga.status})


def _buyer_wallet(scope: Scope, ctx: Context, buyer_id: UUID) -> str:
    """The buyer's own wallet, or "" for a custodial address derived by the chain provider."""
    buyer = visible(scope, ctx, buyer_id, OneAggregate, "buyer_id")
    if isinstance(buyer, Thing):
        return str(buyer.properties.get("walletAddress") or "")
    if not isinstance(buyer, Person):
        raise ValidationFailed("buyer_id must name a person or a thing", "buyer_id")
    return ""


Decision = Callable[[TokenPurchase, Scope, Context], None]


def record_holdings(shares: list[Share]) -> Decision:
    """The saga's last forward step: balance, activity and revenue (for a reward: the earning),
    the referral commission of a referred buyer's first purchase, with the saga's completion."""

    def decide(saga: TokenPurchase, scope: Scope, ctx: Context) -> None:
        buyer, token = UUID(saga.buyer_id), UUID(saga.token_id)
        holding = scope.find(connection_id(buyer, "holds_tokens", token), Connection)
        if holding is None:
            scope.add(Connection.create(org_id=saga.org_id, actor_id=ctx.actor_id, from_id=buyer,
                                        to_id=token, type="holds_tokens",
                                        metadata={"balance": saga.amount}))
        elif holding.removed:
            holding.reestablish(ctx.actor_id, {"balance": saga.amount})
        else:
            balance = holding.metadata.get("balance", 0)
            holding.update_metadata(ctx.actor_id, {"balance": balance + saga.amount})
        if saga.reward:
            reason = saga.payment_method.removeprefix(REWARD_PREFIX)
            _activity(scope, saga, ctx, "token_transacted", token, {
                "action": "earned", "amount": saga.amount, "reason": reason, "purchaseId": str(saga.id)})
            saga.complete(ctx.actor_id, [])
            return
        usd = saga.usd_cents / 100
        _activity(scope, saga, ctx, "tokens_purchased", token,
                  {"amount": saga.amount, "usdAmount": usd, "purchaseId": str(saga.id)})
        _activity(scope, saga, ctx, "payment_processed", token,
                  {"status": "completed", "amount": usd, "paymentId": saga.payment_id,
                   "purchaseId": str(saga.id)})
        for share in shares:
            _activity(scope, saga, ctx, "revenue_generated", token,
                      {"recipient": share.recipient, "role": share.role,
                       "amount": share.usd_cents / 100, "purchaseId": str(saga.id)})
        pay_referral(scope, ctx.actor_id, buyer_id=buyer, purchase_id=str(saga.id),
                     value_cents=saga.usd_cents, target=token)
        saga.complete(ctx.actor_id, shares)

    return decide


def declined(payment_id: str | None, code: str | None) -> Decision:
    """The card was declined: the saga fails and the payment is recorded `failed`."""

    def decide(saga: TokenPurchase, scope: Scope, ctx: Context) -> None:
        saga.payment_declined(ctx.actor_id, payment_id, code)
        _payment(scope, saga, ctx, "failed", declineCode=code, paymentId=payment_id)

    return decide


def abandoned(reason: str) -> Decision:
    """The token's contract never came: nothing was charged, the payment is recorded `failed`."""

    def decide(saga: TokenPurchase, scope: Scope, ctx: Context) -> None:
        saga.abandon(ctx.actor_id, reason)
        _payment(scope, saga, ctx, "failed", reason=reason)

    return decide


def refunded(refund_id: str) -> Decision:
    """The compensation's refund went through: the payment is recorded `refunded`."""

    def decide(saga: TokenPurchase, scope: Scope, ctx: Context) -> None:
        saga.refunded(ctx.actor_id, refund_id)
        _payment(scope, saga, ctx, "refunded", refundId=refund_id, paymentId=saga.payment_id)

    return decide


def _payment(scope: Scope, saga: TokenPurchase, ctx: Context, status: str, **details: Any) -> None:
    """`payment_processed` with `status` (initiated, failed, refunded; completed is recorded with
    the holdings); rewards pay nothing and record none."""
    if saga.reward:
        return
    _activity(scope, saga, ctx, "payment_processed", UUID(saga.token_id), {
        "status": status, "amount": saga.usd_cents / 100, "purchaseId": str(saga.id),
        **{key: value for key, value in details.items() if value is not None}})


def _activity(
    scope: Scope, saga: TokenPurchase, ctx: Context, kind: str, target: UUID,
    metadata: dict[str, Any],
) -> None:
    scope.add(Activity.record(id=uuid4(), org_id=saga.org_id, actor_id=saga.buyer_id, type=kind,
                              target_id=target, metadata=metadata))
