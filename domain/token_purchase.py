"""The token purchase saga's state machine: payment → mint → holdings, with compensation.

The saga is an aggregate; every step outcome is an event in its stream, so its state is always
rebuilt from the log. The aggregate only decides (which step is next, what is allowed); a driver
in `sagas/` performs the external calls and reports their outcomes back as commands.

    running ──charge ok──► minting ──mint confirmed──► recording ──► completed
       │  └─declined──► failed         │ └─mint failed/timed out──► compensating ──► compensated
       └─(any step gives up)──► parked ◄──────────────────────────────┘ (refund/burn gives up)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from domain.base import OneAggregate
from domain.errors import InvalidState, ValidationFailed

PLATFORM_FEE = 0.15
TOKEN_DECIMALS = 18


@dataclass(frozen=True)
class Share:
    """Who receives which part of a purchase's revenue."""

    recipient: str
    role: str  # "platform" | "owner"
    usd_cents: int


def revenue_split(usd_cents: int, owners: dict[str, float]) -> list[Share]:
    """The seeds' split: 15% platform fee; the rest to owners in proportion to revenueShare.

    Rounding leftovers go to the platform so the parts always add up to the whole.
    """
    distributable = usd_cents - round(usd_cents * PLATFORM_FEE)
    total_share = sum(owners.values())
    shares = [
        Share(owner, "owner", int(distributable * share / total_share))
        for owner, share in sorted(owners.items()) if total_share > 0 and share > 0
    ]
    platform = usd_cents - sum(s.usd_cents for s in shares)
    return [Share("platform", "platform", platform), *shares]


class TransactionSigned(OneAggregate.Event):
    """A chain transaction was signed; recorded before it is broadcast (crash safety). `SLOT`
    names the saga attribute that keeps it."""

    SLOT: ClassVar[str] = ""
    tx_hash: str
    raw: str
    nonce: int

    def apply(self, aggregate: Any) -> None:
        setattr(aggregate, self.SLOT, {"tx_hash": self.tx_hash, "raw": self.raw,
                                       "nonce": self.nonce, "signed_at": self.timestamp.isoformat()})


