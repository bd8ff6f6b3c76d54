"""Request and response shapes of the Tester Army projects, tests and groups, and ORM → wire.

Attribute names are the camelCase wire names, so a validation message names the field
the client sent and no alias layer can let a snake_case spelling slip through.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from runplane.api.tester_army.formats import iso_ms
from runplane.services import web_suite as service
from runplane.store.models import TestGroup, WebProject, WebTest

Name = Annotated[str, Field(min_length=1, max_length=255)]
Url = Annotated[str, Field(min_length=1, max_length=500)]
ProjectDescription = Annotated[str, Field(max_length=2000)]
TestTitle = Annotated[str, Field(min_length=1, max_length=500)]
StepTitle = Annotated[str, Field(min_length=1, max_length=2000)]
#: A project id or shortId (a path or body reference; unknown ones are a 404).
ProjectRef = Annotated[str, Field(min_length=1, max_length=64)]
ProjectType = Literal["web", "mobile"]
RunMode = Literal["concurrent", "sequential"]


def _absent_if_none(value: object) -> bool:
    return value is None


def _reject_null(value: Any) -> Any:
    """For PATCH fields that may be left out but not set to null (the column needs a value)."""
    if value is None:
        raise PydanticCustomError("not_null", "May not be null")
    return value


#: Omitted is fine, null is not; ``SkipJsonSchema[None]`` keeps null out of the document.
_NotNull = BeforeValidator(_reject_null)


class Body(BaseModel):
    """A request body: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


# ---- test steps -----------------------------------------------------------------------


class ActStep(Body):
    type: Literal["act"]
    title: StepTitle


class AssertStep(Body):
    type: Literal["assert"]
    title: StepTitle


class LoginStep(Body):
    type: Literal["login"]
    # Optional fields are left out of the stored and returned step when not given.
    title: StepTitle | None = Field(default=None, exclude_if=_absent_if_none)
    credentialId: UUID | None = Field(default=None, exclude_if=_absent_if_none)
    temporaryEmail: StrictBool | None = Field(default=None, exclude_if=_absent_if_none)


class FilesStep(Body):
    type: Literal["files"]
    title: StepTitle | None = Field(default=None, exclude_if=_absent_if_none)
    fileIds: list[UUID]


class ScreenshotStep(Body):
    type: Literal["screenshot"]
    title: StepTitle | None = Field(default=None, exclude_if=_absent_if_none)


class JavascriptStep(Body):
    type: Literal["javascript"]
    title: StepTitle | None = Field(default=None, exclude_if=_absent_if_none)
    code: str = Field(
        min_length=1,
        max_length=100_000,
        description="JavaScript run in the page (an expression, or an awaited function body "
        "when it uses `return`/`await`). It fails when it throws, returns "
        "`{success: false, reason}` or another falsy value; it passes otherwise.",
    )


TestStep = Annotated[
    ActStep | AssertStep | LoginStep | FilesStep | ScreenshotStep | JavascriptStep,
    Field(discriminator="type"),
]
Steps = Annotated[list[TestStep], Field(min_length=1, max_length=service.MAX_STEPS)]


def steps_json(steps: list[TestStep]) -> list[dict[str, Any]]:
    """Validated steps as the JSON the test stores."""
    return [step.model_dump(mode="json") for step in steps]


# ---- requests -------------------------------------------------------------------------


class ProjectCreate(Body):
    name: Name
    url: Url
    projectType: ProjectType = "web"
    description: ProjectDescription | None = None


class ProjectUpdate(Body):
    name: Annotated[Name | SkipJsonSchema[None], _NotNull] = None
    url: Annotated[Url | SkipJsonSchema[None], _NotNull] = None
    description: ProjectDescription | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class TestCreate(Body):
    __test__ = False  # not a pytest class

    title: TestTitle
    steps: Steps
    projectId: ProjectRef
    description: str | None = None
    groupId: UUID | None = None
    platform: ProjectType = "web"
    enabled: StrictBool = True


class TestUpdate(Body):
    __test__ = False

    title: Annotated[TestTitle | SkipJsonSchema[None], _NotNull] = None
    description: str | None = None
    steps: Annotated[Steps | SkipJsonSchema[None], _NotNull] = None
    enabled: Annotated[StrictBool | SkipJsonSchema[None], _NotNull] = None

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.model_fields_set:
            out[key] = getattr(self, key)
        if self.steps is not None:
            out["steps"] = steps_json(self.steps)
        return out


class GroupCreate(Body):
    projectId: ProjectRef
    name: Name
    runMode: RunMode = "concurrent"
    prepTestId: UUID | None = None


class GroupUpdate(Body):
    name: Annotated[Name | SkipJsonSchema[None], _NotNull] = None
    runMode: Annotated[RunMode | SkipJsonSchema[None], _NotNull] = None
    prepTestId: UUID | None = None

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "name" in self.model_fields_set:
            out["name"] = self.name
        if "runMode" in self.model_fields_set:
            out["run_mode"] = self.runMode
        if "prepTestId" in self.model_fields_set:
            out["prep_test_id"] = str(self.prepTestId) if self.prepTestId else None
        return out


class MembershipCreate(Body):
    testId: UUID


