"""Correlation ids: every request belongs to one (the client's `X-Correlation-Id`, or a new one),
answered in the same header; the commands it runs stamp it on their events, with a command id of
their own as the causation (`api.deps.command_context`). Each request is also a span (continuing
the client's `traceparent`, if it sent one) when tracing is on."""

from __future__ import annotations

import re
import uuid

from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response
from infra import tracing

HEADER = "X-Correlation-Id"
VALID = re.compile(r"^[A-Za-z0-9._:@/-]{1,128}$")


class CorrelationIds:
    """ASGI middleware: puts the request's correlation id in `request.state.correlation_id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(HEADER.lower().encode())
        given = sent.decode("latin-1") if sent is not None else None
        if given is not None and not VALID.match(given):
            refusal = problem_response(422, "validation_error", f"{HEADER} must be 1 to 128 letters, digits"
                                       " or . _ : @ / -", HEADER)
            await refusal(scope, receive, send)
            return
        correlation = given or uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation
        header = (HEADER.lower().encode(), correlation.encode())

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
                span.set_attribute("http.response.status_code", message["status"])
            await send(message)

        incoming = dict(scope.get("headers") or []).get(b"traceparent")
        with tracing.tracer().start_as_current_span(
                f"{scope['method']} {scope['path']}", kind=SpanKind.SERVER,
                context=tracing.context_from(incoming.decode("latin-1") if incoming else None),
                attributes={"correlation_id": correlation, "http.request.method": scope["method"],
                            "url.path": scope["path"]}) as span:
            await self.app(scope, receive, answer)
