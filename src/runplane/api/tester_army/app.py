"""The Tester Army sub-application (mounted at ``/ta``; routes under ``/v1`` and ``/api/v1``)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from runplane import __version__
from runplane.api.gate import Gate, GatePolicy, GateState
from runplane.api.tester_army import errors, openapi
from runplane.api.tester_army.routes_batches import router as batches_router
from runplane.api.tester_army.routes_groups import router as groups_router
from runplane.api.tester_army.routes_projects import router as projects_router
from runplane.api.tester_army.routes_runs import router as runs_router
from runplane.api.tester_army.routes_tests import router as tests_router

DESCRIPTION = """\
The **Tester Army API**, served by runplane over the same runs, workers and tokens as the
native `/api/v1`. Base URLs: `/ta/v1` or `/ta/api/v1` (the same routes). Authenticate with
`Authorization: Bearer <key>`: an `sk_…` key issued for this dialect or any runplane token
with the `runs:read` / `runs:write` scopes. Errors are `{error, message}`.

Runs execute in a real headless Chromium driven by runplane's browser agent; see
`docs/browser-agent.md` for the instruction language of prompts and test steps.
Webhook deliveries are signed: `X-Runplane-Signature: t=<unix>,v1=<hex>` where `<hex>` is
HMAC-SHA256 over `<unix>.<raw body>` with the installation's webhook secret.
"""

TESTER_ARMY_GATE = GatePolicy(
    name="ta",
    public=openapi.PUBLIC,
    unauthorized=errors.unauthorized,
    rate_limited=errors.rate_limited,
)


def create_tester_army_app(state: GateState) -> FastAPI:
    app = FastAPI(
        title="runplane — Tester Army API",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gate = state
    errors.install(app)
    routers: list[APIRouter] = [
        runs_router,
        batches_router,
        projects_router,
        tests_router,
        groups_router,
    ]
    # Both base URLs the docs print; the document lists the /v1 spelling once.
    for router in routers:
        app.include_router(router, prefix="/v1")
    for router in routers:
        app.include_router(router, prefix="/api/v1", include_in_schema=False)
    openapi.install(app, title=app.title, version=__version__, description=DESCRIPTION)
    app.add_middleware(Gate, state=state, policy=TESTER_ARMY_GATE)
    return app
