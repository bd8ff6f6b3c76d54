"""The browser-testing suite: web projects, their stored tests and the groups that run them.

Every project has exactly one default group, created with it; every new test joins it,
so running the default group runs the whole project. A group's ``prep_test_id`` names
one of its members, which a batch of the group runs first.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.errors import (
    Conflict,
    GroupNotFound,
    InvalidInput,
    WebProjectNotFound,
    WebTestNotFound,
)
from runplane.domain.permissions import Action
from runplane.domain.types import Principal
from runplane.services.context import Context
from runplane.services.policy import ensure_allowed
from runplane.store import web_suite as store
from runplane.store.database import unit_of_work
from runplane.store.models import TestGroup, WebProject, WebTest, utcnow
from runplane.store.web_suite import TestPosition as TestPosition

MAX_STEPS = 50
MAX_GROUPS_PER_PROJECT = 20
DEFAULT_GROUP_NAME = "Default"
SUPPORTED_PLATFORMS = frozenset({"web"})
RUN_MODES = frozenset({"concurrent", "sequential"})
SHORT_ID_LENGTH = 8
_SHORT_ID_ALPHABET = string.ascii_lowercase + string.digits
#: 36^8 ids make a clash rare; a few retries make a failure practically impossible.
_SHORT_ID_ATTEMPTS = 10

_PROJECT_FIELDS = frozenset({"name", "url", "description"})
_TEST_FIELDS = frozenset({"title", "description", "steps", "enabled"})
_GROUP_FIELDS = frozenset({"name", "run_mode", "prep_test_id"})


# ---- values handed to and returned by the service -------------------------------------


@dataclass(slots=True)
class ProjectSpec:
    name: str
    url: str
    project_type: str = "web"
    description: str | None = None


@dataclass(slots=True)
class TestSpec:
    __test__ = False  # not a pytest class

    project_ref: str
    title: str
    steps: list[dict[str, Any]]
    description: str | None = None
    group_id: str | None = None
    platform: str = "web"
    enabled: bool = True


@dataclass(slots=True)
class GroupSpec:
    project_ref: str
    name: str
    run_mode: str = "concurrent"
    prep_test_id: str | None = None


@dataclass(slots=True)
class TestView:
    """A test with what its wire form shows beside it."""

    __test__ = False

    test: WebTest
    project: WebProject
    groups: Sequence[TestGroup] = field(default_factory=list)


@dataclass(slots=True)
class TestPage:
    __test__ = False

    project: WebProject
    tests: Sequence[WebTest]
    #: Where the next page starts, or None on the last page.
    next_position: TestPosition | None


@dataclass(slots=True)
class GroupSummary:
    group: TestGroup
    test_count: int


@dataclass(slots=True)
class GroupView:
    group: TestGroup
    test_ids: list[str]


# ---- shared checks --------------------------------------------------------------------


def _invalid(name: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{name}: {problem}", {name: problem})


def _check_platform(name: str, value: str) -> None:
    if value == "mobile":
        raise _invalid(name, "Mobile apps are not supported; only web projects can be tested.")
    if value not in SUPPORTED_PLATFORMS:
        raise _invalid(name, f"Unsupported value {value!r}.")


def _check_steps(steps: Sequence[Mapping[str, Any]]) -> None:
    # The API schema validates each step; this keeps non-HTTP callers within the limits.
    if not 1 <= len(steps) <= MAX_STEPS:
        raise _invalid("steps", f"A test needs between 1 and {MAX_STEPS} steps.")


def _check_changes(changes: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}")


async def _project(session: AsyncSession, ref: str) -> WebProject:
    project = await store.get_project(session, ref)
    if project is None:
        raise WebProjectNotFound(ref)
    return project


async def _test(session: AsyncSession, test_id: str) -> WebTest:
    test = await store.get_test(session, test_id)
    if test is None:
        raise WebTestNotFound(test_id)
    return test


async def _group(session: AsyncSession, group_id: str) -> TestGroup:
    group = await store.get_group(session, group_id)
    if group is None:
        raise GroupNotFound(group_id)
    return group


async def _project_test(
    session: AsyncSession, project: WebProject, test_id: str, name: str
) -> WebTest:
    """A test that must belong to ``project`` (``name`` is the field that named it)."""
    test = await _test(session, test_id)
    if test.project_id != project.id:
        raise _invalid(name, f"Test {test_id} belongs to another project.")
    return test


async def _project_group(
    session: AsyncSession, project: WebProject, group_id: str, name: str
) -> TestGroup:
    group = await _group(session, group_id)
    if group.project_id != project.id:
        raise _invalid(name, f"Group {group_id} belongs to another project.")
    return group


async def _ensure_default_group(session: AsyncSession, project: WebProject) -> TestGroup:
    """The project's default group; created here for a project made without one."""
    group = await store.default_group(session, project.id)
    if group is not None:
        return group
    now = utcnow()
    return await store.add_group(
        session,
        TestGroup(
            project_id=project.id,
            name=DEFAULT_GROUP_NAME,
            is_default=True,
            run_mode="concurrent",
            created_at=now,
            updated_at=now,
        ),
    )


