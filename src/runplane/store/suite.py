"""Queries on the regression suite: samples, extra files, categories, tests, outputs, variants."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, cast, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.store.models import (
    Category,
    OutputVariant,
    RegressionOutput,
    RegressionResult,
    RegressionTest,
    RegressionTestCategory,
    Sample,
    SampleExtraFile,
)


def _like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards escaped (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ---- samples ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleFilter:
    status: str | None = None  # active | inactive
    name: str | None = None
    tag: str | None = None
    sha256: str | None = None
    extension: str | None = None


def _used_by_active_test() -> ColumnElement[bool]:
    return exists().where(RegressionTest.sample_id == Sample.id, RegressionTest.active.is_(True))


async def get_sample(session: AsyncSession, sample_id: int) -> Sample | None:
    """The sample with this id."""
    return await session.get(Sample, sample_id)


async def get_sample_by_sha(session: AsyncSession, sha256: str) -> Sample | None:
    """The sample stored with these bytes."""
    return await session.scalar(select(Sample).where(Sample.sha256 == sha256))


async def add_sample(session: AsyncSession, sample: Sample) -> Sample:
    """Insert a sample."""
    session.add(sample)
    await session.flush()
    return sample


def has_tag(tag: str) -> ColumnElement[bool]:
    """Samples carrying ``tag`` (case-insensitive), on SQLite and PostgreSQL alike."""
    # Tags hold no quote or backslash, so ``"tag"`` appears verbatim in the JSON text.
    needle = '%"' + tag.lower().replace("%", "\\%").replace("_", "\\_") + '"%'
    return func.lower(cast(Sample.tags, String)).like(needle, escape="\\")


async def list_samples(
    session: AsyncSession, flt: SampleFilter, *, limit: int, offset: int
) -> tuple[Sequence[Sample], int]:
    """A page of samples (by id) matching the filter, and how many match."""
    conditions: list[ColumnElement[bool]] = []
    if flt.status == "active":
        conditions.append(_used_by_active_test())
    elif flt.status == "inactive":
        conditions.append(~_used_by_active_test())
    if flt.name:
        conditions.append(Sample.name.ilike(_like_pattern(flt.name), escape="\\"))
    if flt.tag:
        conditions.append(has_tag(flt.tag))
    if flt.sha256:
        conditions.append(Sample.sha256 == flt.sha256.lower())
    if flt.extension is not None:
        conditions.append(Sample.extension == flt.extension.lower())
    total = await session.scalar(select(func.count(Sample.id)).where(*conditions)) or 0
    rows = await session.scalars(
        select(Sample).where(*conditions).order_by(Sample.id).limit(limit).offset(offset)
    )
    return rows.all(), total


async def sample_usage(
    session: AsyncSession, sample_ids: Collection[int]
) -> dict[int, tuple[int, int]]:
    """Per sample id: (regression tests using it, of which active)."""
    if not sample_ids:
        return {}
    rows = await session.execute(
        select(RegressionTest.sample_id, RegressionTest.active, func.count(RegressionTest.id))
        .where(RegressionTest.sample_id.in_(sample_ids))
        .group_by(RegressionTest.sample_id, RegressionTest.active)
    )
    usage: dict[int, tuple[int, int]] = {}
    for sample_id, is_active, count in rows.all():
        total, active_count = usage.get(sample_id, (0, 0))
        usage[sample_id] = (total + count, active_count + (count if is_active else 0))
    return usage


async def count_tests_using_sample(session: AsyncSession, sample_id: int) -> int:
    """How many regression tests run on the sample."""
    query = select(func.count(RegressionTest.id)).where(RegressionTest.sample_id == sample_id)
    return await session.scalar(query) or 0


async def delete_sample(session: AsyncSession, sample: Sample) -> None:
    """Delete a sample and its extra-file rows (blobs stay)."""
    await session.execute(delete(SampleExtraFile).where(SampleExtraFile.sample_id == sample.id))
    await session.delete(sample)
    await session.flush()


# ---- extra files --------------------------------------------------------------------------


async def extra_files_of(
    session: AsyncSession, sample_ids: Collection[int]
) -> dict[int, list[SampleExtraFile]]:
    """Per sample id, its extra files by id."""
    if not sample_ids:
        return {}
    rows = await session.scalars(
        select(SampleExtraFile)
        .where(SampleExtraFile.sample_id.in_(sample_ids))
        .order_by(SampleExtraFile.id)
    )
    out: dict[int, list[SampleExtraFile]] = {}
    for row in rows.all():
        out.setdefault(row.sample_id, []).append(row)
    return out


async def get_extra_file(
    session: AsyncSession, sample_id: int, extra_id: int
) -> SampleExtraFile | None:
    """The extra file with this id, if it belongs to the sample."""
    return await session.scalar(
        select(SampleExtraFile).where(
            SampleExtraFile.id == extra_id, SampleExtraFile.sample_id == sample_id
        )
    )


async def get_extra_file_by_name(
    session: AsyncSession, sample_id: int, name: str
) -> SampleExtraFile | None:
    """The sample's extra file with this name."""
    return await session.scalar(
        select(SampleExtraFile).where(
            SampleExtraFile.sample_id == sample_id, SampleExtraFile.name == name
        )
    )


