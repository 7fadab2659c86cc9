"""The real ``StripeGateway`` against Stripe's real ``stripe-mock`` over real HTTP.

stripe-mock validates every request against Stripe's OpenAPI spec (unknown or mistyped parameters are
rejected), so a 2xx here proves that each request shape the adapter sends is valid. It is stateless and
answers from fixtures (e.g. a created PaymentIntent is ``requires_payment_method``), so the stateful
outcomes (declines, refund limits, idempotent replays) are tested over the sandbox instead
(tests/unit/test_stripe_sandbox.py). If stripe-mock cannot be installed or started these tests fail.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import stripe

from providers.payments import PAYMENT_STATUSES, PaymentError, PaymentGateway, PaymentUnavailable
from providers.stripe_gateway import StripeGateway
from tests.support.stripe_mock import StripeMock


@dataclass(frozen=True)
class Exchange:
    """One HTTP round trip as it crossed the wire."""

    method: str
    url: str
    headers: dict[str, str]
    body: str
    status: int
    response_headers: dict[str, str]


class RecordingClient(stripe.RequestsClient):
    """The SDK's own requests-based transport, also keeping each request and response for assertions."""

    name = "requests-recording"

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[Exchange] = []

    def request(  # type: ignore[override]  # the SDK types RequestsClient.request narrower than its base
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        body, status, rheaders = super().request(method, url, headers, post_data)
        self.exchanges.append(
            Exchange(method, url, dict(headers or {}), str(post_data or ""), status, dict(rheaders.items()))
        )
        return body, status, rheaders


@pytest.fixture(scope="module")
def stripe_mock() -> Iterator[StripeMock]:
    with StripeMock() as mock:
        yield mock


@pytest.fixture
def wire() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def gateway(stripe_mock: StripeMock, wire: RecordingClient) -> StripeGateway:
    return StripeGateway("sk_test_123", api_base=stripe_mock.api_base, http_client=wire)


def _form(body: str) -> dict[str, list[str]]:
    return parse_qs(body, keep_blank_values=True)


def test_gateway_satisfies_the_protocol(gateway: StripeGateway) -> None:
    assert isinstance(gateway, PaymentGateway)


def test_charge_creates_and_confirms_a_payment_intent(gateway: StripeGateway, wire: RecordingClient) -> None:
    payment = gateway.charge(
        amount_cents=2500,
        currency="USD",
        payment_method="pm_card_visa",
        idempotency_key="saga-1:charge",
        metadata={"saga_id": "saga-1", "step": "charge"},
    )

    assert payment.id.startswith("pi_")
    assert payment.amount_cents == 2500
    assert payment.currency == "usd"
    assert payment.status in PAYMENT_STATUSES
    [sent] = wire.exchanges
    assert sent.status == 200, sent
    assert sent.method == "post" and urlsplit(sent.url).path == "/v1/payment_intents"
    form = _form(sent.body)
    assert form["amount"] == ["2500"] and form["currency"] == ["usd"]
    assert form["confirm"] == ["true"] and form["payment_method"] == ["pm_card_visa"]
    assert form["automatic_payment_methods[enabled]"] == ["true"]
    assert form["automatic_payment_methods[allow_redirects]"] == ["never"]
    assert form["metadata[saga_id]"] == ["saga-1"] and form["metadata[step]"] == ["charge"]
    assert sent.headers["Idempotency-Key"] == "saga-1:charge"
    assert sent.response_headers["Idempotency-Key"] == "saga-1:charge"  # stripe-mock echoes what it received


def test_partial_and_full_refunds(gateway: StripeGateway, wire: RecordingClient) -> None:
    partial = gateway.refund(payment_id="pi_123", idempotency_key="saga-2:refund:1", amount_cents=700)
    full = gateway.refund(payment_id="pi_123", idempotency_key="saga-2:refund:2")

    assert partial.id.startswith("re_") and full.id.startswith("re_")
    assert partial.payment_id == "pi_123" and partial.amount_cents == 700
    assert partial.status in {"succeeded", "pending", "failed"}
    first, second = wire.exchanges
    assert (first.status, second.status) == (200, 200)
    assert urlsplit(first.url).path == "/v1/refunds"
    assert _form(first.body) == {"payment_intent": ["pi_123"], "amount": ["700"]}
    assert _form(second.body) == {"payment_intent": ["pi_123"]}
    assert first.response_headers["Idempotency-Key"] == "saga-2:refund:1"
    assert second.response_headers["Idempotency-Key"] == "saga-2:refund:2"


def test_retrieve_expands_the_latest_charge(gateway: StripeGateway, wire: RecordingClient) -> None:
    payment = gateway.retrieve("pi_123")

    assert payment.id.startswith("pi_")
    assert payment.status in PAYMENT_STATUSES
    assert payment.refunded_cents >= 0
    [sent] = wire.exchanges
    assert sent.status == 200 and sent.method == "get"
    assert urlsplit(sent.url).path == "/v1/payment_intents/pi_123"
    assert parse_qs(urlsplit(sent.url).query) == {"expand[0]": ["latest_charge"]}
    assert "Idempotency-Key" not in sent.headers  # reads carry none


def test_stripe_mock_really_validates_request_shapes(gateway: StripeGateway) -> None:
    # the guard behind every test above: a parameter outside Stripe's spec is refused
    with pytest.raises(stripe.InvalidRequestError, match="validation"):
        gateway.client.v1.payment_intents.create(
            params={"amount": 100, "currency": "usd", "not_a_stripe_parameter": "x"}  # type: ignore[typeddict-unknown-key]
        )


def test_bad_api_key_is_a_permanent_payment_error(stripe_mock: StripeMock) -> None:
    gateway = StripeGateway("not-a-key", api_base=stripe_mock.api_base)
    with pytest.raises(PaymentError) as info:
        gateway.retrieve("pi_123")
    assert info.value.http_status == 401


def test_unreachable_api_is_transient() -> None:
    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = StripeGateway("sk_test_123", api_base=f"http://127.0.0.1:{port}")
    with pytest.raises(PaymentUnavailable):
        gateway.charge(
            amount_cents=100, currency="usd", payment_method="pm_card_visa", idempotency_key="k", metadata={}
        )
