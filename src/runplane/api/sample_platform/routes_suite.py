"""``/categories`` and ``/regression-tests``: the regression suite, its outputs and variants."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from runplane.api.sample_platform import schemas_suite as ss
from runplane.api.sample_platform.deps import (
    Ctx,
    Page,
    RunsRead,
    SuiteWrite,
    body_openapi,
    json_body,
    page_envelope,
)
from runplane.api.sample_platform.openapi import errors
from runplane.api.sample_platform.routes_samples import (
    DOWNLOAD_RESPONSES,
    OctetStreamResponse,
    file_response,
    raw_body,
    raw_body_openapi,
    with_413,
)
from runplane.api.sample_platform.schemas import PageOf
from runplane.services import suite as suite_service
from runplane.store.suite import TestFilter

router = APIRouter(tags=["regression suite"])

IdPath = Annotated[int, Path(ge=1, le=ss.INT_MAX)]
TEST = "/regression-tests/{regression_test_id}"
OUTPUT = TEST + "/outputs/{output_id}"
VARIANT = OUTPUT + "/variants/{variant_id}"


# ---- categories -------------------------------------------------------------------------


@router.get(
    "/categories",
    response_model=PageOf[ss.CategoryOut],
    responses=errors(400, 403),
    summary="List categories (by name)",
)
async def list_categories(ctx: Ctx, principal: RunsRead, page: Page) -> dict[str, Any]:
    rows, total = await suite_service.list_categories(ctx, limit=page.limit, offset=page.offset)
    return page_envelope([ss.category_out(c, n) for c, n in rows], page, total)


@router.post(
    "/categories",
    status_code=201,
    response_model=ss.CategoryOut,
    responses=errors(400, 403, 409, 415),
    summary="Create a category",
    openapi_extra=body_openapi(ss.CategoryCreate),
)
async def create_category(
    ctx: Ctx,
    principal: SuiteWrite,
    body: Annotated[ss.CategoryCreate, Depends(json_body(ss.CategoryCreate))],
) -> ss.CategoryOut:
    category = await suite_service.create_category(ctx, principal, body.name, body.description)
    return ss.category_out(category, 0)


@router.delete(
    "/categories/{category_id}",
    status_code=204,
    responses=errors(400, 403, 404, 409),
    summary="Delete a category no regression test carries",
)
async def delete_category(ctx: Ctx, principal: SuiteWrite, category_id: IdPath) -> Response:
    await suite_service.delete_category(ctx, principal, category_id)
    return Response(status_code=204)


# ---- regression tests -------------------------------------------------------------------


@router.get(
    "/regression-tests",
    response_model=PageOf[ss.RegressionTestOut],
    responses=errors(400, 403),
    summary="List regression tests",
)
async def list_regression_tests(
    ctx: Ctx,
    principal: RunsRead,
    page: Page,
    project_id: Annotated[int | None, Query(ge=1, le=ss.INT_MAX)] = None,
    active: Annotated[Literal["true", "false"] | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=64, description="A category name.")] = None,
    sample_id: Annotated[int | None, Query(ge=1, le=ss.INT_MAX)] = None,
) -> dict[str, Any]:
    flt = TestFilter(
        project_id=project_id,
        active=None if active is None else active == "true",
        category=category,
        sample_id=sample_id,
    )
    views, total = await suite_service.list_tests(ctx, flt, limit=page.limit, offset=page.offset)
    return page_envelope([ss.regression_test_out(v) for v in views], page, total)


@router.post(
    "/regression-tests",
    status_code=201,
    response_model=ss.RegressionTestOut,
    responses=errors(400, 403, 415, 422),
    summary="Create a regression test (inactive unless `active` is true)",
    description="An unknown project, sample, category or baseline hash is 422 "
    "(`details.unknown_categories`, `details.unknown_hashes`).",
    openapi_extra=body_openapi(ss.RegressionTestCreate),
)
async def create_regression_test(
    ctx: Ctx,
    principal: SuiteWrite,
    body: Annotated[ss.RegressionTestCreate, Depends(json_body(ss.RegressionTestCreate))],
) -> ss.RegressionTestOut:
    values = body.model_dump()
    outputs = [suite_service.OutputSpec(**o) for o in values.pop("outputs") or []]
    spec = suite_service.TestSpec(**values, outputs=outputs)
    return ss.regression_test_out(await suite_service.create_test(ctx, principal, spec))


@router.get(
    TEST,
    response_model=ss.RegressionTestOut,
    responses=errors(400, 403, 404),
    summary="Get a regression test with its outputs and variants",
)
async def get_regression_test(
    ctx: Ctx, principal: RunsRead, regression_test_id: IdPath
) -> ss.RegressionTestOut:
    return ss.regression_test_out(await suite_service.get_test(ctx, regression_test_id))


@router.patch(
    TEST,
    response_model=ss.RegressionTestOut,
    responses=errors(400, 403, 404, 415, 422),
    summary="Change a regression test (only the fields given)",
    openapi_extra=body_openapi(ss.RegressionTestUpdate),
)
async def update_regression_test(
    ctx: Ctx,
    principal: SuiteWrite,
    regression_test_id: IdPath,
    body: Annotated[ss.RegressionTestUpdate, Depends(json_body(ss.RegressionTestUpdate))],
) -> ss.RegressionTestOut:
    changes = body.model_dump(exclude_unset=True)
    view = await suite_service.update_test(ctx, principal, regression_test_id, changes)
    return ss.regression_test_out(view)


@router.delete(
    TEST,
    status_code=204,
    responses=errors(400, 403, 404, 409),
    summary="Delete a regression test that never ran (else 409: set active=false)",
)
async def delete_regression_test(
    ctx: Ctx, principal: SuiteWrite, regression_test_id: IdPath
) -> Response:
    await suite_service.delete_test(ctx, principal, regression_test_id)
    return Response(status_code=204)


# ---- outputs ----------------------------------------------------------------------------


@router.post(
    TEST + "/outputs",
    status_code=201,
    response_model=ss.OutputOut,
    responses=errors(400, 403, 404, 409, 415, 422),
    summary="Add an expected output to a regression test",
    openapi_extra=body_openapi(ss.OutputCreate),
)
async def add_output(
    ctx: Ctx,
    principal: SuiteWrite,
    regression_test_id: IdPath,
    body: Annotated[ss.OutputCreate, Depends(json_body(ss.OutputCreate))],
) -> ss.OutputOut:
    spec = suite_service.OutputSpec(**body.model_dump())
    view = await suite_service.add_output(ctx, principal, regression_test_id, spec)
    return ss.output_out(view)


@router.patch(
    OUTPUT,
    response_model=ss.OutputOut,
    responses=errors(400, 403, 404, 409, 415, 422),
    summary="Change an expected output",
    openapi_extra=body_openapi(ss.OutputUpdate),
)
async def update_output(
    ctx: Ctx,
    principal: SuiteWrite,
    regression_test_id: IdPath,
    output_id: IdPath,
    body: Annotated[ss.OutputUpdate, Depends(json_body(ss.OutputUpdate))],
) -> ss.OutputOut:
    changes = body.model_dump(exclude_unset=True)
    view = await suite_service.update_output(ctx, principal, regression_test_id, output_id, changes)
    return ss.output_out(view)


@router.delete(
    OUTPUT,
    status_code=204,
    responses=errors(400, 403, 404),
    summary="Remove an expected output (and its variants)",
)
async def delete_output(
    ctx: Ctx, principal: SuiteWrite, regression_test_id: IdPath, output_id: IdPath
) -> Response:
    await suite_service.delete_output(ctx, principal, regression_test_id, output_id)
    return Response(status_code=204)


@router.put(
    OUTPUT + "/baseline",
    response_model=ss.OutputOut,
    responses=with_413(400, 403, 404, 415),
    summary="Upload an output's baseline (raw body); it becomes expected_hash",
    openapi_extra=raw_body_openapi("The baseline's bytes."),
)
async def upload_baseline(
    request: Request,
    ctx: Ctx,
    principal: SuiteWrite,
    regression_test_id: IdPath,
    output_id: IdPath,
) -> ss.OutputOut:
    chunks = raw_body(request, ctx.settings.max_sample_bytes)
    view = await suite_service.upload_baseline(
        ctx, principal, regression_test_id, output_id, chunks
    )
    return ss.output_out(view)


@router.get(
    OUTPUT + "/download",
    response_class=OctetStreamResponse,
    responses=DOWNLOAD_RESPONSES,
    summary="Download an output's baseline (404 when it has none)",
)
async def download_baseline(
    ctx: Ctx, principal: RunsRead, regression_test_id: IdPath, output_id: IdPath
) -> StreamingResponse:
    stored = await suite_service.baseline_file(ctx, regression_test_id, output_id)
    return file_response(ctx, stored)


# ---- variants ---------------------------------------------------------------------------


@router.get(
    OUTPUT + "/variants",
    response_model=PageOf[ss.VariantOut],
    responses=errors(400, 403, 404),
    summary="List the other hashes accepted for an output",
)
async def list_variants(
    ctx: Ctx, principal: RunsRead, page: Page, regression_test_id: IdPath, output_id: IdPath
) -> dict[str, Any]:
    rows, total = await suite_service.list_variants(
        ctx, regression_test_id, output_id, limit=page.limit, offset=page.offset
    )
    return page_envelope([ss.variant_out(v) for v in rows], page, total)


@router.post(
    OUTPUT + "/variants",
    status_code=201,
    response_model=ss.VariantOut,
    responses=errors(400, 403, 404, 409, 415, 422),
    summary="Accept another stored file's hash as a correct output",
    description="`sha256` must name a stored file (a run's actual output, a baseline, an "
    "upload); otherwise 422 with `details.unknown_hashes`.",
    openapi_extra=body_openapi(ss.VariantCreate),
)
async def add_variant(
    ctx: Ctx,
    principal: SuiteWrite,
    regression_test_id: IdPath,
    output_id: IdPath,
    body: Annotated[ss.VariantCreate, Depends(json_body(ss.VariantCreate))],
) -> ss.VariantOut:
    variant = await suite_service.add_variant(
        ctx, principal, regression_test_id, output_id, body.sha256
    )
    return ss.variant_out(variant)


@router.delete(
    VARIANT,
    status_code=204,
    responses=errors(400, 403, 404),
    summary="Stop accepting a variant",
)
async def delete_variant(
    ctx: Ctx,
    principal: SuiteWrite,
    regression_test_id: IdPath,
    output_id: IdPath,
    variant_id: IdPath,
) -> Response:
    await suite_service.delete_variant(ctx, principal, regression_test_id, output_id, variant_id)
    return Response(status_code=204)


@router.get(
    VARIANT + "/download",
    response_class=OctetStreamResponse,
    responses=DOWNLOAD_RESPONSES,
    summary="Download a variant's bytes",
)
async def download_variant(
    ctx: Ctx,
    principal: RunsRead,
    regression_test_id: IdPath,
    output_id: IdPath,
    variant_id: IdPath,
) -> StreamingResponse:
    stored = await suite_service.variant_file(ctx, regression_test_id, output_id, variant_id)
    return file_response(ctx, stored)
