"""Queries on browser runs (the Tester Army dialect's runs), batches and screenshots."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.status import RunStatus
from runplane.store import runs as run_store
from runplane.store.models import BrowserRun, Run, RunBatch, RunScreenshot
from runplane.store.runs import EventSpec


@dataclass(frozen=True, slots=True)
class BrowserRunFilter:
    statuses: frozenset[RunStatus] | None = None
    project_id: str | None = None
    test_id: str | None = None


async def insert(session: AsyncSession, run: Run, browser: BrowserRun, event: EventSpec) -> Run:
    """A new queued run and what its browser agent executes, in one transaction."""
    await run_store.insert_run(session, run, event)
    browser.run_id = run.id
    session.add(browser)
    await session.flush()
    return run


async def get(session: AsyncSession, run_id: int) -> BrowserRun | None:
    return await session.get(BrowserRun, run_id, populate_existing=True)


async def get_by_uuid(session: AsyncSession, run_uuid: str) -> tuple[Run, BrowserRun] | None:
    row = (
        await session.execute(
            select(Run, BrowserRun)
            .join(BrowserRun, BrowserRun.run_id == Run.id)
            .where(Run.uuid == run_uuid)
            .execution_options(populate_existing=True)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def list_page(
    session: AsyncSession, flt: BrowserRunFilter, *, before_id: int | None, limit: int
) -> list[tuple[Run, BrowserRun]]:
    """Newest first; ``before_id`` continues after the last run of the previous page, so a
    page never repeats or skips a run when new ones are inserted meanwhile."""
    query = select(Run, BrowserRun).join(BrowserRun, BrowserRun.run_id == Run.id)
    if flt.statuses is not None:
        query = query.where(Run.status.in_([s.value for s in flt.statuses]))
    if flt.project_id is not None:
        query = query.where(BrowserRun.project_id == flt.project_id)
    if flt.test_id is not None:
        query = query.where(BrowserRun.test_id == flt.test_id)
    if before_id is not None:
        query = query.where(Run.id < before_id)
    rows = await session.execute(query.order_by(Run.id.desc()).limit(limit))
    return [(r, b) for r, b in rows.all()]


async def batch_runs(session: AsyncSession, batch_id: str) -> list[tuple[Run, BrowserRun]]:
    rows = await session.execute(
        select(Run, BrowserRun)
        .join(BrowserRun, BrowserRun.run_id == Run.id)
        .where(BrowserRun.batch_id == batch_id)
        .order_by(BrowserRun.batch_position, Run.id)
        .execution_options(populate_existing=True)
    )
    return [(r, b) for r, b in rows.all()]


async def get_batch(session: AsyncSession, batch_id: str) -> RunBatch | None:
    return await session.get(RunBatch, batch_id)


async def add_batch(session: AsyncSession, batch: RunBatch) -> RunBatch:
    session.add(batch)
    await session.flush()
    return batch


async def created_since(session: AsyncSession, user_id: int, since: datetime) -> int:
    """Browser runs ``user_id`` created since ``since`` (the usage limit's count)."""
    count = await session.scalar(
        select(func.count(Run.id))
        .join(BrowserRun, BrowserRun.run_id == Run.id)
        .where(Run.user_id == user_id, Run.created_at >= since)
    )
    return count or 0


async def save_outcome(
    session: AsyncSession,
    run_id: int,
    *,
    output: dict[str, Any] | None,
    error_code: str | None,
    error_message: str | None,
) -> None:
    await session.execute(
        update(BrowserRun)
        .where(BrowserRun.run_id == run_id)
        .values(output=output, error_code=error_code, error_message=error_message)
    )


async def add_screenshots(session: AsyncSession, rows: Collection[RunScreenshot]) -> None:
    session.add_all(rows)
    await session.flush()


async def get_screenshot(session: AsyncSession, run_id: int, name: str) -> RunScreenshot | None:
    return await session.scalar(
        select(RunScreenshot).where(RunScreenshot.run_id == run_id, RunScreenshot.name == name)
    )
