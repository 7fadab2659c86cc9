"""Invitations and referrals: magic links (one, or 100+ through a queued job), their acceptance
(authenticated by the link's token), a referrer's funnel and the organization's K-factor."""

from __future__ import annotations

import secrets
from typing import Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.auth import Authenticated, caller_of, permission
from api.deps import CleanQuery, Consistent, ContextDep, ReadDep, RuntimeDep, command_response, run_command
from api.problems import Problem
from api.routes.workflows import poke_workflow
from commands import invitations as inv
from commands.handlers import Context
from domain.api_keys import hash_token, new_token
from domain.errors import VersionConflict
from domain.invitations import hash_invitation_token
from domain.permissions import PUBLIC
from projections import queries as q
from sagas.workflow_views import load_instance

router = APIRouter(prefix="/v1", tags=["invitations"], dependencies=[Authenticated, CleanQuery])
reads = APIRouter(prefix="/v1", tags=["invitations"], dependencies=[Authenticated, CleanQuery, Consistent])
acceptance = APIRouter(prefix="/v1", tags=["invitations"])
"""Accepting an invitation: authenticated by the magic link's token, not by a key."""
INVITE_PATH = "/invite/"
"""Where a magic link points, relative to the platform's public URL."""


def _magic_link(request: Request, token: str) -> str:
    return str(request.base_url).rstrip("/") + INVITE_PATH + token


@router.post("/invitations", status_code=201, openapi_extra=permission("invitations.create"))
async def create_invitation(request: Request, body: inv.InvitationBody, rt: RuntimeDep,
                            ctx: ContextDep) -> JSONResponse:
    """A magic link for `email`, valid for one hour and once. Its token (`token`, `link`) is in
    this response only: the log keeps its SHA-256. A replay by Idempotency-Key answers the same
    invitation without the token."""
    token = secrets.token_urlsafe(32)
    command = inv.IssueInvitation(**dict(body), token_hash=hash_invitation_token(token), now=rt.clock())
    result = await run_command(request, ctx, command, sent=body)
    if result.replayed:
        return command_response(result)
    return command_response(result, token=token, link=_magic_link(request, token))


@router.post("/invitations/bulk", status_code=202, openapi_extra=permission("invitations.bulk"))
async def create_bulk_invitations(request: Request, body: inv.BulkInvitationBody, rt: RuntimeDep,
                                  ctx: ContextDep) -> JSONResponse:
    """Queue magic links for every address (a job issuing them in batches; each link is valid
    for an hour from its batch). The tokens, in the order of `emails`, are in this response
    only; follow the job at `GET /v1/invitations/bulk/{job_id}`."""
    tokens = [secrets.token_urlsafe(32) for _ in body.emails]
    command = inv.StartBulkInvitations(emails=body.emails, role=body.role,
                                       token_hashes=[hash_invitation_token(t) for t in tokens])
    result = await run_command(request, ctx, command, sent=body)
    response = command_response(result) if result.replayed else command_response(
        result, invitations=[{"email": email, "token": token, "link": _magic_link(request, token)}
                             for email, token in zip(body.emails, tokens, strict=True)])
    poke_workflow(rt, response)
    return response


@router.get("/invitations/bulk/{job_id}", openapi_extra=permission("invitations.read"))
def get_bulk_invitations(job_id: UUID, rt: RuntimeDep, request: Request) -> JSONResponse:
    """A bulk job's progress: invitations issued of the total, batches done, status."""
    instance = load_instance(rt.event_log, job_id, caller_of(request).org_scope)
    if instance is None or instance.definition["name"] != inv.BULK_WORKFLOW:
        raise Problem(404, "not_found", f"bulk invitation job {job_id} not found", "job_id")
    outputs: list[Any] = [step.get("output") for step in instance.steps.values()]
    issued = sum(int(o["issued"]) for o in outputs if isinstance(o, dict) and "issued" in o)
    total = int(instance.input["count"])
    progress = instance.progress()
    return JSONResponse({
        "id": str(instance.id), "status": instance.status, "referrer_id": instance.subject_id,
        "total": total, "issued": issued, "percent": round(100 * issued / total),
        "batches": progress["total_steps"], "batches_done": progress["completed_steps"],
        "version": instance.version,
    })


@acceptance.post("/invitations/accept", status_code=201, openapi_extra=permission(PUBLIC),
                 responses={410: {"description": "The invitation has expired"}})
async def accept_invitation(body: inv.InvitationAcceptance, rt: RuntimeDep) -> JSONResponse:
    """Register through a magic link: the invitee joins the inviter's organization with the
    invited role, referred by the inviter, and gets an API key (`key`, shown once). An unknown
    token is 404 `not_found`, a used one 409 `invitation_used`, an expired one 410
    `invitation_expired`."""
    key_id = uuid4()
    key = new_token(key_id)
    command = inv.AcceptInvitation(token_hash=hash_invitation_token(body.token), name=body.name,
                                   key_id=key_id, key_hash=hash_token(key), now=rt.clock())
    try:
        result = await rt.bus.execute_async(command, Context())
    except VersionConflict:  # a racing acceptance of the same link won: this one is refused as used
        result = await rt.bus.execute_async(command, Context())
    return JSONResponse({**result.body, "person_id": result.body["id"], "key": key},
                        status_code=result.status)


@reads.get("/referrals/{person_id}/funnel", openapi_extra=permission("referrals.read"))
def referral_funnel(person_id: UUID, conn: ReadDep, request: Request) -> JSONResponse:
    """A referrer's funnel: invited → registered → converted, with the rates between the stages
    and the commissions and tier bonuses earned (a customer or org user sees their own)."""
    caller = caller_of(request)
    if caller.self_only and str(person_id) != caller.actor_id:
        raise Problem(403, "forbidden", "you may only read your own referral funnel", "person_id")
    if q.get_person(conn, caller.org_id, person_id) is None:
        raise Problem(404, "not_found", f"person {person_id} not found", "person_id")
    funnel = q.referral_funnel(conn, caller.org_id, str(person_id))
    return JSONResponse({"referrer_id": str(person_id), **funnel,
                         "registration_rate": _rate(funnel["registered"], funnel["invited"]),
                         "conversion_rate": _rate(funnel["converted"], funnel["registered"])})


@reads.get("/referrals/k-factor", openapi_extra=permission("referrals.analytics"))
def k_factor(conn: ReadDep, request: Request) -> JSONResponse:
    """The organization's viral coefficient: invitations per inviter times acceptance rate (=
    invitations accepted per inviter), and `converted_k_factor`, that times the conversion rate
    (= referred people who bought, per inviter)."""
    totals = q.referral_totals(conn, caller_of(request).org_id)
    inviters = totals["inviters"]
    return JSONResponse({
        **totals,
        "invitations_per_inviter": _rate(totals["invited"], inviters),
        "acceptance_rate": _rate(totals["registered"], totals["invited"]),
        "conversion_rate": _rate(totals["converted"], totals["registered"]),
        "k_factor": _rate(totals["registered"], inviters),
        "converted_k_factor": _rate(totals["converted"], inviters),
    })


def _rate(part: int, whole: int) -> float:
    """part / whole (0 when there is no whole), to four places."""
    return round(part / whole, 4) if whole else 0.0
