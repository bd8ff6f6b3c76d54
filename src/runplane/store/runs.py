"""Every query on runs, including ``transition``: the one function that writes a status."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from runplane.domain.status import PROGRESS_ON_ENTER, TERMINAL, RunStatus, sources_of
from runplane.store.models import (
    BrowserRun,
    OutputResult,
    Project,
    RegressionResult,
    Run,
    RunBatch,
    RunEvent,
    RunLogLine,
    RunResult,
    RunScreenshot,
)

#: Columns ``transition`` may set beside the status (timestamps, lease, outcome).
_TRANSITION_FIELDS = frozenset(
    {
        "started_at",
        "completed_at",
        "worker_id",
        "lease_expires_at",
        "exit_code",
        "reason",
        "queued_at",
    }
)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """The progress-trail row written with a status change."""

    message: str
    actor: str | None = None


async def transition(
    session: AsyncSession,
    run_id: int,
    target: RunStatus,
    event: EventSpec,
    *,
    expected: Collection[RunStatus] | None = None,
    owner: str | None = None,
    lease_expired_at: datetime | None = None,
    where: ColumnElement[bool] | None = None,
    **fields: Any,
) -> Run | None:
    """Compare-and-set a run's status; the only code that writes ``runs.status``.

    ``expected`` narrows the allowed source statuses (default: every status the
    table allows into ``target``). ``owner`` additionally requires the run to be
    owned by that worker, so a worker whose lease was reaped cannot finish a run it
    no longer owns; ``lease_expired_at`` requires the lease to have expired by then,
    so the reaper never takes a run whose lease was just renewed; ``where`` adds a
    condition on the row (a claim: ``project_has_capacity()``). Returns the updated
    run, or ``None`` when the run was not in an allowed status (a lost race, which
    each caller handles). The event row is
    written in the same transaction.
    """
    unknown = set(fields) - _TRANSITION_FIELDS
    if unknown:
        raise ValueError(f"transition cannot set {sorted(unknown)}")
    allowed = sources_of(target)
    if expected is not None:
        allowed = allowed & frozenset(expected)
    if not allowed:
        return None
    conditions = [Run.id == run_id, Run.status.in_([s.value for s in allowed])]
    if owner is not None:
        conditions.append(Run.worker_id == owner)
    if lease_expired_at is not None:
        conditions.append(Run.lease_expires_at < lease_expired_at)
    if where is not None:
        conditions.append(where)
    result = await session.execute(
        update(Run)
        .where(and_(*conditions))
        .values(status=target.value, **fields)
        .returning(Run)
        .execution_options(synchronize_session=False)
    )
    run = result.scalar_one_or_none()
    if run is None:
        return None
    session.add(
        RunEvent(
            run_id=run_id,
            state=PROGRESS_ON_ENTER[target].value,
            status=target.value,
            message=event.message[:500],
            actor=event.actor,
        )
    )
    await session.flush()
    return run


async def add_progress(
    session: AsyncSession, run_id: int, state: str, message: str, actor: str | None = None
) -> None:
    """A progress row that is not a status change (checkout done, build started...)."""
    session.add(RunEvent(run_id=run_id, state=state, message=message[:500], actor=actor))
    await session.flush()


async def owns(session: AsyncSession, run_id: int, worker_id: str) -> bool:
    """Whether ``worker_id`` still holds the run (a reaped or restarted run is not ours)."""
    found = await session.scalar(
        select(Run.id)
        .where(
            Run.id == run_id,
            Run.worker_id == worker_id,
            Run.status.in_([RunStatus.RUNNING.value, RunStatus.CANCELING.value]),
        )
        # FOR SHARE on PostgreSQL: the reaper's UPDATE waits until our writes commit,
        # so it cannot take the run between this check and them (SQLite: BEGIN IMMEDIATE).
        .with_for_update(read=True)
    )
    return found is not None


async def insert_run(session: AsyncSession, run: Run, event: EventSpec) -> Run:
    """Insert a new queued run with its first progress row."""
    run.status = RunStatus.QUEUED.value
    session.add(run)
    await session.flush()
    session.add(
        RunEvent(
            run_id=run.id,
            state=PROGRESS_ON_ENTER[RunStatus.QUEUED].value,
            status=RunStatus.QUEUED.value,
            message=event.message[:500],
            actor=event.actor,
        )
    )
    await session.flush()
    return run


async def get_run(session: AsyncSession, run_id: int) -> Run | None:
    return await session.get(Run, run_id, populate_existing=True)


async def get_status(session: AsyncSession, run_id: int) -> RunStatus | None:
    value = await session.scalar(select(Run.status).where(Run.id == run_id))
    return RunStatus(value) if value is not None else None


async def find_by_idempotency_key(session: AsyncSession, user_id: int, key: str) -> Run | None:
    return await session.scalar(
        select(Run).where(Run.user_id == user_id, Run.idempotency_key == key)
    )


@dataclass(frozen=True, slots=True)
class RunFilter:
    statuses: frozenset[RunStatus] | None = None
    branch: str | None = None
    commit_sha: str | None = None
    repository: str | None = None
    platform: str | None = None
    #: Runs on any platform but this one.
    other_platform_than: str | None = None
    #: True: only runs of regression-testing projects (they name a program); False: none.
    regression: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


_SORTS: dict[str, tuple[ColumnElement[Any], ...]] = {
    "created_at": (Run.created_at.asc(), Run.id.asc()),
    "-created_at": (Run.created_at.desc(), Run.id.desc()),
    "started_at": (Run.started_at.asc(), Run.id.asc()),
    "-started_at": (Run.started_at.desc(), Run.id.desc()),
    "run_id": (Run.id.asc(),),
    "-run_id": (Run.id.desc(),),
}
SORT_KEYS: tuple[str, ...] = tuple(_SORTS)


def _filtered(query: Select[Any], flt: RunFilter) -> Select[Any]:
    if flt.statuses is not None:
        query = query.where(Run.status.in_([s.value for s in flt.statuses]))
    if flt.branch is not None:
        query = query.where(Run.branch == flt.branch)
    if flt.commit_sha is not None:
        query = query.where(func.lower(Run.commit_sha) == flt.commit_sha.lower())
    if flt.repository is not None:
        query = query.where(Run.repository == flt.repository)
    if flt.platform is not None:
        query = query.where(Run.platform == flt.platform)
    if flt.other_platform_than is not None:
        query = query.where(Run.platform != flt.other_platform_than)
    if flt.regression is not None:
        regression = select(Project.id).where(Project.program.is_not(None), Project.program != "")
        query = query.where(
            Run.project_id.in_(regression)
            if flt.regression
            else or_(Run.project_id.is_(None), Run.project_id.not_in(regression))
        )
    if flt.created_after is not None:
        query = query.where(Run.created_at >= flt.created_after)
    if flt.created_before is not None:
        query = query.where(Run.created_at <= flt.created_before)
    return query


async def list_runs(
    session: AsyncSession, flt: RunFilter, *, sort: str, limit: int, offset: int
) -> tuple[Sequence[Run], int]:
    """A page of runs and the total count matching the filter."""
    total = await session.scalar(_filtered(select(func.count(Run.id)), flt)) or 0
    rows = await session.scalars(
        _filtered(select(Run), flt).order_by(*_SORTS[sort]).limit(limit).offset(offset)
    )
    return rows.all(), total


def waits_for_batch_sibling() -> ColumnElement[bool]:
    """A run of a sequential batch waits while an earlier run of its batch is unfinished;
    in a batch led by a prep test, every other run waits for that first one."""
    me, sibling, sibling_run = aliased(BrowserRun), aliased(BrowserRun), aliased(Run)
    return exists(
        select(me.run_id)
        .join(RunBatch, RunBatch.id == me.batch_id)
        .join(sibling, sibling.batch_id == me.batch_id)
        .join(sibling_run, sibling_run.id == sibling.run_id)
        .where(
            me.run_id == Run.id,
            RunBatch.sequential.is_(True)
            | (RunBatch.prep_first.is_(True) & (sibling.batch_position == 0)),
            sibling.batch_position < me.batch_position,
            sibling_run.status.notin_([s.value for s in TERMINAL]),
        )
    )


def project_slots() -> tuple[ScalarSelect[int | None], ScalarSelect[int]]:
    """For the ``runs`` row in the query: its project's ``max_parallel_runs`` and how many of
    the project's runs are active now (subqueries)."""
    limit = select(Project.max_parallel_runs).where(Project.id == Run.project_id).scalar_subquery()
    other = aliased(Run)
    active = (
        select(func.count(other.id))
        .where(
            other.project_id == Run.project_id,
            other.status.in_([RunStatus.RUNNING.value, RunStatus.CANCELING.value]),
        )
        .scalar_subquery()
    )
    return limit, active


