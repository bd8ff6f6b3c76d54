"""``/v1/tests``: stored browser tests, their steps and the groups they belong to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from runplane.api.tester_army import schemas_suite as s
from runplane.api.tester_army.deps import Ctx, RunsRead, SuiteWrite, decode_cursor, encode_cursor
from runplane.api.tester_army.errors import DialectError
from runplane.api.tester_army.openapi import errors
from runplane.services import web_suite as service

router = APIRouter(prefix="/tests", tags=["Tests"])

ProjectQuery = Annotated[str, Query(min_length=1, description="Project ID or shortId")]
Limit = Annotated[int, Query(ge=1, le=100, description="Max results per page")]


def _cursor_of(position: service.TestPosition | None) -> str | None:
    if position is None:
        return None
    created_at, test_id = position
    return encode_cursor([created_at.isoformat(), test_id])


def _position_of(cursor: str | None) -> service.TestPosition | None:
    """The (created_at, id) a cursor we handed out names; 400 for anything else."""
    raw: Any = decode_cursor(cursor)
    if raw is None:
        return None
    try:
        created_at, test_id = raw
        return datetime.fromisoformat(created_at), str(UUID(test_id))
    except (TypeError, ValueError):
        raise DialectError(400, "ValidationError", "cursor: Invalid cursor") from None


@router.get(
    "",
    response_model=s.TestList,
    responses=errors(404),
    operation_id="list-tests",
    summary="List tests",
    description="Oldest first; pass `nextCursor` back as `cursor` for the next page. Tests "
    "created meanwhile appear on later pages, never twice.",
)
async def list_tests(
    ctx: Ctx,
    _: RunsRead,
    projectId: ProjectQuery,
    groupId: UUID | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> s.TestList:
    page = await service.list_tests(
        ctx,
        projectId,
        group_id=str(groupId) if groupId else None,
        after=_position_of(cursor),
        limit=limit,
    )
    return s.TestList(
        projectUrl=page.project.url,
        projectName=page.project.name,
        tests=[s.test_definition(t, page.project) for t in page.tests],
        nextCursor=_cursor_of(page.next_position),
    )


@router.post(
    "",
    status_code=201,
    response_model=s.TestEnvelope,
    responses=errors(404),
    operation_id="create-a-test",
    summary="Create a test",
    description="The test joins the project's default group and, when given, `groupId` "
    "(a group of the same project).",
)
async def create_test(ctx: Ctx, principal: SuiteWrite, body: s.TestCreate) -> s.TestEnvelope:
    spec = service.TestSpec(
        project_ref=body.projectId,
        title=body.title,
        steps=s.steps_json(body.steps),
        description=body.description,
        group_id=str(body.groupId) if body.groupId else None,
        platform=body.platform,
        enabled=body.enabled,
    )
    view = await service.create_test(ctx, principal, spec)
    return s.TestEnvelope(test=s.test_definition(view.test, view.project))


@router.get(
    "/{testId}",
    response_model=s.TestDetail,
    responses=errors(404),
    operation_id="get-a-test",
    summary="Get a test",
    description="The test with the groups it belongs to.",
)
async def get_test(ctx: Ctx, _: RunsRead, testId: UUID) -> s.TestDetail:
    return s.test_detail(await service.get_test(ctx, str(testId)))


@router.patch(
    "/{testId}",
    response_model=s.TestEnvelope,
    responses=errors(404),
    operation_id="update-a-test",
    summary="Update a test",
    description="Change `title`, `description`, `steps` or `enabled`.",
)
async def update_test(
    ctx: Ctx, principal: SuiteWrite, testId: UUID, body: s.TestUpdate
) -> s.TestEnvelope:
    view = await service.update_test(ctx, principal, str(testId), body.changes())
    return s.TestEnvelope(test=s.test_definition(view.test, view.project))


@router.delete(
    "/{testId}",
    response_model=s.Deleted,
    responses=errors(404),
    operation_id="delete-a-test",
    summary="Delete a test",
    description="Delete a test (its past runs are kept).",
)
async def delete_test(ctx: Ctx, principal: SuiteWrite, testId: UUID) -> s.Deleted:
    return s.Deleted(id=await service.delete_test(ctx, principal, str(testId)))