# ---- responses ------------------------------------------------------------------------


class ProjectEnvironment(BaseModel):
    id: str
    name: str
    slug: str
    kind: Literal["production", "pr_preview", "static"]
    url: str | None


class ProjectSummary(BaseModel):
    id: str
    shortId: str
    name: str
    url: str | None
    projectType: ProjectType
    environments: list[ProjectEnvironment]


class ProjectList(BaseModel):
    projects: list[ProjectSummary]


class ProjectDetail(BaseModel):
    id: str
    shortId: str | None
    name: str
    url: str | None
    projectType: ProjectType
    description: str | None
    environments: list[ProjectEnvironment]
    createdAt: str
    updatedAt: str


class ProjectEnvelope(BaseModel):
    project: ProjectDetail


class Deleted(BaseModel):
    deleted: Literal[True] = True
    id: str


class TestDefinition(BaseModel):
    __test__ = False

    id: str
    title: str
    steps: list[TestStep]
    description: str | None
    enabled: bool
    platform: ProjectType
    projectId: str
    projectUrl: str | None
    projectName: str
    createdAt: str
    updatedAt: str


class TestGroupRef(BaseModel):
    __test__ = False

    id: str
    name: str
    isDefault: bool


class TestDetail(TestDefinition):
    groups: list[TestGroupRef]


class TestEnvelope(BaseModel):
    __test__ = False

    test: TestDefinition


class TestList(BaseModel):
    __test__ = False

    projectUrl: str | None
    projectName: str
    tests: list[TestDefinition]
    nextCursor: str | None


class GroupSummary(BaseModel):
    id: str
    name: str
    isDefault: bool
    testCount: int
    prepTestId: str | None


class GroupList(BaseModel):
    groups: list[GroupSummary]


class GroupDetail(BaseModel):
    id: str
    name: str
    isDefault: bool
    runMode: RunMode
    prepTestId: str | None
    projectId: str
    createdAt: str
    updatedAt: str
    testIds: list[str] = Field(description="Member test ids in the order they run (runplane).")


class GroupEnvelope(BaseModel):
    group: GroupDetail


class MembershipAdded(BaseModel):
    groupId: str
    testId: str
    added: bool = Field(description="False when the test already was a member (status 200).")


class MembershipRemoved(BaseModel):
    groupId: str
    testId: str
    removed: bool


# ---- ORM → wire -----------------------------------------------------------------------


def _iso(value: Any) -> str:
    # created_at/updated_at are never null; iso_ms only returns None for None.
    return iso_ms(value) or ""


def environments(project: WebProject) -> list[ProjectEnvironment]:
    """One static environment at the project's URL (named by the project id), if it has one.

    runplane has no preview deployments; this keeps ``projectEnvironmentId`` meaningful.
    """
    if not project.url:
        return []
    return [
        ProjectEnvironment(
            id=project.id, name="Production", slug="production", kind="static", url=project.url
        )
    ]


def project_summary(project: WebProject) -> ProjectSummary:
    return ProjectSummary(
        id=project.id,
        shortId=project.short_id,
        name=project.name,
        url=project.url,
        projectType="mobile" if project.project_type == "mobile" else "web",
        environments=environments(project),
    )


def project_detail(project: WebProject) -> ProjectDetail:
    summary = project_summary(project)
    return ProjectDetail(
        **summary.model_dump(exclude={"environments"}),
        environments=summary.environments,
        description=project.description,
        createdAt=_iso(project.created_at),
        updatedAt=_iso(project.updated_at),
    )


def _definition_fields(test: WebTest, project: WebProject) -> dict[str, Any]:
    return {
        "id": test.id,
        "title": test.title,
        "steps": test.steps,
        "description": test.description,
        "enabled": test.enabled,
        "platform": "mobile" if test.platform == "mobile" else "web",
        "projectId": project.id,
        "projectUrl": project.url,
        "projectName": project.name,
        "createdAt": _iso(test.created_at),
        "updatedAt": _iso(test.updated_at),
    }


def test_definition(test: WebTest, project: WebProject) -> TestDefinition:
    return TestDefinition.model_validate(_definition_fields(test, project))


def test_detail(view: service.TestView) -> TestDetail:
    groups = [TestGroupRef(id=g.id, name=g.name, isDefault=g.is_default) for g in view.groups]
    return TestDetail.model_validate(
        {**_definition_fields(view.test, view.project), "groups": groups}
    )


def group_summary(summary: service.GroupSummary) -> GroupSummary:
    group = summary.group
    return GroupSummary(
        id=group.id,
        name=group.name,
        isDefault=group.is_default,
        testCount=summary.test_count,
        prepTestId=group.prep_test_id,
    )


def _run_mode(group: TestGroup) -> RunMode:
    return "sequential" if group.run_mode == "sequential" else "concurrent"


def group_detail(view: service.GroupView) -> GroupDetail:
    group = view.group
    return GroupDetail(
        id=group.id,
        name=group.name,
        isDefault=group.is_default,
        runMode=_run_mode(group),
        prepTestId=group.prep_test_id,
        projectId=group.project_id,
        createdAt=_iso(group.created_at),
        updatedAt=_iso(group.updated_at),
        testIds=view.test_ids,
    )
