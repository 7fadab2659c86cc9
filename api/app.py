"""The FastAPI application: /v1 commands and queries, health, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST

from api import console
from api.auth import PERMISSION_KEY, authenticate
from api.correlation import CorrelationIds
from api.limits import BodySizeLimit
from api.metrics import render_metrics
from api.openapi import document_api
from api.problems import install_problem_handlers
from api.routes import (
    agents,
    analytics,
    clones,
    history,
    identity,
    invitations,
    knowledge,
    log,
    operations,
    purchases,
    reads,
    schedules,
    stream,
    workflows,
    writes,
)
from api.runtime import Runtime
from api.status import saga_status
from domain.permissions import PUBLIC
from infra.settings import Settings

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's OpenTelemetry hooks are off: ONE configures no OpenTelemetry provider, and checking
for one costs every request several environment look-ups (about 5% of the event loop's time
under load). Metrics are Prometheus (`/metrics`)."""


def create_app(runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the app. Without a runtime, one is started on startup and closed on shutdown."""
    settings = settings or (runtime.settings if runtime else Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or Runtime.start(settings)
        try:
            yield
        finally:
            if owned:
                app.state.runtime.close()

    app = FastAPI(title="ONE", version="0.1.0", lifespan=lifespan, telemetry=NO_TELEMETRY,
                  description="Event-sourced backend for the ONE Platform ontology.")
    install_problem_handlers(app)
    for router in (identity.router, identity.reads, identity.sign_in, writes.router, reads.router,
                   purchases.router, purchases.webhooks, knowledge.router, operations.router,
                   operations.sagas, log.router, history.router, stream.router, console.router,
                   workflows.router, schedules.router, clones.router, analytics.router, analytics.page,
                   invitations.router, invitations.reads, invitations.acceptance, agents.router):
        app.include_router(router)
    _require_permissions(app)
    document_api(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness: the database answers and projections are healthy (and, where sagas run,
        whether this process leads them)."""
        rt: Runtime = app.state.runtime
        try:
            head = rt.head()
        except Exception as error:
            return JSONResponse({"status": "unavailable", "reason": str(error)}, status_code=503)
        problem = rt.projection_error()
        if problem is not None:
            return JSONResponse({"status": "degraded", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready", "head": head, "projected": rt.projected()}
                            | saga_status(rt))

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(render_metrics(app.state.runtime), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CorrelationIds)
    return app


def _require_permissions(app: FastAPI) -> None:
    """Every /v1 route names its action of the permission matrix, and authenticates before
    anything else unless the action is public."""
    for route in app.routes:
        if not (isinstance(route, APIRoute) and route.path.startswith("/v1")):
            continue
        where = f"{sorted(route.methods or ())} {route.path}"
        action = (route.openapi_extra or {}).get(PERMISSION_KEY)
        if action is None:
            raise RuntimeError(f"{where} names no permission")
        first = route.dependant.dependencies[0].call if route.dependant.dependencies else None
        if action != PUBLIC and first is not authenticate:
            raise RuntimeError(f"{where} does not authenticate first")
