"""The regression suite: categories, regression tests, their expected outputs and variants.

A regression test runs ``command`` (a template with ``{program}``, ``{input}``,
``{output_dir}`` and ``{sample_name}``) on a sample and compares each expected output
with its baseline (``expected_hash``) or one of the output's accepted variants.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.errors import Conflict, NotFound, OutputNotFound, Unprocessable
from runplane.domain.permissions import Action
from runplane.domain.types import Principal
from runplane.services.context import Context
from runplane.services.policy import ensure_allowed
from runplane.services.samples import StoredFile, check_filename, stored_file
from runplane.store import projects as project_store
from runplane.store import suite as store
from runplane.store.database import unit_of_work
from runplane.store.models import (
    Category,
    OutputVariant,
    RegressionOutput,
    RegressionTest,
    utcnow,
)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class CategoryNotFound(NotFound):
    resource = "category"


class RegressionTestNotFound(NotFound):
    resource = "regression_test"


class VariantNotFound(NotFound):
    resource = "variant"


class BaselineNotFound(NotFound):
    resource = "baseline"

    def __init__(self, output_id: int) -> None:
        super().__init__(output_id, f"Output {output_id} has no baseline yet.")


@dataclass(slots=True)
class OutputView:
    output: RegressionOutput
    variants: list[OutputVariant] = field(default_factory=list)


@dataclass(slots=True)
class TestView:
    test: RegressionTest
    sample_name: str | None
    categories: list[str]
    outputs: list[OutputView]


@dataclass(frozen=True, slots=True)
class OutputSpec:
    filename: str
    expected_hash: str | None = None
    ignore: bool = False


@dataclass(slots=True)
class TestSpec:
    project_id: int
    sample_id: int
    command: str
    input_type: str = "file"
    output_type: str = "file"
    expected_rc: int = 0
    description: str | None = None
    categories: list[str] = field(default_factory=list)
    active: bool = False
    timeout_seconds: int | None = None
    outputs: list[OutputSpec] = field(default_factory=list)


# ---- helpers ----------------------------------------------------------------------------


def _normalize_hash(value: str) -> str:
    value = value.lower()
    if not _SHA256_RE.match(value):
        raise Unprocessable("Not a sha256.", value=value)
    return value


async def _check_blobs(ctx: Context, hashes: Sequence[str]) -> None:
    """422 unless every hash names a stored blob."""
    unknown = sorted({h for h in hashes if not await ctx.blobs.exists(h)})
    if unknown:
        raise Unprocessable(
            "No stored file has the sha256 " + ", ".join(unknown) + ".", unknown_hashes=unknown
        )


async def _category_ids(session: AsyncSession, names: Sequence[str]) -> list[int]:
    """The ids of the named categories; 422 naming every unknown one."""
    found = await store.categories_by_names(session, names)
    unknown = sorted(set(names) - {c.name for c in found})
    if unknown:
        raise Unprocessable(
            "Unknown categories: " + ", ".join(unknown) + ".", unknown_categories=unknown
        )
    return [c.id for c in found]


async def _check_sample(session: AsyncSession, sample_id: int) -> None:
    if await store.get_sample(session, sample_id) is None:
        raise Unprocessable(f"Sample {sample_id} does not exist.", sample_id=sample_id)


async def _test_views(session: AsyncSession, tests: Sequence[RegressionTest]) -> list[TestView]:
    ids = [t.id for t in tests]
    names = await store.sample_names(session, {t.sample_id for t in tests})
    categories = await store.categories_of_tests(session, ids)
    outputs = await store.outputs_of_tests(session, ids)
    variants = await store.variants_of_outputs(
        session, [o.id for rows in outputs.values() for o in rows]
    )
    return [
        TestView(
            test=t,
            sample_name=names.get(t.sample_id),
            categories=categories.get(t.id, []),
            outputs=[OutputView(o, variants.get(o.id, [])) for o in outputs.get(t.id, [])],
        )
        for t in tests
    ]


async def _test(session: AsyncSession, test_id: int) -> RegressionTest:
    test = await store.get_test(session, test_id)
    if test is None:
        raise RegressionTestNotFound(test_id)
    return test


async def _output(session: AsyncSession, test_id: int, output_id: int) -> RegressionOutput:
    await _test(session, test_id)
    output = await store.get_output(session, test_id, output_id)
    if output is None:
        raise OutputNotFound(output_id)
    return output


async def _output_view(session: AsyncSession, output: RegressionOutput) -> OutputView:
    variants = await store.variants_of_outputs(session, [output.id])
    return OutputView(output, variants.get(output.id, []))


async def _touch(session: AsyncSession, test_id: int) -> None:
    test = await store.get_test(session, test_id)
    if test is not None:
        test.updated_at = utcnow()


# ---- categories -------------------------------------------------------------------------


async def list_categories(
    ctx: Context, *, limit: int, offset: int
) -> tuple[list[tuple[Category, int]], int]:
    """A page of categories by name, each with its number of tests."""
    async with unit_of_work(ctx.reads) as session:
        rows, total = await store.list_categories(session, limit=limit, offset=offset)
        counts = await store.category_test_counts(session, [c.id for c in rows])
    return [(c, counts.get(c.id, 0)) for c in rows], total


async def create_category(
    ctx: Context, actor: Principal | None, name: str, description: str | None
) -> Category:
    ensure_allowed(actor, Action.EDIT_SUITE)
    duplicate = Conflict(f"A category named {name!r} already exists.")
    try:
        async with unit_of_work(ctx.sessions) as session:
            if await store.get_category_by_name(session, name):
                raise duplicate
            return await store.add_category(session, Category(name=name, description=description))
    except IntegrityError:
        raise duplicate from None


async def delete_category(ctx: Context, actor: Principal | None, category_id: int) -> None:
    """Delete a category no test carries (409 otherwise)."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        category = await store.get_category(session, category_id)
        if category is None:
            raise CategoryNotFound(category_id)
        used = (await store.category_test_counts(session, [category_id])).get(category_id, 0)
        if used:
            raise Conflict(
                f"Category {category.name!r} is used by {used} regression test(s).",
                test_count=used,
            )
        await store.delete_category(session, category)


