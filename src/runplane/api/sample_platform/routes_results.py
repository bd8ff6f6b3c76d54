"""Regression outputs of a run: files, diffs, baseline approval, errors, artifacts, history."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from runplane.api.sample_platform import schemas as s
from runplane.api.sample_platform.deps import (
    BaselineWrite,
    Ctx,
    Page,
    ResultsRead,
    RunsRead,
    body_openapi,
    json_body,
    page_envelope,
    page_slice,
    utc_range,
)
from runplane.api.sample_platform.openapi import errors
from runplane.api.sample_platform.routes_samples import file_response
from runplane.domain.errors import NotFound
from runplane.services import outputs as outputs_service
from runplane.services import results as results_service
from runplane.services.samples import StoredFile
from runplane.store.regression_runs import HistoryFilter

router = APIRouter(tags=["results"])

Id = Annotated[int, Path(ge=1, le=2147483647)]
FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The file's bytes.",
    },
}


class BaselineApprovalRequest(s.Strict):
    regression_id: int = Field(ge=1, le=2147483647)
    output_id: int = Field(ge=1, le=2147483647)
    reason: str = Field(min_length=10, max_length=500)
    apply_to_variants: bool = Field(
        default=False,
        description="Add the output as an accepted variant instead of replacing the baseline.",
    )


class BaselineApprovalOut(BaseModel):
    approval_id: str
    status: Literal["approved"]
    run_id: int
    sample_id: int
    regression_id: int
    output_id: int
    previous_hash: str | None
    new_hash: str
    applied_as: Literal["baseline", "variant"]
    reason: str
    requested_by: str
    created_at: s.ApiDateTime


class DiffOut(BaseModel):
    run_id: int
    regression_id: int
    output_id: int
    filename: str
    expected_hash: str | None
    actual_hash: str | None
    identical: bool
    binary: bool
    truncated: bool
    diff: str | None
    message: str


class ErrorItemOut(BaseModel):
    error_id: int
    type: str
    severity: Literal["info", "warning", "error", "critical"]
    message: str
    sample_id: int | None
    regression_id: int | None
    output_id: int | None
    category: str | None


class ErrorBucket(BaseModel):
    group_by: str
    key: str
    count: int
    severity: Literal["info", "warning", "error", "critical"]
    sample_ids: list[int]
    first_seen_at: s.ApiDateTime | None
    last_seen_at: s.ApiDateTime | None


class ArtifactOut(BaseModel):
    artifact_id: str
    run_id: int
    sample_id: int | None
    type: str
    filename: str
    content_type: str
    size_bytes: int | None
    sha256: str | None
    storage_status: Literal["ok", "degraded", "missing"]
    download_url: str


class HistoryEntry(BaseModel):
    run_id: int
    regression_test_id: int
    status: str
    platform: str
    branch: str | None
    commit_sha: str
    tested_at: s.ApiDateTime
    exit_code: int | None
    runtime_ms: int | None
    failure_signature: str | None


_OUTPUT = "/runs/{run_id}/samples/{sample_id}/regression-tests/{regression_id}/outputs/{output_id}"


QueryId = Annotated[int, Query(ge=1, le=2147483647)]
_SUMMARIES = {
    "expected": "The baseline the run compared this output with",
    "actual": "The output file the run produced",
}


def _add_file_routes(which: Literal["expected", "actual"]) -> None:
    """The Sample Platform's two spellings: ids in the path (H) or in the query (Bump.sh)."""

    async def by_path(
        ctx: Ctx, _: ResultsRead, run_id: Id, sample_id: Id, regression_id: Id, output_id: Id
    ) -> StreamingResponse:
        return file_response(
            ctx,
            await outputs_service.output_file(
                ctx, run_id, sample_id, regression_id, output_id, which
            ),
        )

    async def by_query(
        ctx: Ctx,
        _: ResultsRead,
        run_id: Id,
        sample_id: Id,
        regression_id: QueryId,
        output_id: QueryId,
    ) -> StreamingResponse:
        return file_response(
            ctx,
            await outputs_service.output_file(
                ctx, run_id, sample_id, regression_id, output_id, which
            ),
        )

    responses = {**FILE_RESPONSE, **errors(400, 403, 404)}
    router.get(
        _OUTPUT + f"/{which}",
        response_class=StreamingResponse,
        responses=responses,
        summary=_SUMMARIES[which],
        name=f"{which}_output",
    )(by_path)
    router.get(
        f"/runs/{{run_id}}/samples/{{sample_id}}/{which}",
        response_class=StreamingResponse,
        responses=responses,
        summary=f"{_SUMMARIES[which]} (ids in the query)",
        name=f"{which}_output_query",
    )(by_query)


