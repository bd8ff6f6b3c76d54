"""The runs list (filters, auto-refreshed table, a submit form) and the queue."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from runplane.api.dashboard import views
from runplane.api.dashboard.deps import (
    CheckedForm,
    Ctx,
    CurrentSession,
    FetchUser,
    PageUser,
    form_text,
    page_user,
)
from runplane.api.dashboard.security import DashboardRoute
from runplane.domain.errors import Unprocessable
from runplane.domain.status import RunStatus
from runplane.domain.types import Principal
from runplane.services import projects as projects_service
from runplane.services import runs as runs_service
from runplane.services import system, web_suite
from runplane.services.browser_runs import PROMPT_REPOSITORY
from runplane.services.context import Context
from runplane.store.models import Project, Run
from runplane.store.runs import RunFilter

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

PAGE_SIZE = 50
#: A kind filter the database cannot express scans at most this many runs (newest first).
PLATFORMS = ("linux", "windows")
SHA = re.compile(r"[0-9a-fA-F]{40}")
QUEUE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Filters:
    status: str | None = None
    repository: str | None = None
    kind: str | None = None
    page: int = 1

    def query(self, **changes: Any) -> str:
        """This filter set as a query string, with ``changes`` applied."""
        values = {
            "status": self.status,
            "repository": self.repository,
            "kind": self.kind,
            "page": self.page,
            **changes,
        }
        if values["page"] == 1:
            values["page"] = None
        return urlencode({k: v for k, v in values.items() if v})


@dataclass(frozen=True, slots=True)
class RunRow:
    run: Run
    kind: str
    timings: views.Timings
    position: int | None


@dataclass(frozen=True, slots=True)
class RunsPage:
    rows: list[RunRow]
    filters: Filters
    total: int
    has_more: bool
    repositories: list[tuple[str, str]] = field(default_factory=list)
    #: What the submit form offers (projects with a test command or regression tests).
    projects: Sequence[Project] = ()


def _filters(status: str | None, repository: str | None, kind: str | None, page: int) -> Filters:
    return Filters(
        status=status if status in views.STATUS_LABELS else None,
        repository=repository or None,
        kind=kind if kind in views.KIND_LABELS else None,
        page=page,
    )


async def _all_projects(ctx: Context) -> Sequence[Project]:
    found, _total = await projects_service.list_all(ctx, limit=1000, offset=0)
    return found


async def _repository_choices(ctx: Context, found: Sequence[Project]) -> list[tuple[str, str]]:
    choices = [(p.repository, p.repository) for p in found]
    for web in await web_suite.list_projects(ctx):
        choices.append((f"web/{web.short_id}", f"{web.name} (web/{web.short_id})"))
    choices.append((PROMPT_REPOSITORY, f"Prompt runs ({PROMPT_REPOSITORY})"))
    return choices


async def runs_page(ctx: Context, filters: Filters) -> RunsPage:
    found = await _all_projects(ctx)
    regression = views.regression_project_ids(found)
    browser = views.BROWSER_PLATFORM
    flt = RunFilter(
        statuses=frozenset({RunStatus(filters.status)}) if filters.status else None,
        repository=filters.repository,
        platform=browser if filters.kind == "browser" else None,
        other_platform_than=browser if filters.kind in ("tests", "regression") else None,
        regression={"tests": False, "regression": True}.get(filters.kind or ""),
    )
    offset = (filters.page - 1) * PAGE_SIZE
    runs, total = await runs_service.list_runs(
        ctx, flt, sort="-created_at", limit=PAGE_SIZE, offset=offset
    )
    more = offset + len(runs) < total
    positions = await runs_service.queue_positions(ctx, runs)
    rows = [
        RunRow(r, views.run_kind(r, regression), views.timings(r), positions.get(r.id))
        for r in runs
    ]
    return RunsPage(rows, filters, total, more, await _repository_choices(ctx, found), found)


async def _render_runs(
    request: Request,
    ctx: Context,
    principal: Principal,
    filters: Filters,
    *,
    submit: dict[str, str] | None = None,
    submit_error: str | None = None,
    status_code: int = 200,
) -> Response:
    page = await runs_page(ctx, filters)
    return views.render(
        request,
        "runs.html",
        {
            "title": "Runs",
            "nav": "runs",
            "page": page,
            "platforms": PLATFORMS,
            "submit": submit or {},
            "submit_error": submit_error,
        },
        status_code=status_code,
    )


StatusQuery = Annotated[str | None, Query(max_length=20)]
RepositoryQuery = Annotated[str | None, Query(max_length=100)]
KindQuery = Annotated[str | None, Query(max_length=20)]
PageQuery = Annotated[int, Query(ge=1, le=100_000)]


def _wants_json(request: Request) -> bool:
    """An API client asking ``/`` for JSON (a browser accepts HTML)."""
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


@router.get("/")
async def runs_list(
    request: Request,
    ctx: Ctx,
    session: CurrentSession,
    status: StatusQuery = None,
    repository: RepositoryQuery = None,
    kind: KindQuery = None,
    page: PageQuery = 1,
) -> Response:
    """The home page; JSON clients get the API index instead (as ``/api`` answers)."""
    if _wants_json(request):
        index: Callable[[], Awaitable[dict[str, Any]]] = request.app.state.dashboard_json_index
        return JSONResponse(await index())
    principal = await page_user(request, ctx, session)
    return await _render_runs(request, ctx, principal, _filters(status, repository, kind, page))


@router.get("/runs/table")
async def runs_table(
    request: Request,
    ctx: Ctx,
    principal: FetchUser,
    status: StatusQuery = None,
    repository: RepositoryQuery = None,
    kind: KindQuery = None,
    page: PageQuery = 1,
) -> Response:
    """The table alone, for the page's periodic refresh."""
    filters = _filters(status, repository, kind, page)
    return views.render(request, "_runs_table.html", {"page": await runs_page(ctx, filters)})


