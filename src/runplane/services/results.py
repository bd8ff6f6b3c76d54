"""Reading what a run produced: summary, progress trail, log lines, per-test results."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.errors import NotFound, RunNotFound
from runplane.domain.status import ACTIVE, RunStatus
from runplane.services.context import Context
from runplane.store import logs as log_store
from runplane.store import projects as project_store
from runplane.store import regression_runs
from runplane.store import results as result_store
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import RegressionResult, Run, RunEvent, RunLogLine, RunResult


class ResultNotFound(NotFound):
    resource = "sample result"


class LogNotFound(NotFound):
    resource = "log"


@dataclass(frozen=True, slots=True)
class OutputView:
    output_id: int
    filename: str
    status: str  # match | diff_mismatch | missing_output | missing_expected
    expected_hash: str | None
    actual_hash: str | None


@dataclass(frozen=True, slots=True)
class SampleView:
    """One test's result in a run, whether it came from a JUnit report or a regression test."""

    run_id: int
    result_id: int  # the regression test id, or the JUnit result row id
    sample_id: int | None
    name: str
    categories: list[str]
    command: str | None
    status: str  # pass | fail | skipped | missing_output | running | not_started
    runtime_ms: int | None
    exit_code: int | None
    expected_exit_code: int | None
    message: str | None
    tags: list[str]
    outputs: list[OutputView]
    regression: bool


@dataclass(frozen=True, slots=True)
class Summary:
    run: Run
    total: int
    passed: int
    failed: int
    missing_output: int
    skipped: int
    errors: int
    duration_ms: int | None


