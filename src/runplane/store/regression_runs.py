"""Queries a run makes on the regression suite: what to execute, and what came out."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.store.models import (
    Category,
    OutputResult,
    OutputVariant,
    RegressionOutput,
    RegressionResult,
    RegressionTest,
    RegressionTestCategory,
    Run,
    Sample,
    SampleExtraFile,
)
from runplane.store.suite import has_tag


@dataclass(frozen=True, slots=True)
class OutputSpec:
    output_id: int
    filename: str
    expected_hash: str | None
    accepted: frozenset[str]
    ignore: bool


@dataclass(frozen=True, slots=True)
class SuiteTest:
    """Everything a worker needs to run one regression test."""

    id: int
    command: str
    input_type: str
    output_type: str
    expected_exit_code: int
    timeout_seconds: int | None
    sample_id: int
    sample_sha256: str
    sample_name: str
    sample_extension: str
    outputs: tuple[OutputSpec, ...] = field(default=())
    #: (file name, sha256) of the sample's extra files, placed beside the input.
    extra_files: tuple[tuple[str, str], ...] = field(default=())


async def active_test_ids(session: AsyncSession, project_id: int) -> set[int]:
    """Ids of the project's active regression tests."""
    rows = await session.scalars(
        select(RegressionTest.id).where(
            RegressionTest.project_id == project_id, RegressionTest.active.is_(True)
        )
    )
    return set(rows.all())


async def load_suite(
    session: AsyncSession, project_id: int, ids: Collection[int] | None
) -> list[SuiteTest]:
    """The tests a run executes: ``ids``, or every active test of the project."""
    query = (
        select(RegressionTest, Sample)
        .join(Sample, Sample.id == RegressionTest.sample_id)
        .where(RegressionTest.project_id == project_id)
        .order_by(RegressionTest.id)
    )
    if ids is None:
        query = query.where(RegressionTest.active.is_(True))
    else:
        query = query.where(RegressionTest.id.in_(list(ids)))
    pairs = (await session.execute(query)).all()
    test_ids = [test.id for test, _ in pairs]
    outputs = (
        await session.scalars(
            select(RegressionOutput).where(RegressionOutput.regression_test_id.in_(test_ids))
        )
    ).all()
    variants = (
        await session.execute(
            select(OutputVariant.output_id, OutputVariant.sha256).where(
                OutputVariant.output_id.in_([o.id for o in outputs])
            )
        )
    ).all()
    extras: dict[int, list[tuple[str, str]]] = {}
    for extra in (
        await session.scalars(
            select(SampleExtraFile).where(
                SampleExtraFile.sample_id.in_([sample.id for _, sample in pairs])
            )
        )
    ).all():
        extras.setdefault(extra.sample_id, []).append((extra.name, extra.sha256))
    accepted: dict[int, set[str]] = {}
    for output_id, sha in variants:
        accepted.setdefault(output_id, set()).add(sha)
    by_test: dict[int, list[OutputSpec]] = {}
    for out in outputs:
        hashes = set(accepted.get(out.id, set()))
        if out.expected_hash:
            hashes.add(out.expected_hash)
        by_test.setdefault(out.regression_test_id, []).append(
            OutputSpec(out.id, out.filename, out.expected_hash, frozenset(hashes), out.ignore)
        )
    return [
        SuiteTest(
            id=test.id,
            command=test.command,
            input_type=test.input_type,
            output_type=test.output_type,
            expected_exit_code=test.expected_exit_code,
            timeout_seconds=test.timeout_seconds,
            sample_id=sample.id,
            sample_sha256=sample.sha256,
            sample_name=sample.name,
            sample_extension=sample.extension,
            outputs=tuple(sorted(by_test.get(test.id, []), key=lambda o: o.output_id)),
            extra_files=tuple(sorted(extras.get(sample.id, []))),
        )
        for test, sample in pairs
    ]


async def start_results(session: AsyncSession, run_id: int, tests: Sequence[SuiteTest]) -> None:
    """One ``not_started`` row per test, so progress and cancels show every test."""
    await session.execute(delete(OutputResult).where(OutputResult.run_id == run_id))
    await session.execute(delete(RegressionResult).where(RegressionResult.run_id == run_id))
    session.add_all(
        RegressionResult(
            run_id=run_id,
            regression_test_id=t.id,
            sample_id=t.sample_id,
            status="not_started",
            expected_exit_code=t.expected_exit_code,
        )
        for t in tests
    )
    await session.flush()


async def record_result(
    session: AsyncSession, result: RegressionResult, outputs: Sequence[OutputResult]
) -> None:
    """Replace the test's row in this run with ``result`` and its output rows."""
    await session.execute(
        delete(RegressionResult).where(
            RegressionResult.run_id == result.run_id,
            RegressionResult.regression_test_id == result.regression_test_id,
        )
    )
    session.add(result)
    session.add_all(outputs)
    await session.flush()


