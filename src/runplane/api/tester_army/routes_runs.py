"""``/v1/runs`` and the run-starting routes of tests and groups: translate, call, render."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from runplane.api.tester_army.deps import (
    Ctx,
    RunControl,
    RunsRead,
    RunSubmit,
    decode_cursor,
    encode_cursor,
)
from runplane.api.tester_army.errors import DialectError
from runplane.api.tester_army.formats import iso_ms
from runplane.api.tester_army.openapi import errors
from runplane.api.tester_army.schemas import (
    BatchStarted,
    CancelledRun,
    CreateRunAccepted,
    CreateRunBody,
    GroupRunBody,
    RunListResponse,
    RunResponse,
    StoredTestRunAccepted,
    StoredTestRunBody,
    TaStatus,
)
from runplane.api.tester_army.views import run_object
from runplane.domain.dialects import TESTER_ARMY_FILTER, TESTER_ARMY_STATUS
from runplane.domain.errors import TransitionRejected
from runplane.domain.status import RunStatus
from runplane.execution.browser import SCREENSHOT_NAME
from runplane.services import browser_runs
from runplane.services import runs as run_service
from runplane.services.browser_runs import Credential
from runplane.store.browser_runs import BrowserRunFilter

router = APIRouter(tags=["Test Runs"])


def dialect_base(request: Request) -> str:
    """``…/ta`` as this client reached it (screenshot links are built on it)."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}"


def _credentials(body: CreateRunBody) -> list[Credential]:
    given = body.credentials
    if given is None:
        return []
    if isinstance(given, list):
        return [Credential(c.username, c.password) for c in given]
    return [Credential(given.email, given.password)]


async def _rendered(ctx: Any, request: Request, run_id: int) -> dict[str, Any]:
    (view,) = await browser_runs.get_many(ctx, [run_id])
    return run_object(view, dialect_base(request))


@router.post(
    "/runs",
    status_code=202,
    operation_id="submit-a-qa-test-run",
    summary="Submit a QA test run",
    response_model=CreateRunAccepted,
    responses={**errors(504), 200: {"model": RunResponse, "description": "Finished (wait)."}},
)
async def submit_run(
    request: Request,
    body: CreateRunBody,
    ctx: Ctx,
    actor: RunSubmit,
    wait: Annotated[
        int | None,
        Query(ge=0, le=300, description="Wait up to this many seconds for the verdict."),
    ] = None,
) -> Any:
    run = await browser_runs.submit_prompt(
        ctx, actor, body.prompt, webhook_url=body.webhookUrl, credentials=_credentials(body)
    )
    if not wait:
        return {"id": run.uuid, "status": "queued", "createdAt": iso_ms(run.created_at)}
    seconds = min(wait, ctx.settings.max_wait_seconds)
    if not await browser_runs.wait_until_finished(ctx, run.id, seconds):
        raise DialectError(
            504,
            "GatewayTimeout",
            f"Run {run.uuid} did not finish within {seconds} s; it keeps running: "
            f"GET /v1/runs/{run.uuid}.",
            extra={"id": run.uuid},
        )
    return JSONResponse(await _rendered(ctx, request, run.id), status_code=200)


@router.get(
    "/runs",
    operation_id="list-runs",
    summary="List runs",
    response_model=RunListResponse,
    responses=errors(),
)
async def list_runs(
    request: Request,
    ctx: Ctx,
    _: RunsRead,
    limit: Annotated[int, Query(ge=1, le=100, description="Max results per page.")] = 20,
    status: Annotated[TaStatus | None, Query(description="Filter by status.")] = None,
    projectId: Annotated[UUID | None, Query(description="Filter by project ID.")] = None,
    testId: Annotated[UUID | None, Query(description="Filter by test ID.")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="From nextCursor.")] = None,
) -> dict[str, Any]:
    position = decode_cursor(cursor)
    if position is not None and (
        not isinstance(position, int) or isinstance(position, bool) or not 0 < position < 2**63
    ):
        raise DialectError(400, "ValidationError", "cursor: Invalid cursor")
    flt = BrowserRunFilter(
        statuses=TESTER_ARMY_FILTER[status] if status else None,
        project_id=str(projectId) if projectId else None,
        test_id=str(testId) if testId else None,
    )
    views, next_before = await browser_runs.list_runs(ctx, flt, before_id=position, limit=limit)
    base = dialect_base(request)
    return {
        "runs": [run_object(v, base) for v in views],
        "nextCursor": encode_cursor(next_before) if next_before is not None else None,
    }


