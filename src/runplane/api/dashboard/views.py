"""Templates and the small helpers pages share: labels, times, durations, run kinds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from runplane import __version__
from runplane.api.dashboard import sessions
from runplane.domain.permissions import ACTION_ROLES, Action
from runplane.domain.status import TERMINAL, RunStatus
from runplane.domain.types import Principal
from runplane.store.models import Project, Run, utcnow

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

STATUS_LABELS: dict[str, str] = {
    RunStatus.QUEUED: "Queued",
    RunStatus.RUNNING: "Running",
    RunStatus.CANCELING: "Canceling",
    RunStatus.PASSED: "Passed",
    RunStatus.FAILED: "Failed",
    RunStatus.ERROR: "Error",
    RunStatus.TIMED_OUT: "Timed out",
    RunStatus.CANCELED: "Canceled",
}
#: What a run executes: a project's test command, its regression tests, or a browser test.
KIND_LABELS: dict[str, str] = {
    "tests": "Test command",
    "regression": "Regression tests",
    "browser": "Browser",
}
BROWSER_PLATFORM = "web"
#: Per-test and per-output result words, as the API spells them, for people.
RESULT_LABELS: dict[str, str] = {
    "pass": "Pass",
    "fail": "Fail",
    "skipped": "Skipped",
    "missing_output": "Missing output",
    "not_started": "Not started",
    "running": "Running",
    "match": "Match",
    "diff_mismatch": "Differs",
    "missing_expected": "No baseline",
    "passed": "Passed",
    "failed": "Failed",
    "PASS": "Pass",
    "FAILED": "Failed",
}


def run_kind(run: Run, regression_projects: Iterable[int]) -> str:
    if run.platform == BROWSER_PLATFORM:
        return "browser"
    if run.project_id is not None and run.project_id in set(regression_projects):
        return "regression"
    return "tests"


def regression_project_ids(projects: Iterable[Project]) -> frozenset[int]:
    return frozenset(p.id for p in projects if p.program)


def is_terminal(run: Run) -> bool:
    return RunStatus(run.status) in TERMINAL


def allowed(principal: Principal | None, action: Action) -> bool:
    """Whether to show a control; the service checks the same table again."""
    return principal is not None and principal.role in ACTION_ROLES[action]


def format_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(value: timedelta | float | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@dataclass(frozen=True, slots=True)
class Timings:
    created: datetime
    queued: datetime
    started: datetime | None
    finished: datetime | None
    #: Time in the queue (so far, while queued).
    waited: timedelta | None
    #: Time running (so far, while running).
    ran: timedelta | None


def timings(run: Run, now: datetime | None = None) -> Timings:
    now = now or utcnow()
    until_now = None if is_terminal(run) else now
    # A run canceled in the queue waited until it was canceled.
    left_queue = run.started_at or run.completed_at or until_now
    stopped = run.completed_at or until_now
    return Timings(
        created=run.created_at,
        queued=run.queued_at,
        started=run.started_at,
        finished=run.completed_at,
        waited=left_queue - run.queued_at if left_queue else None,
        ran=stopped - run.started_at if run.started_at and stopped else None,
    )


def diff_lines(text: str) -> list[tuple[str, str]]:
    """(css class, line) for a unified diff; the class says added/removed/hunk/header."""
    out = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            kind = "diff-file"
        elif line.startswith("@@"):
            kind = "diff-hunk"
        elif line.startswith("+"):
            kind = "diff-add"
        elif line.startswith("-"):
            kind = "diff-del"
        else:
            kind = "diff-ctx"
        out.append((kind, line))
    return out


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = format_time
    env.filters["duration"] = format_duration
    env.globals.update(
        STATUS_LABELS=STATUS_LABELS,
        KIND_LABELS=KIND_LABELS,
        RESULT_LABELS=RESULT_LABELS,
        Action=Action,
        allowed=allowed,
        version=__version__,
        CSRF_FIELD=sessions.CSRF_FIELD,
    )
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A page, with who is signed in and the session's CSRF token in its context."""
    session: sessions.Session | None = getattr(request.state, "dashboard_session", None)
    values: dict[str, Any] = {
        "principal": getattr(request.state, "principal", None),
        "csrf_token": session.csrf if session else "",
        "nav": "",
        **(context or {}),
    }
    return templates.TemplateResponse(
        request, name, values, status_code=status_code, headers=headers
    )
