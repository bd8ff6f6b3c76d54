"""``/v1/projects``: the web applications a team tests (Tester Army projects)."""

from __future__ import annotations

from fastapi import APIRouter

from runplane.api.tester_army import schemas_suite as s
from runplane.api.tester_army.deps import Ctx, RunsRead, SuiteWrite
from runplane.api.tester_army.openapi import errors
from runplane.services import web_suite as service

router = APIRouter(prefix="/projects", tags=["Projects"])


@router.get(
    "",
    response_model=s.ProjectList,
    responses=errors(),
    operation_id="list-projects",
    summary="List projects",
    description="Every project, oldest first.",
)
async def list_projects(ctx: Ctx, _: RunsRead) -> s.ProjectList:
    projects = await service.list_projects(ctx)
    return s.ProjectList(projects=[s.project_summary(p) for p in projects])


@router.post(
    "",
    status_code=201,
    response_model=s.ProjectEnvelope,
    responses=errors(),
    operation_id="create-a-project",
    summary="Create a project",
    description="Only web projects are supported (`projectType: mobile` is a 400). The "
    "project's default group is created with it.",
)
async def create_project(
    ctx: Ctx, principal: SuiteWrite, body: s.ProjectCreate
) -> s.ProjectEnvelope:
    spec = service.ProjectSpec(
        name=body.name, url=body.url, project_type=body.projectType, description=body.description
    )
    project = await service.create_project(ctx, principal, spec)
    return s.ProjectEnvelope(project=s.project_detail(project))


@router.get(
    "/{projectId}",
    response_model=s.ProjectDetail,
    responses=errors(404),
    operation_id="get-a-project",
    summary="Get a project",
    description="By ID or shortId. `environments` holds one static entry at the project URL.",
)
async def get_project(ctx: Ctx, _: RunsRead, projectId: str) -> s.ProjectDetail:
    return s.project_detail(await service.get_project(ctx, projectId))


@router.patch(
    "/{projectId}",
    response_model=s.ProjectEnvelope,
    responses=errors(404),
    operation_id="update-a-project",
    summary="Update a project",
    description="Change `name`, `url` or `description` (null clears the description).",
)
async def update_project(
    ctx: Ctx, principal: SuiteWrite, projectId: str, body: s.ProjectUpdate
) -> s.ProjectEnvelope:
    project = await service.update_project(ctx, principal, projectId, body.changes())
    return s.ProjectEnvelope(project=s.project_detail(project))


@router.delete(
    "/{projectId}",
    response_model=s.Deleted,
    responses=errors(404),
    operation_id="delete-a-project",
    summary="Delete a project",
    description="Delete a project with its groups, tests and runs.",
)
async def delete_project(ctx: Ctx, principal: SuiteWrite, projectId: str) -> s.Deleted:
    return s.Deleted(id=await service.delete_project(ctx, principal, projectId))
