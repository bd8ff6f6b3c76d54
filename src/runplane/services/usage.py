"""Plan usage limits: how many browser runs an owner may create per UTC day."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.errors import UsageLimitExceeded
from runplane.domain.types import Principal
from runplane.services.context import Context
from runplane.store import accounts as account_store
from runplane.store import browser_runs as store
from runplane.store.models import utcnow


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def ensure_within_daily_limit(
    ctx: Context, session: AsyncSession, actor: Principal | None, wanted: int = 1
) -> None:
    """Raise ``UsageLimitExceeded`` when ``wanted`` more runs would pass today's quota.

    Checked in the transaction that inserts the runs, with the user's row locked (on
    SQLite the transaction holds the write lock anyway), so two requests cannot both take
    the last run of the quota.
    """
    limit = ctx.settings.usage_runs_per_day
    if not limit or actor is None:
        return
    await account_store.lock_user(session, actor.user_id)
    now = utcnow()
    start = _day_start(now)
    used = await store.created_since(session, actor.user_id, start)
    if used + wanted > limit:
        reset = start + timedelta(days=1)
        raise UsageLimitExceeded(
            f"Usage limit exceeded: {used} of {limit} runs used today (UTC); "
            f"the quota resets at {reset.strftime('%Y-%m-%dT%H:%M:%SZ')}.",
            limit=limit,
            retry_after=max(1, int((reset - now).total_seconds())),
        )
