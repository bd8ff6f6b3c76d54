"""Every query on webhook deliveries: creation, the due list, claims and outcomes.

A deliverer *claims* a row by compare-and-setting ``claimed_until`` into the future;
the exact value it wrote is its fencing token: an outcome is only recorded while the
row still carries that value, so a deliverer whose claim expired (and was taken over
by another process) or whose row was reset by a run restart cannot overwrite it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.status import TERMINAL
from runplane.store.models import Run, WebhookDelivery, utcnow

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
#: The outcomes ``record_attempt`` accepts (``pending`` = retry at ``next_attempt_at``).
STATES = frozenset({PENDING, DELIVERED, FAILED})


async def create_delivery(session: AsyncSession, run_id: int, url: str) -> WebhookDelivery:
    """The delivery of ``run_id``'s webhook; picked up once the run is terminal."""
    delivery = WebhookDelivery(run_id=run_id, url=url, state=PENDING, attempts=0)
    session.add(delivery)
    await session.flush()
    return delivery


async def get(session: AsyncSession, delivery_id: int) -> WebhookDelivery | None:
    return await session.get(WebhookDelivery, delivery_id, populate_existing=True)


async def deliveries_for_runs(
    session: AsyncSession, run_ids: Collection[int]
) -> dict[int, WebhookDelivery]:
    """The delivery of each of ``run_ids`` that has one (shown as ``webhookStatus``)."""
    if not run_ids:
        return {}
    rows = await session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.run_id.in_(list(run_ids)))
    )
    return {d.run_id: d for d in rows.all()}


def _due(now: datetime) -> ColumnElement[bool]:
    """Pending, due, unclaimed (or claim expired), and the run has finished."""
    # Correlated EXISTS: uses the runs primary key instead of listing every finished run.
    run_finished = (
        select(Run.id)
        .where(Run.id == WebhookDelivery.run_id, Run.status.in_([s.value for s in TERMINAL]))
        .exists()
    )
    return and_(
        WebhookDelivery.state == PENDING,
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
        run_finished,
    )


async def due_deliveries(
    session: AsyncSession, now: datetime, limit: int
) -> Sequence[WebhookDelivery]:
    """Deliveries to attempt now, oldest due first; a hint: ``claim`` decides."""
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(_due(now))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return rows.all()


async def claim(session: AsyncSession, delivery_id: int, now: datetime, until: datetime) -> bool:
    """Take the delivery until ``until``; False when another deliverer has it (or it is done).

    A single UPDATE re-checking every condition of ``due_deliveries``: on PostgreSQL a
    concurrent claimer blocks on the row lock, then re-evaluates the WHERE against the
    committed row and finds it claimed; SQLite serialises writers (BEGIN IMMEDIATE).
    """
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, _due(now))
        .values(claimed_until=until)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def record_attempt(
    session: AsyncSession,
    delivery_id: int,
    claimed_until: datetime,
    *,
    state: str,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime | None = None,
    delivered_at: datetime | None = None,
) -> bool:
    """Count one attempt, store its outcome and release the claim.

    ``claimed_until`` is the value ``claim`` wrote: False (nothing written) when the
    claim was lost meanwhile. ``state`` ``pending`` schedules a retry at
    ``next_attempt_at``.
    """
    if state not in STATES:
        raise ValueError(f"unknown delivery state {state!r}")
    values: dict[str, object] = {
        "state": state,
        "attempts": WebhookDelivery.attempts + 1,
        "last_status_code": status_code,
        "last_error": error[:500] if error is not None else None,
        "claimed_until": None,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if delivered_at is not None:
        values["delivered_at"] = delivered_at
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.state == PENDING,
            WebhookDelivery.claimed_until == claimed_until,
        )
        .values(**values)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def release(session: AsyncSession, delivery_id: int, claimed_until: datetime) -> bool:
    """Give a claim back without counting an attempt (the deliverer is stopping)."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.claimed_until == claimed_until,
        )
        .values(claimed_until=None)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def reset_for_run(session: AsyncSession, run_id: int) -> None:
    """A run restarted in place: deliver again when it finishes, with a fresh budget.

    Clearing ``claimed_until`` also fences off a deliverer still busy with the old
    run's payload: its outcome no longer matches the claim and is dropped.
    """
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.run_id == run_id)
        .values(
            state=PENDING,
            attempts=0,
            generation=WebhookDelivery.generation + 1,
            next_attempt_at=utcnow(),
            claimed_until=None,
            last_status_code=None,
            last_error=None,
            delivered_at=None,
        )
        .execution_options(synchronize_session=False)
    )
