"""Queries on run output lines."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.store.models import RunLogLine


async def append_lines(session: AsyncSession, lines: Sequence[RunLogLine]) -> None:
    session.add_all(lines)
    await session.flush()


async def read_lines(
    session: AsyncSession,
    run_id: int,
    *,
    after_seq: int,
    limit: int,
    source: str | None = None,
    level: str | None = None,
    contains: str | None = None,
) -> Sequence[RunLogLine]:
    """Lines with ``seq >= after_seq`` matching the filters, in order."""
    query = select(RunLogLine).where(RunLogLine.run_id == run_id, RunLogLine.seq >= after_seq)
    if source:
        query = query.where(RunLogLine.source == source)
    if level:
        query = query.where(RunLogLine.level == level)
    if contains:
        query = query.where(RunLogLine.message.contains(contains, autoescape=True))
    rows = await session.scalars(query.order_by(RunLogLine.seq).limit(limit))
    return rows.all()


async def line_count(session: AsyncSession, run_id: int) -> int:
    return (
        await session.scalar(select(func.count(RunLogLine.id)).where(RunLogLine.run_id == run_id))
        or 0
    )


async def last_line(session: AsyncSession, run_id: int) -> RunLogLine | None:
    return await session.scalar(
        select(RunLogLine)
        .where(RunLogLine.run_id == run_id)
        .order_by(RunLogLine.seq.desc())
        .limit(1)
    )
