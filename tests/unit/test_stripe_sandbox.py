"""The real ``StripeGateway`` and the real ``stripe`` SDK over the in-process sandbox HTTP client.

Only the lowest HTTP layer is faked (``StripeSandboxClient``), so SDK behaviour such as raising
``CardError`` on a 402 and retrying with the same idempotency key is exercised for real.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe

from providers.payments import Payment, PaymentError, PaymentGateway, PaymentUnavailable
from providers.stripe_gateway import StripeGateway
from providers.stripe_sandbox import SANDBOX_API_KEY, sandbox_gateway
from providers.stripe_webhooks import (
    WebhookPayloadError,
    WebhookSignatureError,
    encode_event,
    payment_status_from_event,
    sign_webhook,
    verify_webhook,
)
from tests.support.stripe_sandbox_hooks import ObservedSandbox

SECRET = "whsec_test_secret"


@pytest.fixture
def sandbox() -> ObservedSandbox:
    return ObservedSandbox()


@pytest.fixture
def gateway(sandbox: ObservedSandbox) -> StripeGateway:
    return sandbox_gateway(sandbox)


def charge(gateway: StripeGateway, key: str, pm: str = "pm_card_visa", amount: int = 1000) -> Payment:
    return gateway.charge(
        amount_cents=amount, currency="usd", payment_method=pm, idempotency_key=key, metadata={"saga_id": key}
    )


# ------------------------------------------------------------------------------------------- charges


def test_visa_succeeds(gateway: StripeGateway, sandbox: ObservedSandbox) -> None:
    payment = charge(gateway, "s1:charge", amount=4200)

    assert isinstance(gateway, PaymentGateway)
    assert payment.id.startswith("pi_") and payment.status == "succeeded" and payment.captured
    assert (payment.amount_cents, payment.currency, payment.decline_code) == (4200, "usd", None)
    assert gateway.retrieve(payment.id) == payment
    [intent] = sandbox.payment_intents()
    assert intent["metadata"] == {"saga_id": "s1:charge"}
    assert sandbox.captured_cents() == 4200


@pytest.mark.parametrize(
    ("pm", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_declined_card_is_a_declined_payment_not_an_exception(
    gateway: StripeGateway, sandbox: ObservedSandbox, pm: str, decline_code: str
) -> None:
    payment = charge(gateway, f"decline:{pm}", pm=pm)

    assert payment.status == "declined" and not payment.captured
    assert payment.decline_code == decline_code
    assert payment.id.startswith("pi_") and payment.amount_cents == 1000
    assert sandbox.requests[-1].status == 402  # the SDK saw a real card_error, exactly like Stripe's
    assert gateway.retrieve(payment.id).status == "declined"
    assert gateway.retrieve(payment.id).decline_code == decline_code
    assert sandbox.captured_cents() == 0


def test_the_sdk_raises_card_error_on_the_sandbox_decline(sandbox: ObservedSandbox) -> None:
    client = stripe.StripeClient(SANDBOX_API_KEY, http_client=sandbox)
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_intents.create(
            params={
                "amount": 500,
                "currency": "usd",
                "payment_method": "pm_card_chargeDeclined",
                "confirm": True,
                "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            }
        )
    assert info.value.code == "card_declined"
    assert info.value.error is not None and info.value.error.decline_code == "generic_decline"


def test_authentication_required_card(gateway: StripeGateway) -> None:
    assert charge(gateway, "3ds", pm="pm_card_authenticationRequired").status == "requires_action"


def test_unknown_payment_method_and_bad_amounts_are_permanent_errors(gateway: StripeGateway) -> None:
    with pytest.raises(PaymentError) as info:
        charge(gateway, "k1", pm="pm_card_nope")
    assert info.value.code == "resource_missing" and info.value.http_status == 400
    with pytest.raises(PaymentError) as info:
        charge(gateway, "k2", amount=10)  # below Stripe's USD minimum of 50 cents
    assert info.value.code == "amount_too_small"


def test_sandbox_rejects_what_stripe_rejects(sandbox: ObservedSandbox) -> None:
    client = stripe.StripeClient(SANDBOX_API_KEY, http_client=sandbox)
    base = {"amount": 500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}

    def create(**extra: Any) -> None:
        params: Any = {**base, **extra}  # deliberately outside the SDK's typed parameters
        client.v1.payment_intents.create(params=params)

    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: bogus"):
        create(bogus="1")
    with pytest.raises(stripe.InvalidRequestError, match="return_url"):
        create()  # automatic payment methods may redirect: Stripe wants a return_url
    with pytest.raises(stripe.InvalidRequestError) as info:
        create(payment_method_types=["card"])  # not writable on the SDK's pinned API version
    assert info.value.code == "payment_method_types_no_longer_supported"
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_live_nope", http_client=sandbox).v1.payment_intents.retrieve("pi_x")
    assert sandbox.payment_intents() == []


# ------------------------------------------------------------------------------------------- refunds


def test_partial_then_full_refund(gateway: StripeGateway, sandbox: ObservedSandbox) -> None:
    payment = charge(gateway, "r:charge", amount=1000)

    partial = gateway.refund(payment_id=payment.id, idempotency_key="r:refund:1", amount_cents=300)
    assert (partial.payment_id, partial.amount_cents, partial.status) == (payment.id, 300, "succeeded")
    assert gateway.retrieve(payment.id).refunded_cents == 300

    rest = gateway.refund(
        payment_id=payment.id, idempotency_key="r:refund:2"
    )  # amount omitted: all that's left
    assert rest.amount_cents == 700 and rest.id != partial.id
    assert gateway.retrieve(payment.id).refunded_cents == 1000
    assert sandbox.captured_cents() == 0

    with pytest.raises(PaymentError) as info:
        gateway.refund(payment_id=payment.id, idempotency_key="r:refund:3")
    assert info.value.code == "charge_already_refunded"


def test_refunding_more_than_remains_is_refused(gateway: StripeGateway) -> None:
    payment = charge(gateway, "over:charge", amount=1000)
    gateway.refund(payment_id=payment.id, idempotency_key="over:refund:1", amount_cents=600)

    with pytest.raises(PaymentError) as info:
        gateway.refund(payment_id=payment.id, idempotency_key="over:refund:2", amount_cents=500)
    assert info.value.code == "amount_too_large" and info.value.http_status == 400
    assert gateway.retrieve(payment.id).refunded_cents == 600


def test_refunding_a_declined_or_unknown_payment_is_refused(gateway: StripeGateway) -> None:
    declined = charge(gateway, "d:charge", pm="pm_card_chargeDeclined")
    with pytest.raises(PaymentError):
        gateway.refund(payment_id=declined.id, idempotency_key="d:refund")
    with pytest.raises(PaymentError) as info:
        gateway.refund(payment_id="pi_missing", idempotency_key="m:refund")
    assert info.value.code == "resource_missing"
    with pytest.raises(PaymentError):
        gateway.retrieve("pi_missing")


# --------------------------------------------------------------------------------------- idempotency


def test_idempotent_replay_returns_the_same_payment_and_charges_once(
    gateway: StripeGateway, sandbox: ObservedSandbox
) -> None:
    first = charge(gateway, "idem:charge")
    again = charge(gateway, "idem:charge")

    assert again == first
    assert len(sandbox.payment_intents()) == 1 and sandbox.captured_cents() == 1000
    assert [r.replayed for r in sandbox.requests] == [False, True]


def test_idempotent_replay_of_a_decline_and_of_a_refund(
    gateway: StripeGateway, sandbox: ObservedSandbox
) -> None:
    declined = charge(gateway, "idem:decline", pm="pm_card_chargeDeclined")
    assert charge(gateway, "idem:decline", pm="pm_card_chargeDeclined") == declined

    payment = charge(gateway, "idem:paid")
    refund = gateway.refund(payment_id=payment.id, idempotency_key="idem:refund", amount_cents=400)
    assert gateway.refund(payment_id=payment.id, idempotency_key="idem:refund", amount_cents=400) == refund
    assert len(sandbox.refunds()) == 1 and gateway.retrieve(payment.id).refunded_cents == 400


def test_same_key_with_different_parameters_is_a_payment_error(
    gateway: StripeGateway, sandbox: ObservedSandbox
) -> None:
    charge(gateway, "reuse:charge", amount=1000)
    with pytest.raises(PaymentError) as info:
        charge(gateway, "reuse:charge", amount=2000)
    assert info.value.code == "idempotency_error"
    assert len(sandbox.payment_intents()) == 1


# ------------------------------------------------------------------------------------ fault injection


def test_injected_500s_are_transient_and_the_retry_charges_once(
    gateway: StripeGateway, sandbox: ObservedSandbox
) -> None:
    sandbox.fail_next(2, status=500)
    for _ in range(2):
        with pytest.raises(PaymentUnavailable):
            charge(gateway, "outage:charge")
    assert sandbox.payment_intents() == []

    payment = charge(gateway, "outage:charge")
    assert payment.status == "succeeded"
    assert len(sandbox.payment_intents()) == 1 and sandbox.captured_cents() == 1000


@pytest.mark.parametrize("status", [None, 500, 503])
def test_lost_response_after_the_charge_went_through(
    gateway: StripeGateway, sandbox: ObservedSandbox, status: int | None
) -> None:
    sandbox.fail_next(1, status=status, after_processing=True)  # Stripe charged, the reply was lost
    with pytest.raises(PaymentUnavailable):
        charge(gateway, "lost:charge")
    assert len(sandbox.payment_intents()) == 1

    payment = charge(gateway, "lost:charge")  # same key: the stored result, not a second charge
    assert payment.status == "succeeded" and payment.id == sandbox.payment_intents()[0]["id"]
    assert sandbox.requests[-1].replayed and sandbox.captured_cents() == 1000


def test_rate_limit_is_transient_and_faults_can_target_one_endpoint(
    gateway: StripeGateway, sandbox: ObservedSandbox
) -> None:
    payment = charge(gateway, "rl:charge")
    sandbox.fail_next(1, status=429, match="POST /v1/refunds")
    assert gateway.retrieve(payment.id).status == "succeeded"  # not matched: unaffected
    with pytest.raises(PaymentUnavailable):
        gateway.refund(payment_id=payment.id, idempotency_key="rl:refund")
    assert gateway.refund(payment_id=payment.id, idempotency_key="rl:refund").amount_cents == 1000


def test_sdk_retries_transparently_with_the_same_key(sandbox: ObservedSandbox) -> None:
    gateway = StripeGateway(SANDBOX_API_KEY, http_client=sandbox, max_network_retries=2)
    sandbox.fail_next(1, status=None, after_processing=True)

    payment = charge(gateway, "sdk-retry:charge")

    assert payment.status == "succeeded"
    assert [(r.idempotency_key, r.replayed) for r in sandbox.requests] == [
        ("sdk-retry:charge", False),
        ("sdk-retry:charge", True),
    ]
    assert sandbox.captured_cents() == 1000


# ----------------------------------------------------------------------------------- state and setup


# -------------------------------------------------------------------------------------------- webhooks


def test_webhook_sign_verify_round_trip_with_sandbox_events(
    gateway: StripeGateway, sandbox: ObservedSandbox
) -> None:
    paid = charge(gateway, "wh:charge")
    declined = charge(gateway, "wh:decline", pm="pm_card_chargeDeclined")
    gateway.refund(payment_id=paid.id, idempotency_key="wh:refund:1", amount_cents=100)
    gateway.refund(payment_id=paid.id, idempotency_key="wh:refund:2")

    statuses = []
    for event in sandbox.events():
        body = encode_event(event)
        verified = verify_webhook(body, sign_webhook(body, SECRET), SECRET)
        assert verified == json.loads(body)
        statuses.append(payment_status_from_event(verified))
    assert statuses == [
        (paid.id, "succeeded"),
        (declined.id, "declined"),
        (paid.id, "partially_refunded"),
        (paid.id, "refunded"),
    ]


def test_bad_or_stale_signatures_are_rejected() -> None:
    body = encode_event({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                         "data": {"object": {"id": "pi_1"}}})  # fmt: skip
    good = sign_webhook(body, SECRET)
    assert verify_webhook(body, good, SECRET)["id"] == "evt_1"

    with pytest.raises(WebhookSignatureError):
        verify_webhook(body, sign_webhook(body, "whsec_other"), SECRET)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(body.replace(b"pi_1", b"pi_2"), good, SECRET)  # tampered body
    with pytest.raises(WebhookSignatureError):
        verify_webhook(body, "garbage", SECRET)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(body, "", SECRET)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(body, sign_webhook(body, SECRET, timestamp=int(time.time()) - 3600), SECRET)
    not_json = b"not json"
    with pytest.raises(WebhookPayloadError):
        verify_webhook(not_json, sign_webhook(not_json, SECRET), SECRET)


def test_payment_status_ignores_unrelated_events() -> None:
    assert (
        payment_status_from_event({"type": "customer.created", "data": {"object": {"id": "cus_1"}}}) is None
    )
    assert (
        payment_status_from_event({"type": "charge.refunded", "data": {"object": {"payment_intent": None}}})
        is None
    )
    assert payment_status_from_event({}) is None