_add_file_routes("expected")
_add_file_routes("actual")


@router.get(
    _OUTPUT + "/diff",
    response_model=DiffOut,
    responses=errors(400, 403, 404),
    summary="Unified diff of expected vs actual (text), or 'binary files differ'",
)
async def output_diff(
    ctx: Ctx, _: ResultsRead, run_id: Id, sample_id: Id, regression_id: Id, output_id: Id
) -> DiffOut:
    found = await outputs_service.diff(ctx, run_id, sample_id, regression_id, output_id)
    return DiffOut(**{f: getattr(found, f) for f in DiffOut.model_fields})


@router.post(
    "/runs/{run_id}/samples/{sample_id}/baseline-approval",
    status_code=202,
    response_model=BaselineApprovalOut,
    responses=errors(400, 403, 404, 415, 422),
    summary="Make this run's actual output the approved baseline (or a variant)",
    openapi_extra=body_openapi(BaselineApprovalRequest),
)
async def approve_baseline(
    ctx: Ctx,
    principal: BaselineWrite,
    run_id: Id,
    sample_id: Id,
    body: Annotated[BaselineApprovalRequest, Depends(json_body(BaselineApprovalRequest))],
) -> BaselineApprovalOut:
    approval = await outputs_service.approve_baseline(
        ctx,
        principal,
        run_id,
        sample_id,
        body.regression_id,
        body.output_id,
        reason=body.reason,
        as_variant=body.apply_to_variants,
    )
    return BaselineApprovalOut(
        approval_id=str(approval.id),
        status="approved",
        run_id=run_id,
        sample_id=sample_id,
        regression_id=body.regression_id,
        output_id=body.output_id,
        previous_hash=approval.previous_hash,
        new_hash=approval.new_hash,
        applied_as="variant" if approval.as_variant else "baseline",
        reason=approval.reason,
        requested_by=approval.approved_by,
        created_at=approval.created_at,
    )


@router.get(
    "/runs/{run_id}/errors",
    response_model=s.PageOf[ErrorItemOut],
    responses=errors(400, 403, 404),
    summary="What went wrong, one item per failure",
)
async def run_errors(ctx: Ctx, _: ResultsRead, run_id: Id, page: Page) -> dict[str, Any]:
    _run, items = await results_service.errors(ctx, run_id)
    data = [ErrorItemOut(error_id=i, **vars_of(item)) for i, item in enumerate(items, 1)]
    return page_slice(data, page)


def vars_of(item: results_service.ErrorItem) -> dict[str, Any]:
    return {
        f: getattr(item, f)
        for f in (
            "type",
            "severity",
            "message",
            "sample_id",
            "regression_id",
            "output_id",
            "category",
        )
    }


_SEVERITY_ORDER = ["info", "warning", "error", "critical"]


