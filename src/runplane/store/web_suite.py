"""Queries on web projects, their stored browser tests and test groups (Tester Army suite)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.store.models import (
    BrowserRun,
    Run,
    RunBatch,
    TestGroup,
    TestGroupMember,
    WebProject,
    WebTest,
)

#: A position in the (created_at, id) order of a project's tests.
TestPosition = tuple[datetime, str]


def _canonical_uuid(ref: str) -> str | None:
    """The stored spelling of ``ref`` if it is a UUID (ids are lowercase, hyphenated)."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        return None


# ---- projects -------------------------------------------------------------------------


async def get_project(session: AsyncSession, ref: str) -> WebProject | None:
    """A project by id or by shortId (a shortId is never a valid UUID, so no ambiguity)."""
    project_id = _canonical_uuid(ref)
    if project_id is not None:
        return await session.get(WebProject, project_id)
    return await session.scalar(select(WebProject).where(WebProject.short_id == ref))


async def lock_project(session: AsyncSession, project_id: str) -> WebProject | None:
    """The project, row-locked until commit on PostgreSQL (SQLite's write lock covers it).

    Serialises checks such as the group limit between concurrent writers.
    """
    return await session.scalar(
        select(WebProject).where(WebProject.id == project_id).with_for_update()
    )


async def short_id_taken(session: AsyncSession, short_id: str) -> bool:
    found = await session.scalar(select(WebProject.id).where(WebProject.short_id == short_id))
    return found is not None


async def list_projects(session: AsyncSession) -> Sequence[WebProject]:
    """Every project, oldest first."""
    rows = await session.scalars(select(WebProject).order_by(WebProject.created_at, WebProject.id))
    return rows.all()


async def add_project(session: AsyncSession, project: WebProject) -> WebProject:
    session.add(project)
    await session.flush()
    return project


async def delete_project_runs(session: AsyncSession, project_id: str) -> int:
    """Delete the runs of a project's browser runs; the number deleted.

    A run row is the parent of its ``browser_runs`` row, not a child of the project, so
    deleting the project would only drop the detail row and leave an orphan run behind.
    Runs of the project's batches count too: the batch cascade would orphan them the same way.
    """
    batches = select(RunBatch.id).where(RunBatch.project_id == project_id)
    run_ids = select(BrowserRun.run_id).where(
        or_(BrowserRun.project_id == project_id, BrowserRun.batch_id.in_(batches))
    )
    result = await session.execute(
        delete(Run).where(Run.id.in_(run_ids)).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_project(session: AsyncSession, project: WebProject) -> None:
    """Delete a project; tests, groups, memberships and batches go by ``ON DELETE CASCADE``."""
    await session.delete(project)
    await session.flush()


# ---- tests ----------------------------------------------------------------------------


async def get_test(session: AsyncSession, test_id: str) -> WebTest | None:
    return await session.get(WebTest, test_id)


async def add_test(session: AsyncSession, test: WebTest) -> WebTest:
    session.add(test)
    await session.flush()
    return test


async def delete_test(session: AsyncSession, test: WebTest) -> None:
    """Delete a test; memberships cascade, a group's prepTestId and runs' testId become null."""
    await session.delete(test)
    await session.flush()


async def list_tests(
    session: AsyncSession,
    project_id: str,
    *,
    group_id: str | None,
    after: TestPosition | None,
    limit: int,
) -> Sequence[WebTest]:
    """A page of a project's tests in (created_at, id) order, strictly after ``after``.

    Keyset pagination: a test created between two page fetches sorts after every test
    already handed out, so pages neither repeat nor skip rows.
    """
    query = select(WebTest).where(WebTest.project_id == project_id)
    if group_id is not None:
        members = select(TestGroupMember.test_id).where(TestGroupMember.group_id == group_id)
        query = query.where(WebTest.id.in_(members))
    if after is not None:
        created_at, test_id = after
        query = query.where(
            or_(
                WebTest.created_at > created_at,
                and_(WebTest.created_at == created_at, WebTest.id > test_id),
            )
        )
    rows = await session.scalars(query.order_by(WebTest.created_at, WebTest.id).limit(limit))
    return rows.all()


# ---- groups ---------------------------------------------------------------------------


async def get_group(session: AsyncSession, group_id: str) -> TestGroup | None:
    return await session.get(TestGroup, group_id)


async def default_group(session: AsyncSession, project_id: str) -> TestGroup | None:
    return await session.scalar(
        select(TestGroup).where(TestGroup.project_id == project_id, TestGroup.is_default)
    )


async def list_groups(session: AsyncSession, project_id: str) -> Sequence[tuple[TestGroup, int]]:
    """A project's groups with their member counts: the default group first, then by age."""
    counts = (
        select(TestGroupMember.group_id, func.count().label("n"))
        .group_by(TestGroupMember.group_id)
        .subquery()
    )
    rows = await session.execute(
        select(TestGroup, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.group_id == TestGroup.id)
        .where(TestGroup.project_id == project_id)
        .order_by(TestGroup.is_default.desc(), TestGroup.created_at, TestGroup.id)
    )
    return [(group, int(count)) for group, count in rows.all()]


async def count_groups(session: AsyncSession, project_id: str) -> int:
    count = await session.scalar(
        select(func.count(TestGroup.id)).where(TestGroup.project_id == project_id)
    )
    return int(count or 0)


async def add_group(session: AsyncSession, group: TestGroup) -> TestGroup:
    session.add(group)
    await session.flush()
    return group


async def delete_group(session: AsyncSession, group: TestGroup) -> None:
    """Delete a group; memberships cascade, its batches keep their runs (group_id → null)."""
    await session.delete(group)
    await session.flush()


async def group_tests(session: AsyncSession, group_id: str) -> list[WebTest]:
    """A group's member tests in the order they were added (then by id, for ties)."""
    rows = await session.scalars(
        select(WebTest)
        .join(TestGroupMember, TestGroupMember.test_id == WebTest.id)
        .where(TestGroupMember.group_id == group_id)
        .order_by(TestGroupMember.added_at, WebTest.id)
    )
    return list(rows.all())


async def groups_of_test(session: AsyncSession, test_id: str) -> Sequence[TestGroup]:
    """The groups a test belongs to: the default group first, then by age."""
    rows = await session.scalars(
        select(TestGroup)
        .join(TestGroupMember, TestGroupMember.group_id == TestGroup.id)
        .where(TestGroupMember.test_id == test_id)
        .order_by(TestGroup.is_default.desc(), TestGroup.created_at, TestGroup.id)
    )
    return rows.all()


async def is_member(session: AsyncSession, group_id: str, test_id: str) -> bool:
    return await session.get(TestGroupMember, (group_id, test_id)) is not None


async def add_member(session: AsyncSession, group_id: str, test_id: str) -> bool:
    """Make a test a member of a group; False when it already was."""
    if await is_member(session, group_id, test_id):
        return False
    try:
        # A savepoint: a concurrent add of the same pair (PostgreSQL) must not doom the
        # caller's transaction, only tell it that the row already exists.
        async with session.begin_nested():
            session.add(TestGroupMember(group_id=group_id, test_id=test_id))
    except IntegrityError:
        return False
    return True


async def remove_member(session: AsyncSession, group_id: str, test_id: str) -> bool:
    """Remove a test from a group; False when it was not a member."""
    member = await session.get(TestGroupMember, (group_id, test_id))
    if member is None:
        return False
    await session.delete(member)
    await session.flush()
    return True
