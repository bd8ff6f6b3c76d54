"""Queue and health views."""

from __future__ import annotations

import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import text

from runplane.domain.status import RunStatus
from runplane.services.context import Context
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import Run

#: Free disk below this (bytes) makes the data directory "degraded".
LOW_DISK_BYTES = 500 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class QueueView:
    jobs: Sequence[Run]
    total: int
    queue_depth: int
    running_count: int


async def queue(
    ctx: Context, statuses: Collection[RunStatus], platform: str | None, *, limit: int, offset: int
) -> QueueView:
    async with unit_of_work(ctx.reads) as session:
        jobs, total = await store.list_queue(
            session, statuses, platform, limit=limit, offset=offset
        )
        counts = await store.count_by_status(session)
    return QueueView(
        jobs=jobs,
        total=total,
        queue_depth=counts.get(RunStatus.QUEUED, 0),
        running_count=counts.get(RunStatus.RUNNING, 0) + counts.get(RunStatus.CANCELING, 0),
    )


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok | degraded | down
    message: str | None


async def health(ctx: Context, *, workers: int) -> list[Check]:
    checks: list[Check] = []
    try:
        async with unit_of_work(ctx.reads) as session:
            await session.execute(text("SELECT 1"))
        checks.append(Check("database", "ok", None))
    except Exception as exc:
        checks.append(Check("database", "down", str(exc)[:500]))
    try:
        free = shutil.disk_usage(ctx.settings.data_dir).free
        status = "ok" if free > LOW_DISK_BYTES else "degraded"
        checks.append(Check("local_storage", status, f"{free // (1024 * 1024)} MiB free"))
    except OSError as exc:
        checks.append(Check("local_storage", "down", str(exc)[:500]))
    checks.append(
        Check(
            "workers", "ok" if workers > 0 else "degraded", f"{workers} in-process worker slot(s)"
        )
    )
    return checks
