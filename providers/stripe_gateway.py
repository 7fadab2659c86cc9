"""The Stripe adapter: ``PaymentGateway`` on the official ``stripe`` SDK 16.x (``StripeClient``).

The same class talks to real Stripe, to Stripe's ``stripe-mock`` (``api_base=...``) and to the
in-process sandbox (``http_client=StripeSandboxClient()``, see ``providers.stripe_sandbox``).

A charge is one ``POST /v1/payment_intents`` with ``confirm=true`` and
``automatic_payment_methods={enabled: true, allow_redirects: never}``: no ``return_url`` is needed, and
it is valid on every API version (SDK 16 pins 2026-10-28.endive, where ``payment_method_types`` is no
longer writable). A card that needs 3DS surfaces as ``status == "requires_action"``. Every mutating
call sends the caller's idempotency key, so a retry after a timeout or a 5xx never charges or refunds
twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import stripe

from providers.payments import Payment, PaymentError, PaymentUnavailable, Refund

__all__ = ["StripeGateway", "payment_from_intent", "refund_from_object"]

_INTENT_STATUS = {
    "succeeded": "succeeded",
    "processing": "processing",
    "requires_action": "requires_action",
    "requires_capture": "processing",  # authorised, not captured yet (we never use manual capture)
    "canceled": "canceled",
    # after a confirmation attempt, these mean the attempt failed (Stripe's "declined" state)
    "requires_payment_method": "declined",
    "requires_confirmation": "declined",
}
_REFUND_STATUS = {
    "succeeded": "succeeded",
    "pending": "pending",
    "requires_action": "pending",
    "failed": "failed",
    "canceled": "failed",
}


def _plain(obj: Any) -> Any:
    """A StripeObject (or anything else) as plain JSON-like data."""
    return obj.to_dict() if isinstance(obj, stripe.StripeObject) else obj


def payment_from_intent(intent: Mapping[str, Any]) -> Payment:
    """Map a PaymentIntent (dict form) to a ``Payment``."""
    status = _INTENT_STATUS.get(str(intent.get("status")), "processing")
    error = intent.get("last_payment_error") or {}
    decline_code = (error.get("decline_code") or error.get("code")) if status == "declined" else None
    charge = intent.get("latest_charge")
    refunded = int(charge.get("amount_refunded") or 0) if isinstance(charge, Mapping) else 0
    return Payment(
        id=str(intent["id"]),
        status=status,
        amount_cents=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or ""),
        decline_code=decline_code,
        refunded_cents=refunded,
    )


def refund_from_object(refund: Mapping[str, Any], payment_id: str) -> Refund:
    """Map a Refund (dict form) to a ``Refund``."""
    intent = refund.get("payment_intent")
    if isinstance(intent, Mapping):
        intent = intent.get("id")
    return Refund(
        id=str(refund["id"]),
        payment_id=str(intent or payment_id),
        amount_cents=int(refund.get("amount") or 0),
        status=_REFUND_STATUS.get(str(refund.get("status")), "pending"),
    )


def _translate(err: stripe.StripeError) -> Exception:
    """A permanent ``PaymentError`` or a transient ``PaymentUnavailable`` for an SDK error."""
    message = err.user_message or str(err)
    if isinstance(err, stripe.APIConnectionError | stripe.RateLimitError):
        return PaymentUnavailable(message)
    status = err.http_status
    if (status is None and isinstance(err, stripe.APIError)) or (
        status is not None and (status >= 500 or status == 409)
    ):
        return PaymentUnavailable(message)  # 5xx, a concurrent request with the same key (409), no response
    code = "idempotency_error" if isinstance(err, stripe.IdempotencyError) else err.code
    return PaymentError(message, code=code, http_status=status)


class StripeGateway:
    """``PaymentGateway`` over ``stripe.StripeClient``.

    ``api_base`` points the SDK elsewhere (stripe-mock); ``http_client`` replaces its transport (the
    sandbox). ``max_network_retries`` defaults to 0: the saga owns retries (durable timers), and a
    transient failure surfaces at once as ``PaymentUnavailable``.
    """

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        http_client: stripe.HTTPClient | None = None,
        max_network_retries: int = 0,
        stripe_version: str | None = None,
    ) -> None:
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            http_client=http_client,
            max_network_retries=max_network_retries,
            stripe_version=stripe_version,
        )

    def charge(
        self,
        *,
        amount_cents: int,
        currency: str,
        payment_method: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> Payment:
        """Create and confirm a PaymentIntent; a card decline comes back as ``status == "declined"``."""
        if not idempotency_key:
            raise ValueError("charge needs an idempotency key")
        try:
            intent = self.client.v1.payment_intents.create(
                params={
                    "amount": amount_cents,
                    "currency": currency.lower(),
                    "payment_method": payment_method,
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                    "confirm": True,
                    "metadata": {str(k): str(v) for k, v in metadata.items()},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.CardError as err:
            return self._declined(err)
        except stripe.StripeError as err:
            raise _translate(err) from err
        return payment_from_intent(_plain(intent))

    def refund(self, *, payment_id: str, idempotency_key: str, amount_cents: int | None = None) -> Refund:
        """Refund a PaymentIntent, fully (``amount_cents=None``) or partly."""
        if not idempotency_key:
            raise ValueError("refund needs an idempotency key")
        params: stripe.params.RefundCreateParams = {"payment_intent": payment_id}
        if amount_cents is not None:
            params["amount"] = amount_cents
        try:
            refund = self.client.v1.refunds.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as err:
            raise _translate(err) from err
        return refund_from_object(_plain(refund), payment_id)

    def retrieve(self, payment_id: str) -> Payment:
        """The PaymentIntent's state, with its latest charge expanded for the refunded amount."""
        try:
            intent = self.client.v1.payment_intents.retrieve(payment_id, params={"expand": ["latest_charge"]})
        except stripe.StripeError as err:
            raise _translate(err) from err
        return payment_from_intent(_plain(intent))

    @staticmethod
    def _declined(err: stripe.CardError) -> Payment:
        """The declined PaymentIntent carried in a 402 card_error (Stripe attaches it to the error)."""
        body = err.json_body if isinstance(err.json_body, dict) else {}
        error = body.get("error") or {}
        intent = error.get("payment_intent")
        if not isinstance(intent, dict) or "id" not in intent:
            raise PaymentError(
                err.user_message or str(err), code=err.code, http_status=err.http_status
            ) from err
        payment = payment_from_intent(intent)
        return Payment(
            id=payment.id,
            status="declined",
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            decline_code=error.get("decline_code") or err.code or payment.decline_code,
        )
