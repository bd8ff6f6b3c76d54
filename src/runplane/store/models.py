"""SQLAlchemy models: the database is the truth for runs, results, logs and tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_api_tokens_user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(50))
    #: First characters of the raw token, to find the row without the secret.
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    #: HMAC-SHA256 of the raw token with the server's secret key (hex).
    token_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository: Mapped[str] = mapped_column(String(100), unique=True)
    repo_url: Mapped[str] = mapped_column(String(1000))
    build_command: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Shell test command; optional when the project has regression tests.
    test_command: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Path (in the checkout) of the program the build produces, for regression tests.
    program: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: Regression tests run at once (null: the worker's CPU count).
    regression_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Time limit of one regression test.
    test_timeout_seconds: Mapped[int] = mapped_column(Integer, default=600)
    #: Glob patterns (in the checkout) of files a run keeps as artifacts.
    artifact_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    grace_period_seconds: Mapped[float | None] = mapped_column(nullable=True)
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    junit_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    platform: Mapped[str] = mapped_column(String(20), default="linux")
    #: Runs of this project executing at once at most (null: no limit); others wait, in order.
    max_parallel_runs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_runs_idempotency"),
        Index("ix_runs_status_priority", "status", "priority", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=lambda: str(uuid.uuid4()))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), nullable=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    repository: Mapped[str] = mapped_column(String(100), index=True)
    branch: Mapped[str | None] = mapped_column(String(100), nullable=True)
    commit_sha: Mapped[str] = mapped_column(String(40))
    pull_request: Mapped[int | None] = mapped_column(Integer, nullable=True)
    platform: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))
    #: Test names this run is limited to (a failed-only retry); null = all.
    selected_tests: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: Regression tests this run executes; null = every active test of the project.
    regression_test_ids: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    retry_of: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), nullable=True
    )
    triggered_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Machine-readable reason of an error/timeout/cancel (``worker_lost``, ``build_failed``...).
    reason: Mapped[str | None] = mapped_column(String(100), nullable=True)
    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    log_truncated: Mapped[bool] = mapped_column(default=False)


class RunEvent(Base):
    """One row of a run's progress trail; status changes write one in the same transaction."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(20))
    #: Internal status after the event, when the event is a status change.
    status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    message: Mapped[str] = mapped_column(String(500))
    actor: Mapped[str | None] = mapped_column(String(255), nullable=True)


class RunResult(Base):
    """One test case of a run (from its JUnit report)."""

    __tablename__ = "run_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    classname: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str | None] = mapped_column(String(500), nullable=True)