@router.get(
    "/runs/{id}",
    operation_id="get-test-run-status",
    summary="Get a run",
    response_model=RunResponse,
    responses=errors(404),
)
async def get_run(request: Request, id: UUID, ctx: Ctx, _: RunsRead) -> dict[str, Any]:
    return run_object(await browser_runs.get(ctx, str(id)), dialect_base(request))


@router.post(
    "/runs/{id}/cancel",
    operation_id="cancel-a-queued-run",
    summary="Cancel a queued run",
    description="Only a run whose status is `queued` is cancelled; anything else is a 409.",
    response_model=CancelledRun,
    responses=errors(404, 409),
)
async def cancel_run(id: UUID, ctx: Ctx, actor: RunControl) -> dict[str, Any]:
    view = await browser_runs.get(ctx, str(id))
    try:
        await run_service.cancel_queued(ctx, actor, view.run.id)
    except TransitionRejected as exc:
        shown = TESTER_ARMY_STATUS[RunStatus(exc.details.get("status", view.run.status))]
        raise DialectError(
            409, "Conflict", f"Run is {shown}; only queued runs can be cancelled."
        ) from None
    return {"id": str(id), "status": "cancelled"}


@router.get(
    "/runs/{id}/screenshots/{name}",
    operation_id="get-run-screenshot",
    summary="A screenshot the run took (PNG)",
    response_class=Response,
    responses={
        **errors(404),
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
    },
)
async def get_screenshot(
    id: UUID,
    name: Annotated[str, Path(pattern=f"^{SCREENSHOT_NAME.pattern}$")],
    ctx: Ctx,
    _: RunsRead,
) -> StreamingResponse:
    shot = await browser_runs.screenshot(ctx, str(id), name)
    return StreamingResponse(
        ctx.blobs.read(shot.sha256),
        media_type="image/png",
        headers={"Content-Length": str(shot.size_bytes)},
    )


@router.post(
    "/tests/{testId}/runs",
    status_code=202,
    operation_id="run-a-test",
    summary="Run a stored test",
    description="Only `web` runs are supported: `platform` ios/android is a 400. "
    "runplane extensions: `targetUrl` (instead of the project's URL), `webhookUrl`.",
    response_model=StoredTestRunAccepted,
    responses=errors(404, 409),
)
async def run_test(
    testId: UUID, ctx: Ctx, actor: RunSubmit, body: StoredTestRunBody | None = None
) -> dict[str, Any]:
    body = body or StoredTestRunBody()
    run = await browser_runs.submit_test(
        ctx,
        actor,
        str(testId),
        target_url=body.targetUrl,
        webhook_url=body.webhookUrl,
        platform=body.platform,
    )
    return {"status": "queued", "runId": run.uuid, "testId": str(testId)}


@router.post(
    "/groups/{groupId}/runs",
    status_code=202,
    operation_id="trigger-a-test-group-run",
    summary="Run every test of a group (one batch)",
    description="One run per enabled test; the group's prep test first (the others wait "
    "for it). Only `web` runs are supported: `platform` ios/android is a 400.",
    response_model=BatchStarted,
    responses=errors(404),
)
async def run_group(
    groupId: UUID, ctx: Ctx, actor: RunSubmit, body: GroupRunBody | None = None
) -> dict[str, Any]:
    body = body or GroupRunBody()
    started = await browser_runs.submit_group(
        ctx, actor, str(groupId), target_url=body.targetUrl, platform=body.platform
    )
    ids = [r.uuid for r in started.runs]
    return {
        "status": "queued",
        "groupId": str(groupId),
        "batchId": started.batch.id,
        "runIds": ids,
        "queuedRunIds": ids,
        "cancelledRunIds": [],
        "count": len(ids),
    }
