"""Queries on users and API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.store.models import ApiToken, User


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.lower()))


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def add(session: AsyncSession, row: User | ApiToken) -> None:
    session.add(row)
    await session.flush()


async def token_name_taken(session: AsyncSession, user_id: int, name: str) -> bool:
    found = await session.scalar(
        select(ApiToken.id).where(ApiToken.user_id == user_id, ApiToken.name == name)
    )
    return found is not None


async def tokens_with_prefix(session: AsyncSession, prefix: str) -> Sequence[ApiToken]:
    rows = await session.scalars(select(ApiToken).where(ApiToken.prefix == prefix))
    return rows.all()


async def get_token(session: AsyncSession, token_id: int) -> ApiToken | None:
    return await session.get(ApiToken, token_id)


async def list_tokens(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[ApiToken], int]:

    total = await session.scalar(select(func.count(ApiToken.id))) or 0
    rows = await session.scalars(select(ApiToken).order_by(ApiToken.id).limit(limit).offset(offset))
    return rows.all(), total


async def tokens_of_user(session: AsyncSession, user_id: int) -> Sequence[ApiToken]:
    rows = await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    )
    return rows.all()


async def revoke_token(session: AsyncSession, token_id: int, when: datetime) -> None:
    await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=when)
    )


async def touch_token(session: AsyncSession, token_id: int, when: datetime) -> None:
    await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=when))


async def lock_user(session: AsyncSession, user_id: int) -> None:
    """Row-lock the user until commit on PostgreSQL (SQLite's write lock already covers it),
    so per-user quota checks of concurrent requests run one after the other."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
