"""An in-process Stripe test mode: a stateful ``stripe.HTTPClient`` that answers the SDK's requests.

Only the lowest HTTP layer is replaced: ``StripeGateway`` and the official SDK run unchanged on top
(request encoding, error classes such as ``CardError``, retries with the same idempotency key). It
backs the embedded default (``sandbox_gateway()``) and the decline/refund/idempotency tests.

Behaves like Stripe test mode for what the saga uses:

* ``POST /v1/payment_intents`` (``confirm=true``) with Stripe's test PaymentMethods:
  ``pm_card_visa`` (and mastercard/amex/...) succeed; ``pm_card_chargeDeclined`` → 402 ``card_error``
  ``generic_decline``; ``pm_card_chargeDeclinedInsufficientFunds`` → ``insufficient_funds`` (see
  ``TEST_CARDS``); ``pm_card_authenticationRequired`` → ``requires_action``.
* ``GET /v1/payment_intents/{id}`` (``expand[]=latest_charge``), ``GET /v1/charges/{id}``,
  ``GET /v1/refunds/{id}``; ``POST /v1/refunds`` full or partial (over-refund → 400 ``amount_too_large``).
* ``Idempotency-Key``: same key + same request → the stored response (``Idempotent-Replayed: true``);
  same key + different parameters → 400 ``idempotency_error``. Parameter-validation failures are
  not stored (as on Stripe); results, including 402 declines, are.
* Unknown parameters → 400 ``parameter_unknown``; events (``payment_intent.succeeded``,
  ``payment_intent.payment_failed``, ``charge.refunded``) are kept with the state.

The tests' hooks (injected faults, the requests answered, views of the state) live in
``tests/support/stripe_sandbox_hooks.py``, not in the product.

The state lives in a ``SandboxStore`` (``providers.sandbox_state``): in memory by default; in the
database for the embedded default, so that it survives restarts and is shared by every process.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import io
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from providers.sandbox_state import MemoryStore, SandboxStore, empty_state
from providers.stripe_gateway import StripeGateway

__all__ = [
    "SANDBOX_API_KEY",
    "TEST_CARDS",
    "ResponseHeaders",
    "StripeSandboxClient",
    "TestCard",
    "sandbox_gateway",
]

SANDBOX_API_KEY = "sk_test_one_sandbox"
API_VERSION = stripe.api_version
IDEMPOTENCY_TTL_S = 24 * 3600
_ALNUM = string.ascii_letters + string.digits
_MIN_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30}


@dataclass(frozen=True)
class TestCard:
    """A Stripe test PaymentMethod and what confirming a payment with it does."""

    brand: str
    last4: str
    outcome: str = "succeed"  # "succeed" | "decline" | "requires_action"
    code: str | None = None  # error code on decline (card_declined, expired_card, ...)
    decline_code: str | None = None
    message: str | None = None


_DECLINED = "Your card was declined."
TEST_CARDS: Mapping[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_visa_debit": TestCard("visa", "5556"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_amex": TestCard("amex", "8431"),
    "pm_card_discover": TestCard("discover", "1117"),
    "pm_card_chargeDeclined": TestCard(
        "visa", "0002", "decline", "card_declined", "generic_decline", _DECLINED
    ),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard(
        "visa", "9995", "decline", "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "pm_card_chargeDeclinedLostCard": TestCard(
        "visa", "9987", "decline", "card_declined", "lost_card", _DECLINED
    ),
    "pm_card_chargeDeclinedStolenCard": TestCard(
        "visa", "9979", "decline", "card_declined", "stolen_card", _DECLINED
    ),
    "pm_card_chargeDeclinedFraudulent": TestCard(
        "visa", "0019", "decline", "card_declined", "fraudulent", _DECLINED
    ),
    "pm_card_chargeDeclinedExpiredCard": TestCard(
        "visa", "0069", "decline", "expired_card", "expired_card", "Your card has expired."
    ),
    "pm_card_chargeDeclinedIncorrectCvc": TestCard(
        "visa", "0127", "decline", "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
    ),
    "pm_card_chargeDeclinedProcessingError": TestCard(
        "visa",
        "0119",
        "decline",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "pm_card_authenticationRequired": TestCard("visa", "3184", "requires_action"),
    "pm_card_threeDSecure2Required": TestCard("visa", "3220", "requires_action"),
}

_PI_CREATE_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "payment_method",
        "payment_method_types",
        "allowed_payment_method_types",
        "excluded_payment_method_types",
        "automatic_payment_methods",
        "confirm",
        "metadata",
        "description",
        "customer",
        "expand",
        "return_url",
        "receipt_email",
        "off_session",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "error_on_requires_action",
    }
)
_REFUND_CREATE_PARAMS = frozenset({"payment_intent", "charge", "amount", "reason", "metadata", "expand"})
_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


class _ApiError(Exception):
    """An error response; ``store`` says whether it counts as an idempotent result."""

    def __init__(self, status: int, error: dict[str, Any], *, store: bool = False) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error
        self.store = store


def _invalid(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> _ApiError:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param is not None:
        error["param"] = param
    if code is not None:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    return _ApiError(status, error)


class ResponseHeaders(Mapping[str, str]):
    """Case-insensitive response headers (the SDK looks up ``Request-Id`` and ``stripe-should-retry``)."""

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = {k.lower(): (k, v) for k, v in items.items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def _decode_form(encoded: str) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0]=c``) back into nested dicts and lists (values stay strings)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(encoded, keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head, *re.findall(r"\[([^\]]*)\]", key)]
        node = root
        for i, part in enumerate(path):
            last = i == len(path) - 1
            part_key = str(len(node)) if part == "" else part
            if last:
                node[part_key] = value
            else:
                node = node.setdefault(part_key, {})
    decoded: dict[str, Any] = _listify(root)
    return decoded


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {k: _listify(v) for k, v in value.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def _as_int(params: Mapping[str, Any], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    raise _invalid(f"Invalid integer: {raw}", param=name, code="parameter_invalid_integer")


def _as_bool(params: Mapping[str, Any], name: str) -> bool:
    raw = params.get(name)
    if raw in (None, "", "false"):
        return False
    if raw == "true":
        return True
    raise _invalid(f"Invalid boolean: {raw}", param=name, code="parameter_invalid_boolean")


def _metadata(params: Mapping[str, Any]) -> dict[str, str]:
    raw = params.get("metadata")
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        raise _invalid("Invalid object", param="metadata", code="parameter_invalid_empty")
    if len(raw) > 50:
        raise _invalid("Metadata can have up to 50 keys.", param="metadata", code="parameter_invalid_empty")
    for key, value in raw.items():
        if len(key) > 40 or not isinstance(value, str) or len(value) > 500:
            raise _invalid(
                "Metadata keys are limited to 40 characters and values to 500 characters.",
                param=f"metadata[{key}]",
                code="parameter_invalid_string_length",
            )
    return {k: v for k, v in raw.items() if v != ""}


def _check_known(params: Mapping[str, Any], known: frozenset[str]) -> None:
    for name in params:
        if name not in known:
            raise _invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def _expand(params: Mapping[str, Any], allowed: frozenset[str]) -> set[str]:
    raw = params.get("expand") or []
    fields = set(raw if isinstance(raw, list) else [raw])
    for field in fields:
        if field not in allowed:
            raise _invalid(f"This property cannot be expanded ({field}).", param="expand")
    return fields


class StripeSandboxClient(stripe.HTTPClient):
    """A stateful fake of the Stripe API at the SDK's HTTP-client layer (thread-safe)."""

    name = "one-stripe-sandbox"

    def __init__(
        self,
        *,
        store: SandboxStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._clock = clock
        self._request_context: dict[str, str | None] = {"id": None, "idempotency_key": None}
        self._store: SandboxStore = store or MemoryStore()
        self._state: dict[str, Any] = empty_state()
        """The state held for the request being answered (`_holding`)."""

    @contextmanager
    def _holding(self) -> Iterator[None]:
        """This client's lock and the stored state, held together (other processes wait)."""
        with self._lock, self._store.hold() as state:
            self._state = state
            yield

    # ------------------------------------------------------------------------- HTTPClient API

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        """Answer one SDK request like the Stripe API would (``request_with_retries`` wraps this)."""
        return self._handle(method, url, headers or {}, post_data)

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        """Streaming variant: the same answer as a readable byte stream."""
        body, status, rheaders = self._handle(method, url, headers or {}, post_data)
        return io.BytesIO(body.encode()), status, rheaders

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        """Async variant (the sandbox never blocks)."""
        body, status, rheaders = self._handle(method, url, headers, post_data)
        return body.encode(), status, rheaders

    async def sleep_async(self, secs: float) -> None:
        """Back-off between SDK retries in async mode."""
        await asyncio.sleep(secs)

    def close(self) -> None:
        """Nothing to release."""

    async def close_async(self) -> None:
        """Nothing to release."""

    # ---------------------------------------------------------------------------- dispatching

    def _handle(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> tuple[str, int, Mapping[str, str]]:
        method = method.upper()
        parts = urlsplit(url)
        path = parts.path
        raw = post_data.decode() if isinstance(post_data, bytes) else (post_data or "")
        params = _decode_form(raw if method == "POST" else parts.query)
        hdrs = {k.lower(): v for k, v in headers.items()}
        key = hdrs.get("idempotency-key") if method == "POST" else None
        request_id = "req_" + self._random(14)
        out_headers = {
            "Content-Type": "application/json",
            "Request-Id": request_id,
            "Stripe-Version": API_VERSION,
        }
        if key:
            out_headers["Idempotency-Key"] = key
        with self._holding():
            status, body, replayed = self._execute(method, path, params, hdrs, key, request_id)
        if replayed:
            out_headers["Idempotent-Replayed"] = "true"
        return body, status, ResponseHeaders(out_headers)

    def _execute(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        hdrs: Mapping[str, str],
        key: str | None,
        request_id: str,
    ) -> tuple[int, str, bool]:
        """(status, body, replayed) for one request, honouring the idempotency key."""
        auth = hdrs.get("authorization", "")
        api_key = auth.removeprefix("Bearer ").strip()
        if not api_key.startswith(("sk_test_", "rk_test_")):
            err = _invalid(f"Invalid API Key provided: {api_key[:8]}***", status=401)
            return err.status, json.dumps({"error": err.error}), False
        slot = None
        fingerprint = json.loads(json.dumps([method, path, params]))
        if key is not None:
            if len(key) > 255:
                err = _invalid("Idempotency keys must be 255 characters or fewer.", param="Idempotency-Key")
                return err.status, json.dumps({"error": err.error}), False
            slot = hashlib.sha256(f"{api_key}\0{key}".encode()).hexdigest()
            stored = self._state["idempotency"].get(slot)
            if stored is not None and self._clock() - stored["created"] < IDEMPOTENCY_TTL_S:
                if stored["fingerprint"] != fingerprint:
                    error = {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you meant to "
                        "execute a different request.",
                    }
                    return 400, json.dumps({"error": error}), False
                return stored["status"], stored["body"], True
        self._request_context = {"id": request_id, "idempotency_key": key}
        try:
            status, body, store = 200, json.dumps(self._route(method, path, params)), True
        except _ApiError as err:
            status, body, store = err.status, json.dumps({"error": err.error}), err.store
        if slot is not None and store:
            self._state["idempotency"][slot] = {
                "fingerprint": fingerprint,
                "status": status,
                "body": body,
                "created": self._clock(),
            }
        return status, body, False

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        segments = [s for s in path.split("/") if s]
        if segments[:1] == ["v1"]:
            resource = segments[1:]
            if method == "POST" and resource == ["payment_intents"]:
                return self._create_intent(params)
            if method == "POST" and resource == ["refunds"]:
                return self._create_refund(params)
            if method == "GET" and len(resource) == 2:
                kind, ident = resource
                if kind == "payment_intents":
                    return self._get_intent(ident, params)
                if kind == "charges":
                    _check_known(params, frozenset({"expand"}))
                    _expand(params, frozenset())
                    return copy.deepcopy(self._lookup("charges", ident, "charge"))
                if kind == "refunds":
                    _check_known(params, frozenset({"expand"}))
                    _expand(params, frozenset())
                    return copy.deepcopy(self._lookup("refunds", ident, "refund"))
        raise _invalid(
            f"Unrecognized request URL ({method}: {path}). The ONE Stripe sandbox supports PaymentIntents "
            "(create, retrieve), Charges (retrieve) and Refunds (create, retrieve).",
            status=404,
        )

    # ------------------------------------------------------------------------ PaymentIntents

    def _create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_known(params, _PI_CREATE_PARAMS)
        amount = _as_int(params, "amount")
        if amount is None:
            raise _invalid("Missing required param: amount.", param="amount", code="parameter_missing")
        currency = params.get("currency")
        if not currency:
            raise _invalid("Missing required param: currency.", param="currency", code="parameter_missing")
        if not isinstance(currency, str) or not re.fullmatch(r"[a-z]{3}", currency):
            raise _invalid(
                f"Invalid currency: {currency}.", param="currency", code="parameter_invalid_string"
            )
        minimum = _MIN_AMOUNT.get(currency, 1)
        if amount < minimum:
            raise _invalid(
                f"Amount must be at least {minimum} {currency} (smallest unit).",
                param="amount",
                code="amount_too_small",
            )
        if amount > 99_999_999:
            raise _invalid("Amount must be no more than 99999999.", param="amount", code="amount_too_large")
        metadata = _metadata(params)
        confirm = _as_bool(params, "confirm")
        expand = _expand(params, frozenset({"latest_charge", "payment_method"}))
        if "payment_method_types" in params:
            raise _invalid(
                f"`payment_method_types` is no longer writable on API version {API_VERSION}: use "
                "`automatic_payment_methods`, `allowed_payment_method_types` or "
                "`excluded_payment_method_types`.",
                param="payment_method_types",
                code="payment_method_types_no_longer_supported",
            )
        allowed = params.get("allowed_payment_method_types")
        apm = params.get("automatic_payment_methods")
        if allowed is not None and apm is not None:
            raise _invalid(
                "You may only specify one of these parameters: allowed_payment_method_types, "
                "automatic_payment_methods.",
                param="allowed_payment_method_types",
            )
        if allowed is not None and (not isinstance(allowed, list) or "card" not in allowed):
            raise _invalid(
                "No valid payment method types for this PaymentIntent (the ONE sandbox supports card only).",
                param="allowed_payment_method_types",
            )
        if apm is not None and (not isinstance(apm, dict) or apm.get("enabled") not in ("true", "false")):
            raise _invalid(
                "Missing required param: automatic_payment_methods[enabled].",
                param="automatic_payment_methods[enabled]",
                code="parameter_missing",
            )
        apm_on = allowed is None and not (isinstance(apm, dict) and apm.get("enabled") == "false")
        redirects_allowed = not (isinstance(apm, dict) and apm.get("allow_redirects") == "never")
        payment_method = params.get("payment_method") or None
        card = None
        if payment_method is not None:
            card = TEST_CARDS.get(str(payment_method))
            if card is None:
                raise _invalid(
                    f"No such PaymentMethod: '{payment_method}'",
                    param="payment_method",
                    code="resource_missing",
                )
        if confirm and payment_method is None:
            raise _invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                param="payment_method",
                code="payment_intent_unexpected_state",
            )
        if confirm and apm_on and redirects_allowed and not params.get("return_url"):
            raise _invalid(
                "This PaymentIntent is configured to accept payment methods enabled in your Dashboard, "
                "because `automatic_payment_methods` is enabled. Some of these payment methods may redirect "
                "your customer off of your page. You must provide a `return_url` when confirming a "
                "PaymentIntent with `automatic_payment_methods` enabled, or set "
                "`automatic_payment_methods[allow_redirects]=never`.",
            )
        intent_id = "pi_" + self._random(24)
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "allowed_payment_method_types": allowed,
            "automatic_payment_methods": {
                "enabled": True,
                "allow_redirects": "always" if redirects_allowed else "never",
            }
            if apm_on
            else None,
            "canceled_at": None,
            "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{self._random(24)}",
            "confirmation_method": "automatic",
            "created": int(self._clock()),
            "currency": currency,
            "customer": params.get("customer") or None,
            "description": params.get("description") or None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": metadata,
            "next_action": None,
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "status": "requires_confirmation" if payment_method else "requires_payment_method",
        }
        self._state["payment_intents"][intent_id] = intent
        if confirm and card is not None:
            self._confirm(intent, card)
        return self._render_intent(intent, expand)

    def _confirm(self, intent: dict[str, Any], card: TestCard) -> None:
        if card.outcome == "requires_action":
            intent["status"] = "requires_action"
            intent["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect"},
            }
            return
        charge = self._new_charge(intent, card)
        intent["latest_charge"] = charge["id"]
        if card.outcome == "succeed":
            intent["status"] = "succeeded"
            intent["amount_received"] = intent["amount"]
            self._emit("payment_intent.succeeded", intent)
            return
        error: dict[str, Any] = {
            "type": "card_error",
            "code": card.code,
            "decline_code": card.decline_code,
            "message": card.message or _DECLINED,
            "charge": charge["id"],
            "doc_url": "https://stripe.com/docs/error-codes/"
            + (card.code or "card_declined").replace("_", "-"),
            "payment_method": self._payment_method(str(intent["payment_method"]), card),
        }
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = error
        self._emit("payment_intent.payment_failed", intent)
        raise _ApiError(402, {**error, "payment_intent": copy.deepcopy(intent)}, store=True)

    def _new_charge(self, intent: dict[str, Any], card: TestCard) -> dict[str, Any]:
        ok = card.outcome == "succeed"
        charge = {
            "id": "ch_" + self._random(24),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if ok else 0,
            "amount_refunded": 0,
            "captured": ok,
            "created": int(self._clock()),
            "currency": intent["currency"],
            "failure_code": None if ok else card.code,
            "failure_message": None if ok else card.message,
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "outcome": {
                "network_status": "approved_by_network" if ok else "declined_by_network",
                "reason": None if ok else card.decline_code,
                "type": "authorized" if ok else "issuer_declined",
            },
            "paid": ok,
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "payment_method_details": {"type": "card", "card": {"brand": card.brand, "last4": card.last4}},
            "refunded": False,
            "status": "succeeded" if ok else "failed",
        }
        self._state["charges"][charge["id"]] = charge
        return charge

    def _get_intent(self, ident: str, params: dict[str, Any]) -> dict[str, Any]:
        _check_known(params, frozenset({"expand", "client_secret"}))
        expand = _expand(params, frozenset({"latest_charge", "payment_method"}))
        return self._render_intent(self._lookup("payment_intents", ident, "payment_intent"), expand)

    def _render_intent(self, intent: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        out = copy.deepcopy(intent)
        if "latest_charge" in expand and out["latest_charge"]:
            out["latest_charge"] = copy.deepcopy(self._state["charges"][out["latest_charge"]])
        if "payment_method" in expand and out["payment_method"]:
            out["payment_method"] = self._payment_method(
                out["payment_method"], TEST_CARDS[out["payment_method"]]
            )
        return out

    @staticmethod
    def _payment_method(pm: str, card: TestCard) -> dict[str, Any]:
        return {
            "id": pm,
            "object": "payment_method",
            "type": "card",
            "card": {"brand": card.brand, "last4": card.last4},
        }

    # ------------------------------------------------------------------------------- Refunds

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_known(params, _REFUND_CREATE_PARAMS)
        _expand(params, frozenset())
        amount = _as_int(params, "amount")
        metadata = _metadata(params)
        reason = params.get("reason") or None
        if reason is not None and reason not in _REFUND_REASONS:
            raise _invalid(f"Invalid reason: {reason}", param="reason", code="parameter_invalid_string")
        intent_id, charge_id = params.get("payment_intent") or None, params.get("charge") or None
        if intent_id and charge_id:
            raise _invalid(
                "You may only specify one of these parameters: charge, payment_intent.", param="charge"
            )
        if intent_id:
            intent = self._lookup("payment_intents", str(intent_id), "payment_intent", param="payment_intent")
            if intent["status"] != "succeeded" or not intent["latest_charge"]:
                err = _invalid(
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                    param="payment_intent",
                    code="payment_intent_unexpected_state",
                )
                err.store = True
                raise err
            charge = self._state["charges"][intent["latest_charge"]]
        elif charge_id:
            charge = self._lookup("charges", str(charge_id), "charge", param="charge")
        else:
            raise _invalid(
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
            )
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if amount is not None and amount <= 0:
            raise _invalid("Invalid positive integer", param="amount", code="parameter_invalid_integer")
        if remaining <= 0:
            err = _invalid(
                f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
            err.store = True
            raise err
        if amount is not None and amount > remaining:
            err = _invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining}).",
                param="amount",
                code="amount_too_large",
            )
            err.store = True
            raise err
        refund_amount = remaining if amount is None else amount
        refund = {
            "id": "re_" + self._random(24),
            "object": "refund",
            "amount": refund_amount,
            "charge": charge["id"],
            "created": int(self._clock()),
            "currency": charge["currency"],
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": "succeeded",
        }
        self._state["refunds"][refund["id"]] = refund
        charge["amount_refunded"] += refund_amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        self._emit("charge.refunded", charge)
        return copy.deepcopy(refund)

    # ------------------------------------------------------------------------------- helpers

    def _lookup(self, table: str, ident: str, kind: str, *, param: str = "id") -> dict[str, Any]:
        found: dict[str, Any] | None = self._state[table].get(ident)
        if found is None:
            raise _invalid(f"No such {kind}: '{ident}'", param=param, code="resource_missing", status=404)
        return found

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        event = {
            "id": "evt_" + self._random(24),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self._clock()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": dict(self._request_context),
            "type": kind,
        }
        self._state["events"].append(event)

    @staticmethod
    def _random(n: int) -> str:
        return "".join(secrets.choice(_ALNUM) for _ in range(n))


def sandbox_gateway(
    client: StripeSandboxClient | None = None, *, store: SandboxStore | None = None
) -> StripeGateway:
    """The real ``StripeGateway`` (official SDK) over the in-process sandbox: the embedded default."""
    http_client = client if client is not None else StripeSandboxClient(store=store)
    return StripeGateway(SANDBOX_API_KEY, api_base="https://sandbox.stripe.invalid", http_client=http_client)