@router.post("/runs")
async def submit_run(
    request: Request, ctx: Ctx, principal: PageUser, form: CheckedForm
) -> Response:
    values = {
        "repository": form_text(form, "repository", 100),
        "commit_sha": form_text(form, "commit_sha", 100),
        "platform": form_text(form, "platform", 20),
        "branch": form_text(form, "branch", 100),
    }
    problem = None
    if not values["repository"]:
        problem = "Choose a repository."
    elif not SHA.fullmatch(values["commit_sha"]):
        problem = "The commit must be a full SHA: 40 hexadecimal characters."
    elif values["platform"] not in PLATFORMS:
        problem = "Choose a platform."
    if problem is None:
        try:
            run, _created = await runs_service.submit(
                ctx,
                principal,
                runs_service.RunRequest(
                    repository=values["repository"],
                    commit_sha=values["commit_sha"],
                    platform=values["platform"],
                    branch=values["branch"] or "master",
                ),
            )
        except Unprocessable as exc:
            problem = exc.message
        else:
            return RedirectResponse(f"/runs/{run.id}?done=submitted", status_code=303)
    return await _render_runs(
        request, ctx, principal, Filters(), submit=values, submit_error=problem, status_code=400
    )


@dataclass(frozen=True, slots=True)
class QueueRow:
    run: Run
    position: int | None
    timings: views.Timings


async def _queue(ctx: Context) -> dict[str, Any]:
    queued = await system.queue(ctx, {RunStatus.QUEUED}, None, limit=QUEUE_LIMIT, offset=0)
    running = await system.queue(
        ctx, {RunStatus.RUNNING, RunStatus.CANCELING}, None, limit=QUEUE_LIMIT, offset=0
    )
    return {
        "queued": [QueueRow(r, i, views.timings(r)) for i, r in enumerate(queued.jobs, 1)],
        "queued_total": queued.total,
        "running": [QueueRow(r, None, views.timings(r)) for r in running.jobs],
        "running_total": running.total,
        "limit": QUEUE_LIMIT,
    }


@router.get("/queue")
async def queue_page(request: Request, ctx: Ctx, principal: PageUser) -> Response:
    return views.render(
        request, "queue.html", {"title": "Queue", "nav": "queue", **(await _queue(ctx))}
    )


@router.get("/queue/table")
async def queue_table(request: Request, ctx: Ctx, principal: FetchUser) -> Response:
    return views.render(request, "_queue_table.html", await _queue(ctx))
