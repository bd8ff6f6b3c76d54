"""``/system``: health (public) and the queue."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from runplane.api.sample_platform import schemas as s
from runplane.api.sample_platform.deps import Ctx, Page, SystemRead, page_envelope
from runplane.api.sample_platform.openapi import errors
from runplane.domain.status import RunStatus
from runplane.services import system
from runplane.store.models import utcnow

router = APIRouter(prefix="/system", tags=["system"])


@router.head("/health", include_in_schema=False)
@router.get(
    "/health",
    response_model=s.SystemHealth,
    responses={503: {"model": s.SystemHealth, "description": "Down."}, **errors()},
    summary="Service health (no token needed)",
)
async def health(request: Request, ctx: Ctx) -> JSONResponse:
    dispatcher = request.app.state.workers
    checks = await system.health(ctx, workers=dispatcher() if callable(dispatcher) else 0)
    statuses = {c.status for c in checks}
    overall = "down" if "down" in statuses else ("degraded" if "degraded" in statuses else "ok")
    body = s.SystemHealth(
        status=overall,
        checked_at=utcnow(),
        dependencies=[
            s.Dependency(name=c.name, status=c.status, message=c.message) for c in checks
        ],
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if overall == "down" else 200)


@router.get(
    "/queue",
    response_model=s.QueuePage,
    responses=errors(400, 403),
    summary="Queued and running runs, with queue counters",
)
async def queue(
    ctx: Ctx,
    _: SystemRead,
    page: Page,
    status: Literal["queued", "running"] | None = None,
    platform: s.Platform | None = None,
) -> dict[str, Any]:
    statuses = {
        None: {RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELING},
        "queued": {RunStatus.QUEUED},
        "running": {RunStatus.RUNNING, RunStatus.CANCELING},
    }[status]
    view = await system.queue(ctx, statuses, platform, limit=page.limit, offset=page.offset)
    jobs = []
    for index, run in enumerate(view.jobs):
        queued = run.status == RunStatus.QUEUED.value
        position = page.offset + index + 1 if queued and status == "queued" else None
        jobs.append(
            s.QueueJob(
                run_id=run.id,
                status="queued" if queued else "running",
                platform=run.platform,
                repository=run.repository,
                queued_at=run.queued_at,
                started_at=run.started_at,
                position=position,
                priority=run.priority,
            )
        )
    counters = {"queue_depth": view.queue_depth, "running_count": view.running_count}
    return {**page_envelope(jobs, page, view.total, **counters), **counters}
