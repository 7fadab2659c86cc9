"""The operator console: one static page (`/console`, no build step) that reads the API with the
key typed into it: projection positions, lag and rate, parked events and parked sagas with their
actions, and the live event stream. The page itself holds nothing secret; every call it makes is
authenticated and scoped like any other client's."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["console"])


@cache
def page() -> str:
    """The console's HTML, read once."""
    return files(__package__).joinpath("console.html").read_text(encoding="utf-8")


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
def console() -> HTMLResponse:
    """The operator console."""
    return HTMLResponse(page(), headers={"Cache-Control": "no-cache", "X-Frame-Options": "DENY"})
