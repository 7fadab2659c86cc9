"""The token purchase driver: performs each saga step's external call and records the outcome.

For each active saga it loads the saga from the log (the source of truth), performs the call its
current step needs, and appends the outcome through the command bus with the version it acted on
(a second driver acting on the same saga loses with a version conflict instead of acting twice).

Crash safety, step by step:
- contract: a purchase of a token whose contract is still being deployed waits on a durable
  timer (backing off up to `max_backoff_s`) until the token has one, and is abandoned, with
  nothing charged, after `contract_wait_s`.
- charge / refund: the idempotency key is `<saga id>:<step>`, so a retry after a crash returns the
  same PaymentIntent / Refund instead of charging or refunding twice.
- mint / burn: the transaction is signed locally with an explicit nonce and recorded in the
  saga's stream (hash + raw) *before* it is broadcast; afterwards the driver only ever looks up
  the receipt by that hash and re-broadcasts the same raw transaction, so it never mints twice.
- transient failures become `StepFailed` events with a retry time (a durable timer); after
  `max_attempts` a forward step compensates and a compensation step parks for an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

from commands.bus import CommandBus
from commands.handlers import Context
from commands.processes import AdvanceProcess
from commands.purchases import Decision, abandoned, declined, record_holdings, refunded
from domain.errors import DomainError
from domain.things import Thing
from domain.token_purchase import TOKEN_DECIMALS, TokenPurchase, revenue_split
from eventlog.store import EventLog
from infra import tracing
from infra.tracing import Traced
from providers.chain import ChainError, ChainUnavailable, SignedTx, StaleNonce, TokenLedger, TxReceipt
from providers.payments import PaymentError, PaymentGateway, PaymentUnavailable
from sagas.signing import Signer

log = logging.getLogger(__name__)
Owners = Callable[[str, str], dict[str, float]]
"""(organization id, token id) → the token's owners and their revenue shares."""
Step = tuple[TokenPurchase, "Decision | None"]
"""The saga a step's decision is based on (its version guards the append), and the decision."""


class Transient(Exception):
    """A step could not finish now; retry later."""


@dataclass(frozen=True)
class DriverPolicy:
    """Retry and timeout rules."""

    max_attempts: int = 5
    base_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    confirm_timeout_s: float = 120.0
    contract_wait_s: float = 600.0

    def retry_at(self, attempts: int, now: datetime) -> datetime:
        """Exponential backoff for the next attempt."""
        delay = min(self.base_backoff_s * 2**attempts, self.max_backoff_s)
        return now + timedelta(seconds=delay)


