"""Request and response shapes of the regression suite (samples, categories, tests, outputs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from runplane.api.sample_platform.schemas import ApiDateTime, Strict
from runplane.services.samples import TAG_PATTERN, SampleView
from runplane.services.suite import OutputView, TestView
from runplane.store.models import Category, OutputVariant, SampleExtraFile

INT_MAX = 2147483647
#: One file name: no path separators, no control characters.
FILENAME_PATTERN = r"^[^/\\\x00-\x1f\x7f]+$"
SHA256_PATTERN = r"^[a-fA-F0-9]{64}$"
CATEGORY_PATTERN = r"^[A-Za-z0-9_.+-]+( [A-Za-z0-9_.+-]+)*$"

FileName = Annotated[str, Field(min_length=1, max_length=255, pattern=FILENAME_PATTERN)]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=TAG_PATTERN)]
CategoryName = Annotated[str, Field(min_length=1, max_length=64, pattern=CATEGORY_PATTERN)]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]
Id = Annotated[int, Field(ge=1, le=INT_MAX)]
InputType = Literal["file", "stdin"]
OutputType = Literal["file", "stdout", "null"]


# ---- samples ----------------------------------------------------------------------------


class SampleUpdate(Strict):
    name: FileName | None = Field(default=None, description="Also sets the extension.")
    tags: list[Tag] | None = Field(default=None, max_length=50, description="Replaces the tags.")
    notes: str | None = Field(default=None, max_length=1000)


class ExtraFileOut(BaseModel):
    extra_id: int
    name: str
    sha256: str
    size_bytes: int


class SampleOut(BaseModel):
    sample_id: int
    sha256: str
    name: str
    extension: str
    size_bytes: int
    tags: list[str]
    notes: str | None
    created_at: ApiDateTime
    regression_test_count: int
    active: bool = Field(description="Used by at least one active regression test.")
    extra_files: list[ExtraFileOut]


# ---- categories -------------------------------------------------------------------------


class CategoryCreate(Strict):
    name: CategoryName
    description: str | None = Field(default=None, max_length=1024)


class CategoryOut(BaseModel):
    id: int
    name: str
    description: str | None
    test_count: int


# ---- regression tests -------------------------------------------------------------------


class OutputCreate(Strict):
    filename: FileName = Field(description="File name in {output_dir}; `stdout` for stdout.")
    expected_hash: Sha256 | None = Field(
        default=None, description="sha256 of a stored file: the baseline."
    )
    ignore: bool = False


class OutputUpdate(Strict):
    filename: FileName | None = None
    expected_hash: Sha256 | None = Field(default=None, description="null clears the baseline.")
    ignore: bool | None = None


class RegressionTestCreate(Strict):
    project_id: Id
    sample_id: Id
    command: str = Field(
        min_length=1,
        max_length=500,
        description="Template: {program}, {input}, {output_dir}, {sample_name}.",
    )
    input_type: InputType = "file"
    output_type: OutputType = "file"
    expected_rc: int = Field(default=0, ge=0, le=255)
    description: str | None = Field(default=None, max_length=1024)
    categories: list[CategoryName] = Field(default_factory=list, max_length=50)
    active: bool = False
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    outputs: list[OutputCreate] | None = Field(default=None, max_length=50)


class RegressionTestUpdate(Strict):
    sample_id: Id | None = None
    command: str | None = Field(default=None, min_length=1, max_length=500)
    input_type: InputType | None = None
    output_type: OutputType | None = None
    expected_rc: int | None = Field(default=None, ge=0, le=255)
    description: str | None = Field(default=None, max_length=1024)
    categories: list[CategoryName] | None = Field(
        default=None, max_length=50, description="Replaces the categories."
    )
    active: bool | None = None
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)


class VariantCreate(Strict):
    sha256: Sha256 = Field(description="sha256 of a stored file (e.g. a run's actual output).")


class VariantOut(BaseModel):
    variant_id: int
    sha256: str


class OutputOut(BaseModel):
    output_id: int
    filename: str
    expected_hash: str | None
    ignore: bool
    variants: list[VariantOut]


class RegressionTestOut(BaseModel):
    regression_test_id: int
    project_id: int
    sample_id: int
    sample_name: str | None
    command: str
    input_type: str
    output_type: str
    expected_rc: int
    active: bool
    categories: list[str]
    description: str | None
    timeout_seconds: int | None
    outputs: list[OutputOut]
    created_at: ApiDateTime
    updated_at: ApiDateTime


# ---- mapping ----------------------------------------------------------------------------


def extra_file_out(row: SampleExtraFile) -> ExtraFileOut:
    return ExtraFileOut(
        extra_id=row.id, name=row.name, sha256=row.sha256, size_bytes=row.size_bytes
    )


def sample_out(view: SampleView) -> SampleOut:
    s = view.sample
    return SampleOut(
        sample_id=s.id,
        sha256=s.sha256,
        name=s.name,
        extension=s.extension,
        size_bytes=s.size_bytes,
        tags=list(s.tags or []),
        notes=s.notes,
        created_at=s.created_at,
        regression_test_count=view.regression_test_count,
        active=view.active,
        extra_files=[extra_file_out(e) for e in view.extra_files],
    )


def category_out(row: Category, test_count: int) -> CategoryOut:
    return CategoryOut(id=row.id, name=row.name, description=row.description, test_count=test_count)


def variant_out(row: OutputVariant) -> VariantOut:
    return VariantOut(variant_id=row.id, sha256=row.sha256)


def output_out(view: OutputView) -> OutputOut:
    o = view.output
    return OutputOut(
        output_id=o.id,
        filename=o.filename,
        expected_hash=o.expected_hash,
        ignore=o.ignore,
        variants=[variant_out(v) for v in view.variants],
    )


def regression_test_out(view: TestView) -> RegressionTestOut:
    t = view.test
    return RegressionTestOut(
        regression_test_id=t.id,
        project_id=t.project_id,
        sample_id=t.sample_id,
        sample_name=view.sample_name,
        command=t.command,
        input_type=t.input_type,
        output_type=t.output_type,
        expected_rc=t.expected_exit_code,
        active=t.active,
        categories=view.categories,
        description=t.description,
        timeout_seconds=t.timeout_seconds,
        outputs=[output_out(o) for o in view.outputs],
        created_at=t.created_at,
        updated_at=t.updated_at,
    )
