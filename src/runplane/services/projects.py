"""Projects: what a run of a repository checks out, builds and tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from runplane.domain.errors import Conflict, ProjectNotFound, Unprocessable
from runplane.domain.permissions import Action
from runplane.domain.types import Principal
from runplane.services.context import Context
from runplane.services.policy import ensure_allowed
from runplane.store import projects as store
from runplane.store.database import unit_of_work
from runplane.store.models import Project, utcnow


@dataclass(slots=True)
class ProjectSpec:
    repository: str
    repo_url: str
    test_command: str | None = None
    build_command: str | None = None
    timeout_seconds: int | None = None
    grace_period_seconds: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    junit_path: str | None = None
    platform: str = "linux"
    #: Path in the checkout of the program the build produces (regression tests).
    program: str | None = None
    regression_concurrency: int | None = None
    test_timeout_seconds: int = 600
    #: Glob patterns (relative to the checkout) of files each run keeps.
    artifact_paths: list[str] = field(default_factory=list)
    #: Runs executing at once at most (None: no limit); the others wait in the queue.
    max_parallel_runs: int | None = None


async def create(ctx: Context, actor: Principal | None, spec: ProjectSpec) -> Project:
    ensure_allowed(actor, Action.MANAGE_PROJECTS)
    if not spec.test_command and not spec.program:
        raise Unprocessable(
            "A project needs a test command, or a program for its regression tests.",
            fields=["test_command", "program"],
        )
    values = asdict(spec)
    values["timeout_seconds"] = spec.timeout_seconds or ctx.settings.default_timeout_seconds
    async with unit_of_work(ctx.sessions) as session:
        if await store.get_by_repository(session, spec.repository):
            raise Conflict(f"A project for repository {spec.repository} already exists.")
        return await store.add_project(session, Project(**values))


async def get(ctx: Context, project_id: int) -> Project:
    async with unit_of_work(ctx.reads) as session:
        project = await store.get_project(session, project_id)
    if project is None:
        raise ProjectNotFound(project_id)
    return project


async def list_all(ctx: Context, *, limit: int, offset: int) -> tuple[Sequence[Project], int]:
    async with unit_of_work(ctx.reads) as session:
        return await store.list_projects(session, limit=limit, offset=offset)


async def update(
    ctx: Context, actor: Principal | None, project_id: int, changes: dict[str, Any]
) -> Project:
    ensure_allowed(actor, Action.MANAGE_PROJECTS)
    async with unit_of_work(ctx.sessions) as session:
        project = await store.get_project(session, project_id)
        if project is None:
            raise ProjectNotFound(project_id)
        new_repo = changes.get("repository")
        if new_repo and new_repo != project.repository:
            if await store.get_by_repository(session, new_repo):
                raise Conflict(f"A project for repository {new_repo} already exists.")
        for key, value in changes.items():
            if key == "timeout_seconds" and value is None:
                value = ctx.settings.default_timeout_seconds
            setattr(project, key, value)
        project.updated_at = utcnow()
        await session.flush()
        return project


async def delete(ctx: Context, actor: Principal | None, project_id: int) -> None:
    """Delete a project; its runs stay (history is never rewritten) but lose the link."""
    ensure_allowed(actor, Action.MANAGE_PROJECTS)
    async with unit_of_work(ctx.sessions) as session:
        project = await store.get_project(session, project_id)
        if project is None:
            raise ProjectNotFound(project_id)
        await store.delete_project(session, project)
