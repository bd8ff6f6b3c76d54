"""One run: status, progress, timings, results (diffs, screenshots), its live log, controls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse

from runplane.api.dashboard import views
from runplane.api.dashboard.deps import CheckedForm, Ctx, FetchUser, PageUser, form_text
from runplane.api.dashboard.security import DashboardRoute
from runplane.api.sse import sse_response
from runplane.domain.permissions import Action
from runplane.domain.status import RunStatus
from runplane.domain.types import Principal
from runplane.execution.browser import SCREENSHOT_NAME
from runplane.services import browser_runs, log_stream, outputs
from runplane.services import results as results_service
from runplane.services import runs as runs_service
from runplane.services.browser_runs import BrowserRunView
from runplane.services.context import Context
from runplane.store.models import Run

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

RunId = Annotated[int, Path(ge=1, le=2147483647)]
Id = Annotated[int, Path(ge=1, le=2147483647)]
#: Results shown on a run page; beyond that the page says how many more there are.
RESULTS_SHOWN = 500
#: Diffs rendered inline on a run page (each one is at most 256 KiB).
DIFFS_SHOWN = 20
_NOTICES = {
    "submitted": "Run queued.",
    "canceled": "Cancel requested.",
    "restarted": "Run restarted: its previous results were deleted.",
    "retried": "This run is a retry.",
}


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    unit: str


def _progress(
    samples: list[results_service.SampleView], total: int, browser: BrowserRunView | None
) -> Progress | None:
    if browser is not None:
        planned = browser.browser.input.get("steps")
        steps = (browser.browser.output or {}).get("steps")
        count = len(steps) if isinstance(steps, list) else 0
        if isinstance(planned, list) and planned:
            return Progress(count, max(count, len(planned)), "steps")
        return Progress(count, count, "steps") if count else None
    if not total:
        return None
    done = sum(1 for s in samples if s.status not in ("not_started", "running"))
    return Progress(done, total, "tests")


async def _diffs(
    ctx: Context, run_id: int, samples: list[results_service.SampleView]
) -> dict[tuple[int, int], outputs.Diff]:
    found: dict[tuple[int, int], outputs.Diff] = {}
    for sample in samples:
        for out in sample.outputs:
            if out.status != "diff_mismatch" or sample.sample_id is None:
                continue
            if len(found) >= DIFFS_SHOWN:
                return found
            found[(sample.result_id, out.output_id)] = await outputs.diff(
                ctx, run_id, sample.sample_id, sample.result_id, out.output_id
            )
    return found


async def _status(ctx: Context, principal: Principal, run_id: int) -> dict[str, Any]:
    """What the status panel shows (refreshed every few seconds while the run is live)."""
    run, project = await runs_service.get_with_project(ctx, run_id)
    summary = await results_service.summary(ctx, run_id)
    samples, _total = await results_service.samples(
        ctx, run_id, statuses=None, name=None, limit=RESULTS_SHOWN, offset=0
    )
    found = await browser_runs.get_many(ctx, [run_id])
    browser = found[0] if found else None
    positions = await runs_service.queue_positions(ctx, [run])
    regression = {project.id} if project is not None and project.program else set()
    terminal = views.is_terminal(run)
    return {
        "run": run,
        "kind": views.run_kind(run, regression),
        "timings": views.timings(run),
        "position": positions.get(run.id),
        "summary": summary,
        "progress": _progress(samples, summary.total, browser),
        "terminal": terminal,
        "can_cancel": not terminal
        and run.status != RunStatus.CANCELING
        and views.allowed(principal, Action.CANCEL_RUN),
        "can_retry": terminal and views.allowed(principal, Action.RETRY_RUN),
        "can_restart": terminal and views.allowed(principal, Action.RESTART_RUN),
    }


async def _results(ctx: Context, run: Run) -> dict[str, Any]:
    """Per-test results with the diffs of differing outputs, and a browser run's outcome."""
    samples, sample_total = await results_service.samples(
        ctx, run.id, statuses=None, name=None, limit=RESULTS_SHOWN, offset=0
    )
    found = await browser_runs.get_many(ctx, [run.id])
    browser = found[0] if found else None
    return {
        "run": run,
        "samples": samples,
        "sample_total": sample_total,
        "diffs": await _diffs(ctx, run.id, samples),
        "diff_lines": views.diff_lines,
        "browser": browser,
        "browser_output": (browser.browser.output or {}) if browser else {},
    }


