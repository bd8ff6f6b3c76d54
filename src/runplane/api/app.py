"""The ASGI application factory."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from runplane import __version__
from runplane.api.dashboard import install_dashboard
from runplane.api.demo_site import create_demo_site
from runplane.api.gate import GateState
from runplane.api.metrics import HttpMetrics, HttpMetricsMiddleware, metrics_route
from runplane.api.rate_limits import make_rate_limiter
from runplane.api.sample_platform.app import create_sample_platform_app
from runplane.api.sample_platform.errors import error_response
from runplane.api.tester_army.app import create_tester_army_app
from runplane.api.tester_army.views import webhook_payload
from runplane.config import Settings
from runplane.runtime import Runtime


def create_app(settings: Settings, *, run_workers: bool = True) -> FastAPI:
    """Build the app; the database, workers and reaper start in its lifespan."""
    gate = GateState()
    holder: dict[str, Runtime] = {}

    def worker_slots() -> int:
        runtime = holder.get("runtime")
        return runtime.dispatcher.concurrency if runtime and runtime.dispatcher else 0

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(
            settings, run_workers=run_workers, webhook_payload=webhook_payload
        )
        holder["runtime"] = runtime
        app.state.runtime = runtime
        gate.ctx = runtime.ctx
        gate.limiter = limiter = make_rate_limiter(settings)
        try:
            yield
        finally:
            try:
                await runtime.close()
            finally:
                await limiter.aclose()

    app = FastAPI(
        title="runplane",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    http_metrics = HttpMetrics()
    # First, so that no mount (a dashboard at "/") can shadow it.
    app.router.routes.append(metrics_route(gate, http_metrics))
    app.add_middleware(HttpMetricsMiddleware, metrics=http_metrics)
    app.mount("/api/v1", create_sample_platform_app(gate, worker_slots))
    app.mount("/ta", create_tester_army_app(gate))
    for route in app.routes:
        if isinstance(route, Mount):
            # A mount's pattern does not match a newline inside the rest of the path, and a
            # request it misses would skip the dialect's gate (auth, envelope, headers):
            # let the dialect see every path under its prefix.
            route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    if settings.demo_site:
        app.mount("/demo-site", create_demo_site())

    @app.exception_handler(StarletteHTTPException)
    async def _outer_http_error(_: Request, exc: StarletteHTTPException) -> Response:
        # Paths the mount cannot match (e.g. a newline in a path segment) end here:
        # answer in the API's envelope all the same.
        if exc.status_code == 404:
            return error_response(404, "not_found", "The requested resource was not found.")
        return error_response(exc.status_code, "validation_error", str(exc.detail))

    # The API index; "/" is the dashboard (which answers this to Accept: application/json).
    @app.get("/api", include_in_schema=False)
    async def index() -> dict[str, object]:
        return {
            "name": "runplane",
            "version": __version__,
            "apis": {
                "sample_platform_v1": {
                    "base": "/api/v1",
                    "openapi": "/api/v1/openapi.json",
                    "docs": "/api/v1/docs",
                },
                "tester_army": {
                    "base": ["/ta/v1", "/ta/api/v1"],
                    "openapi": "/ta/openapi.json",
                    "docs": "/ta/docs",
                },
            },
        }

    install_dashboard(app, gate, index)
    return app
