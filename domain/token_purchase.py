"""The token purchase saga's state machine: contract → payment → mint → holdings, with
compensation.

The saga is an aggregate; every step outcome is an event in its stream, so its state is always
rebuilt from the log. The aggregate only decides (which step is next, what is allowed); a driver
in `sagas/` performs the external calls and reports their outcomes back as commands. Every event
carries the status and step the saga is in after it, decided once when the event is triggered:
the aggregate and the `sagas` read model both copy them, so the state machine exists once.

    running: contract ─deployed─► charge ─ok─► mint ─confirmed─► record ─► completed
                 └─never deployed─► failed └─declined─► failed   │
    compensating (after a charge): [burn, if minted] ─► refund ─► compensated
    any step that keeps failing: compensating (after a charge), else parked ─► resumed | resolved
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from domain.base import OneAggregate
from domain.errors import InvalidState, ValidationFailed

SAGA_STATUSES = frozenset({"running", "compensating", "parked", "completed", "failed", "compensated",
                           "resolved"})
"""Every status a purchase saga can be in."""

PLATFORM_FEE = 0.15
REWARD_PREFIX = "reward:"
"""A purchase whose payment method starts with this is a reward: minted, never charged."""
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


Move = tuple[str, str]
"""(status, step) after an event."""


class SagaEvent(OneAggregate.Event):
    """An event of the saga with the (status, step) it leaves the saga in.

    Schema 2 added them. Schema-1 events are upcast with the move their kind always makes, or,
    for the kinds whose move depended on the saga (`LEGACY_MOVE`), with none: the aggregate then
    computes it with the same rule it uses when it triggers such an event today."""

    class_version = 2
    FIXED_MOVE: ClassVar[Move | None] = None
    """The move every event of this kind makes (for schema-1 events), if it does not depend on
    the saga's state."""
    status: str | None
    step: str | None

    @classmethod
    def upcast_v1_v2(cls, state: dict[str, Any]) -> None:
        """Schema 1 carried no move."""
        state["status"], state["step"] = cls.FIXED_MOVE or (None, None)

    def apply(self, aggregate: Any) -> None:
        self.record(aggregate)
        aggregate.traceparent = getattr(self, "traceparent", None)  # the next step continues its trace
        if self.status is not None and self.step is not None:
            aggregate.status, aggregate.step = self.status, self.step
        else:
            aggregate.status, aggregate.step = self.legacy_move(aggregate)

    def record(self, aggregate: Any) -> None:
        """What else the event sets on the saga."""

    def legacy_move(self, aggregate: Any) -> Move:
        """The move of a schema-1 event of a kind whose move depends on the saga (by default it
        moves nowhere)."""
        return aggregate.status, aggregate.step