# ---- regression tests -------------------------------------------------------------------


async def list_tests(
    ctx: Context, flt: store.TestFilter, *, limit: int, offset: int
) -> tuple[list[TestView], int]:
    async with unit_of_work(ctx.reads) as session:
        rows, total = await store.list_tests(session, flt, limit=limit, offset=offset)
        return await _test_views(session, rows), total


async def get_test(ctx: Context, test_id: int) -> TestView:
    async with unit_of_work(ctx.reads) as session:
        return (await _test_views(session, [await _test(session, test_id)]))[0]


async def create_test(ctx: Context, actor: Principal | None, spec: TestSpec) -> TestView:
    """Create a test (inactive unless asked); project, sample and categories must exist
    (422), outputs need distinct file names and stored baselines (422)."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    filenames = [o.filename for o in spec.outputs]
    for name in filenames:
        check_filename(name)
    repeated = sorted({n for n in filenames if filenames.count(n) > 1})
    if repeated:
        raise Unprocessable("Output file names must be distinct.", duplicate_filenames=repeated)
    outputs = [
        OutputSpec(o.filename, o.expected_hash and _normalize_hash(o.expected_hash), o.ignore)
        for o in spec.outputs
    ]
    await _check_blobs(ctx, [o.expected_hash for o in outputs if o.expected_hash])
    async with unit_of_work(ctx.sessions) as session:
        if await project_store.get_project(session, spec.project_id) is None:
            raise Unprocessable(
                f"Project {spec.project_id} does not exist.", project_id=spec.project_id
            )
        await _check_sample(session, spec.sample_id)
        category_ids = await _category_ids(session, spec.categories)
        now = utcnow()
        test = await store.add_test(
            session,
            RegressionTest(
                project_id=spec.project_id,
                sample_id=spec.sample_id,
                command=spec.command,
                input_type=spec.input_type,
                output_type=spec.output_type,
                expected_exit_code=spec.expected_rc,
                active=spec.active,
                description=spec.description,
                timeout_seconds=spec.timeout_seconds,
                created_at=now,
                updated_at=now,
            ),
        )
        await store.set_test_categories(session, test.id, category_ids)
        for o in outputs:
            await store.add_output(
                session,
                RegressionOutput(
                    regression_test_id=test.id,
                    filename=o.filename,
                    expected_hash=o.expected_hash,
                    ignore=o.ignore,
                ),
            )
        return (await _test_views(session, [test]))[0]


#: Body field -> model attribute, for the fields PATCH may set.
_TEST_FIELDS = {
    "command": "command",
    "input_type": "input_type",
    "output_type": "output_type",
    "expected_rc": "expected_exit_code",
    "active": "active",
    "description": "description",
    "timeout_seconds": "timeout_seconds",
    "sample_id": "sample_id",
}
#: Fields that may be cleared with null; null for the others means "leave as is".
_NULLABLE = frozenset({"description", "timeout_seconds"})


async def update_test(
    ctx: Context, actor: Principal | None, test_id: int, changes: dict[str, Any]
) -> TestView:
    """Write the fields present; ``categories`` replaces the test's categories."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        test = await _test(session, test_id)
        if changes.get("sample_id") is not None and changes["sample_id"] != test.sample_id:
            await _check_sample(session, changes["sample_id"])
        if changes.get("categories") is not None:
            ids = await _category_ids(session, changes["categories"])
            await store.set_test_categories(session, test.id, ids)
        for key, attr in _TEST_FIELDS.items():
            if key in changes and (changes[key] is not None or key in _NULLABLE):
                setattr(test, attr, changes[key])
        test.updated_at = utcnow()
        await session.flush()
        return (await _test_views(session, [test]))[0]