async def _run(session: AsyncSession, run_id: int) -> Run:
    run = await store.get_run(session, run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


_JUNIT_STATUS = {"pass": "pass", "fail": "fail", "error": "fail", "skipped": "skipped"}


def _junit_view(row: RunResult) -> SampleView:
    return SampleView(
        run_id=row.run_id,
        result_id=row.id,
        sample_id=None,
        name=row.name,
        categories=[row.classname] if row.classname else [],
        command=None,
        status=_JUNIT_STATUS.get(row.status, "fail"),
        runtime_ms=row.duration_ms,
        exit_code=None,
        expected_exit_code=None,
        message=row.message,
        tags=[],
        outputs=[],
        regression=False,
    )


async def _regression_views(
    session: AsyncSession, run_id: int, rows: Sequence[RegressionResult]
) -> list[SampleView]:
    ids = [r.regression_test_id for r in rows]
    outputs = await regression_runs.output_results(session, run_id, ids)
    categories = await regression_runs.categories_of(session, ids)
    samples = await regression_runs.samples_by_id(
        session, {r.sample_id for r in rows if r.sample_id is not None}
    )
    views = []
    for r in rows:
        sample = samples.get(r.sample_id) if r.sample_id is not None else None
        views.append(
            SampleView(
                run_id=run_id,
                result_id=r.regression_test_id,
                sample_id=r.sample_id,
                name=sample.name if sample else f"test {r.regression_test_id}",
                categories=categories.get(r.regression_test_id, []),
                command=r.command,
                status=r.status,
                runtime_ms=r.runtime_ms,
                exit_code=r.exit_code,
                expected_exit_code=r.expected_exit_code,
                message=r.message,
                tags=list(sample.tags) if sample else [],
                outputs=[
                    OutputView(o.output_id, o.filename, o.status, o.expected_hash, o.actual_hash)
                    for o in outputs.get(r.regression_test_id, [])
                ],
                regression=True,
            )
        )
    return views


async def _all_views(session: AsyncSession, run_id: int) -> list[SampleView]:
    regression = await regression_runs.all_results(session, run_id)
    if regression:
        return await _regression_views(session, run_id, regression)
    return [_junit_view(r) for r in await result_store.all_results(session, run_id)]


async def _tests_without_rows(session: AsyncSession, run: Run, views: Sequence[SampleView]) -> int:
    """Selected regression tests of ``run`` that have no result row (e.g. the build failed)."""
    if views or run.project_id is None:
        return 0
    project = await project_store.get_project(session, run.project_id)
    if project is None or not project.program:
        return 0
    if run.regression_test_ids is not None:
        return len(run.regression_test_ids)
    return len(await regression_runs.active_test_ids(session, project.id))


async def summary(ctx: Context, run_id: int) -> Summary:
    """Counts with the contract's buckets: a test is in exactly one, missing output first."""
    async with unit_of_work(ctx.reads) as session:
        run = await _run(session, run_id)
        views = await _all_views(session, run_id)
        unrun = await _tests_without_rows(session, run, views)
    counts = {"pass": 0, "fail": 0, "missing_output": 0}
    for view in views:
        if view.status in counts:
            counts[view.status] += 1
    total_ms = sum(v.runtime_ms or 0 for v in views)
    return Summary(
        run=run,
        total=len(views) + unrun,
        passed=counts["pass"],
        failed=counts["fail"],
        missing_output=counts["missing_output"],
        # Tests with no result row (the run never got to them) count as skipped.
        skipped=len(views) + unrun - sum(counts.values()),
        errors=len(derive_errors(run, views)),
        duration_ms=total_ms or None,
    )


@dataclass(frozen=True, slots=True)
class ErrorItem:
    type: str
    severity: str  # info | warning | error | critical
    message: str
    sample_id: int | None
    regression_id: int | None
    output_id: int | None
    category: str | None


def derive_errors(run: Run, views: Sequence[SampleView]) -> list[ErrorItem]:
    """What went wrong in a run, one item per failure signature."""
    items: list[ErrorItem] = []
    if run.status in (RunStatus.ERROR.value, RunStatus.TIMED_OUT.value):
        items.append(
            ErrorItem(
                run.reason or "error",
                "critical",
                f"Run ended in error ({run.reason}).",
                None,
                None,
                None,
                None,
            )
        )
    for v in views:
        category = v.categories[0] if v.categories else None
        rid = v.result_id if v.regression else None
        if v.status == "missing_output":
            for o in v.outputs:
                if o.status == "missing_output":
                    items.append(
                        ErrorItem(
                            "missing_output",
                            "error",
                            f"{v.name}: {o.filename} was not produced.",
                            v.sample_id,
                            rid,
                            o.output_id,
                            category,
                        )
                    )
        elif v.status == "fail":
            if v.regression and v.exit_code != v.expected_exit_code:
                items.append(
                    ErrorItem(
                        "exit_code_mismatch",
                        "error",
                        f"{v.name}: {v.message}",
                        v.sample_id,
                        rid,
                        None,
                        category,
                    )
                )
            for o in v.outputs:
                if o.status in ("diff_mismatch", "missing_expected"):
                    items.append(
                        ErrorItem(
                            o.status,
                            "warning" if o.status == "missing_expected" else "error",
                            f"{v.name}: {o.filename} {o.status.replace('_', ' ')}.",
                            v.sample_id,
                            rid,
                            o.output_id,
                            category,
                        )
                    )
            if not v.regression:
                items.append(
                    ErrorItem(
                        "test_failure",
                        "error",
                        f"{v.name}: {v.message or ''}",
                        None,
                        None,
                        None,
                        category,
                    )
                )
            elif v.exit_code == v.expected_exit_code and not v.outputs:
                items.append(
                    ErrorItem(
                        "test_failure",
                        "error",
                        f"{v.name}: {v.message}",
                        v.sample_id,
                        rid,
                        None,
                        category,
                    )
                )
    return items


async def errors(ctx: Context, run_id: int) -> tuple[Run, list[ErrorItem]]:
    """The run and what went wrong in it."""
    async with unit_of_work(ctx.reads) as session:
        run = await _run(session, run_id)
        views = await _all_views(session, run_id)
    return run, derive_errors(run, views)


async def progress(
    ctx: Context, run_id: int, states: Collection[str] | None, *, limit: int, offset: int
) -> tuple[Sequence[RunEvent], int]:
    async with unit_of_work(ctx.reads) as session:
        await _run(session, run_id)
        return await store.list_events(session, run_id, states=states, limit=limit, offset=offset)


@dataclass(frozen=True, slots=True)
class LogSlice:
    lines: Sequence[RunLogLine]
    #: Where to continue; None when the run is finished and nothing is left.
    next_cursor: int | None


async def log_lines(
    ctx: Context,
    run_id: int,
    *,
    cursor: int,
    limit: int,
    source: str | None = None,
    level: str | None = None,
    contains: str | None = None,
) -> LogSlice:
    """Lines from ``cursor`` (a line number); readable while the run is still running."""
    async with unit_of_work(ctx.reads) as session:
        run = await _run(session, run_id)
        if await log_store.line_count(session, run_id) == 0 and run.status not in ACTIVE:
            raise LogNotFound(run_id, f"No log exists for run {run_id} yet.")
        lines = await log_store.read_lines(
            session,
            run_id,
            after_seq=cursor,
            limit=limit + 1,
            source=source,
            level=level,
            contains=contains,
        )
    if len(lines) > limit:
        return LogSlice(lines[:limit], lines[limit].seq)
    if RunStatus(run.status) in ACTIVE or run.status == RunStatus.QUEUED.value:
        # More may come: hand back where to ask next.
        return LogSlice(lines, (lines[-1].seq + 1) if lines else cursor)
    return LogSlice(lines, None)


async def samples(
    ctx: Context,
    run_id: int,
    *,
    statuses: Collection[str] | None,
    name: str | None,
    tag: str | None = None,
    category: str | None = None,
    limit: int,
    offset: int,
) -> tuple[list[SampleView], int]:
    async with unit_of_work(ctx.reads) as session:
        await _run(session, run_id)
        if await regression_runs.has_results(session, run_id):
            rows, total = await regression_runs.list_results(
                session,
                run_id,
                statuses=statuses,
                name=name,
                tag=tag,
                category=category,
                limit=limit,
                offset=offset,
            )
            return await _regression_views(session, run_id, rows), total
        junit_statuses = (
            [k for k, v in _JUNIT_STATUS.items() if v in statuses] if statuses else None
        )
        junit, total = await result_store.list_results(
            session, run_id, statuses=junit_statuses, name=name, limit=limit, offset=offset
        )
        return [_junit_view(r) for r in junit], total


async def sample(ctx: Context, run_id: int, result_id: int) -> SampleView:
    async with unit_of_work(ctx.reads) as session:
        await _run(session, run_id)
        if await regression_runs.has_results(session, run_id):
            row = await regression_runs.get_result(session, run_id, result_id)
            if row is not None:
                return (await _regression_views(session, run_id, [row]))[0]
        else:
            junit = await result_store.get_result(session, run_id, result_id)
            if junit is not None:
                return _junit_view(junit)
    raise ResultNotFound(result_id, f"Sample result {result_id} not found in run {run_id}.")
