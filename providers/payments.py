"""The payment gateway interface the token-purchase saga uses, and its value types.

A declined card is not an exception: it is a ``Payment`` with ``status == "declined"``. Exceptions
split into permanent refusals (``PaymentError``: do not retry) and transient failures
(``PaymentUnavailable``: retry with the same idempotency key, which makes the retry safe).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

__all__ = [
    "PAYMENT_STATUSES",
    "REFUND_STATUSES",
    "Payment",
    "PaymentError",
    "PaymentGateway",
    "PaymentUnavailable",
    "Refund",
]

PAYMENT_STATUSES: Final = frozenset({"succeeded", "declined", "processing", "requires_action", "canceled"})
REFUND_STATUSES: Final = frozenset({"succeeded", "pending", "failed"})


@dataclass(frozen=True)
class Payment:
    """A payment (a Stripe PaymentIntent) as the saga sees it."""

    id: str
    status: str  # one of PAYMENT_STATUSES
    amount_cents: int
    currency: str
    decline_code: str | None = None
    refunded_cents: int = 0

    @property
    def captured(self) -> bool:
        """True when the money was taken (and may need refunding on compensation)."""
        return self.status == "succeeded"


@dataclass(frozen=True)
class Refund:
    """A refund of (part of) a payment."""

    id: str
    payment_id: str
    amount_cents: int
    status: str  # one of REFUND_STATUSES


class PaymentError(Exception):
    """Permanent refusal (bad request, idempotency key reused with other parameters, auth).

    A declined card is NOT an error: it is ``Payment.status == "declined"``.
    """

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class PaymentUnavailable(Exception):
    """Transient (network, 5xx, rate limit, conflict): safe to retry with the same idempotency key."""


@runtime_checkable
class PaymentGateway(Protocol):
    """What the saga needs from a payment provider. Every mutating call takes an idempotency key."""

    def charge(
        self,
        *,
        amount_cents: int,
        currency: str,
        payment_method: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> Payment:
        """Create and confirm a payment; a decline is returned, not raised."""
        ...

    def refund(self, *, payment_id: str, idempotency_key: str, amount_cents: int | None = None) -> Refund:
        """Refund ``amount_cents`` (default: everything not yet refunded) of a succeeded payment."""
        ...

    def retrieve(self, payment_id: str) -> Payment:
        """The payment's current state, including how much has been refunded."""
        ...