async def delete_test(ctx: Context, actor: Principal | None, test_id: int) -> None:
    """Delete a test that never ran (409 otherwise: retire it with active=false)."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        test = await _test(session, test_id)
        results = await store.count_results_of_test(session, test_id)
        if results:
            raise Conflict(
                f"Regression test {test_id} has {results} run result(s); "
                "set active=false to retire it instead.",
                result_count=results,
            )
        await store.delete_test(session, test)


# ---- outputs ----------------------------------------------------------------------------


async def add_output(
    ctx: Context, actor: Principal | None, test_id: int, spec: OutputSpec
) -> OutputView:
    ensure_allowed(actor, Action.EDIT_SUITE)
    check_filename(spec.filename)
    expected = _normalize_hash(spec.expected_hash) if spec.expected_hash else None
    duplicate = Conflict(f"Regression test {test_id} already has an output {spec.filename!r}.")
    try:
        async with unit_of_work(ctx.sessions) as session:
            await _test(session, test_id)
            if await store.get_output_by_filename(session, test_id, spec.filename):
                raise duplicate
            if expected:
                await _check_blobs(ctx, [expected])
            output = await store.add_output(
                session,
                RegressionOutput(
                    regression_test_id=test_id,
                    filename=spec.filename,
                    expected_hash=expected,
                    ignore=spec.ignore,
                ),
            )
            await _touch(session, test_id)
            return OutputView(output)
    except IntegrityError:
        raise duplicate from None


async def update_output(
    ctx: Context, actor: Principal | None, test_id: int, output_id: int, changes: dict[str, Any]
) -> OutputView:
    """``filename``/``ignore`` when not null; ``expected_hash`` null clears the baseline."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    if changes.get("filename") is not None:
        check_filename(changes["filename"])
    if changes.get("expected_hash") is not None:
        changes["expected_hash"] = _normalize_hash(changes["expected_hash"])
    try:
        async with unit_of_work(ctx.sessions) as session:
            output = await _output(session, test_id, output_id)
            name = changes.get("filename")
            if name is not None and name != output.filename:
                if await store.get_output_by_filename(session, test_id, name):
                    raise Conflict(f"Regression test {test_id} already has an output {name!r}.")
                output.filename = name
            if "expected_hash" in changes:
                if changes["expected_hash"] is not None:
                    await _check_blobs(ctx, [changes["expected_hash"]])
                output.expected_hash = changes["expected_hash"]
            if changes.get("ignore") is not None:
                output.ignore = changes["ignore"]
            await session.flush()
            await _touch(session, test_id)
            return await _output_view(session, output)
    except IntegrityError:
        raise Conflict("Another output of this test has that file name.") from None


