"""Reading what a run produced: summary, progress trail, log lines, per-test results."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from runplane.domain.errors import NotFound, RunNotFound
from runplane.domain.status import ACTIVE, RunStatus
from runplane.services.context import Context
from runplane.store import logs as log_store
from runplane.store import results as result_store
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import Run, RunEvent, RunLogLine, RunResult

#: Result statuses counted in each summary bucket (a test is in exactly one).
PASS, FAIL, SKIPPED = frozenset({"pass"}), frozenset({"fail", "error"}), frozenset({"skipped"})


class ResultNotFound(NotFound):
    resource = "sample result"


class LogNotFound(NotFound):
    resource = "log"


@dataclass(frozen=True, slots=True)
class Summary:
    run: Run
    total: int
    passed: int
    failed: int
    skipped: int
    errors: int
    duration_ms: int | None


async def _run(session: object, run_id: int) -> Run:
    run = await store.get_run(session, run_id)  # type: ignore[arg-type]
    if run is None:
        raise RunNotFound(run_id)
    return run


async def summary(ctx: Context, run_id: int) -> Summary:
    async with unit_of_work(ctx.reads) as session:
        run = await _run(session, run_id)
        results = await result_store.all_results(session, run_id)
    total_ms = sum(r.duration_ms or 0 for r in results)
    errors = sum(1 for r in results if r.status == "error")
    if run.status in (RunStatus.ERROR.value, RunStatus.TIMED_OUT.value):
        errors += 1
    return Summary(
        run=run,
        total=len(results),
        passed=sum(1 for r in results if r.status in PASS),
        failed=sum(1 for r in results if r.status in FAIL),
        skipped=sum(1 for r in results if r.status in SKIPPED),
        errors=errors,
        duration_ms=total_ms or None,
    )


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
    limit: int,
    offset: int,
) -> tuple[Sequence[RunResult], int]:
    async with unit_of_work(ctx.reads) as session:
        await _run(session, run_id)
        return await result_store.list_results(
            session, run_id, statuses=statuses, name=name, limit=limit, offset=offset
        )


async def sample(ctx: Context, run_id: int, result_id: int) -> RunResult:
    async with unit_of_work(ctx.reads) as session:
        await _run(session, run_id)
        result = await result_store.get_result(session, run_id, result_id)
    if result is None:
        raise ResultNotFound(result_id, f"Sample result {result_id} not found in run {run_id}.")
    return result
