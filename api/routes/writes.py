"""Command endpoints: every write returns {id, version, position}."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.auth import Authenticated, permission
from api.deps import CleanQuery, ContextDep, send_command
from api.query_filters import ConnectionTypeFilter
from commands import models as m
from domain.connections import connection_id

router = APIRouter(prefix="/v1", tags=["commands"], dependencies=[Authenticated, CleanQuery])
Resp = JSONResponse


@router.post("/things", status_code=201, openapi_extra=permission("things.create"))
async def create_thing(request: Request, body: m.CreateThing,
                       ctx: ContextDep) -> Resp:
    """Create a thing of any ontology type."""
    return await send_command(request, ctx, body)


@router.patch("/things/{thing_id}", openapi_extra=permission("things.update"))
async def update_thing(request: Request, thing_id: UUID, body: m.ThingPatch,
                       ctx: ContextDep) -> Resp:
    """Rename and/or merge properties (null removes a property)."""
    return await send_command(request, ctx, m.UpdateThing(id=thing_id, **dict(body)))


@router.put("/things/{thing_id}/status", openapi_extra=permission("things.update"))
async def change_status(request: Request, thing_id: UUID, body: m.StatusBody,
                        ctx: ContextDep) -> Resp:
    """Publish, archive, activate ..."""
    return await send_command(request, ctx, m.ChangeThingStatus(id=thing_id, status=body.status))


@router.delete("/things/{thing_id}", openapi_extra=permission("things.update"))
async def delete_thing(request: Request, thing_id: UUID, ctx: ContextDep) -> Resp:
    """Soft-delete a thing."""
    return await send_command(request, ctx, m.DeleteThing(id=thing_id))


@router.post("/things/{thing_id}/restore", openapi_extra=permission("things.update"))
async def restore_thing(request: Request, thing_id: UUID, ctx: ContextDep) -> Resp:
    """Restore a soft-deleted thing."""
    return await send_command(request, ctx, m.RestoreThing(id=thing_id))


@router.post("/things/{thing_id}/tags", openapi_extra=permission("things.update"))
async def tag_thing(request: Request, thing_id: UUID, body: m.TagsBody,
                    ctx: ContextDep) -> Resp:
    """Attach `category:value` tags."""
    return await send_command(request, ctx, m.TagThing(id=thing_id, tags=body.tags))


@router.delete("/things/{thing_id}/tags/{tag}", openapi_extra=permission("things.update"))
async def untag_thing(request: Request, thing_id: UUID, tag: str,
                      ctx: ContextDep) -> Resp:
    """Detach one tag."""
    return await send_command(request, ctx, m.UntagThing(id=thing_id, tags=[tag]))


@router.post("/content", status_code=201, openapi_extra=permission("content.create"))
async def create_content(request: Request, body: m.CreateContent,
                         ctx: ContextDep) -> Resp:
    """The seeds' createContent: content + ownership + authorship + collaborators + tags."""
    return await send_command(request, ctx, body)


@router.post("/connections", status_code=201, openapi_extra=permission("connections.create"))
async def create_connection(request: Request, body: m.CreateConnection,
                            ctx: ContextDep) -> Resp:
    """Connect two streams (follow, own, hold tokens, ...)."""
    return await send_command(request, ctx, body)


@router.patch("/connections/{conn_id}", openapi_extra=permission("connections.update"))
async def update_connection(request: Request, conn_id: UUID, body: m.ConnectionPatch,
                            ctx: ContextDep) -> Resp:
    """Merge connection metadata."""
    return await send_command(request, ctx, m.UpdateConnection(id=conn_id, metadata=body.metadata))


@router.delete("/connections/{conn_id}", openapi_extra=permission("connections.remove"))
async def remove_connection(request: Request, conn_id: UUID,
                            ctx: ContextDep) -> Resp:
    """End a relationship by id."""
    return await send_command(request, ctx, m.RemoveConnection(id=conn_id))


@router.delete("/connections", openapi_extra=permission("connections.remove"))
async def remove_connection_by_ends(request: Request, from_id: UUID, to_id: UUID,
                                    type: ConnectionTypeFilter, ctx: ContextDep) -> Resp:
    """End a relationship by its endpoints and type (e.g. unfollow)."""
    return await send_command(request, ctx, m.RemoveConnection(id=connection_id(from_id, type, to_id)))


@router.post("/events", status_code=201, openapi_extra=permission("events.record"))
async def record_event(request: Request, body: m.RecordActivity,
                       ctx: ContextDep) -> Resp:
    """Record an activity (content_viewed, ...): contention-free."""
    return await send_command(request, ctx, body)
