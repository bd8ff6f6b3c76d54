"""``/projects`` (runplane extension): what a repository's runs check out, build and test."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from runplane.api.sample_platform import schemas as s
from runplane.api.sample_platform.deps import (
    Ctx,
    Page,
    ProjectAdmin,
    RunsRead,
    body_openapi,
    json_body,
    page_envelope,
)
from runplane.api.sample_platform.openapi import errors
from runplane.domain.permissions import Role
from runplane.services import projects as projects_service

router = APIRouter(prefix="/projects", tags=["projects (runplane extension)"])
ProjectIdPath = Annotated[int, Path(ge=1, le=2147483647)]


@router.get(
    "", response_model=s.PageOf[s.ProjectOut], responses=errors(400, 403), summary="List projects"
)
async def list_projects(ctx: Ctx, principal: RunsRead, page: Page) -> dict[str, Any]:
    rows, total = await projects_service.list_all(ctx, limit=page.limit, offset=page.offset)
    admin = principal.role is Role.ADMIN
    return page_envelope([s.project_out(p, show_env_values=admin) for p in rows], page, total)


@router.post(
    "",
    status_code=201,
    response_model=s.ProjectOut,
    responses=errors(400, 403, 409, 415, 422),
    summary="Create a project (admin)",
    openapi_extra=body_openapi(s.ProjectCreate),
)
async def create_project(
    ctx: Ctx,
    principal: ProjectAdmin,
    body: Annotated[s.ProjectCreate, Depends(json_body(s.ProjectCreate))],
) -> s.ProjectOut:
    project = await projects_service.create(
        ctx, principal, projects_service.ProjectSpec(**body.model_dump())
    )
    return s.project_out(project, show_env_values=True)


@router.get(
    "/{project_id}",
    response_model=s.ProjectOut,
    responses=errors(400, 403, 404),
    summary="Get a project",
)
async def get_project(ctx: Ctx, principal: RunsRead, project_id: ProjectIdPath) -> s.ProjectOut:
    project = await projects_service.get(ctx, project_id)
    return s.project_out(project, show_env_values=principal.role is Role.ADMIN)


@router.patch(
    "/{project_id}",
    response_model=s.ProjectOut,
    responses=errors(400, 403, 404, 409, 415),
    summary="Change a project (admin)",
    openapi_extra=body_openapi(s.ProjectUpdate),
)
async def update_project(
    ctx: Ctx,
    principal: ProjectAdmin,
    project_id: ProjectIdPath,
    body: Annotated[s.ProjectUpdate, Depends(json_body(s.ProjectUpdate))],
) -> s.ProjectOut:
    changes = body.model_dump(exclude_unset=True)
    for required in (
        "repository",
        "repo_url",
        "platform",
        "env",
        "test_timeout_seconds",
        "artifact_paths",
    ):
        if required in changes and changes[required] is None:
            changes.pop(required)
    project = await projects_service.update(ctx, principal, project_id, changes)
    return s.project_out(project, show_env_values=True)


@router.delete(
    "/{project_id}",
    status_code=204,
    responses=errors(400, 403, 404),
    summary="Delete a project (admin); its runs are kept",
)
async def delete_project(ctx: Ctx, principal: ProjectAdmin, project_id: ProjectIdPath) -> Response:
    await projects_service.delete(ctx, principal, project_id)
    return Response(status_code=204)