class TransactionSigned(SagaEvent):
    """A chain transaction was signed; recorded before it is broadcast (crash safety). `SLOT`
    names the saga attribute that keeps it."""

    SLOT: ClassVar[str] = ""
    tx_hash: str
    raw: str
    nonce: int

    def record(self, aggregate: Any) -> None:
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
        correlation_id: str | None
        traceparent: str | None
        reason: str | None

    class Started(SagaEvent, OneAggregate.Created):
        """A buyer asked to purchase `amount` tokens for `usd_cents` (of a token whose contract
        may still be being deployed: `contract` is then empty)."""

        TYPE = "token_purchase.started"
        FIXED_MOVE = ("running", "charge")
        buyer_id: str
        token_id: str
        amount: int
        usd_cents: int
        payment_method: str
        wallet: str
        contract: str

        def record(self, aggregate: Any) -> None:
            aggregate.org_id = self.org_id
            for name in ("buyer_id", "token_id", "amount", "usd_cents", "payment_method",
                         "wallet", "contract"):
                setattr(aggregate, name, getattr(self, name))
            aggregate.payment_id = aggregate.refund_id = aggregate.reason = None
            aggregate.mint_tx = aggregate.burn_tx = None
            aggregate.minted = aggregate.burned = False
            aggregate.attempts = 0
            aggregate.correlation_id = getattr(self, "correlation_id", None)  # None before it existed

    class ContractFound(SagaEvent):
        """The token's contract was deployed: the purchase can be paid."""

        TYPE = "token_purchase.contract_found"
        contract: str

        def record(self, aggregate: Any) -> None:
            aggregate.contract, aggregate.attempts = self.contract, 0

    class Abandoned(SagaEvent):
        """The saga could not start (the token's contract never came): nothing was charged."""

        TYPE = "token_purchase.abandoned"
        reason: str

        def record(self, aggregate: Any) -> None:
            aggregate.reason = self.reason

    class PaymentSucceeded(SagaEvent):
        """The card was charged."""

        TYPE = "token_purchase.payment_succeeded"
        FIXED_MOVE = ("running", "mint")
        payment_id: str

        def record(self, aggregate: Any) -> None:
            aggregate.payment_id, aggregate.attempts = self.payment_id, 0

    class PaymentDeclined(SagaEvent):
        """The card was declined: nothing to compensate."""

        TYPE = "token_purchase.payment_declined"
        FIXED_MOVE = ("failed", "done")
        payment_id: str | None
        decline_code: str | None

        def record(self, aggregate: Any) -> None:
            aggregate.payment_id = self.payment_id
            aggregate.reason = f"payment declined ({self.decline_code or 'unknown'})"

    class MintSigned(TransactionSigned):
        """The mint transaction was signed."""

        TYPE = "token_purchase.mint_signed"
        SLOT = "mint_tx"

    class MintConfirmed(SagaEvent):
        """The mint is on chain."""

        TYPE = "token_purchase.mint_confirmed"
        tx_hash: str
        block_number: int

        def record(self, aggregate: Any) -> None:
            aggregate.minted, aggregate.attempts = True, 0

        def legacy_move(self, aggregate: Any) -> Move:
            move: Move = aggregate.after_mint()
            return move

    class Completed(SagaEvent):
        """Holdings, activity and revenue were recorded."""

        TYPE = "token_purchase.completed"
        FIXED_MOVE = ("completed", "done")
        shares: list[dict[str, Any]]

    class CompensationStarted(SagaEvent):
        """A step after payment failed for good: undo what was done."""

        TYPE = "token_purchase.compensation_started"
        reason: str

        def record(self, aggregate: Any) -> None:
            aggregate.reason, aggregate.attempts = self.reason, 0

        def legacy_move(self, aggregate: Any) -> Move:
            move: Move = aggregate.undo_from()
            return move

    class BurnSigned(TransactionSigned):
        """The compensating burn was signed."""

        TYPE = "token_purchase.burn_signed"
        SLOT = "burn_tx"

    class BurnConfirmed(SagaEvent):
        """The minted tokens were burned."""

        TYPE = "token_purchase.burn_confirmed"
        FIXED_MOVE = ("compensating", "refund")
        tx_hash: str

        def record(self, aggregate: Any) -> None:
            aggregate.burned, aggregate.attempts = True, 0

    class Refunded(SagaEvent):
        """The payment was refunded: compensation is complete."""

        TYPE = "token_purchase.refunded"
        FIXED_MOVE = ("compensated", "done")
        refund_id: str

        def record(self, aggregate: Any) -> None:
            aggregate.refund_id = self.refund_id

    class StepFailed(SagaEvent):
        """A step failed transiently; the driver retries it later (a durable timer)."""

        TYPE = "token_purchase.step_failed"
        error: str
        retry_at: str

        def record(self, aggregate: Any) -> None:
            aggregate.attempts += 1

    class Parked(SagaEvent):
        """The saga gave up and waits for an operator (`one sagas retry|resolve`)."""

        TYPE = "token_purchase.parked"
        reason: str

        def record(self, aggregate: Any) -> None:
            aggregate.reason = self.reason

        def legacy_move(self, aggregate: Any) -> Move:
            return "parked", aggregate.step

    class Resumed(SagaEvent):
        """An operator asked to retry a parked saga from the step it stopped at."""

        TYPE = "token_purchase.resumed"

        def record(self, aggregate: Any) -> None:
            aggregate.attempts = 0

        def legacy_move(self, aggregate: Any) -> Move:
            move: Move = aggregate.resumed_at()
            return move

    class Resolved(SagaEvent):
        """An operator settled a parked saga by hand."""

        TYPE = "token_purchase.resolved"
        FIXED_MOVE = ("resolved", "done")
        note: str

        def record(self, aggregate: Any) -> None:
            aggregate.reason = self.note

    @classmethod
    def start(
        cls, *, id: UUID, org_id: str, actor_id: str, buyer_id: str, token_id: str,
        amount: int, usd_cents: int, payment_method: str, wallet: str, contract: str,
    ) -> TokenPurchase:
        """Open a purchase (inputs already validated against the buyer and token), or a reward (no
        price, a `reward:` payment method); without a contract yet, it first waits for the token's
        deployment."""
        if amount <= 0:
            raise ValidationFailed("amount must be greater than 0", "amount")
        if usd_cents <= 0 and not (usd_cents == 0 and payment_method.startswith(REWARD_PREFIX)):
            raise ValidationFailed("usd_amount must be greater than 0", "usd_amount")
        return cls._create(
            cls.Started, id=id, org_id=org_id, actor_id=actor_id, buyer_id=buyer_id,
            token_id=token_id, amount=amount, usd_cents=usd_cents, payment_method=payment_method,
            wallet=wallet, contract=contract, status="running", step="charge" if contract else "contract",
        )

    # ---- the transitions whose target depends on where the saga is ---------------------------

    def after_mint(self) -> Move:
        """A confirmed mint goes on to record, or, if the saga already gave up on it (it landed
        late), to burn before refunding."""
        return ("running", "record") if self.status == "running" else ("compensating", "burn")

    def undo_from(self) -> Move:
        """Compensation burns what was minted, then refunds."""
        return "compensating", "burn" if self.minted else "refund"

    def resumed_at(self) -> Move:
        """A resumed saga goes on with the step it stopped at."""
        return ("compensating" if self.step in ("burn", "refund") else "running"), self.step

    # ---- commands ----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether the driver has work to do."""
        return self.status in ("running", "compensating")

    def _at(self, step: str) -> None:
        if not self.active or self.step != step:
            raise InvalidState(f"saga is {self.status} at step {self.step}, not at {step}", "step")

    def _move(self, event: type[SagaEvent], move: Move, actor_id: str, **data: Any) -> None:
        status, step = move
        self.trigger_event(event, actor_id=actor_id, status=status, step=step, **data)

    def _stay(self, event: type[SagaEvent], actor_id: str, **data: Any) -> None:
        self._move(event, (self.status, self.step), actor_id, **data)

    def contract_found(self, actor_id: str, contract: str) -> None:
        """The token's contract exists: go on to charge."""
        self._at("contract")
        self._move(self.ContractFound, ("running", "charge"), actor_id, contract=contract)

    def abandon(self, actor_id: str, reason: str) -> None:
        """Give up before anything was charged."""
        self._at("contract")
        self._move(self.Abandoned, ("failed", "done"), actor_id, reason=reason)

    @property
    def reward(self) -> bool:
        """Tokens earned, not bought (e.g. for chatting with a clone): nothing is charged or refunded,
        and the holdings record `token_transacted` (earned) instead of a purchase and revenue."""
        return self.usd_cents == 0 and self.payment_method.startswith(REWARD_PREFIX)

    def payment_succeeded(self, actor_id: str, payment_id: str) -> None:
        """Record the charge."""
        self._at("charge")
        self._move(self.PaymentSucceeded, ("running", "mint"), actor_id, payment_id=payment_id)

    def payment_declined(self, actor_id: str, payment_id: str | None, code: str | None) -> None:
        """Record a decline: the saga fails with nothing to undo."""
        self._at("charge")
        self._move(self.PaymentDeclined, ("failed", "done"), actor_id, payment_id=payment_id,
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
        self._stay(event, actor_id, tx_hash=tx_hash, raw=raw, nonce=nonce)

    def mint_confirmed(self, actor_id: str, tx_hash: str, block_number: int) -> None:
        """The recorded mint was mined: go on recording, or, if already compensating (the mint
        landed after the saga gave up on it), burn it before refunding."""
        if not (self.status == "compensating" and self.step == "refund"):
            self._at("mint")
        if self.mint_tx is None or self.mint_tx["tx_hash"] != tx_hash:
            raise InvalidState("confirmation for an unknown mint transaction", "tx_hash")
        self._move(self.MintConfirmed, self.after_mint(), actor_id, tx_hash=tx_hash,
                   block_number=block_number)

    def complete(self, actor_id: str, shares: list[Share]) -> None:
        """Holdings and revenue recorded."""
        self._at("record")
        self._move(self.Completed, ("completed", "done"), actor_id,
                   shares=[s.__dict__ for s in shares])

    def compensate(self, actor_id: str, reason: str) -> None:
        """Give up going forward after the payment: burn what was minted, refund."""
        if self.status != "running" or self.payment_id is None:
            raise InvalidState("only a running saga that has charged can compensate", "status")
        self._move(self.CompensationStarted, self.undo_from(), actor_id, reason=reason)

    def burn_signed(self, actor_id: str, tx_hash: str, raw: str, nonce: int) -> None:
        """Remember the signed burn before broadcasting it."""
        self._record_transaction("burn", self.BurnSigned, actor_id, tx_hash, raw, nonce)

    def burn_confirmed(self, actor_id: str, tx_hash: str) -> None:
        """The compensating burn is on chain."""
        self._at("burn")
        self._move(self.BurnConfirmed, ("compensating", "refund"), actor_id, tx_hash=tx_hash)

    def refunded(self, actor_id: str, refund_id: str) -> None:
        """The refund went through: compensated."""
        self._at("refund")
        self._move(self.Refunded, ("compensated", "done"), actor_id, refund_id=refund_id)

    def step_failed(self, actor_id: str, error: str, retry_at: str) -> None:
        """A transient failure of the current step; retried at `retry_at`."""
        if not self.active:
            raise InvalidState(f"saga is {self.status}", "status")
        self._stay(self.StepFailed, actor_id, error=error, retry_at=retry_at)

    def park(self, actor_id: str, reason: str) -> None:
        """Stop and wait for an operator."""
        if not self.active:
            raise InvalidState(f"saga is {self.status}", "status")
        self._move(self.Parked, ("parked", self.step), actor_id, reason=reason)

    def resume(self, actor_id: str) -> None:
        """Operator: retry a parked saga."""
        if self.status != "parked":
            raise InvalidState("only a parked saga can be retried", "status")
        self._move(self.Resumed, self.resumed_at(), actor_id)

    def resolve(self, actor_id: str, note: str) -> None:
        """Operator: settle a parked saga by hand."""
        if self.status != "parked":
            raise InvalidState("only a parked saga can be resolved", "status")
        self._move(self.Resolved, ("resolved", "done"), actor_id, note=note)