@router.get("/runs/{run_id}")
async def run_page(
    request: Request,
    ctx: Ctx,
    principal: PageUser,
    run_id: RunId,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    status = await _status(ctx, principal, run_id)
    return views.render(
        request,
        "run.html",
        {
            **status,
            **(await _results(ctx, status["run"])),
            "title": f"Run {run_id}",
            "nav": "runs",
            "notice": _NOTICES.get(done or ""),
        },
    )


@router.get("/runs/{run_id}/status")
async def run_status(request: Request, ctx: Ctx, principal: FetchUser, run_id: RunId) -> Response:
    """The status panel alone, for the page's refresh."""
    return views.render(request, "_run_status.html", await _status(ctx, principal, run_id))


@router.get("/runs/{run_id}/results")
async def run_results(request: Request, ctx: Ctx, principal: FetchUser, run_id: RunId) -> Response:
    """The results alone, refreshed when the run ends."""
    return views.render(
        request, "_run_results.html", await _results(ctx, await runs_service.get(ctx, run_id))
    )


@router.post("/runs/{run_id}/cancel")
async def cancel_run(ctx: Ctx, principal: PageUser, form: CheckedForm, run_id: RunId) -> Response:
    reason = form_text(form, "reason", 255) or None
    await runs_service.cancel(ctx, principal, run_id, reason)
    return RedirectResponse(f"/runs/{run_id}?done=canceled", status_code=303)


@router.post("/runs/{run_id}/retry")
async def retry_run(ctx: Ctx, principal: PageUser, form: CheckedForm, run_id: RunId) -> Response:
    failed_only = form.get("failed_only") == "1"
    new = await runs_service.retry(ctx, principal, run_id, failed_only=failed_only)
    return RedirectResponse(f"/runs/{new.id}?done=retried", status_code=303)


@router.post("/runs/{run_id}/restart")
async def restart_run(ctx: Ctx, principal: PageUser, form: CheckedForm, run_id: RunId) -> Response:
    await runs_service.restart(ctx, principal, run_id)
    return RedirectResponse(f"/runs/{run_id}?done=restarted", status_code=303)


def _resume_offset(last_event_id: str | None, offset: int) -> int:
    """Where a (re)connecting EventSource resumes: its Last-Event-ID wins over ``offset``."""
    if last_event_id is not None and last_event_id.strip().isdigit():
        return min(int(last_event_id.strip()), 2**62)
    return offset


@router.get("/runs/{run_id}/log/stream")
async def log_events(
    ctx: Ctx,
    principal: FetchUser,
    run_id: RunId,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    """The run's log as Server-Sent Events (see ``runplane.api.sse``), resumable."""
    events = await log_stream.follow_log(
        ctx,
        run_id,
        offset=_resume_offset(last_event_id, offset),
        keepalive_seconds=ctx.settings.log_stream_keepalive_seconds,
        max_seconds=ctx.settings.log_stream_max_seconds,
    )
    return sse_response(events)


@router.get("/runs/{run_id}/log.txt")
async def log_text(ctx: Ctx, principal: PageUser, run_id: RunId) -> Response:
    """The log as plain text (without JavaScript, or to save it)."""
    found = await log_stream.raw_log(ctx, run_id)
    return PlainTextResponse(found.data.decode(errors="replace"))


def _attachment(filename: str) -> str:
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@router.get("/runs/{run_id}/screenshots/{name}")
async def screenshot(
    ctx: Ctx,
    principal: FetchUser,
    run_id: RunId,
    name: Annotated[str, Path(pattern=f"^{SCREENSHOT_NAME.pattern}$")],
) -> StreamingResponse:
    run: Run = await runs_service.get(ctx, run_id)
    shot = await browser_runs.screenshot(ctx, run.uuid, name)
    return StreamingResponse(
        ctx.blobs.read(shot.sha256),
        media_type="image/png",
        headers={"Content-Length": str(shot.size_bytes), "Cache-Control": "private, max-age=3600"},
    )


@router.get("/runs/{run_id}/outputs/{sample_id}/{test_id}/{output_id}/{which}")
async def output_file(
    ctx: Ctx,
    principal: FetchUser,
    run_id: RunId,
    sample_id: Id,
    test_id: Id,
    output_id: Id,
    which: Literal["expected", "actual"],
) -> StreamingResponse:
    """A regression output or its baseline, as a download (never rendered as a page)."""
    stored = await outputs.output_file(ctx, run_id, sample_id, test_id, output_id, which)
    return StreamingResponse(
        ctx.blobs.read(stored.sha256),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(stored.size_bytes),
            "Content-Disposition": _attachment(f"{which}-{stored.filename}"),
        },
    )
