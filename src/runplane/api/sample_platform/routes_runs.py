"""``/runs``: translate requests to ``services.runs`` / ``services.results`` and back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request

from runplane.api.sample_platform import schemas as s
from runplane.api.sample_platform.deps import (
    Ctx,
    Page,
    RunControl,
    RunsRead,
    RunsWrite,
    SystemRead,
    body_openapi,
    json_body,
    page_envelope,
    utc_range,
)
from runplane.api.sample_platform.openapi import errors
from runplane.domain.dialects import SAMPLE_PLATFORM_FILTER, SAMPLE_PLATFORM_STATUS
from runplane.domain.errors import InvalidInput
from runplane.services import results as results_service
from runplane.services import runs as runs_service
from runplane.store.runs import SORT_KEYS, RunFilter

router = APIRouter(prefix="/runs", tags=["runs"])

RunIdPath = Annotated[int, Path(ge=1, le=2147483647, description="Numeric run ID.")]
ResultIdPath = Annotated[int, Path(ge=1, le=2147483647, description="Result (test case) ID.")]
SortKey = Literal["created_at", "-created_at", "started_at", "-started_at", "run_id", "-run_id"]
assert set(SortKey.__args__) == set(SORT_KEYS)  # type: ignore[attr-defined]


def _base(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return str(request.base_url).rstrip("/") + root


@router.get("", response_model=s.PageOf[s.RunOut], responses=errors(400, 403), summary="List runs")
async def list_runs(
    request: Request,
    ctx: Ctx,
    _: RunsRead,
    page: Page,
    status: s.SpRunStatus | None = None,
    branch: Annotated[str | None, Query(max_length=100)] = None,
    commit_sha: Annotated[str | None, Query(pattern=s.SHA_PATTERN)] = None,
    repository: Annotated[str | None, Query(max_length=100, pattern=s.REPOSITORY_PATTERN)] = None,
    platform: s.Platform | None = None,
    created_after: s.QueryDateTime | None = None,
    created_before: s.QueryDateTime | None = None,
    sort: SortKey = "-created_at",
) -> dict[str, Any]:
    after, before = utc_range(created_after, created_before)
    flt = RunFilter(
        statuses=SAMPLE_PLATFORM_FILTER[status] if status else None,
        branch=branch,
        commit_sha=commit_sha,
        repository=repository,
        platform=platform,
        created_after=after,
        created_before=before,
    )
    runs, total = await runs_service.list_runs(
        ctx, flt, sort=sort, limit=page.limit, offset=page.offset
    )
    positions = await runs_service.queue_positions(ctx, runs)
    base = _base(request)
    return page_envelope([s.run_out(r, base, positions.get(r.id)) for r in runs], page, total)


@router.post(
    "",
    status_code=202,
    response_model=s.RunOut,
    responses=errors(400, 403, 409, 415, 422),
    summary="Trigger a run",
    openapi_extra=body_openapi(s.RunCreate),
)
async def create_run(
    request: Request,
    ctx: Ctx,
    principal: RunsWrite,
    body: Annotated[s.RunCreate, Depends(json_body(s.RunCreate))],
    idempotency_key: Annotated[
        str | None,
        Header(max_length=255, description="Same key and body return the same run."),
    ] = None,
) -> s.RunOut:
    run, _created = await runs_service.submit(
        ctx,
        principal,
        runs_service.RunRequest(
            repository=body.repository,
            commit_sha=body.commit_sha,
            platform=body.platform,
            branch=body.branch,
            pull_request=body.pull_request,
            regression_test_ids=tuple(body.regression_test_ids)
            if body.regression_test_ids is not None
            else None,
            priority=body.priority,
        ),
        idempotency_key=idempotency_key,
    )
    positions = await runs_service.queue_positions(ctx, [run])
    return s.run_out(run, _base(request), positions.get(run.id))


@router.get(
    "/{run_id}", response_model=s.RunOut, responses=errors(400, 403, 404), summary="Get a run"
)
async def get_run(request: Request, ctx: Ctx, _: RunsRead, run_id: RunIdPath) -> s.RunOut:
    run = await runs_service.get(ctx, run_id)
    positions = await runs_service.queue_positions(ctx, [run])
    return s.run_out(run, _base(request), positions.get(run.id))


@router.get(
    "/{run_id}/summary",
    response_model=s.RunSummary,
    responses=errors(400, 403, 404),
    summary="Pass/fail counts of a run",
)
async def get_summary(ctx: Ctx, _: RunsRead, run_id: RunIdPath) -> s.RunSummary:
    summary = await results_service.summary(ctx, run_id)
    return s.RunSummary(
        run_id=run_id,
        status=s.sp_status(summary.run),
        total_samples=summary.total,
        pass_count=summary.passed,
        fail_count=summary.failed,
        skipped_count=summary.skipped,
        missing_output_count=summary.missing_output,
        error_count=summary.errors,
        duration_ms=summary.duration_ms,
        triggered_by=summary.run.triggered_by,
    )


@router.get(
    "/{run_id}/progress",
    response_model=s.PageOf[s.ProgressEvent],
    responses=errors(400, 403, 404),
    summary="Progress trail of a run",
)
async def get_progress(
    ctx: Ctx,
    _: RunsRead,
    run_id: RunIdPath,
    page: Page,
    status: Literal["preparation", "testing", "completed", "canceled"] | None = None,
) -> dict[str, Any]:
    events, total = await results_service.progress(
        ctx, run_id, [status] if status else None, limit=page.limit, offset=page.offset
    )
    return page_envelope([s.progress_event(e) for e in events], page, total)


@router.get(
    "/{run_id}/config",
    response_model=s.RunConfig,
    responses=errors(400, 403, 404),
    summary="What a run executes",
)
async def get_config(ctx: Ctx, _: RunsRead, run_id: RunIdPath) -> s.RunConfig:
    config = await runs_service.config(ctx, run_id)
    run, project = config.run, config.project
    return s.RunConfig(
        run_id=run.id,
        platform=run.platform,
        branch=run.branch,
        commit_sha=run.commit_sha,
        repository=run.repository,
        regression_test_ids=config.regression_test_ids,
        environment=s.RunEnvironment(
            environment_id=run.platform,
            platform=run.platform,
            active=True,
            runner_label="runplane-local",
            average_duration_ms=None,
        ),
        matrix=[],
        command_defaults=[
            c
            for c in (
                project.build_command if project else None,
                project.test_command if project else None,
            )
            if c
        ],
        selected_tests=run.selected_tests,
        timeout_seconds=project.timeout_seconds if project else None,
        env_keys=sorted((project.env or {}).keys()) if project else [],
    )


@router.get(
    "/{run_id}/logs",
    response_model=s.LogPage,
    responses=errors(400, 403, 404),
    summary="Log lines of a run (readable while it runs)",
)
async def get_logs(
    request: Request,
    ctx: Ctx,
    _: SystemRead,
    run_id: RunIdPath,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    cursor: Annotated[int, Query(ge=0, le=10_000_000, description="Line number.")] = 0,
    level: Literal["debug", "info", "warning", "error", "critical"] | None = None,
    source: Literal["orchestrator", "worker", "build", "test_runner", "web"] | None = None,
    contains: Annotated[str | None, Query(max_length=100)] = None,
) -> s.LogPage:
    if "offset" in request.query_params:
        raise InvalidInput(
            "Cannot mix cursor and offset pagination.", {"offset": "Use cursor on this endpoint."}
        )
    found = await results_service.log_lines(
        ctx, run_id, cursor=cursor, limit=limit, source=source, level=level, contains=contains
    )
    return s.LogPage(
        data=[s.log_line(line) for line in found.lines],
        pagination=s.CursorPagination(
            limit=limit,
            next_cursor=str(found.next_cursor) if found.next_cursor is not None else None,
        ),
    )


@router.get(
    "/{run_id}/samples",
    response_model=s.PageOf[s.RunSample],
    responses=errors(400, 403, 404),
    summary="Per-test results of a run",
)
async def list_samples(
    ctx: Ctx,
    _: RunsRead,
    run_id: RunIdPath,
    page: Page,
    status: Literal["pass", "fail", "skipped", "missing_output", "not_started"] | None = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
    category: Annotated[str | None, Query(max_length=50)] = None,
) -> dict[str, Any]:
    statuses = [status] if status else None
    rows, total = await results_service.samples(
        ctx,
        run_id,
        statuses=statuses,
        name=name,
        tag=tag,
        category=category,
        limit=page.limit,
        offset=page.offset,
    )
    return page_envelope([s.run_sample(r) for r in rows], page, total)


@router.get(
    "/{run_id}/samples/{regression_test_id}",
    response_model=s.RunSample,
    responses=errors(400, 403, 404),
    summary="One test's result in a run",
)
async def get_sample(
    ctx: Ctx, _: RunsRead, run_id: RunIdPath, regression_test_id: ResultIdPath
) -> s.RunSample:
    return s.run_sample(await results_service.sample(ctx, run_id, regression_test_id))


_CANCEL_MESSAGES = {
    "canceled": "Run has been canceled.",
    "running": "Run is being canceled; its processes are being stopped.",
}


@router.post(
    "/{run_id}/cancel",
    status_code=202,
    response_model=s.RunActionResult,
    responses=errors(400, 403, 404, 415),
    summary="Cancel a queued or running run (idempotent)",
    openapi_extra=body_openapi(s.CancelRequest, required=False),
)
async def cancel_run(
    ctx: Ctx,
    principal: RunControl,
    run_id: RunIdPath,
    body: Annotated[s.CancelRequest | None, Depends(json_body(s.CancelRequest, required=False))],
) -> s.RunActionResult:
    outcome = await runs_service.cancel(ctx, principal, run_id, body.reason if body else None)
    sp = SAMPLE_PLATFORM_STATUS[outcome.status]
    if outcome.outcome is runs_service.Outcome.NO_OP:
        message = f"Run is already in terminal state: {sp}"
    else:
        message = _CANCEL_MESSAGES["canceled" if sp == "canceled" else "running"]
    return s.RunActionResult(
        run_id=run_id,
        new_run_id=None,
        action="cancel",
        status=outcome.outcome.value,
        message=message,
    )


@router.post(
    "/{run_id}/retry",
    status_code=202,
    response_model=s.RunActionResult,
    responses=errors(400, 403, 404, 415, 422),
    summary="Create a new run copied from an existing run (the original is preserved)",
    openapi_extra=body_openapi(s.RetryRequest, required=False),
)
async def retry_run(
    ctx: Ctx,
    principal: RunControl,
    run_id: RunIdPath,
    body: Annotated[s.RetryRequest | None, Depends(json_body(s.RetryRequest, required=False))],
) -> s.RunActionResult:
    new = await runs_service.retry(
        ctx,
        principal,
        run_id,
        failed_only=body.failed_only if body else False,
        reason=body.reason if body else None,
    )
    return s.RunActionResult(
        run_id=run_id,
        new_run_id=new.id,
        action="retry",
        status="accepted",
        message=f"Run {new.id} has been queued as a retry of run {run_id}.",
    )


@router.post(
    "/{run_id}/restart",
    status_code=202,
    response_model=s.RunActionResult,
    responses=errors(400, 403, 404, 409),
    summary="DESTRUCTIVE: delete a run's results, log and progress and run it again in place",
    description="Prefer `/retry`, which keeps history. Restart reuses the same run id; "
    "a running run must be canceled first (409).",
)
async def restart_run(ctx: Ctx, principal: RunControl, run_id: RunIdPath) -> s.RunActionResult:
    await runs_service.restart(ctx, principal, run_id)
    return s.RunActionResult(
        run_id=run_id,
        new_run_id=None,
        action="restart",
        status="accepted",
        message="Run has been queued to run again.",
    )
