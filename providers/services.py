"""External services a DSL feature's `service` steps call (ElevenLabs, …), over HTTP.

`ONE_SERVICES` maps a provider name to a base URL (JSON, e.g. `{"elevenlabs": "https://…"}`); a
call is `POST <base>/<method>` with the step's parameters as JSON and the step's idempotency key in
the `Idempotency-Key` header, and the JSON answer is the step's result. A failure raises
`ServiceError`; the workflow engine retries the step as the feature's `retry` says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx


@dataclass(frozen=True)
class ServiceCall:
    """One call: which provider and method, with what, under which idempotency key."""

    provider: str
    method: str
    params: dict[str, Any]
    key: str


class ServiceError(Exception):
    """The service could not be called or refused the call."""


class Services(Protocol):
    """Calls external services by provider name."""

    def call(self, call: ServiceCall) -> Any:
        """The service's answer."""
        ...


class HttpServices:
    """Providers reached over HTTP at configured base URLs."""

    def __init__(self, urls: Mapping[str, str], timeout_s: float = 30.0) -> None:
        self.urls = dict(urls)
        self.timeout_s = timeout_s

    def call(self, call: ServiceCall) -> Any:
        """POST the parameters; the JSON answer."""
        base = self.urls.get(call.provider)
        if base is None:
            raise ServiceError(f"no provider {call.provider!r} is configured (ONE_SERVICES)")
        url = f"{base.rstrip('/')}/{call.method}"
        try:
            response = httpx.post(url, json=call.params, headers={"Idempotency-Key": call.key},
                                  timeout=self.timeout_s)
        except httpx.HTTPError as error:
            raise ServiceError(f"{call.provider}.{call.method} unreachable: {error}") from error
        if response.status_code >= 400:
            raise ServiceError(f"{call.provider}.{call.method} answered {response.status_code}: "
                               f"{response.text[:200]}")
        try:
            return response.json()
        except ValueError as error:
            raise ServiceError(f"{call.provider}.{call.method} answered with no JSON") from error


def parse_service_urls(text: str) -> dict[str, str]:
    """`ONE_SERVICES` (a JSON object of provider → base URL; empty: none)."""
    if not text.strip():
        return {}
    urls = json.loads(text)
    if not isinstance(urls, dict) or not all(isinstance(v, str) for v in urls.values()):
        raise ValueError("ONE_SERVICES must be a JSON object of provider name → base URL")
    return {str(k): v for k, v in urls.items()}
