"""The in-process Stripe sandbox with the tests' hooks: injected faults, the requests it answered,
and views of its state. The product's sandbox (`providers.stripe_sandbox`) carries none of them."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import stripe

from providers.stripe_sandbox import ResponseHeaders, StripeSandboxClient


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sandbox answered, as the SDK saw it."""

    method: str
    path: str
    idempotency_key: str | None
    status: int  # -1: a simulated network failure
    replayed: bool = False


@dataclass
class _Fault:
    remaining: int
    status: int | None
    after_processing: bool
    match: str | None


class ObservedSandbox(StripeSandboxClient):
    """A `StripeSandboxClient` whose outages tests stage and whose traffic and state they inspect."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []

    def fail_next(self, n: int = 1, *, status: int | None = 500, after_processing: bool = False,
                  match: str | None = None) -> None:
        """Make the next `n` requests fail (an outage).

        `status`: the HTTP status returned (500, 503, 429, ...), or None for a network failure
        (`APIConnectionError`, like a timeout). `after_processing`: the request executes (and its
        idempotent result is stored) but the response is lost. `match`: only requests whose
        `"METHOD /path"` starts with it, e.g. `"POST /v1/refunds"`.
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._faults.append(_Fault(n, status, after_processing, match))

    def clear_faults(self) -> None:
        """Cancel pending injected faults."""
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def payment_intents(self) -> list[dict[str, Any]]:
        """Copies of every PaymentIntent created, oldest first."""
        return self._copy_of("payment_intents")

    def refunds(self) -> list[dict[str, Any]]:
        """Copies of every Refund created, oldest first."""
        return self._copy_of("refunds")

    def events(self) -> list[dict[str, Any]]:
        """Copies of the webhook events generated so far (Stripe event objects), oldest first."""
        with self._holding():
            return copy.deepcopy(list(self._state["events"]))

    def captured_cents(self) -> int:
        """Money taken minus money refunded, over all payments (the "no double charge" check)."""
        with self._holding():
            charges = self._state["charges"].values()
            return sum(c["amount_captured"] - c["amount_refunded"] for c in charges)

    def _copy_of(self, table: str) -> list[dict[str, Any]]:
        with self._holding():
            return copy.deepcopy(list(self._state[table].values()))

    def _handle(self, method: str, url: str, headers: Mapping[str, str],
                post_data: Any) -> tuple[str, int, Mapping[str, str]]:
        method = method.upper()
        target = f"{method} {urlsplit(url).path}"
        key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
        key = key if method == "POST" else None
        with self._lock:
            fault = self._take_fault(target)
            if fault is not None and not fault.after_processing:
                return self._fail(target, key, fault)
            body, status, answered = super()._handle(method, url, headers, post_data)
            if fault is not None:
                return self._fail(target, key, fault)
            replayed = answered.get("Idempotent-Replayed") == "true"
            self._requests.append(RecordedRequest(method, target.split(" ", 1)[1], key, status, replayed))
        return body, status, answered

    def _take_fault(self, target: str) -> _Fault | None:
        for fault in self._faults:
            if fault.match is None or target.startswith(fault.match):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _fail(self, target: str, key: str | None, fault: _Fault) -> tuple[str, int, Mapping[str, str]]:
        method, path = target.split(" ", 1)
        self._requests.append(RecordedRequest(method, path, key, fault.status or -1))
        if fault.status is None:
            raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
                "Unexpected error communicating with Stripe (sandbox: injected network failure).",
                should_retry=True,
            )
        kind = "invalid_request_error" if fault.status == 429 else "api_error"
        error = {"type": kind, "message": f"Injected failure (HTTP {fault.status}) by the ONE sandbox."}
        if fault.status == 429:
            error["code"] = "rate_limit"
        headers = {"Content-Type": "application/json", "Request-Id": "req_injected_fault"}
        return json.dumps({"error": error}), fault.status, ResponseHeaders(headers)