@router.get(
    "/runs/{run_id}/error-summary",
    response_model=s.PageOf[ErrorBucket],
    responses=errors(400, 403, 404),
    summary="Errors grouped into buckets",
)
async def error_summary(
    ctx: Ctx,
    _: ResultsRead,
    run_id: Id,
    page: Page,
    group_by: Literal["type", "sample_id", "regression_id", "category", "severity"] = "type",
    severity: Literal["info", "warning", "error", "critical"] | None = None,
) -> dict[str, Any]:
    run, items = await results_service.errors(ctx, run_id)
    if severity:
        items = [i for i in items if i.severity == severity]
    buckets: dict[str, list[results_service.ErrorItem]] = defaultdict(list)
    for item in items:
        buckets[str(getattr(item, group_by))].append(item)
    seen = run.completed_at or run.started_at
    data = [
        ErrorBucket(
            group_by=group_by,
            key=key,
            count=len(group),
            severity=max((i.severity for i in group), key=_SEVERITY_ORDER.index),
            sample_ids=sorted({i.sample_id for i in group if i.sample_id is not None}),
            first_seen_at=seen,
            last_seen_at=seen,
        )
        for key, group in sorted(buckets.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    return page_slice(data, page)


@router.get(
    "/runs/{run_id}/artifacts",
    response_model=s.PageOf[ArtifactOut],
    responses=errors(400, 403, 404),
    summary="Files the run kept",
)
async def list_artifacts(
    request: Request,
    ctx: Ctx,
    _: ResultsRead,
    run_id: Id,
    page: Page,
    type: Literal[
        "build_log",
        "actual_output",
        "binary",
        "sample_output",
        "expected_output",
        "diff",
        "media_info",
    ]
    | None = None,
) -> dict[str, Any]:
    found = await outputs_service.artifacts(ctx, run_id)
    if type:
        found = [a for a in found if a.type == type]
    base = str(request.base_url).rstrip("/") + str(request.scope.get("root_path", ""))
    data = [
        ArtifactOut(
            artifact_id=a.artifact_id,
            run_id=a.run_id,
            sample_id=a.sample_id,
            type=a.type,
            filename=a.filename,
            content_type=a.content_type,
            size_bytes=a.size_bytes,
            sha256=a.sha256,
            storage_status="ok"
            if a.sha256 is None or await ctx.blobs.exists(a.sha256)
            else "missing",
            download_url=f"{base}/runs/{run_id}/artifacts/{a.artifact_id}/download",
        )
        for a in found
    ]
    return page_slice(data, page)


@router.get(
    "/runs/{run_id}/artifacts/{artifact_id}/download",
    responses={**FILE_RESPONSE, **errors(400, 403, 404)},
    summary="Download one artifact",
)
async def download_artifact(
    ctx: Ctx,
    _: ResultsRead,
    run_id: Id,
    artifact_id: Annotated[str, Path(max_length=40, pattern=r"^(log|(output|file)-[0-9]{1,10})$")],
) -> Any:
    for artifact in await outputs_service.artifacts(ctx, run_id):
        if artifact.artifact_id != artifact_id:
            continue
        if artifact.sha256 is None:
            return PlainTextResponse(await outputs_service.raw_log(ctx, run_id))
        return file_response(
            ctx, StoredFile(artifact.sha256, artifact.size_bytes or 0, artifact.filename)
        )
    raise NotFound(artifact_id, f"Artifact {artifact_id} not found in run {run_id}.")


@router.get(
    "/samples/{sample_id}/history",
    response_model=s.PageOf[HistoryEntry],
    responses=errors(400, 403, 404),
    summary="The sample's result across runs",
)
async def sample_history(
    ctx: Ctx,
    _: RunsRead,
    sample_id: Id,
    page: Page,
    regression_test_id: QueryId | None = None,
    status: Literal["pass", "fail", "missing_output", "not_started"] | None = None,
    branch: Annotated[str | None, Query(max_length=100)] = None,
    platform: s.Platform | None = None,
    created_after: s.QueryDateTime | None = None,
    created_before: s.QueryDateTime | None = None,
) -> dict[str, Any]:
    after, before = utc_range(created_after, created_before)
    items, total = await outputs_service.history(
        ctx,
        sample_id,
        HistoryFilter(regression_test_id, status, branch, platform, after, before),
        limit=page.limit,
        offset=page.offset,
    )
    data = [
        HistoryEntry(
            run_id=i.run.id,
            regression_test_id=i.result.regression_test_id,
            status=i.result.status,
            platform=i.run.platform,
            branch=i.run.branch,
            commit_sha=i.run.commit_sha,
            tested_at=i.run.completed_at or i.result.created_at,
            exit_code=i.result.exit_code,
            runtime_ms=i.result.runtime_ms,
            failure_signature=i.failure_signature,
        )
        for i in items
    ]
    return page_envelope(data, page, total)