# ---- projects -------------------------------------------------------------------------


async def _new_short_id(session: AsyncSession) -> str:
    for _ in range(_SHORT_ID_ATTEMPTS):
        candidate = "".join(secrets.choice(_SHORT_ID_ALPHABET) for _ in range(SHORT_ID_LENGTH))
        if not await store.short_id_taken(session, candidate):
            return candidate
    raise Conflict("Could not allocate a unique project shortId; try again.")


async def create_project(ctx: Context, actor: Principal | None, spec: ProjectSpec) -> WebProject:
    """A new project with its default group."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    _check_platform("projectType", spec.project_type)
    now = utcnow()
    async with unit_of_work(ctx.sessions) as session:
        project = await store.add_project(
            session,
            WebProject(
                short_id=await _new_short_id(session),
                name=spec.name,
                url=spec.url,
                project_type=spec.project_type,
                description=spec.description,
                created_by=actor.user_id if actor is not None else None,
                created_at=now,
                updated_at=now,
            ),
        )
        await _ensure_default_group(session, project)
        return project


async def list_projects(ctx: Context) -> Sequence[WebProject]:
    async with unit_of_work(ctx.reads) as session:
        return await store.list_projects(session)


async def get_project(ctx: Context, ref: str) -> WebProject:
    async with unit_of_work(ctx.reads) as session:
        return await _project(session, ref)


async def update_project(
    ctx: Context, actor: Principal | None, ref: str, changes: Mapping[str, Any]
) -> WebProject:
    """Change any of ``name``, ``url``, ``description``."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    _check_changes(changes, _PROJECT_FIELDS)
    async with unit_of_work(ctx.sessions) as session:
        project = await _project(session, ref)
        for key, value in changes.items():
            setattr(project, key, value)
        project.updated_at = utcnow()
        await session.flush()
        return project


async def delete_project(ctx: Context, actor: Principal | None, ref: str) -> str:
    """Delete a project with its groups, tests, batches and runs; the deleted id."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        project = await _project(session, ref)
        project_id = project.id
        # Runs first: once the project is gone nothing links them to it any more.
        await store.delete_project_runs(session, project_id)
        await store.delete_project(session, project)
        return project_id


# ---- tests ----------------------------------------------------------------------------


async def list_tests(
    ctx: Context,
    project_ref: str,
    *,
    group_id: str | None = None,
    after: TestPosition | None = None,
    limit: int = 50,
) -> TestPage:
    """One page of a project's tests (optionally one group's) in creation order."""
    async with unit_of_work(ctx.reads) as session:
        project = await _project(session, project_ref)
        if group_id is not None:
            await _project_group(session, project, group_id, "groupId")
        # One row more than asked tells whether another page follows.
        rows = await store.list_tests(
            session, project.id, group_id=group_id, after=after, limit=limit + 1
        )
    page = rows[:limit]
    more = len(rows) > limit
    next_position = (page[-1].created_at, page[-1].id) if more and page else None
    return TestPage(project=project, tests=page, next_position=next_position)


async def create_test(ctx: Context, actor: Principal | None, spec: TestSpec) -> TestView:
    """A new test; it joins the project's default group and, if named, ``spec.group_id``."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    _check_platform("platform", spec.platform)
    _check_steps(spec.steps)
    async with unit_of_work(ctx.sessions) as session:
        project = await _project(session, spec.project_ref)
        groups = [await _ensure_default_group(session, project)]
        if spec.group_id is not None:
            chosen = await _project_group(session, project, spec.group_id, "groupId")
            if chosen.id != groups[0].id:
                groups.append(chosen)
        now = utcnow()
        test = await store.add_test(
            session,
            WebTest(
                project_id=project.id,
                title=spec.title,
                description=spec.description,
                steps=spec.steps,
                platform=spec.platform,
                enabled=spec.enabled,
                created_at=now,
                updated_at=now,
            ),
        )
        for group in groups:
            await store.add_member(session, group.id, test.id)
        return TestView(test=test, project=project, groups=groups)


async def get_test(ctx: Context, test_id: str) -> TestView:
    """A test with its project and the groups it belongs to."""
    async with unit_of_work(ctx.reads) as session:
        test = await _test(session, test_id)
        project = await _project(session, test.project_id)
        groups = await store.groups_of_test(session, test.id)
    return TestView(test=test, project=project, groups=groups)


