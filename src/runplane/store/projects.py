"""Queries on projects."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.store.models import Project


async def get_project(session: AsyncSession, project_id: int) -> Project | None:
    return await session.get(Project, project_id)


async def get_by_repository(session: AsyncSession, repository: str) -> Project | None:
    return await session.scalar(select(Project).where(Project.repository == repository))


async def list_projects(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[Project], int]:
    total = await session.scalar(select(func.count(Project.id))) or 0
    rows = await session.scalars(select(Project).order_by(Project.id).limit(limit).offset(offset))
    return rows.all(), total


async def add_project(session: AsyncSession, project: Project) -> Project:
    session.add(project)
    await session.flush()
    return project


async def delete_project(session: AsyncSession, project: Project) -> None:
    await session.delete(project)
    await session.flush()