async def list_results(
    session: AsyncSession,
    run_id: int,
    *,
    statuses: Collection[str] | None,
    name: str | None = None,
    tag: str | None = None,
    category: str | None = None,
    limit: int,
    offset: int,
) -> tuple[Sequence[RegressionResult], int]:
    query = select(RegressionResult).where(RegressionResult.run_id == run_id)
    if statuses is not None:
        query = query.where(RegressionResult.status.in_(list(statuses)))
    if name:
        query = query.where(
            RegressionResult.sample_id.in_(
                select(Sample.id).where(Sample.name.contains(name, autoescape=True))
            )
        )
    if tag:
        query = query.where(RegressionResult.sample_id.in_(select(Sample.id).where(has_tag(tag))))
    if category:
        query = query.where(
            RegressionResult.regression_test_id.in_(
                select(RegressionTestCategory.regression_test_id)
                .join(Category, Category.id == RegressionTestCategory.category_id)
                .where(func.lower(Category.name) == category.lower())
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(RegressionResult.regression_test_id).limit(limit).offset(offset)
    )
    return rows.all(), total


async def all_results(session: AsyncSession, run_id: int) -> Sequence[RegressionResult]:
    rows = await session.scalars(
        select(RegressionResult)
        .where(RegressionResult.run_id == run_id)
        .order_by(RegressionResult.regression_test_id)
    )
    return rows.all()


async def has_results(session: AsyncSession, run_id: int) -> bool:
    found = await session.scalar(
        select(RegressionResult.id).where(RegressionResult.run_id == run_id).limit(1)
    )
    return found is not None


async def get_result(session: AsyncSession, run_id: int, test_id: int) -> RegressionResult | None:
    return await session.scalar(
        select(RegressionResult).where(
            RegressionResult.run_id == run_id, RegressionResult.regression_test_id == test_id
        )
    )


async def output_results(
    session: AsyncSession, run_id: int, test_ids: Collection[int]
) -> dict[int, list[OutputResult]]:
    rows = await session.scalars(
        select(OutputResult)
        .where(OutputResult.run_id == run_id, OutputResult.regression_test_id.in_(list(test_ids)))
        .order_by(OutputResult.output_id)
    )
    out: dict[int, list[OutputResult]] = {}
    for row in rows:
        out.setdefault(row.regression_test_id, []).append(row)
    return out


async def categories_of(session: AsyncSession, test_ids: Collection[int]) -> dict[int, list[str]]:
    rows = await session.execute(
        select(RegressionTestCategory.regression_test_id, Category.name)
        .join(Category, Category.id == RegressionTestCategory.category_id)
        .where(RegressionTestCategory.regression_test_id.in_(list(test_ids)))
        .order_by(Category.name)
    )
    out: dict[int, list[str]] = {}
    for test_id, name in rows.all():
        out.setdefault(test_id, []).append(name)
    return out


async def samples_by_id(session: AsyncSession, ids: Collection[int]) -> dict[int, Sample]:
    rows = await session.scalars(select(Sample).where(Sample.id.in_(list(ids))))
    return {s.id: s for s in rows}


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    regression_test_id: int | None = None
    status: str | None = None
    branch: str | None = None
    platform: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


async def sample_history(
    session: AsyncSession,
    sample_id: int,
    flt: HistoryFilter,
    *,
    limit: int,
    offset: int,
) -> tuple[Sequence[tuple[RegressionResult, Run]], int]:
    """The sample's results across runs, newest run first."""
    query = (
        select(RegressionResult, Run)
        .join(Run, Run.id == RegressionResult.run_id)
        .where(RegressionResult.sample_id == sample_id)
    )
    if flt.regression_test_id is not None:
        query = query.where(RegressionResult.regression_test_id == flt.regression_test_id)
    if flt.status is not None:
        query = query.where(RegressionResult.status == flt.status)
    if flt.branch is not None:
        query = query.where(Run.branch == flt.branch)
    if flt.platform is not None:
        query = query.where(Run.platform == flt.platform)
    if flt.created_after is not None:
        query = query.where(Run.created_at >= flt.created_after)
    if flt.created_before is not None:
        query = query.where(Run.created_at <= flt.created_before)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(
        query.order_by(Run.id.desc(), RegressionResult.regression_test_id)
        .limit(limit)
        .offset(offset)
    )
    return [(r, run) for r, run in rows.all()], total


async def get_output(
    session: AsyncSession, output_id: int, *, lock: bool = False
) -> RegressionOutput | None:
    """An output row; ``lock`` holds it (FOR UPDATE on PostgreSQL) until the commit."""
    return await session.get(RegressionOutput, output_id, with_for_update=lock or None)


async def get_output_result(
    session: AsyncSession, run_id: int, test_id: int, output_id: int
) -> OutputResult | None:
    return await session.scalar(
        select(OutputResult).where(
            OutputResult.run_id == run_id,
            OutputResult.regression_test_id == test_id,
            OutputResult.output_id == output_id,
        )
    )
