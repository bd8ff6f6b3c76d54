"""``/v1/groups``: named sets of a project's tests that run together, and their members."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from runplane.api.tester_army import schemas_suite as s
from runplane.api.tester_army.deps import Ctx, RunsRead, SuiteWrite
from runplane.api.tester_army.openapi import errors
from runplane.services import web_suite as service

router = APIRouter(prefix="/groups", tags=["Groups"])

ProjectQuery = Annotated[str, Query(min_length=1, description="Project ID or shortId")]
_ALREADY_MEMBER: dict[int | str, dict[str, Any]] = {
    200: {"model": s.MembershipAdded, "description": "The test already was a member; no change."}
}


@router.get(
    "",
    response_model=s.GroupList,
    responses=errors(404),
    operation_id="list-test-groups",
    summary="List test groups",
    description="A project's groups, the default group (which every new test joins) first.",
)
async def list_groups(ctx: Ctx, _: RunsRead, projectId: ProjectQuery) -> s.GroupList:
    summaries = await service.list_groups(ctx, projectId)
    return s.GroupList(groups=[s.group_summary(g) for g in summaries])


@router.post(
    "",
    status_code=201,
    response_model=s.GroupEnvelope,
    responses=errors(404, 409),
    operation_id="create-a-test-group",
    summary="Create a test group",
    description="At most 20 groups per project, the default one included (409 beyond). "
    "A `prepTestId` must be a test of the project; it becomes a member.",
)
async def create_group(ctx: Ctx, principal: SuiteWrite, body: s.GroupCreate) -> s.GroupEnvelope:
    spec = service.GroupSpec(
        project_ref=body.projectId,
        name=body.name,
        run_mode=body.runMode,
        prep_test_id=str(body.prepTestId) if body.prepTestId else None,
    )
    view = await service.create_group(ctx, principal, spec)
    return s.GroupEnvelope(group=s.group_detail(view))


@router.get(
    "/{groupId}",
    response_model=s.GroupDetail,
    responses=errors(404),
    operation_id="get-a-test-group",
    summary="Get a test group",
    description="The group with its member test ids (`testIds`, in the order they were added).",
)
async def get_group(ctx: Ctx, _: RunsRead, groupId: UUID) -> s.GroupDetail:
    return s.group_detail(await service.get_group(ctx, str(groupId)))


@router.patch(
    "/{groupId}",
    response_model=s.GroupEnvelope,
    responses=errors(404),
    operation_id="update-a-test-group",
    summary="Update a test group",
    description="Change `name`, `runMode` or `prepTestId` (null clears it).",
)
async def update_group(
    ctx: Ctx, principal: SuiteWrite, groupId: UUID, body: s.GroupUpdate
) -> s.GroupEnvelope:
    view = await service.update_group(ctx, principal, str(groupId), body.changes())
    return s.GroupEnvelope(group=s.group_detail(view))


@router.delete(
    "/{groupId}",
    response_model=s.Deleted,
    responses=errors(404, 409),
    operation_id="delete-a-test-group",
    summary="Delete a test group",
    description="The default group cannot be deleted (409). The group's tests stay in the project.",
)
async def delete_group(ctx: Ctx, principal: SuiteWrite, groupId: UUID) -> s.Deleted:
    return s.Deleted(id=await service.delete_group(ctx, principal, str(groupId)))


@router.post(
    "/{groupId}/tests",
    status_code=201,
    response_model=s.MembershipAdded,
    responses={**errors(404), **_ALREADY_MEMBER},
    operation_id="add-a-test-to-a-group",
    summary="Add a test to a group",
    description="201 when the test became a member, 200 with `added: false` when it already "
    "was. The test must belong to the group's project (400).",
)
async def add_test(
    ctx: Ctx, principal: SuiteWrite, groupId: UUID, body: s.MembershipCreate, response: Response
) -> s.MembershipAdded:
    added = await service.add_test_to_group(ctx, principal, str(groupId), str(body.testId))
    if not added:
        response.status_code = 200
    return s.MembershipAdded(groupId=str(groupId), testId=str(body.testId), added=added)


@router.delete(
    "/{groupId}/tests/{testId}",
    response_model=s.MembershipRemoved,
    responses=errors(404),
    operation_id="remove-a-test-from-a-group",
    summary="Remove a test from a group",
    description="Idempotent: `removed` is false when the test was not a member. Clears the "
    "group's `prepTestId` if it named the test.",
)
async def remove_test(
    ctx: Ctx, principal: SuiteWrite, groupId: UUID, testId: UUID
) -> s.MembershipRemoved:
    removed = await service.remove_test_from_group(ctx, principal, str(groupId), str(testId))
    return s.MembershipRemoved(groupId=str(groupId), testId=str(testId), removed=removed)
