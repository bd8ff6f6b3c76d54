"""Run objects in the dialect's shape; also the webhook payload (same shape as GET /runs/{id})."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from runplane.api.tester_army.formats import iso_ms
from runplane.domain.dialects import TESTER_ARMY_STATUS
from runplane.domain.status import TERMINAL, RunStatus
from runplane.services import browser_runs
from runplane.services.browser_runs import BrowserRunView
from runplane.services.context import Context

_BROKE = {
    "worker_lost": "The worker running this run was lost.",
    "worker_shutdown": "The worker shut down during the run.",
}


def screenshot_url(base: str, run_uuid: str, name: str) -> str:
    return f"{base.rstrip('/')}/v1/runs/{run_uuid}/screenshots/{name}"


def _output(view: BrowserRunView, base: str) -> dict[str, Any] | None:
    stored = view.browser.output
    if not stored:
        return None
    out: dict[str, Any] = dict(stored)
    uuid = view.run.uuid
    names: list[str] = out.get("screenshots") or []
    out["screenshots"] = [screenshot_url(base, uuid, n) for n in names]
    issues = []
    stored_issues: list[dict[str, Any]] = out.get("issues") or []
    for issue in stored_issues:
        item = dict(issue)
        if item.get("screenshotUrl"):
            item["screenshotUrl"] = screenshot_url(base, uuid, item["screenshotUrl"])
        item.setdefault("url", "")
        issues.append(item)
    out["issues"] = issues
    return out


def _duration_ms(view: BrowserRunView) -> int | None:
    run = view.run
    if run.started_at is None or run.completed_at is None:
        return None
    return int((run.completed_at - run.started_at).total_seconds() * 1000)


def run_object(view: BrowserRunView, base: str) -> dict[str, Any]:
    """The full run; ``base`` is the dialect's root URL (``…/ta``) for screenshot links."""
    run, browser = view.run, view.browser
    status = RunStatus(run.status)
    output = _output(view, base) if status in TERMINAL else None
    error = None
    if status in (RunStatus.ERROR, RunStatus.TIMED_OUT):
        # A run the reaper took from a lost worker has no agent outcome: say why anyway.
        error = {
            "code": browser.error_code or run.reason or "error",
            "message": browser.error_message or _BROKE.get(run.reason or "", "The run failed."),
        }
    return {
        "id": run.uuid,
        "type": browser.kind,
        "status": TESTER_ARMY_STATUS[status],
        "input": browser.input,
        "output": output,
        "error": error,
        "durationMs": _duration_ms(view),
        "webhookUrl": view.webhook.url if view.webhook else None,
        "webhookStatus": view.webhook.state if view.webhook else None,
        "platform": "web",
        "source": browser.source,
        "projectId": browser.project_id,
        "testId": browser.test_id,
        "batchId": browser.batch_id,
        "stepResults": (output or {}).get("steps") if output else None,
        "userName": run.triggered_by,
        "executionMode": "fast",
        "autoRetryCount": 0,
        "createdAt": iso_ms(run.created_at),
        "startedAt": iso_ms(run.started_at),
        "completedAt": iso_ms(run.completed_at),
    }


def webhook_payload(ctx: Context) -> Callable[[int], Awaitable[dict[str, Any] | None]]:
    """The webhook body of a run: its run object, links based on ``public_url``."""
    base = ctx.settings.public_url.rstrip("/") + "/ta"

    async def render(run_id: int) -> dict[str, Any] | None:
        views = await browser_runs.get_many(ctx, [run_id])
        return run_object(views[0], base) if views else None

    return render
