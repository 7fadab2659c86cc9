"""Token purchases (the saga) and the Stripe webhook."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from api.auth import Authenticated, caller_of, permission
from api.deps import ContextDep, RuntimeDep, send_command
from api.problems import Problem
from commands.models import StartTokenPurchase
from domain.permissions import PUBLIC
from providers.stripe_webhooks import WebhookSignatureError, payment_status_from_event, verify_webhook
from sagas.views import is_purchase, purchase_view

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["token purchases"], dependencies=[Authenticated])
webhooks = APIRouter(prefix="/v1", tags=["token purchases"])
"""Routes authenticated by their own signature, not by a key."""


@router.post("/token-purchases", status_code=202, openapi_extra=permission("purchases.create"))
async def start_purchase(request: Request, body: StartTokenPurchase, rt: RuntimeDep,
                         ctx: ContextDep) -> JSONResponse:
    """Start buying tokens: charge the card, mint, record holdings (runs asynchronously)."""
    response = await send_command(request, ctx, body)
    if rt.sagas is not None and response.status_code == 202:
        rt.sagas.poke(UUID(json.loads(bytes(response.body))["id"]))
    return response


@router.get("/token-purchases/{purchase_id}", openapi_extra=permission("purchases.read"))
def get_purchase(purchase_id: UUID, rt: RuntimeDep, request: Request) -> JSONResponse:
    """A purchase's status (running, completed, failed, compensated, parked) and every step; a
    customer sees their own purchases."""
    caller = caller_of(request)
    view = purchase_view(rt.event_log, purchase_id, caller.org_id)
    if view is None:
        raise Problem(404, "not_found", f"token purchase {purchase_id} not found", "id")
    if caller.self_only and view["buyer_id"] != caller.actor_id:
        raise Problem(403, "forbidden", f"token purchase {purchase_id} is not yours", "id")
    return JSONResponse(view)


@webhooks.post("/webhooks/stripe", status_code=200, openapi_extra=permission(PUBLIC))
async def stripe_webhook(
    request: Request, rt: RuntimeDep,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Verify the signature, then let the saga re-check the payment (duplicates are harmless)."""
    secret = rt.settings.stripe_webhook_secret
    if not secret:
        raise Problem(404, "not_found", "Stripe webhooks are not configured", "Stripe-Signature")
    if stripe_signature is None:
        raise Problem(400, "invalid_signature", "missing Stripe-Signature header", "Stripe-Signature")
    payload = await request.body()
    try:
        event = verify_webhook(payload, stripe_signature, secret)
    except WebhookSignatureError as error:
        raise Problem(400, "invalid_signature", str(error), "Stripe-Signature") from None
    saga_id = _saga_of(event)
    if saga_id is not None and not await asyncio.to_thread(is_purchase, rt.event_log, saga_id):
        log.info("Stripe event %s names no saga of ours (%s): acknowledged, ignored",
                 event.get("id"), saga_id)
        saga_id = None
    if payment_status_from_event(event) is not None and saga_id is not None and rt.sagas is not None:
        rt.sagas.poke(saga_id)
    return JSONResponse({"received": True, "saga_id": None if saga_id is None else str(saga_id)})


def _saga_of(event: dict[str, object]) -> UUID | None:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    raw = metadata.get("saga_id") if isinstance(metadata, dict) else None
    try:
        return UUID(str(raw)) if raw else None
    except ValueError:
        return None
