"""Queries on per-test-case results."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.store.models import RunArtifact, RunResult


async def replace_results(session: AsyncSession, run_id: int, rows: Iterable[RunResult]) -> None:
    await session.execute(delete(RunResult).where(RunResult.run_id == run_id))
    for row in rows:
        row.run_id = run_id
        session.add(row)
    await session.flush()


async def list_results(
    session: AsyncSession,
    run_id: int,
    *,
    statuses: Collection[str] | None = None,
    name: str | None = None,
    limit: int,
    offset: int,
) -> tuple[Sequence[RunResult], int]:
    query = select(RunResult).where(RunResult.run_id == run_id)
    if statuses is not None:
        query = query.where(RunResult.status.in_(list(statuses)))
    if name:
        query = query.where(RunResult.name.contains(name, autoescape=True))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(RunResult.id).limit(limit).offset(offset))
    return rows.all(), total


async def all_results(session: AsyncSession, run_id: int) -> Sequence[RunResult]:
    rows = await session.scalars(
        select(RunResult).where(RunResult.run_id == run_id).order_by(RunResult.id)
    )
    return rows.all()


async def get_result(session: AsyncSession, run_id: int, result_id: int) -> RunResult | None:
    return await session.scalar(
        select(RunResult).where(RunResult.run_id == run_id, RunResult.id == result_id)
    )


async def add_artifacts(session: AsyncSession, rows: Iterable[RunArtifact]) -> None:
    session.add_all(rows)
    await session.flush()


async def list_artifacts(session: AsyncSession, run_id: int) -> Sequence[RunArtifact]:
    rows = await session.scalars(
        select(RunArtifact).where(RunArtifact.run_id == run_id).order_by(RunArtifact.id)
    )
    return rows.all()