class PurchaseDriver:
    """Advances token purchase sagas one step at a time."""

    def __init__(
        self, bus: CommandBus, event_log: EventLog, payments: PaymentGateway, ledger: TokenLedger,
        owners_of: Owners, policy: DriverPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC), signer: Signer | None = None,
    ) -> None:
        self.bus = bus
        self.event_log = event_log
        self.payments = cast(PaymentGateway, Traced(payments, "payments"))  # each call a span
        self.ledger = cast(TokenLedger, Traced(ledger, "chain"))
        self.owners_of = owners_of
        self.policy = policy or DriverPolicy()
        self.clock = clock
        self.signer = signer or Signer(ledger)

    def advance(self, saga_id: UUID) -> str:
        """Run the saga's current step once; return the saga's status afterwards. The step is a
        span under the trace of the saga's last event (the one that woke it)."""
        saga: TokenPurchase = self.event_log.repository.get(saga_id)
        if not saga.active:
            return saga.status
        with tracing.tracer().start_as_current_span(
                f"saga {saga.step}", context=tracing.context_from(saga.traceparent),
                attributes={"saga_id": str(saga_id), "version": saga.version}):
            return self._advance(saga)

    def _advance(self, saga: TokenPurchase) -> str:
        saga_id = saga.id
        step = {"contract": self._contract, "charge": self._charge, "mint": self._mint,
                "record": self._record, "burn": self._burn, "refund": self._refund}[saga.step]
        try:
            based_on, decision = step(saga)
        except Transient as error:
            current: TokenPurchase = self.event_log.repository.get(saga_id)  # may hold a new tx
            based_on, decision = current, self._on_transient(current, str(error))
        if decision is not None:
            self._apply(based_on, decision)
        return str(self.event_log.repository.get(saga_id).status)

    # ---- steps -------------------------------------------------------------------------------

    def _contract(self, saga: TokenPurchase) -> Step:
        token: Thing = self.event_log.repository.get(UUID(saga.token_id))
        address = str(token.properties.get("contractAddress") or "")
        if address:
            return saga, lambda s, _, ctx: s.contract_found(ctx.actor_id, address)
        waited = (self.clock() - saga.created_on).total_seconds()
        if token.deleted or waited > self.policy.contract_wait_s:
            reason = ("the token was deleted" if token.deleted else
                      f"the token's contract was not deployed within {self.policy.contract_wait_s:.0f}s")
            return saga, abandoned(reason)
        raise Transient("waiting for the token's contract to be deployed")

    def _charge(self, saga: TokenPurchase) -> Step:
        if saga.reward:  # earned, not bought: nothing to charge
            return saga, lambda s, _, ctx: s.payment_succeeded(ctx.actor_id, s.payment_method)
        return saga, self._charge_decision(saga)

    def _charge_decision(self, saga: TokenPurchase) -> Decision | None:
        try:
            payment = self.payments.charge(
                amount_cents=saga.usd_cents, currency="usd", payment_method=saga.payment_method,
                idempotency_key=f"{saga.id}:charge",
                metadata={"saga_id": str(saga.id), "token_id": saga.token_id},
            )
        except PaymentUnavailable as error:
            raise Transient(f"payment provider unavailable: {error}") from error
        except PaymentError as error:
            return declined(None, error.code or "payment_error")
        if payment.status == "succeeded":
            return lambda s, _, ctx: s.payment_succeeded(ctx.actor_id, payment.id)
        if payment.status in ("declined", "canceled"):
            return declined(payment.id, payment.decline_code)
        raise Transient(f"payment {payment.id} is {payment.status}")

    def _mint(self, saga: TokenPurchase) -> Step:
        if saga.mint_tx is None:
            if not self._contract_exists(saga.contract):
                return saga, _compensate(f"the token's contract {saga.contract} is missing on chain")
            amount = saga.amount * 10**TOKEN_DECIMALS
            try:
                saga = self._sign_record_broadcast(
                    saga, lambda: self.ledger.sign_mint(contract=saga.contract,
                                                        to=self._wallet(saga), amount=amount),
                    TokenPurchase.mint_signed)
            except ChainError as error:
                return saga, _compensate(f"mint refused: {error}")
        try:
            tx = self._settle(saga.mint_tx, saga)
        except StaleNonce as error:
            return saga, _compensate(f"mint transaction can never be mined: {error}")
        if tx.transferred(saga.contract):
            return saga, lambda s, _, ctx: s.mint_confirmed(ctx.actor_id, tx.tx_hash, tx.block_number)
        if tx.succeeded:
            return saga, _compensate(f"mint transaction {tx.tx_hash} minted nothing: no token"
                                     f" contract at {saga.contract}")
        return saga, _compensate(f"mint transaction {tx.tx_hash} reverted")

    def _record(self, saga: TokenPurchase) -> Step:
        if saga.reward:
            return saga, record_holdings([])
        try:
            owners = self.owners_of(saga.org_id, saga.token_id)
        except Exception as error:
            raise Transient(f"cannot read the token's owners: {error}") from error
        return saga, record_holdings(revenue_split(saga.usd_cents, owners))

    def _burn(self, saga: TokenPurchase) -> Step:
        if saga.burn_tx is None:
            amount = saga.amount * 10**TOKEN_DECIMALS
            try:
                saga = self._sign_record_broadcast(
                    saga, lambda: self.ledger.sign_burn(contract=saga.contract,
                                                        holder=self._wallet(saga), amount=amount),
                    TokenPurchase.burn_signed)
            except ChainError as error:
                raise Transient(f"cannot sign burn: {error}") from error
        try:
            tx = self._settle(saga.burn_tx, saga)
        except StaleNonce as error:
            return saga, _park(f"burn transaction is stale: {error}")
        if tx.transferred(saga.contract):
            return saga, lambda s, _, ctx: s.burn_confirmed(ctx.actor_id, tx.tx_hash)
        if tx.succeeded:
            return saga, _park(f"burn transaction {tx.tx_hash} burned nothing: no token contract"
                               f" at {saga.contract}")
        raise Transient(f"burn transaction {tx.tx_hash} reverted")

    def _refund(self, saga: TokenPurchase) -> Step:
        assert saga.payment_id is not None
        late_mint = self._late_mint(saga)
        if late_mint is not None:
            return saga, late_mint
        if saga.reward:  # nothing was charged
            return saga, refunded(saga.payment_method)
        try:
            refund = self.payments.refund(payment_id=saga.payment_id,
                                          idempotency_key=f"{saga.id}:refund")
        except (PaymentUnavailable, PaymentError) as error:
            raise Transient(f"refund failed: {error}") from error
        if refund.status == "failed":
            raise Transient(f"refund {refund.id} failed")
        return saga, refunded(refund.id)

    # ---- helpers -----------------------------------------------------------------------------

    def _late_mint(self, saga: TokenPurchase) -> Decision | None:
        """A recorded mint that landed after the saga gave up on it must be burned first."""
        if saga.mint_tx is None or saga.minted:
            return None
        try:
            receipt = self.ledger.receipt(saga.mint_tx["tx_hash"])
        except ChainUnavailable as error:
            raise Transient(f"chain unavailable: {error}") from error
        if receipt is None or not receipt.transferred(saga.contract):
            return None
        return lambda s, _, ctx: s.mint_confirmed(ctx.actor_id, receipt.tx_hash, receipt.block_number)

    def _contract_exists(self, contract: str) -> bool:
        try:
            return self.ledger.has_code(contract)
        except ChainUnavailable as error:
            raise Transient(f"chain unavailable: {error}") from error

    def _wallet(self, saga: TokenPurchase) -> str:
        return saga.wallet or self.ledger.custodial_address(saga.buyer_id)

    def _sign_record_broadcast(
        self, saga: TokenPurchase, sign: Callable[[], SignedTx],
        record: Callable[[TokenPurchase, str, str, str, int], None],
    ) -> TokenPurchase:
        """Sign, append the signed transaction to the saga, then broadcast; return the new saga."""
        def recorded(signed: SignedTx) -> None:
            self._apply(saga, lambda s, _, ctx: record(s, ctx.actor_id, signed.tx_hash, signed.raw,
                                                       signed.nonce))

        try:
            self.signer.sign_record_broadcast(sign, recorded)
        except ChainUnavailable as error:
            raise Transient(f"chain unavailable: {error}") from error
        reloaded: TokenPurchase = self.event_log.repository.get(saga.id)
        return reloaded

    def _settle(self, recorded: dict[str, Any] | None, saga: TokenPurchase) -> TxReceipt:
        """The receipt of a recorded transaction, re-broadcasting it while it is unknown.

        Raises Transient while it is not mined (a StepFailed brings the driver back later).
        """
        assert recorded is not None
        try:
            receipt = self.ledger.receipt(recorded["tx_hash"])
            if receipt is None:
                self.ledger.broadcast(SignedTx(recorded["tx_hash"], recorded["raw"],
                                               recorded["nonce"], ""))
                receipt = self.ledger.receipt(recorded["tx_hash"])
        except ChainUnavailable as error:
            raise Transient(f"chain unavailable: {error}") from error
        if receipt is not None:
            return receipt
        signed_at = datetime.fromisoformat(recorded["signed_at"])
        if (self.clock() - signed_at).total_seconds() > self.policy.confirm_timeout_s:
            raise Transient(f"transaction {recorded['tx_hash']} not mined in time")
        raise Transient(f"transaction {recorded['tx_hash']} not mined yet")

    def _on_transient(self, saga: TokenPurchase, error: str) -> Decision:
        if saga.attempts + 1 < self.policy.max_attempts or saga.step == "contract":
            retry_at = self.policy.retry_at(saga.attempts, self.clock()).isoformat()
            return lambda s, _, ctx: s.step_failed(ctx.actor_id, error, retry_at)
        if saga.status == "running" and saga.payment_id is not None:
            return _compensate(f"gave up at {saga.step}: {error}")
        return _park(f"gave up at {saga.step}: {error}")

    def _apply(self, saga: TokenPurchase, decision: Decision) -> None:
        """Advance the saga: its events belong to the purchase's request and are caused by the
        saga's last event (`<saga id>@<version>`)."""
        cause = Context(correlation_id=saga.correlation_id, causation_id=f"{saga.id}@{saga.version}")
        self.bus.execute(AdvanceProcess(saga.id, saga.version, decision), cause)


def _park(reason: str) -> Decision:
    return lambda s, _, ctx: s.park(ctx.actor_id, reason)


def _compensate(reason: str) -> Decision:
    return lambda s, _, ctx: s.compensate(ctx.actor_id, reason)


def is_conflict(error: BaseException) -> bool:
    """A concurrent driver (or webhook) moved the saga first: nothing to do."""
    return isinstance(error, DomainError) and error.code == "version_conflict"