async def delete_output(
    ctx: Context, actor: Principal | None, test_id: int, output_id: int
) -> None:
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        output = await _output(session, test_id, output_id)
        await store.delete_output(session, output)
        await _touch(session, test_id)


async def upload_baseline(
    ctx: Context,
    actor: Principal | None,
    test_id: int,
    output_id: int,
    chunks: AsyncIterator[bytes],
) -> OutputView:
    """Store the uploaded bytes and make them the output's baseline."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.reads) as session:
        await _output(session, test_id, output_id)
    blob = await ctx.blobs.put_stream(chunks, max_bytes=ctx.settings.max_sample_bytes)
    async with unit_of_work(ctx.sessions) as session:
        output = await _output(session, test_id, output_id)
        output.expected_hash = blob.sha256
        await session.flush()
        await _touch(session, test_id)
        return await _output_view(session, output)


async def baseline_file(ctx: Context, test_id: int, output_id: int) -> StoredFile:
    async with unit_of_work(ctx.reads) as session:
        output = await _output(session, test_id, output_id)
    if output.expected_hash is None:
        raise BaselineNotFound(output_id)
    return await stored_file(ctx, output.expected_hash, output.filename)


# ---- variants ---------------------------------------------------------------------------


async def list_variants(
    ctx: Context, test_id: int, output_id: int, *, limit: int, offset: int
) -> tuple[list[OutputVariant], int]:
    async with unit_of_work(ctx.reads) as session:
        output = await _output(session, test_id, output_id)
        rows = (await store.variants_of_outputs(session, [output.id])).get(output.id, [])
    return rows[offset : offset + limit], len(rows)


async def add_variant(
    ctx: Context, actor: Principal | None, test_id: int, output_id: int, sha256: str
) -> OutputVariant:
    """Accept another stored file's hash as a correct output (422 unless it is stored)."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    sha256 = _normalize_hash(sha256)
    duplicate = Conflict(f"Output {output_id} already accepts {sha256}.")
    try:
        async with unit_of_work(ctx.sessions) as session:
            output = await _output(session, test_id, output_id)
            if await store.get_variant_by_sha(session, output.id, sha256):
                raise duplicate
            await _check_blobs(ctx, [sha256])
            variant = await store.add_variant(
                session, OutputVariant(output_id=output.id, sha256=sha256)
            )
            await _touch(session, test_id)
            return variant
    except IntegrityError:
        raise duplicate from None


async def delete_variant(
    ctx: Context, actor: Principal | None, test_id: int, output_id: int, variant_id: int
) -> None:
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        output = await _output(session, test_id, output_id)
        variant = await store.get_variant(session, output.id, variant_id)
        if variant is None:
            raise VariantNotFound(variant_id)
        await store.delete_variant(session, variant)
        await _touch(session, test_id)


async def variant_file(ctx: Context, test_id: int, output_id: int, variant_id: int) -> StoredFile:
    async with unit_of_work(ctx.reads) as session:
        output = await _output(session, test_id, output_id)
        variant = await store.get_variant(session, output.id, variant_id)
    if variant is None:
        raise VariantNotFound(variant_id)
    return await stored_file(ctx, variant.sha256, output.filename)
