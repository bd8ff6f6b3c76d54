"""The Sample Platform sub-application (mounted at ``/api/v1``)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from runplane import __version__
from runplane.api.gate import Gate, GateState
from runplane.api.sample_platform import errors, openapi
from runplane.api.sample_platform.deps import BodyRejected
from runplane.api.sample_platform.policy import SAMPLE_PLATFORM_GATE
from runplane.api.sample_platform.routes_auth import router as auth_router
from runplane.api.sample_platform.routes_logs import router as logs_router
from runplane.api.sample_platform.routes_projects import router as projects_router
from runplane.api.sample_platform.routes_results import router as results_router
from runplane.api.sample_platform.routes_runs import router as runs_router
from runplane.api.sample_platform.routes_samples import router as samples_router
from runplane.api.sample_platform.routes_suite import router as suite_router
from runplane.api.sample_platform.routes_system import router as system_router

DESCRIPTION = """\
runplane's native API: the **Sample Platform CI API v1** contract (CCExtractor), served by
runplane. Errors are `{code, message, details}`; every response carries `X-RateLimit-*`
headers. `/projects` and the run fields marked *runplane extension* go beyond the contract.

A project's test command may contain `{failed_tests}`: it is replaced by the selected test
names (space-separated, shell-quoted; empty for a full run), which is what lets
`POST /runs/{run_id}/retry` with `failed_only: true` re-run only the failed tests. The same
names are in the `RUNPLANE_SELECTED_TESTS` environment variable, one per line.
"""


def create_sample_platform_app(state: GateState, workers: Callable[[], int]) -> FastAPI:
    app = FastAPI(
        title="runplane — Sample Platform CI API v1",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gate = state
    app.state.workers = workers
    errors.install(app)

    @app.exception_handler(BodyRejected)
    async def _body(_: Request, exc: BodyRejected) -> JSONResponse:
        details = {"fields": exc.fields} if exc.fields or exc.status_code == 400 else {}
        return errors.error_response(exc.status_code, "validation_error", exc.message, details)

    for router in (
        auth_router,
        runs_router,
        logs_router,
        results_router,
        system_router,
        projects_router,
        samples_router,
        suite_router,
    ):
        app.include_router(router)
    openapi.install(app, title=app.title, version=__version__, description=DESCRIPTION)
    app.add_middleware(Gate, state=state, policy=SAMPLE_PLATFORM_GATE)
    return app
