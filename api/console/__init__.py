"""The web pages, static and without a build step, that read the API with the key typed into them:
the operator console (`/console`: projection positions, lag and rate, parked events and parked
sagas with their actions, the live event stream) and the analytics dashboard (`/dashboard`, served
by `api.routes.analytics`). The pages hold nothing secret; every call they make is authenticated
and scoped like any other client's."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["console"])


@cache
def asset(name: str) -> str:
    """A file of the web pages (HTML, JavaScript), read once."""
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


PAGE_HEADERS = {"Cache-Control": "no-cache", "X-Frame-Options": "DENY"}


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
def console() -> HTMLResponse:
    """The operator console."""
    return HTMLResponse(asset("console.html"), headers=PAGE_HEADERS)


_SHARED = {"stream.js": "text/javascript", "pages.css": "text/css"}


@router.get("/console/{name}", include_in_schema=False)
def shared(name: str) -> Response:
    """What the console and the dashboard share: the live-log follower and the styles."""
    if name not in _SHARED:
        return Response(status_code=404)
    return Response(asset(name), media_type=_SHARED[name], headers=PAGE_HEADERS)
