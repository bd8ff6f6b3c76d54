"""Hooks the dashboard into the main app: its routes at ``/``, its files at ``/static``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from runplane.api.dashboard import routes_account, routes_run, routes_runs, views
from runplane.api.dashboard.security import WithDashboardHeaders
from runplane.api.gate import GateState

STATIC_PATH = "/static"


def install_dashboard(
    app: FastAPI, gate: GateState, json_index: Callable[[], Awaitable[dict[str, Any]]]
) -> None:
    """Serve the dashboard from ``app``; ``/`` answers ``await json_index()`` to JSON clients.

    ``gate`` gives the sign-in form the API's rate limiter (attempts per IP).
    """
    app.state.dashboard_gate = gate
    app.state.dashboard_json_index = json_index
    app.include_router(routes_runs.router)
    app.include_router(routes_run.router)
    app.include_router(routes_account.router)
    app.mount(
        STATIC_PATH,
        WithDashboardHeaders(StaticFiles(directory=views.STATIC_DIR)),
        name="dashboard-static",
    )