def project_has_capacity() -> ColumnElement[bool]:
    """The run's project runs fewer runs than its ``max_parallel_runs`` (or has no limit).

    A condition on the ``runs`` row being claimed or listed; the claim also locks the
    project row (``lock_project_for_claim``) so concurrent claims count one at a time.
    """
    limit, active = project_slots()
    return (Run.project_id.is_(None)) | limit.is_(None) | (active < limit)


async def lock_project_for_claim(session: AsyncSession, run_id: int) -> None:
    """Row-lock the run's project (PostgreSQL; SQLite's write lock covers it) so two
    workers claiming runs of one project at once cannot both take its last slot."""
    project_id = select(Run.project_id).where(Run.id == run_id).scalar_subquery()
    await session.execute(select(Project.id).where(Project.id == project_id).with_for_update())


async def next_queued_ids(session: AsyncSession, limit: int) -> Sequence[int]:
    """Queued run ids in the order workers should take them (priority, then age); runs of a
    project at its parallel limit, or waiting for a batch sibling, are not offered."""
    rows = await session.scalars(
        select(Run.id)
        .where(
            Run.status == RunStatus.QUEUED.value,
            ~waits_for_batch_sibling(),
            project_has_capacity(),
        )
        .order_by(Run.priority.desc(), Run.id.asc())
        .limit(limit)
    )
    return rows.all()