async def add_extra_file(session: AsyncSession, extra: SampleExtraFile) -> SampleExtraFile:
    """Insert an extra file."""
    session.add(extra)
    await session.flush()
    return extra


async def delete_extra_file(session: AsyncSession, extra: SampleExtraFile) -> None:
    """Delete an extra-file row (the blob stays)."""
    await session.delete(extra)
    await session.flush()


# ---- categories -------------------------------------------------------------------------


async def list_categories(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[Category], int]:
    """A page of categories by name, and how many there are."""
    total = await session.scalar(select(func.count(Category.id))) or 0
    rows = await session.scalars(
        select(Category).order_by(Category.name, Category.id).limit(limit).offset(offset)
    )
    return rows.all(), total


async def category_test_counts(
    session: AsyncSession, category_ids: Collection[int]
) -> dict[int, int]:
    """Per category id, how many regression tests carry it."""
    if not category_ids:
        return {}
    rows = await session.execute(
        select(RegressionTestCategory.category_id, func.count())
        .where(RegressionTestCategory.category_id.in_(category_ids))
        .group_by(RegressionTestCategory.category_id)
    )
    return {category_id: count for category_id, count in rows.all()}


async def get_category(session: AsyncSession, category_id: int) -> Category | None:
    """The category with this id."""
    return await session.get(Category, category_id)


async def get_category_by_name(session: AsyncSession, name: str) -> Category | None:
    """The category with this exact name."""
    return await session.scalar(select(Category).where(Category.name == name))


async def categories_by_names(session: AsyncSession, names: Collection[str]) -> list[Category]:
    """The categories with these names (unknown names are simply absent)."""
    if not names:
        return []
    rows = await session.scalars(select(Category).where(Category.name.in_(names)))
    return list(rows.all())


async def add_category(session: AsyncSession, category: Category) -> Category:
    """Insert a category."""
    session.add(category)
    await session.flush()
    return category


async def delete_category(session: AsyncSession, category: Category) -> None:
    """Delete a category."""
    await session.delete(category)
    await session.flush()


# ---- regression tests -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestFilter:
    project_id: int | None = None
    active: bool | None = None
    category: str | None = None
    sample_id: int | None = None