class TokenPurchase(OneAggregate):
    """One purchase of tokens by a buyer, paid by card and minted on chain."""

    if TYPE_CHECKING:
        buyer_id: str
        token_id: str
        amount: int
        usd_cents: int
        payment_method: str
        wallet: str
        contract: str
        status: str
        step: str
        payment_id: str | None
        mint_tx: dict[str, Any] | None
        burn_tx: dict[str, Any] | None
        minted: bool
        burned: bool
        refund_id: str | None
        attempts: int
        reason: str | None

    class Started(OneAggregate.Created):
        """A buyer asked to purchase `amount` tokens for `usd_cents`."""

        TYPE = "token_purchase.started"
        buyer_id: str
        token_id: str
        amount: int
        usd_cents: int
        payment_method: str
        wallet: str
        contract: str

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            for name in ("buyer_id", "token_id", "amount", "usd_cents", "payment_method",
                         "wallet", "contract"):
                setattr(aggregate, name, getattr(self, name))
            aggregate.status, aggregate.step = "running", "charge"
            aggregate.payment_id = aggregate.refund_id = aggregate.reason = None
            aggregate.mint_tx = aggregate.burn_tx = None
            aggregate.minted = aggregate.burned = False
            aggregate.attempts = 0

    class PaymentSucceeded(OneAggregate.Event):
        """The card was charged."""

        TYPE = "token_purchase.payment_succeeded"
        payment_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.payment_id, aggregate.step, aggregate.attempts = self.payment_id, "mint", 0

    class PaymentDeclined(OneAggregate.Event):
        """The card was declined: nothing to compensate."""

        TYPE = "token_purchase.payment_declined"
        payment_id: str | None
        decline_code: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.payment_id = self.payment_id
            aggregate.status, aggregate.step = "failed", "done"
            aggregate.reason = f"payment declined ({self.decline_code or 'unknown'})"

    class MintSigned(TransactionSigned):
        """The mint transaction was signed."""

        TYPE = "token_purchase.mint_signed"
        SLOT = "mint_tx"

    class MintConfirmed(OneAggregate.Event):
        """The mint is on chain."""

        TYPE = "token_purchase.mint_confirmed"
        tx_hash: str
        block_number: int

        def apply(self, aggregate: Any) -> None:
            aggregate.minted, aggregate.attempts = True, 0
            aggregate.step = "record" if aggregate.status == "running" else "burn"

    class Completed(OneAggregate.Event):
        """Holdings, activity and revenue were recorded."""

        TYPE = "token_purchase.completed"
        shares: list[dict[str, Any]]

        def apply(self, aggregate: Any) -> None:
            aggregate.status, aggregate.step = "completed", "done"

    class CompensationStarted(OneAggregate.Event):
        """A step after payment failed for good: undo what was done."""

        TYPE = "token_purchase.compensation_started"
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status, aggregate.reason, aggregate.attempts = "compensating", self.reason, 0
            aggregate.step = "burn" if aggregate.minted else "refund"

    class BurnSigned(TransactionSigned):
        """The compensating burn was signed."""

        TYPE = "token_purchase.burn_signed"
        SLOT = "burn_tx"

    class BurnConfirmed(OneAggregate.Event):
        """The minted tokens were burned."""

        TYPE = "token_purchase.burn_confirmed"
        tx_hash: str

        def apply(self, aggregate: Any) -> None:
            aggregate.burned, aggregate.step, aggregate.attempts = True, "refund", 0

    class Refunded(OneAggregate.Event):
        """The payment was refunded: compensation is complete."""

        TYPE = "token_purchase.refunded"
        refund_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.refund_id = self.refund_id
            aggregate.status, aggregate.step = "compensated", "done"

    class StepFailed(OneAggregate.Event):
        """A step failed transiently; the driver retries it later (a durable timer)."""

        TYPE = "token_purchase.step_failed"
        step: str
        error: str
        retry_at: str

        def apply(self, aggregate: Any) -> None:
            aggregate.attempts += 1

    class Parked(OneAggregate.Event):
        """The saga gave up and waits for an operator (`one sagas retry|resolve`)."""

        TYPE = "token_purchase.parked"
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.reason, aggregate.status = self.reason, "parked"

    class Resumed(OneAggregate.Event):
        """An operator asked to retry a parked saga from the step it stopped at."""

        TYPE = "token_purchase.resumed"

        def apply(self, aggregate: Any) -> None:
            aggregate.attempts = 0
            aggregate.status = "compensating" if aggregate.step in ("burn", "refund") else "running"

    class Resolved(OneAggregate.Event):
        """An operator settled a parked saga by hand."""

        TYPE = "token_purchase.resolved"
        note: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status, aggregate.step, aggregate.reason = "resolved", "done", self.note

    @classmethod
    def start(
        cls, *, id: UUID, org_id: str, actor_id: str, buyer_id: str, token_id: str,
        amount: int, usd_cents: int, payment_method: str, wallet: str, contract: str,
    ) -> TokenPurchase:
        """Open a purchase (inputs already validated against the buyer and token)."""
        if amount <= 0:
            raise ValidationFailed("amount must be greater than 0", "amount")
        if usd_cents <= 0:
            raise ValidationFailed("usd_amount must be greater than 0", "usd_amount")
        return cls._create(
            cls.Started, id=id, org_id=org_id, actor_id=actor_id, buyer_id=buyer_id,
            token_id=token_id, amount=amount, usd_cents=usd_cents, payment_method=payment_method,
            wallet=wallet, contract=contract,
        )

    @property
    def active(self) -> bool:
        """Whether the driver has work to do."""
        return self.status in ("running", "compensating")

    def _at(self, step: str) -> None:
        if not self.active or self.step != step:
            raise InvalidState(f"saga is {self.status} at step {self.step}, not at {step}", "step")

    def payment_succeeded(self, actor_id: str, payment_id: str) -> None:
        """Record the charge."""
        self._at("charge")
        self.trigger_event(self.PaymentSucceeded, actor_id=actor_id, payment_id=payment_id)

    def payment_declined(self, actor_id: str, payment_id: str | None, code: str | None) -> None:
        """Record a decline: the saga fails with nothing to undo."""
        self._at("charge")
        self.trigger_event(self.PaymentDeclined, actor_id=actor_id, payment_id=payment_id,
                           decline_code=code)

    def mint_signed(self, actor_id: str, tx_hash: str, raw: str, nonce: int) -> None:
        """Remember the signed mint before broadcasting it."""
        self._record_transaction("mint", self.MintSigned, actor_id, tx_hash, raw, nonce)

    def _record_transaction(
        self, step: str, event: type[TransactionSigned], actor_id: str, tx_hash: str, raw: str,
        nonce: int,
    ) -> None:
        self._at(step)
        if getattr(self, event.SLOT) is not None:
            raise InvalidState(f"a {step} transaction is already recorded", "step")
        self.trigger_event(event, actor_id=actor_id, tx_hash=tx_hash, raw=raw, nonce=nonce)

    def mint_confirmed(self, actor_id: str, tx_hash: str, block_number: int) -> None:
        """The recorded mint was mined: go on recording, or, if already compensating (the mint
        landed after the saga gave up on it), burn it before refunding."""
        if not (self.status == "compensating" and self.step == "refund"):
            self._at("mint")
        if self.mint_tx is None or self.mint_tx["tx_hash"] != tx_hash:
            raise InvalidState("confirmation for an unknown mint transaction", "tx_hash")
        self.trigger_event(self.MintConfirmed, actor_id=actor_id, tx_hash=tx_hash,
                           block_number=block_number)

    def complete(self, actor_id: str, shares: list[Share]) -> None:
        """Holdings and revenue recorded."""
        self._at("record")
        self.trigger_event(self.Completed, actor_id=actor_id,
                           shares=[s.__dict__ for s in shares])

    def compensate(self, actor_id: str, reason: str) -> None:
        """Give up going forward after the payment: burn what was minted, refund."""
        if self.status != "running" or self.payment_id is None:
            raise InvalidState("only a running saga that has charged can compensate", "status")
        self.trigger_event(self.CompensationStarted, actor_id=actor_id, reason=reason)

    def burn_signed(self, actor_id: str, tx_hash: str, raw: str, nonce: int) -> None:
        """Remember the signed burn before broadcasting it."""
        self._record_transaction("burn", self.BurnSigned, actor_id, tx_hash, raw, nonce)

    def burn_confirmed(self, actor_id: str, tx_hash: str) -> None:
        """The compensating burn is on chain."""
        self._at("burn")
        self.trigger_event(self.BurnConfirmed, actor_id=actor_id, tx_hash=tx_hash)

    def refunded(self, actor_id: str, refund_id: str) -> None:
        """The refund went through: compensated."""
        self._at("refund")
        self.trigger_event(self.Refunded, actor_id=actor_id, refund_id=refund_id)

    def step_failed(self, actor_id: str, error: str, retry_at: str) -> None:
        """A transient failure of the current step; retried at `retry_at`."""
        if not self.active:
            raise InvalidState(f"saga is {self.status}", "status")
        self.trigger_event(self.StepFailed, actor_id=actor_id, step=self.step, error=error,
                           retry_at=retry_at)

    def park(self, actor_id: str, reason: str) -> None:
        """Stop and wait for an operator."""
        if not self.active:
            raise InvalidState(f"saga is {self.status}", "status")
        self.trigger_event(self.Parked, actor_id=actor_id, reason=reason)

    def resume(self, actor_id: str) -> None:
        """Operator: retry a parked saga."""
        if self.status != "parked":
            raise InvalidState("only a parked saga can be retried", "status")
        self.trigger_event(self.Resumed, actor_id=actor_id)

    def resolve(self, actor_id: str, note: str) -> None:
        """Operator: settle a parked saga by hand."""
        if self.status != "parked":
            raise InvalidState("only a parked saga can be resolved", "status")
        self.trigger_event(self.Resolved, actor_id=actor_id, note=note)
