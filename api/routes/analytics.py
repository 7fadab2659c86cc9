"""Analytics (the seeds' week 8): revenue metrics, the whole dashboard in one read, CSV exports of
its reports, and the dashboard page itself (`/dashboard`)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.auth import Authenticated, caller_of, permission
from api.console import PAGE_HEADERS, asset
from api.deps import CleanQuery, Consistent, ReadDep, RuntimeDep
from projections import analytics

router = APIRouter(prefix="/v1/analytics", tags=["analytics"], dependencies=[Authenticated, CleanQuery])
page = APIRouter(tags=["analytics"])
Since = Annotated[datetime | None, Query(description="from this moment (inclusive)")]
Until = Annotated[datetime | None, Query(description="to this moment (exclusive)")]
ReportName = Literal["revenue_over_time", "top_content", "engagement", "revenue_per_creator",
                     "elevate_funnel"]


@router.get("/revenue", openapi_extra=permission("analytics.read"), dependencies=[Consistent])
def revenue(conn: ReadDep, request: Request, since: Since = None, until: Until = None) -> JSONResponse:
    """The seeds' `getRevenueMetrics`: completed total, platform fees, count, average order value,
    payments by status (initiated, completed, failed, refunded)."""
    return JSONResponse(analytics.revenue_metrics(conn, caller_of(request).org_id, since, until))


@router.get("/dashboard", openapi_extra=permission("analytics.read"), dependencies=[Consistent])
def dashboard(rt: RuntimeDep, request: Request, since: Since = None, until: Until = None) -> JSONResponse:
    """Everything the dashboard shows: revenue, revenue and volume per day, the ELEVATE funnel, top
    content, engagement by interaction type, revenue per creator."""
    return JSONResponse(analytics.dashboard(rt.reads, caller_of(request).org_id, since, until))


@router.get("/export", openapi_extra=permission("analytics.read"), dependencies=[Consistent],
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export(conn: ReadDep, request: Request, report: ReportName, since: Since = None,
           until: Until = None) -> Response:
    """One report as CSV (a header row, then one row per item)."""
    items = analytics.REPORTS[report](conn, caller_of(request).org_id, since, until)
    out = io.StringIO()
    if items:
        writer = csv.DictWriter(out, fieldnames=list(items[0]))
        writer.writeheader()
        writer.writerows(items)
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{report}.csv"'})


@page.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    """The analytics dashboard (a static page reading the API with the key typed into it)."""
    return HTMLResponse(asset("dashboard.html"), headers=PAGE_HEADERS)