class RunLogLine(Base):
    """One line of a run's output; ``byte_offset`` places it in the raw log."""

    __tablename__ = "run_log_lines"
    __table_args__ = (
        Index("ix_run_log_lines_run_seq", "run_id", "seq", unique=True),
        # Finds the line holding a byte offset (a Range read, a stream resumed early).
        Index("ix_run_log_lines_run_offset", "run_id", "byte_offset"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    byte_offset: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source: Mapped[str] = mapped_column(String(20))
    level: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)


# ---- regression testing on sample files ---------------------------------------------


class Sample(Base):
    """An input file, stored content-addressed (``sha256``) in the blob store."""

    __tablename__ = "samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    extension: Mapped[str] = mapped_column(String(10), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SampleExtraFile(Base):
    """A file that travels with a sample (subtitles track, config...)."""

    __tablename__ = "sample_extra_files"
    __table_args__ = (UniqueConstraint("sample_id", "name", name="uq_sample_extra_files_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class RegressionTestCategory(Base):
    __tablename__ = "regression_test_categories"

    regression_test_id: Mapped[int] = mapped_column(
        ForeignKey("regression_tests.id", ondelete="CASCADE"), primary_key=True
    )
    category_id: Mapped[int] = mapped_column(
        ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True
    )


class RegressionTest(Base):
    """Run ``command`` (a template) on a sample; compare the outputs with baselines."""

    __tablename__ = "regression_tests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    sample_id: Mapped[int] = mapped_column(
        ForeignKey("samples.id", ondelete="RESTRICT"), index=True
    )
    #: e.g. ``{program} {input} -o {output_dir}/out.srt``
    command: Mapped[str] = mapped_column(String(500))
    input_type: Mapped[str] = mapped_column(String(10), default="file")  # file | stdin
    output_type: Mapped[str] = mapped_column(String(10), default="file")  # file | stdout | null
    expected_exit_code: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    timeout_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RegressionOutput(Base):
    """One expected output file of a test, with its approved baseline."""

    __tablename__ = "regression_outputs"
    __table_args__ = (
        UniqueConstraint("regression_test_id", "filename", name="uq_regression_outputs_file"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    regression_test_id: Mapped[int] = mapped_column(
        ForeignKey("regression_tests.id", ondelete="CASCADE"), index=True
    )
    #: File name in the test's output directory (``stdout`` for stdout output).
    filename: Mapped[str] = mapped_column(String(255))
    #: sha256 of the approved baseline; null until one is approved.
    expected_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ignore: Mapped[bool] = mapped_column(default=False)


class OutputVariant(Base):
    """Another accepted hash for an output (platform differences and the like)."""

    __tablename__ = "output_variants"
    __table_args__ = (UniqueConstraint("output_id", "sha256", name="uq_output_variants_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    output_id: Mapped[int] = mapped_column(
        ForeignKey("regression_outputs.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RegressionResult(Base):
    """One regression test in one run."""

    __tablename__ = "regression_results"
    __table_args__ = (
        UniqueConstraint("run_id", "regression_test_id", name="uq_regression_results_test"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    regression_test_id: Mapped[int] = mapped_column(Integer, index=True)
    sample_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    #: pass | fail | missing_output | skipped | not_started
    status: Mapped[str] = mapped_column(String(20))
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expected_exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    runtime_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    command: Mapped[str | None] = mapped_column(String(500), nullable=True)
    message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutputResult(Base):
    """One expected output of one regression test in one run."""

    __tablename__ = "output_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    regression_test_id: Mapped[int] = mapped_column(Integer)
    output_id: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    #: match | diff_mismatch | missing_output | missing_expected
    status: Mapped[str] = mapped_column(String(20))
    expected_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actual_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actual_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class BaselineApproval(Base):
    """Audit record: who made which actual output the baseline (or a variant), and why."""

    __tablename__ = "baseline_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    sample_id: Mapped[int] = mapped_column(Integer)
    regression_test_id: Mapped[int] = mapped_column(Integer)
    output_id: Mapped[int] = mapped_column(Integer)
    previous_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    new_hash: Mapped[str] = mapped_column(String(64))
    as_variant: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str] = mapped_column(String(500))
    approved_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RunArtifact(Base):
    """A file the project declared as an artifact, kept from a run's workspace."""

    __tablename__ = "run_artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)


# --- Web testing (the Tester Army dialect's domain) -------------------------------------


def new_uuid() -> str:
    return str(uuid.uuid4())


class WebProject(Base):
    """A web application under test (a Tester Army project); ids are UUID strings."""

    __tablename__ = "web_projects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    short_id: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    project_type: Mapped[str] = mapped_column(String(20), default="web")
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebTest(Base):
    """A stored browser test: ordered steps the agent executes."""

    __tablename__ = "web_tests"
    __table_args__ = (Index("ix_web_tests_project_created", "project_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(ForeignKey("web_projects.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    steps: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    platform: Mapped[str] = mapped_column(String(20), default="web")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TestGroup(Base):
    """Tests run together; a sequential group's batch runs one test at a time, in order."""

    __tablename__ = "test_groups"
    __test__ = False  # not a pytest class

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("web_projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    is_default: Mapped[bool] = mapped_column(default=False)
    run_mode: Mapped[str] = mapped_column(String(20), default="concurrent")
    prep_test_id: Mapped[str | None] = mapped_column(
        ForeignKey("web_tests.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TestGroupMember(Base):
    __tablename__ = "test_group_members"
    __test__ = False

    group_id: Mapped[str] = mapped_column(
        ForeignKey("test_groups.id", ondelete="CASCADE"), primary_key=True
    )
    test_id: Mapped[str] = mapped_column(
        ForeignKey("web_tests.id", ondelete="CASCADE"), primary_key=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RunBatch(Base):
    """Runs started together by one group run (or a rerun of a batch)."""

    __tablename__ = "run_batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    group_id: Mapped[str | None] = mapped_column(
        ForeignKey("test_groups.id", ondelete="SET NULL"), nullable=True
    )
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("web_projects.id", ondelete="CASCADE"), nullable=True
    )
    source_batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    sequential: Mapped[bool] = mapped_column(default=False)
    #: The group's prep test is the batch's first run; the others wait until it is done.
    prep_first: Mapped[bool] = mapped_column(default=False)
    target_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BrowserRun(Base):
    """What a browser run executes and what it found; the run row keeps its status."""

    __tablename__ = "browser_runs"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    #: Tester Army run type: ``chat`` (a prompt run) or ``test`` (a stored test).
    kind: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(30), default="api")
    #: The public input (``{"prompt": ...}`` or the test's title and steps); no secrets.
    input: Mapped[dict[str, object]] = mapped_column(JSON)
    target_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    #: Credentials for the agent, encrypted with the server key; never returned.
    credentials_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    output: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("web_projects.id", ondelete="CASCADE"), nullable=True, index=True
    )
    test_id: Mapped[str | None] = mapped_column(
        ForeignKey("web_tests.id", ondelete="SET NULL"), nullable=True, index=True
    )
    batch_id: Mapped[str | None] = mapped_column(
        ForeignKey("run_batches.id", ondelete="CASCADE"), nullable=True, index=True
    )
    #: Position in a sequential batch (runs of one batch go in this order).
    batch_position: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RunScreenshot(Base):
    """A screenshot a browser run took, stored content-addressed."""

    __tablename__ = "run_screenshots"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_run_screenshots_run_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class WebhookDelivery(Base):
    """The pending (or finished) delivery of a run's webhook: a row, so it survives restarts.

    It is created with the run; the deliverer picks it up once the run is terminal.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    #: ``pending`` → ``delivered`` | ``failed`` (the run object's ``webhookStatus``).
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Bumped by an in-place restart of the run (a new outcome to report).
    generation: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: A deliverer holds the row until then (several processes may deliver).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