async def queue_position(session: AsyncSession, run_id: int, priority: int) -> int:
    """1-based position of a queued run: runs of higher priority, then older ones, go first."""
    ahead = await session.scalar(
        select(func.count(Run.id)).where(
            Run.status == RunStatus.QUEUED.value,
            (Run.priority > priority) | ((Run.priority == priority) & (Run.id < run_id)),
        )
    )
    return (ahead or 0) + 1


async def count_by_status(session: AsyncSession) -> dict[RunStatus, int]:
    rows = await session.execute(select(Run.status, func.count(Run.id)).group_by(Run.status))
    return {RunStatus(status): count for status, count in rows.all()}


async def renew_leases(session: AsyncSession, held: Mapping[int, str], until: datetime) -> set[int]:
    """Extend the leases of runs (id -> worker id) still owned by those workers; the ids kept."""
    if not held:
        return set()
    result = await session.execute(
        update(Run)
        .where(
            tuple_(Run.id, Run.worker_id).in_(list(held.items())),
            Run.status.in_([RunStatus.RUNNING.value, RunStatus.CANCELING.value]),
        )
        .values(lease_expires_at=until)
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


async def get_statuses(session: AsyncSession, run_ids: Sequence[int]) -> dict[int, RunStatus]:
    """Statuses of the runs that still exist."""
    rows = await session.execute(select(Run.id, Run.status).where(Run.id.in_(run_ids)))
    return {run_id: RunStatus(status) for run_id, status in rows.all()}


async def active_runs(session: AsyncSession) -> Sequence[Run]:
    """Runs a worker holds (running or being canceled)."""
    rows = await session.scalars(
        select(Run).where(Run.status.in_([RunStatus.RUNNING.value, RunStatus.CANCELING.value]))
    )
    return rows.all()


async def expired_leases(session: AsyncSession, now: datetime) -> Sequence[Run]:
    rows = await session.scalars(
        select(Run).where(
            Run.status.in_([RunStatus.RUNNING.value, RunStatus.CANCELING.value]),
            Run.lease_expires_at < now,
        )
    )
    return rows.all()


async def list_events(
    session: AsyncSession, run_id: int, *, states: Collection[str] | None, limit: int, offset: int
) -> tuple[Sequence[RunEvent], int]:
    query = select(RunEvent).where(RunEvent.run_id == run_id)
    count_query = select(func.count(RunEvent.id)).where(RunEvent.run_id == run_id)
    if states is not None:
        query = query.where(RunEvent.state.in_(list(states)))
        count_query = count_query.where(RunEvent.state.in_(list(states)))
    total = await session.scalar(count_query) or 0
    rows = await session.scalars(query.order_by(RunEvent.id).limit(limit).offset(offset))
    return rows.all(), total


async def clear_run_outputs(session: AsyncSession, run_id: int) -> None:
    """Delete results, logs and the progress trail (the destructive restart)."""
    for model in (RunResult, RunLogLine, RunEvent, OutputResult, RegressionResult, RunScreenshot):
        await session.execute(delete(model).where(model.run_id == run_id))
    await session.execute(
        update(BrowserRun)
        .where(BrowserRun.run_id == run_id)
        .values(output=None, error_code=None, error_message=None)
    )
    await session.execute(
        update(Run).where(Run.id == run_id).values(log_bytes=0, log_truncated=False)
    )


async def record_log_usage(session: AsyncSession, run_id: int, total: int, truncated: bool) -> None:
    await session.execute(
        update(Run).where(Run.id == run_id).values(log_bytes=total, log_truncated=truncated)
    )


async def list_queue(
    session: AsyncSession,
    statuses: Collection[RunStatus],
    platform: str | None,
    *,
    limit: int,
    offset: int,
) -> tuple[Sequence[Run], int]:
    """Queued runs in dispatch order, then running ones by start time."""
    query = select(Run).where(Run.status.in_([s.value for s in statuses]))
    count = select(func.count(Run.id)).where(Run.status.in_([s.value for s in statuses]))
    if platform:
        query = query.where(Run.platform == platform)
        count = count.where(Run.platform == platform)
    is_queued = Run.status == RunStatus.QUEUED.value
    rows = await session.scalars(
        query.order_by(is_queued.desc(), Run.priority.desc(), Run.id.asc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), await session.scalar(count) or 0