def _test_conditions(flt: TestFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.project_id is not None:
        conditions.append(RegressionTest.project_id == flt.project_id)
    if flt.active is not None:
        conditions.append(RegressionTest.active.is_(flt.active))
    if flt.sample_id is not None:
        conditions.append(RegressionTest.sample_id == flt.sample_id)
    if flt.category is not None:
        conditions.append(
            exists().where(
                RegressionTestCategory.regression_test_id == RegressionTest.id,
                RegressionTestCategory.category_id == Category.id,
                Category.name == flt.category,
            )
        )
    return conditions


async def get_test(session: AsyncSession, test_id: int) -> RegressionTest | None:
    """The regression test with this id."""
    return await session.get(RegressionTest, test_id)


async def list_tests(
    session: AsyncSession, flt: TestFilter, *, limit: int, offset: int
) -> tuple[Sequence[RegressionTest], int]:
    """A page of regression tests (by id) matching the filter, and how many match."""
    conditions = _test_conditions(flt)
    total = await session.scalar(select(func.count(RegressionTest.id)).where(*conditions)) or 0
    rows = await session.scalars(
        select(RegressionTest)
        .where(*conditions)
        .order_by(RegressionTest.id)
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total


async def add_test(session: AsyncSession, test: RegressionTest) -> RegressionTest:
    """Insert a regression test."""
    session.add(test)
    await session.flush()
    return test


async def delete_test(session: AsyncSession, test: RegressionTest) -> None:
    """Delete a regression test with its categories, outputs and variants."""
    output_ids = select(RegressionOutput.id).where(RegressionOutput.regression_test_id == test.id)
    await session.execute(delete(OutputVariant).where(OutputVariant.output_id.in_(output_ids)))
    await session.execute(
        delete(RegressionOutput).where(RegressionOutput.regression_test_id == test.id)
    )
    await session.execute(
        delete(RegressionTestCategory).where(RegressionTestCategory.regression_test_id == test.id)
    )
    await session.delete(test)
    await session.flush()


async def count_results_of_test(session: AsyncSession, test_id: int) -> int:
    """How many run results refer to the regression test."""
    query = select(func.count(RegressionResult.id)).where(
        RegressionResult.regression_test_id == test_id
    )
    return await session.scalar(query) or 0


async def set_test_categories(
    session: AsyncSession, test_id: int, category_ids: Collection[int]
) -> None:
    """Replace the test's categories."""
    await session.execute(
        delete(RegressionTestCategory).where(RegressionTestCategory.regression_test_id == test_id)
    )
    for category_id in sorted(set(category_ids)):
        session.add(RegressionTestCategory(regression_test_id=test_id, category_id=category_id))
    await session.flush()


async def categories_of_tests(
    session: AsyncSession, test_ids: Collection[int]
) -> dict[int, list[str]]:
    """Per test id, its category names in alphabetical order."""
    if not test_ids:
        return {}
    rows = await session.execute(
        select(RegressionTestCategory.regression_test_id, Category.name)
        .join(Category, Category.id == RegressionTestCategory.category_id)
        .where(RegressionTestCategory.regression_test_id.in_(test_ids))
        .order_by(Category.name)
    )
    out: dict[int, list[str]] = {}
    for test_id, name in rows.all():
        out.setdefault(test_id, []).append(name)
    return out


async def sample_names(session: AsyncSession, sample_ids: Collection[int]) -> dict[int, str]:
    """Per sample id, its name."""
    if not sample_ids:
        return {}
    rows = await session.execute(select(Sample.id, Sample.name).where(Sample.id.in_(sample_ids)))
    return {sample_id: name for sample_id, name in rows.all()}


# ---- outputs and variants -----------------------------------------------------------------


async def outputs_of_tests(
    session: AsyncSession, test_ids: Collection[int]
) -> dict[int, list[RegressionOutput]]:
    """Per test id, its expected outputs by id."""
    if not test_ids:
        return {}
    rows = await session.scalars(
        select(RegressionOutput)
        .where(RegressionOutput.regression_test_id.in_(test_ids))
        .order_by(RegressionOutput.id)
    )
    out: dict[int, list[RegressionOutput]] = {}
    for row in rows.all():
        out.setdefault(row.regression_test_id, []).append(row)
    return out


async def get_output(
    session: AsyncSession, test_id: int, output_id: int
) -> RegressionOutput | None:
    """The output with this id, if it belongs to the test."""
    return await session.scalar(
        select(RegressionOutput).where(
            RegressionOutput.id == output_id, RegressionOutput.regression_test_id == test_id
        )
    )


async def get_output_by_filename(
    session: AsyncSession, test_id: int, filename: str
) -> RegressionOutput | None:
    """The test's output with this file name."""
    return await session.scalar(
        select(RegressionOutput).where(
            RegressionOutput.regression_test_id == test_id, RegressionOutput.filename == filename
        )
    )


async def add_output(session: AsyncSession, output: RegressionOutput) -> RegressionOutput:
    """Insert an expected output."""
    session.add(output)
    await session.flush()
    return output


async def delete_output(session: AsyncSession, output: RegressionOutput) -> None:
    """Delete an expected output and its variants."""
    await session.execute(delete(OutputVariant).where(OutputVariant.output_id == output.id))
    await session.delete(output)
    await session.flush()


async def variants_of_outputs(
    session: AsyncSession, output_ids: Collection[int]
) -> dict[int, list[OutputVariant]]:
    """Per output id, its accepted variants by id."""
    if not output_ids:
        return {}
    rows = await session.scalars(
        select(OutputVariant)
        .where(OutputVariant.output_id.in_(output_ids))
        .order_by(OutputVariant.id)
    )
    out: dict[int, list[OutputVariant]] = {}
    for row in rows.all():
        out.setdefault(row.output_id, []).append(row)
    return out


async def get_variant(
    session: AsyncSession, output_id: int, variant_id: int
) -> OutputVariant | None:
    """The variant with this id, if it belongs to the output."""
    return await session.scalar(
        select(OutputVariant).where(
            OutputVariant.id == variant_id, OutputVariant.output_id == output_id
        )
    )


async def get_variant_by_sha(
    session: AsyncSession, output_id: int, sha256: str
) -> OutputVariant | None:
    """The output's variant with this hash."""
    return await session.scalar(
        select(OutputVariant).where(
            OutputVariant.output_id == output_id, OutputVariant.sha256 == sha256
        )
    )


async def add_variant(session: AsyncSession, variant: OutputVariant) -> OutputVariant:
    """Insert an accepted variant."""
    session.add(variant)
    await session.flush()
    return variant


async def delete_variant(session: AsyncSession, variant: OutputVariant) -> None:
    """Delete an accepted variant."""
    await session.delete(variant)
    await session.flush()
