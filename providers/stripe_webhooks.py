"""Stripe webhooks: verify the ``Stripe-Signature`` header, sign payloads (tests, sandbox), and read
the payment status an event carries.

Deliveries are at-least-once and unordered; the saga must treat the status returned here as a hint
to reconcile (e.g. ``retrieve`` the payment), never as a command to apply blindly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import stripe

__all__ = [
    "WebhookPayloadError",
    "WebhookSignatureError",
    "encode_event",
    "payment_status_from_event",
    "sign_webhook",
    "verify_webhook",
]

_INTENT_EVENTS = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "declined",
    "payment_intent.processing": "processing",
    "payment_intent.requires_action": "requires_action",
    "payment_intent.canceled": "canceled",
}


class WebhookSignatureError(ValueError):
    """The ``Stripe-Signature`` header is missing, malformed, wrong, or older than the tolerance."""


class WebhookPayloadError(WebhookSignatureError):
    """The (correctly signed) body is not a Stripe event (a subclass, so one ``except`` rejects both)."""


def verify_webhook(
    payload: bytes, signature_header: str, secret: str, tolerance: int = 300
) -> dict[str, Any]:
    """The event in ``payload`` once its signature checks out (``stripe.Webhook.construct_event``)."""
    try:
        event = stripe.Webhook.construct_event(payload, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError as err:
        raise WebhookSignatureError(f"invalid Stripe webhook signature: {err.user_message or err}") from err
    except ValueError as err:  # json.JSONDecodeError, or a thin (v2) event notification
        raise WebhookPayloadError(f"webhook payload is not a Stripe event: {err}") from err
    data: dict[str, Any] = event.to_dict()
    if not isinstance(data.get("type"), str) or not isinstance(data.get("data"), Mapping):
        raise WebhookPayloadError("webhook payload is not a Stripe event: no type or data")
    return data


def sign_webhook(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A valid ``Stripe-Signature`` header for ``payload`` (``t=<ts>,v1=<hmac-sha256>``)."""
    header: str = stripe.WebhookSignature.generate_signature_header(
        payload.decode("utf-8"), secret, timestamp
    )
    return header


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The JSON body Stripe would POST for ``event``."""
    return json.dumps(event, separators=(",", ":")).encode()


def payment_status_from_event(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(payment_intent_id, status)`` for the events that move a payment, else None.

    ``payment_intent.succeeded`` → "succeeded", ``payment_intent.payment_failed`` → "declined"
    (also processing / requires_action / canceled); ``charge.refunded`` → "refunded" when the charge
    is fully refunded, "partially_refunded" otherwise (Stripe sends it for partial refunds too).
    """
    kind = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(kind, str) or not isinstance(obj, Mapping):
        return None
    if kind in _INTENT_EVENTS:
        intent_id = obj.get("id")
        return (intent_id, _INTENT_EVENTS[kind]) if isinstance(intent_id, str) and intent_id else None
    if kind == "charge.refunded":
        intent = obj.get("payment_intent")
        if isinstance(intent, Mapping):
            intent = intent.get("id")
        if not isinstance(intent, str) or not intent:
            return None
        return intent, "refunded" if obj.get("refunded") else "partially_refunded"
    return None
