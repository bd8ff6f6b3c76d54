"""``/samples``: the input files of the regression suite, uploaded and downloaded as streams.

Uploads never hold a file in memory: a raw ``application/octet-stream`` body goes from
``request.stream()`` into the blob store chunk by chunk; a ``multipart/form-data`` body
is parsed as it arrives (its file part spools to disk) under the same size cap.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from runplane.api.sample_platform import schemas_suite as ss
from runplane.api.sample_platform.deps import (
    BodyRejected,
    Ctx,
    Page,
    RunsRead,
    SuiteWrite,
    body_openapi,
    json_body,
    page_envelope,
)
from runplane.api.sample_platform.openapi import errors, json_errors
from runplane.api.sample_platform.schemas import ErrorBody, PageOf
from runplane.domain.errors import PayloadTooLarge, Unprocessable
from runplane.services import samples as samples_service
from runplane.services.context import Context
from runplane.services.samples import TAG_PATTERN, StoredFile
from runplane.store.blobs import CHUNK_BYTES
from runplane.store.suite import SampleFilter

router = APIRouter(prefix="/samples", tags=["samples (regression suite)"])

OCTET_STREAM = "application/octet-stream"
MULTIPART = "multipart/form-data"
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
#: Room for multipart boundaries and part headers on top of the file size cap.
MULTIPART_OVERHEAD = 64 * 1024
TAG_LIST_PATTERN = "^{0}(,{0}){{0,49}}$".format(TAG_PATTERN.strip("^$"))
NO_NUL = r"^[^\x00]*$"

SampleIdPath = Annotated[int, Path(ge=1, le=ss.INT_MAX)]
ExtraIdPath = Annotated[int, Path(ge=1, le=ss.INT_MAX)]


class OctetStreamResponse(StreamingResponse):
    media_type = OCTET_STREAM


# ---- helpers shared with routes_suite ---------------------------------------------------


def with_413(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``errors(...)`` plus 413 for upload routes (and 415 said for byte bodies)."""
    out = errors(*codes)
    if 415 in out:
        out[415] = {
            **out[415],
            "description": "Content-Type must be application/octet-stream "
            "(or multipart/form-data where documented) (`validation_error`).",
        }
    return {
        **out,
        413: {
            "model": ErrorBody,
            "description": "The upload is larger than allowed (`payload_too_large`).",
        },
    }


def raw_body_openapi(description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {OCTET_STREAM: {"schema": BINARY}},
        }
    }


DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file's bytes (`Content-Length`, `Content-Disposition: attachment`).",
        "content": {OCTET_STREAM: {"schema": BINARY}},
    },
    **json_errors(400, 403, 404),
}


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def check_declared_size(request: Request, max_bytes: int) -> None:
    """413 at once when ``Content-Length`` already says the body is too large."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"Upload exceeds the limit of {max_bytes} bytes.", limit=max_bytes)


def raw_body(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    """The body as a stream; 415 unless it is ``application/octet-stream``."""
    if media_type(request) != OCTET_STREAM:
        raise BodyRejected(415, f"Content-Type must be {OCTET_STREAM}.", {})
    check_declared_size(request, max_bytes)
    return request.stream()


def file_response(ctx: Context, stored: StoredFile) -> StreamingResponse:
    ascii_name = "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in stored.filename
    )
    disposition = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(stored.filename)}"
    )
    return OctetStreamResponse(
        ctx.blobs.read(stored.sha256),
        headers={"Content-Length": str(stored.size_bytes), "Content-Disposition": disposition},
    )


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"Upload exceeds the limit of {limit} bytes.", limit=limit)
        yield chunk


async def _upload_chunks(part: UploadFile | str) -> AsyncIterator[bytes]:
    if isinstance(part, str):
        yield part.encode()
        return
    while chunk := await part.read(CHUNK_BYTES):
        yield chunk


def _tags(raw: str | None) -> list[str]:
    return [t for t in (raw or "").split(",") if t]


# ---- samples ----------------------------------------------------------------------------


@router.get(
    "",
    response_model=PageOf[ss.SampleOut],
    responses=errors(400, 403),
    summary="List samples",
)
async def list_samples(
    ctx: Ctx,
    principal: RunsRead,
    page: Page,
    status: Annotated[
        Literal["active", "inactive"] | None,
        Query(description="active: used by at least one active regression test."),
    ] = None,
    name: Annotated[
        str | None, Query(max_length=100, pattern=NO_NUL, description="Substring of the name.")
    ] = None,
    tag: Annotated[str | None, Query(max_length=50, description="Case-insensitive.")] = None,
    sha256: Annotated[str | None, Query(pattern=ss.SHA256_PATTERN)] = None,
    extension: Annotated[str | None, Query(max_length=10, pattern=r"^[a-zA-Z0-9]+$")] = None,
) -> dict[str, Any]:
    flt = SampleFilter(status=status, name=name, tag=tag, sha256=sha256, extension=extension)
    views, total = await samples_service.list_samples(
        ctx, flt, limit=page.limit, offset=page.offset
    )
    return page_envelope([ss.sample_out(v) for v in views], page, total)


@router.post(
    "/upload",
    status_code=201,
    response_model=ss.SampleOut,
    responses={
        200: {"model": ss.SampleOut, "description": "These bytes were already stored."},
        **with_413(400, 403, 415, 422),
    },
    summary="Upload a sample (raw body or multipart); the same bytes twice give one sample",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file: the raw bytes as application/octet-stream (then the "
            "`filename` query parameter is required), or multipart/form-data with a `file` "
            "part (its file name is used when `filename` is absent).",
            "content": {
                OCTET_STREAM: {"schema": BINARY},
                MULTIPART: {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": BINARY},
                    }
                },
            },
        }
    },
)
async def upload_sample(
    request: Request,
    response: Response,
    ctx: Ctx,
    principal: SuiteWrite,
    filename: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            pattern=ss.FILENAME_PATTERN,
            description="The sample's name; its extension becomes the sample's extension.",
        ),
    ] = None,
    tags: Annotated[
        str | None,
        Query(max_length=3300, pattern=TAG_LIST_PATTERN, description="Comma-separated tags."),
    ] = None,
    notes: Annotated[str | None, Query(max_length=1000, pattern=NO_NUL)] = None,
) -> ss.SampleOut:
    max_bytes = ctx.settings.max_sample_bytes
    if media_type(request) == MULTIPART:
        check_declared_size(request, max_bytes + MULTIPART_OVERHEAD)
        parser = MultiPartParser(
            request.headers,
            _capped(request.stream(), max_bytes + MULTIPART_OVERHEAD),
            max_files=1,
            max_fields=20,
        )
        try:
            form: FormData = await parser.parse()
        except MultiPartException as exc:
            raise BodyRejected(400, exc.message, {"file": [exc.message]}) from None
        try:
            part = form.get("file")
            if part is None:
                message = "Request failed schema validation."
                raise BodyRejected(400, message, {"file": ["Required."]})
            name = filename or (part.filename if isinstance(part, UploadFile) else None)
            if not name:
                raise Unprocessable("A file name is required.", field="filename")
            if isinstance(part, UploadFile) and not filename:
                name = name.replace("\\", "/").rsplit("/", 1)[-1]
                if not name or any(ord(c) < 32 or ord(c) == 127 for c in name):
                    raise Unprocessable("The file part's name is not usable.", field="filename")
                name = name[:255]
            view, created = await samples_service.upload(
                ctx, principal, _upload_chunks(part), filename=name, tags=_tags(tags), notes=notes
            )
        finally:
            await form.close()
    else:
        chunks = raw_body(request, max_bytes)
        if filename is None:
            raise Unprocessable(
                "The filename query parameter is required with application/octet-stream.",
                field="filename",
            )
        view, created = await samples_service.upload(
            ctx, principal, chunks, filename=filename, tags=_tags(tags), notes=notes
        )
    if not created:
        response.status_code = 200
    return ss.sample_out(view)


@router.api_route(
    "/upload",
    methods=["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
    include_in_schema=False,
)
async def upload_other_methods() -> None:
    """405 (``Allow: POST``): otherwise ``/samples/{sample_id}`` would take these."""
    raise StarletteHTTPException(405)


@router.get(
    "/{sample_id}",
    response_model=ss.SampleOut,
    responses=errors(400, 403, 404),
    summary="Get a sample",
)
async def get_sample(ctx: Ctx, principal: RunsRead, sample_id: SampleIdPath) -> ss.SampleOut:
    return ss.sample_out(await samples_service.get(ctx, sample_id))


@router.patch(
    "/{sample_id}",
    response_model=ss.SampleOut,
    responses=errors(400, 403, 404, 415, 422),
    summary="Change a sample's name, tags or notes",
    openapi_extra=body_openapi(ss.SampleUpdate),
)
async def update_sample(
    ctx: Ctx,
    principal: SuiteWrite,
    sample_id: SampleIdPath,
    body: Annotated[ss.SampleUpdate, Depends(json_body(ss.SampleUpdate))],
) -> ss.SampleOut:
    changes = body.model_dump(exclude_unset=True)
    view = await samples_service.update(ctx, principal, sample_id, changes)
    return ss.sample_out(view)


@router.delete(
    "/{sample_id}",
    status_code=204,
    responses=errors(400, 403, 404, 409),
    summary="Delete a sample no regression test uses (its stored bytes are kept)",
)
async def delete_sample(ctx: Ctx, principal: SuiteWrite, sample_id: SampleIdPath) -> Response:
    await samples_service.delete(ctx, principal, sample_id)
    return Response(status_code=204)


@router.get(
    "/{sample_id}/download",
    response_class=OctetStreamResponse,
    responses=DOWNLOAD_RESPONSES,
    summary="Download a sample's bytes",
)
async def download_sample(
    ctx: Ctx, principal: RunsRead, sample_id: SampleIdPath
) -> StreamingResponse:
    return file_response(ctx, await samples_service.download(ctx, sample_id))


# ---- extra files ------------------------------------------------------------------------


@router.post(
    "/{sample_id}/extra-files",
    status_code=201,
    response_model=ss.ExtraFileOut,
    responses=with_413(400, 403, 404, 409, 415, 422),
    summary="Attach a file to a sample (raw body)",
    openapi_extra=raw_body_openapi("The file's bytes."),
)
async def add_extra_file(
    request: Request,
    ctx: Ctx,
    principal: SuiteWrite,
    sample_id: SampleIdPath,
    filename: Annotated[str, Query(min_length=1, max_length=255, pattern=ss.FILENAME_PATTERN)],
) -> ss.ExtraFileOut:
    chunks = raw_body(request, ctx.settings.max_sample_bytes)
    extra = await samples_service.add_extra_file(
        ctx, principal, sample_id, chunks, filename=filename
    )
    return ss.extra_file_out(extra)


@router.get(
    "/{sample_id}/extra-files/{extra_id}/download",
    response_class=OctetStreamResponse,
    responses=DOWNLOAD_RESPONSES,
    summary="Download one of a sample's extra files",
)
async def download_extra_file(
    ctx: Ctx, principal: RunsRead, sample_id: SampleIdPath, extra_id: ExtraIdPath
) -> StreamingResponse:
    return file_response(ctx, await samples_service.extra_file_download(ctx, sample_id, extra_id))


@router.delete(
    "/{sample_id}/extra-files/{extra_id}",
    status_code=204,
    responses=errors(400, 403, 404),
    summary="Remove one of a sample's extra files",
)
async def delete_extra_file(
    ctx: Ctx, principal: SuiteWrite, sample_id: SampleIdPath, extra_id: ExtraIdPath
) -> Response:
    await samples_service.delete_extra_file(ctx, principal, sample_id, extra_id)
    return Response(status_code=204)