async def update_test(
    ctx: Context, actor: Principal | None, test_id: str, changes: Mapping[str, Any]
) -> TestView:
    """Change any of ``title``, ``description``, ``steps``, ``enabled``."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    _check_changes(changes, _TEST_FIELDS)
    if "steps" in changes:
        _check_steps(changes["steps"])
    async with unit_of_work(ctx.sessions) as session:
        test = await _test(session, test_id)
        for key, value in changes.items():
            setattr(test, key, value)
        test.updated_at = utcnow()
        await session.flush()
        project = await _project(session, test.project_id)
        groups = await store.groups_of_test(session, test.id)
    return TestView(test=test, project=project, groups=groups)


async def delete_test(ctx: Context, actor: Principal | None, test_id: str) -> str:
    """Delete a test; its past runs stay and lose the link. The deleted id."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        test = await _test(session, test_id)
        await store.delete_test(session, test)
        return test.id


# ---- groups ---------------------------------------------------------------------------


async def _group_view(session: AsyncSession, group: TestGroup) -> GroupView:
    members = await store.group_tests(session, group.id)
    return GroupView(group=group, test_ids=[t.id for t in members])


async def _set_prep_test(
    session: AsyncSession, project: WebProject, group: TestGroup, test_id: str | None
) -> None:
    """Point the group's prep test at ``test_id``, which becomes a member if it was not."""
    if test_id is not None:
        await _project_test(session, project, test_id, "prepTestId")
        await store.add_member(session, group.id, test_id)
    group.prep_test_id = test_id


def _check_run_mode(value: str) -> None:
    if value not in RUN_MODES:
        raise _invalid("runMode", f"Expected one of {sorted(RUN_MODES)}.")


async def list_groups(ctx: Context, project_ref: str) -> list[GroupSummary]:
    async with unit_of_work(ctx.reads) as session:
        project = await _project(session, project_ref)
        rows = await store.list_groups(session, project.id)
    return [GroupSummary(group=group, test_count=count) for group, count in rows]


async def create_group(ctx: Context, actor: Principal | None, spec: GroupSpec) -> GroupView:
    """A new (non-default) group; at most ``MAX_GROUPS_PER_PROJECT`` per project."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    _check_run_mode(spec.run_mode)
    async with unit_of_work(ctx.sessions) as session:
        project = await _project(session, spec.project_ref)
        # Locked so two concurrent creates cannot both pass the limit check.
        await store.lock_project(session, project.id)
        if await store.count_groups(session, project.id) >= MAX_GROUPS_PER_PROJECT:
            raise Conflict(f"A project can have at most {MAX_GROUPS_PER_PROJECT} groups.")
        now = utcnow()
        group = await store.add_group(
            session,
            TestGroup(
                project_id=project.id,
                name=spec.name,
                is_default=False,
                run_mode=spec.run_mode,
                created_at=now,
                updated_at=now,
            ),
        )
        await _set_prep_test(session, project, group, spec.prep_test_id)
        await session.flush()
        return await _group_view(session, group)


async def get_group(ctx: Context, group_id: str) -> GroupView:
    async with unit_of_work(ctx.reads) as session:
        return await _group_view(session, await _group(session, group_id))


async def update_group(
    ctx: Context, actor: Principal | None, group_id: str, changes: Mapping[str, Any]
) -> GroupView:
    """Change any of ``name``, ``run_mode``, ``prep_test_id`` (None clears it)."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    _check_changes(changes, _GROUP_FIELDS)
    if "run_mode" in changes:
        _check_run_mode(changes["run_mode"])
    async with unit_of_work(ctx.sessions) as session:
        group = await _group(session, group_id)
        if "prep_test_id" in changes:
            project = await _project(session, group.project_id)
            await _set_prep_test(session, project, group, changes["prep_test_id"])
        for key in ("name", "run_mode"):
            if key in changes:
                setattr(group, key, changes[key])
        group.updated_at = utcnow()
        await session.flush()
        return await _group_view(session, group)


async def delete_group(ctx: Context, actor: Principal | None, group_id: str) -> str:
    """Delete a non-default group (its tests stay in the project); the deleted id."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        group = await _group(session, group_id)
        if group.is_default:
            raise Conflict("The default group cannot be deleted.")
        await store.delete_group(session, group)
        return group.id


async def add_test_to_group(
    ctx: Context, actor: Principal | None, group_id: str, test_id: str
) -> bool:
    """Make a test of the group's project a member; False when it already was."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        group = await _group(session, group_id)
        project = await _project(session, group.project_id)
        await _project_test(session, project, test_id, "testId")
        return await store.add_member(session, group.id, test_id)


async def remove_test_from_group(
    ctx: Context, actor: Principal | None, group_id: str, test_id: str
) -> bool:
    """Remove a test from a group (clearing the prep test if it was that); False if absent."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        group = await _group(session, group_id)
        removed = await store.remove_member(session, group.id, test_id)
        if group.prep_test_id == test_id:
            group.prep_test_id = None
            group.updated_at = utcnow()
            await session.flush()
        return removed
