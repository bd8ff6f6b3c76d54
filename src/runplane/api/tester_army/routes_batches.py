"""``/v1/batches/{batchId}/cancel`` and ``/rerun``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from runplane.api.tester_army.deps import Ctx, RunControl, RunSubmit
from runplane.api.tester_army.errors import DialectError
from runplane.api.tester_army.openapi import errors
from runplane.api.tester_army.schemas import BatchCancelled, BatchRerun
from runplane.services import browser_runs

router = APIRouter(tags=["Batches"])


@router.post(
    "/batches/{batchId}/cancel",
    operation_id="cancel-a-batch",
    summary="Cancel every queued or running run of a batch",
    description="Idempotent: finished runs are left alone and counted as already finished.",
    response_model=BatchCancelled,
    responses=errors(404, 409),
)
async def cancel_batch(batchId: UUID, ctx: Ctx, actor: RunControl) -> dict[str, Any]:
    outcome = await browser_runs.cancel_batch(ctx, actor, str(batchId))
    body = {
        "batchId": outcome.batch_id,
        "cancelled": len(outcome.cancelled),
        "alreadyFinished": len(outcome.already_finished),
        "cancelledRunIds": outcome.cancelled,
        "alreadyFinishedRunIds": outcome.already_finished,
    }
    if outcome.failed:
        raise DialectError(
            409,
            "Conflict",
            f"{len(outcome.failed)} run(s) of the batch could not be cancelled.",
            extra={**body, "failedRunIds": outcome.failed},
        )
    return body


@router.post(
    "/batches/{batchId}/rerun",
    status_code=202,
    operation_id="rerun-a-batch",
    summary="Re-run the runnable tests of a batch as a new batch",
    response_model=BatchRerun,
    responses=errors(404, 409),
)
async def rerun_batch(batchId: UUID, ctx: Ctx, actor: RunSubmit) -> dict[str, Any]:
    started = await browser_runs.rerun_batch(ctx, actor, str(batchId))
    ids = [r.uuid for r in started.runs]
    return {
        "status": "queued",
        "groupId": started.batch.group_id,
        "batchId": started.batch.id,
        "sourceBatchId": str(batchId),
        "runIds": ids,
        "queuedRunIds": ids,
        "cancelledRunIds": [],
        "skippedTestIds": started.skipped_test_ids,
        "count": len(ids),
    }
