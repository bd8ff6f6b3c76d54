"""Request and response shapes of the Sample Platform dialect, and the ORM → wire mapping."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic_core import PydanticCustomError

from runplane.domain.dialects import SAMPLE_PLATFORM_STATUS
from runplane.domain.permissions import Scope
from runplane.domain.status import RunStatus
from runplane.domain.urls import redact_url
from runplane.services.results import SampleView
from runplane.store.models import (
    ApiToken,
    Project,
    Run,
    RunEvent,
    RunLogLine,
)

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ApiDateTime = Annotated[
    datetime,
    PlainSerializer(lambda d: d.strftime(DATETIME_FORMAT), return_type=str),
    Field(json_schema_extra={"format": "date-time"}),
]
_ISO_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_8601_only(value: Any) -> Any:
    # Lax parsing would read "0.5" as a Unix time; the API documents ISO 8601.
    if isinstance(value, str) and not _ISO_DATE_START.match(value):
        raise PydanticCustomError("datetime_parsing", "Input should be an ISO 8601 datetime")
    return value


#: A datetime query parameter: ISO 8601 text only.
QueryDateTime = Annotated[datetime, BeforeValidator(_iso_8601_only)]
SpRunStatus = Literal["queued", "running", "pass", "fail", "canceled", "error", "incomplete"]
Platform = Literal["linux", "windows"]
REPOSITORY_PATTERN = r"^[a-zA-Z0-9_.-]+/[a-zA-Z0-9_.-]+$"
BRANCH_PATTERN = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
SHA_PATTERN = r"^[a-fA-F0-9]{40}$"
T = TypeVar("T")


class Strict(BaseModel):
    """A request body: unknown fields are errors, and so are values of another JSON type
    (``true`` for a number, ``"5"`` for an integer) that lax parsing would convert."""

    model_config = ConfigDict(extra="forbid", strict=True)


# ---- errors ---------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(max_length=100, examples=["not_found"])
    message: str = Field(max_length=500)
    details: dict[str, Any]


# ---- pages ------------------------------------------------------------------------------


class Pagination(BaseModel):
    limit: int
    offset: int
    total: int
    next_offset: int | None


class PageOf(BaseModel, Generic[T]):
    data: list[T]
    pagination: Pagination
    meta: dict[str, Any]


class CursorPagination(BaseModel):
    limit: int
    next_cursor: str | None


# ---- auth -----------------------------------------------------------------------------


class TokenCreate(Strict):
    email: str = Field(max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=128)
    token_name: str = Field(min_length=1, max_length=50, pattern=r"^[a-zA-Z0-9_-]+$")
    expires_in_days: int = Field(default=30, ge=1, le=90)
    # Strict mode wants enum members; from JSON they are strings.
    scopes: list[Annotated[Scope, Field(strict=False)]] | None = Field(default=None, max_length=8)


class AuthToken(BaseModel):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    token_name: str
    token_id: int
    scopes: list[str]
    expires_at: ApiDateTime


class TokenInfo(BaseModel):
    token_id: int
    token_name: str
    user_email: str
    scopes: list[str]
    state: Literal["active", "expired", "revoked"]
    created_at: ApiDateTime
    expires_at: ApiDateTime
    last_used_at: ApiDateTime | None
    revoked_at: ApiDateTime | None


class Me(BaseModel):
    user_id: int
    email: str
    role: str
    token_id: int | None
    token_scopes: list[str]


# ---- runs -------------------------------------------------------------------------------


class RunCreate(Strict):
    repository: str = Field(max_length=100, pattern=REPOSITORY_PATTERN)
    commit_sha: str = Field(pattern=SHA_PATTERN)
    platform: Platform
    branch: str | None = Field(default="master", max_length=100, pattern=BRANCH_PATTERN)
    pull_request: int | None = Field(default=None, ge=1, le=2147483647)
    regression_test_ids: list[Annotated[int, Field(ge=1, le=2147483647)]] | None = Field(
        default=None, min_length=1, max_length=500
    )
    environment_id: str | None = Field(default=None, max_length=50)
    priority: int = Field(
        default=0,
        ge=-100,
        le=100,
        description="runplane extension: higher runs first (default 0).",
    )


class CancelRequest(Strict):
    reason: str | None = Field(
        default=None,
        description="5..255 characters after trimming; longer reasons are truncated to 255. "
        "Checked only when the run is not already terminal.",
    )


class RetryRequest(Strict):
    failed_only: bool = False
    reason: str | None = Field(default=None, max_length=255)


class RunLinks(BaseModel):
    self: str
    summary: str
    progress: str
    logs: str
    samples: str
    config: str


class RunOut(BaseModel):
    run_id: int
    status: SpRunStatus
    repository: str
    branch: str | None
    commit_sha: str
    commit_short: str
    pull_request: int | None
    pr_number: int | None
    test_type: Literal["pr", "commit"]
    platform: str
    run_errors: Literal["true", "false", "unknown"]
    triggered_by: str | None
    created_at: ApiDateTime
    queued_at: ApiDateTime | None
    started_at: ApiDateTime | None
    completed_at: ApiDateTime | None
    duration_ms: int | None
    links: RunLinks
    github_link: str | None = None
    queue_position: int | None = Field(description="runplane extension: 1 = next to run.")
    retry_of: int | None
    project_id: int | None
    priority: int
    uuid: str = Field(description="runplane extension: the run's id in the Tester Army dialect.")
    internal_status: str = Field(description="runplane extension: e.g. timed_out behind error.")
    status_reason: str | None = Field(description="runplane extension: why the run ended.")
    exit_code: int | None
    selected_tests: list[str] | None


class RunActionResult(BaseModel):
    run_id: int
    new_run_id: int | None
    action: Literal["cancel", "retry", "restart"]
    status: Literal["accepted", "rejected", "no_op"]
    message: str


class RunSummary(BaseModel):
    run_id: int
    status: SpRunStatus
    total_samples: int
    pass_count: int
    fail_count: int
    skipped_count: int
    missing_output_count: int
    error_count: int
    duration_ms: int | None
    triggered_by: str | None


class ProgressEvent(BaseModel):
    timestamp: ApiDateTime
    status: str
    message: str
    step: int | None = None
    actor: str | None = None


class RunEnvironment(BaseModel):
    environment_id: str
    platform: str
    active: bool
    runner_label: str | None
    average_duration_ms: int | None


class RunConfig(BaseModel):
    run_id: int
    platform: str
    branch: str | None
    commit_sha: str
    repository: str
    regression_test_ids: list[int]
    environment: RunEnvironment
    matrix: list[dict[str, Any]]
    command_defaults: list[str]
    selected_tests: list[str] | None
    timeout_seconds: int | None
    env_keys: list[str]


class SampleOutput(BaseModel):
    output_id: int
    filename: str
    status: Literal["match", "diff_mismatch", "missing_output", "missing_expected"]
    expected_hash: str | None
    actual_hash: str | None


class RunSample(BaseModel):
    run_id: int
    sample_id: int
    regression_id: int
    regression_test_id: int
    sample_name: str
    category: str | None
    categories: list[str]
    command: str | None
    status: Literal["pass", "fail", "skipped", "missing_output", "running", "not_started"]
    runtime_ms: int | None
    exit_code: int | None
    expected_exit_code: int | None
    expected_rc: int | None
    result_message: str | None
    tags: list[str]
    outputs: list[SampleOutput]


class LogLine(BaseModel):
    timestamp: ApiDateTime | None
    level: Literal["debug", "info", "warning", "error", "critical"]
    source: Literal["orchestrator", "worker", "build", "test_runner", "web"]
    message: str
    run_id: int
    sample_id: int | None
    byte_offset: int


class LogPage(BaseModel):
    data: list[LogLine]
    pagination: CursorPagination


class QueueJob(BaseModel):
    run_id: int
    status: Literal["queued", "running"]
    platform: str
    repository: str
    queued_at: ApiDateTime | None
    started_at: ApiDateTime | None
    position: int | None
    priority: int


class QueuePage(PageOf[QueueJob]):
    queue_depth: int
    running_count: int


class Dependency(BaseModel):
    name: str
    status: Literal["ok", "degraded", "down"]
    message: str | None


class SystemHealth(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checked_at: ApiDateTime
    dependencies: list[Dependency]


# ---- projects ---------------------------------------------------------------------------

ArtifactPattern = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^/\x00-\x1f][^\x00-\x1f]*$")
]
EnvKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)]


class ProjectFields(Strict):
    repo_url: str = Field(min_length=1, max_length=1000)
    test_command: str | None = Field(
        default=None,
        min_length=1,
        max_length=10000,
        description="Shell command; may contain {failed_tests}. Optional when the project "
        "has regression tests, which then run instead.",
    )
    program: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Path in the checkout of the program the build produces; regression "
        "test commands reach it as {program}.",
    )
    regression_concurrency: int | None = Field(default=None, ge=1, le=256)
    test_timeout_seconds: int = Field(default=600, ge=1, le=86400)
    artifact_paths: list[ArtifactPattern] = Field(
        default_factory=list,
        max_length=50,
        description="Glob patterns (relative to the checkout) of files each run keeps as "
        "artifacts, e.g. build/*.log.",
    )
    build_command: str | None = Field(default=None, max_length=10000)
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    grace_period_seconds: float | None = Field(default=None, ge=0, le=600)
    env: dict[EnvKey, Annotated[str, Field(max_length=10000)]] = Field(
        default_factory=dict, max_length=200
    )
    junit_path: str | None = Field(default=None, max_length=500)
    platform: Platform = "linux"
    max_parallel_runs: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="runplane extension: runs of this project executing at once at most; "
        "the others wait in the queue, in order. Null: no limit.",
    )


class ProjectCreate(ProjectFields):
    repository: str = Field(max_length=100, pattern=REPOSITORY_PATTERN)


class ProjectUpdate(Strict):
    repository: str | None = Field(default=None, max_length=100, pattern=REPOSITORY_PATTERN)
    repo_url: str | None = Field(default=None, min_length=1, max_length=1000)
    test_command: str | None = Field(default=None, min_length=1, max_length=10000)
    program: str | None = Field(default=None, min_length=1, max_length=500)
    regression_concurrency: int | None = Field(default=None, ge=1, le=256)
    test_timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    artifact_paths: list[ArtifactPattern] | None = Field(default=None, max_length=50)
    build_command: str | None = Field(default=None, max_length=10000)
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    grace_period_seconds: float | None = Field(default=None, ge=0, le=600)
    env: dict[EnvKey, Annotated[str, Field(max_length=10000)]] | None = Field(
        default=None, max_length=200
    )
    junit_path: str | None = Field(default=None, max_length=500)
    platform: Platform | None = None
    max_parallel_runs: int | None = Field(default=None, ge=1, le=10000)


class ProjectOut(BaseModel):
    project_id: int
    repository: str
    repo_url: str
    test_command: str | None
    program: str | None
    regression_concurrency: int | None
    test_timeout_seconds: int
    artifact_paths: list[str]
    build_command: str | None
    timeout_seconds: int
    grace_period_seconds: float | None
    env: dict[str, str] = Field(description="Values are shown to admins only.")
    junit_path: str | None
    platform: str
    max_parallel_runs: int | None = None
    created_at: ApiDateTime
    updated_at: ApiDateTime


# ---- mapping ----------------------------------------------------------------------------


def sp_status(run: Run) -> str:
    return SAMPLE_PLATFORM_STATUS[RunStatus(run.status)]


def run_out(run: Run, base: str, queue_position: int | None = None) -> RunOut:
    status = sp_status(run)
    url = f"{base}/runs/{run.id}"
    duration = None
    if run.started_at and run.completed_at:
        duration = max(0, int((run.completed_at - run.started_at).total_seconds() * 1000))
    errors = (
        "unknown" if status in ("queued", "running") else ("true" if status == "error" else "false")
    )
    return RunOut(
        run_id=run.id,
        status=status,
        repository=run.repository,
        branch=run.branch,
        commit_sha=run.commit_sha,
        commit_short=run.commit_sha[:7],
        pull_request=run.pull_request,
        pr_number=run.pull_request,
        test_type="pr" if run.pull_request else "commit",
        platform=run.platform,
        run_errors=errors,
        triggered_by=run.triggered_by,
        created_at=run.created_at,
        queued_at=run.queued_at,
        started_at=run.started_at,
        completed_at=run.completed_at,
        duration_ms=duration,
        links=RunLinks(
            self=url,
            summary=f"{url}/summary",
            progress=f"{url}/progress",
            logs=f"{url}/logs",
            samples=f"{url}/samples",
            config=f"{url}/config",
        ),
        queue_position=queue_position,
        retry_of=run.retry_of,
        project_id=run.project_id,
        priority=run.priority,
        uuid=run.uuid,
        internal_status=run.status,
        status_reason=run.reason,
        exit_code=run.exit_code,
        selected_tests=run.selected_tests,
    )


def run_sample(view: SampleView) -> RunSample:
    return RunSample(
        run_id=view.run_id,
        sample_id=view.sample_id if view.sample_id is not None else view.result_id,
        regression_id=view.result_id,
        regression_test_id=view.result_id,
        sample_name=view.name,
        category=view.categories[0] if view.categories else None,
        categories=view.categories,
        command=view.command,
        status=view.status,
        runtime_ms=view.runtime_ms,
        exit_code=view.exit_code,
        expected_exit_code=view.expected_exit_code,
        expected_rc=view.expected_exit_code,
        result_message=view.message,
        tags=view.tags,
        outputs=[
            SampleOutput(
                output_id=o.output_id,
                filename=o.filename,
                status=o.status,
                expected_hash=o.expected_hash,
                actual_hash=o.actual_hash,
            )
            for o in view.outputs
        ],
    )


def progress_event(event: RunEvent) -> ProgressEvent:
    return ProgressEvent(
        timestamp=event.created_at, status=event.state, message=event.message, actor=event.actor
    )


def log_line(line: RunLogLine) -> LogLine:
    return LogLine(
        timestamp=line.created_at,
        level=line.level,
        source=line.source,
        message=line.message,
        run_id=line.run_id,
        sample_id=None,
        byte_offset=line.byte_offset,
    )


def token_info(row: ApiToken, email: str, state: str) -> TokenInfo:
    return TokenInfo(
        token_id=row.id,
        token_name=row.name,
        user_email=email,
        scopes=list(row.scopes),
        state=state,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def project_out(project: Project, *, show_env_values: bool) -> ProjectOut:
    env = dict(project.env or {})
    repo_url = project.repo_url
    if not show_env_values:
        env = {k: "***" for k in env}
        repo_url = redact_url(repo_url)
    return ProjectOut(
        project_id=project.id,
        repository=project.repository,
        repo_url=repo_url,
        test_command=project.test_command,
        program=project.program,
        regression_concurrency=project.regression_concurrency,
        test_timeout_seconds=project.test_timeout_seconds,
        artifact_paths=list(project.artifact_paths or []),
        build_command=project.build_command,
        timeout_seconds=project.timeout_seconds,
        grace_period_seconds=project.grace_period_seconds,
        env=env,
        junit_path=project.junit_path,
        platform=project.platform,
        max_parallel_runs=project.max_parallel_runs,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )
