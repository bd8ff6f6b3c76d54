"""Samples: the input files regression tests run on, stored once per sha256.

Blobs are never deleted here: deleting a sample or an extra file removes only its row.
The same bytes may back other samples' extra files, baselines, variants or run outputs,
and a check-then-delete would race with a concurrent upload of the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.errors import Conflict, NotFound, SampleNotFound, Unprocessable
from runplane.domain.permissions import Action
from runplane.domain.types import Principal
from runplane.services.context import Context
from runplane.services.policy import ensure_allowed
from runplane.store import suite as store
from runplane.store.database import unit_of_work
from runplane.store.models import Sample, SampleExtraFile

MAX_TAGS = 50
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"
_TAG_RE = re.compile(TAG_PATTERN)
_EXTENSION_RE = re.compile(r"^[A-Za-z0-9]{1,10}$")


class ExtraFileNotFound(NotFound):
    resource = "extra_file"


class BlobNotFound(NotFound):
    resource = "blob"


@dataclass(slots=True)
class SampleView:
    sample: Sample
    extra_files: list[SampleExtraFile] = field(default_factory=list)
    regression_test_count: int = 0
    active: bool = False


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What a download needs: the blob, its size and the name to offer."""

    sha256: str
    size_bytes: int
    filename: str


# ---- helpers shared with the suite service ---------------------------------------------


def check_filename(name: str, field_name: str = "filename") -> None:
    """A plain file name: ``.`` and ``..`` name directories (the schema excludes the rest)."""
    if name in (".", ".."):
        raise Unprocessable(f"{name!r} is not a file name.", field=field_name, value=name)
    if len(name.encode()) > 255:
        # The schema counts characters; the file system counts bytes.
        raise Unprocessable("File names are limited to 255 bytes (UTF-8).", field=field_name)


def extension_of(name: str) -> str:
    """The lower-cased extension when it is 1..10 alphanumerics, else ``""``."""
    _, dot, ext = name.rpartition(".")
    return ext.lower() if dot and _EXTENSION_RE.match(ext) else ""


def merge_tags(current: Sequence[str], new: Sequence[str]) -> list[str]:
    """``current`` then the new tags it lacks (compared case-insensitively)."""
    out = list(current)
    seen = {t.lower() for t in out}
    for tag in new:
        if tag.lower() not in seen:
            seen.add(tag.lower())
            out.append(tag)
    return out


def _check_tag_count(tags: Sequence[str]) -> None:
    if len(tags) > MAX_TAGS:
        raise Unprocessable(f"A sample has at most {MAX_TAGS} tags.", tag_count=len(tags))


async def stored_file(ctx: Context, sha256: str, filename: str) -> StoredFile:
    """The blob behind a row; 404 when the store lost it."""
    size = await ctx.blobs.size(sha256)
    if size is None:
        raise BlobNotFound(sha256)
    return StoredFile(sha256=sha256, size_bytes=size, filename=filename)


async def _views(session: AsyncSession, samples: Sequence[Sample]) -> list[SampleView]:
    ids = [s.id for s in samples]
    extras = await store.extra_files_of(session, ids)
    usage = await store.sample_usage(session, ids)
    views = []
    for sample in samples:
        count, active = usage.get(sample.id, (0, 0))
        views.append(SampleView(sample, extras.get(sample.id, []), count, active > 0))
    return views


# ---- samples ----------------------------------------------------------------------------


async def upload(
    ctx: Context,
    actor: Principal | None,
    chunks: AsyncIterator[bytes],
    *,
    filename: str,
    tags: Sequence[str] = (),
    notes: str | None = None,
) -> tuple[SampleView, bool]:
    """Store an uploaded sample; (view, created). The same bytes again give the same sample
    (200), with the new tags merged into it."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    check_filename(filename)
    tags = merge_tags([], tags)
    _check_tag_count(tags)
    blob = await ctx.blobs.put_stream(chunks, max_bytes=ctx.settings.max_sample_bytes)
    for attempt in range(2):
        try:
            async with unit_of_work(ctx.sessions) as session:
                existing = await store.get_sample_by_sha(session, blob.sha256)
                if existing is not None:
                    merged = merge_tags(existing.tags or [], tags)
                    _check_tag_count(merged)
                    if merged != list(existing.tags or []):
                        existing.tags = merged
                        await session.flush()
                    return (await _views(session, [existing]))[0], False
                sample = await store.add_sample(
                    session,
                    Sample(
                        sha256=blob.sha256,
                        name=filename,
                        extension=extension_of(filename),
                        size_bytes=blob.size_bytes,
                        tags=tags,
                        notes=notes,
                    ),
                )
                return SampleView(sample), True
        except IntegrityError:
            # A concurrent upload of the same bytes won the insert: take its sample.
            if attempt:
                raise
    raise AssertionError("unreachable")


async def list_samples(
    ctx: Context, flt: store.SampleFilter, *, limit: int, offset: int
) -> tuple[list[SampleView], int]:
    """A page of samples matching the filter."""
    if flt.tag is not None and not _TAG_RE.match(flt.tag):
        return [], 0  # no stored tag can look like this
    async with unit_of_work(ctx.reads) as session:
        rows, total = await store.list_samples(session, flt, limit=limit, offset=offset)
        return await _views(session, rows), total


async def get(ctx: Context, sample_id: int) -> SampleView:
    async with unit_of_work(ctx.reads) as session:
        sample = await store.get_sample(session, sample_id)
        if sample is None:
            raise SampleNotFound(sample_id)
        return (await _views(session, [sample]))[0]


async def update(
    ctx: Context, actor: Principal | None, sample_id: int, changes: dict[str, Any]
) -> SampleView:
    """Change ``name`` (and so the extension), ``tags`` (replaced) or ``notes``."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    if changes.get("name") is not None:
        check_filename(changes["name"], "name")
    if changes.get("tags") is not None:
        changes["tags"] = merge_tags([], changes["tags"])
        _check_tag_count(changes["tags"])
    async with unit_of_work(ctx.sessions) as session:
        sample = await store.get_sample(session, sample_id)
        if sample is None:
            raise SampleNotFound(sample_id)
        if changes.get("name") is not None:
            sample.name = changes["name"]
            sample.extension = extension_of(sample.name)
        if "tags" in changes:
            sample.tags = list(changes["tags"] or [])
        if "notes" in changes:
            sample.notes = changes["notes"]
        await session.flush()
        return (await _views(session, [sample]))[0]


async def delete(ctx: Context, actor: Principal | None, sample_id: int) -> None:
    """Delete a sample no regression test uses (409 otherwise); its blob stays."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        sample = await store.get_sample(session, sample_id)
        if sample is None:
            raise SampleNotFound(sample_id)
        used = await store.count_tests_using_sample(session, sample_id)
        if used:
            raise Conflict(
                f"Sample {sample_id} is used by {used} regression test(s); delete them first.",
                regression_test_count=used,
            )
        await store.delete_sample(session, sample)


async def download(ctx: Context, sample_id: int) -> StoredFile:
    sample = (await get(ctx, sample_id)).sample
    return await stored_file(ctx, sample.sha256, sample.name)


# ---- extra files ------------------------------------------------------------------------


async def add_extra_file(
    ctx: Context,
    actor: Principal | None,
    sample_id: int,
    chunks: AsyncIterator[bytes],
    *,
    filename: str,
) -> SampleExtraFile:
    """Attach a file to a sample; 409 when the sample already has one of that name."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    check_filename(filename)
    duplicate = Conflict(f"Sample {sample_id} already has an extra file named {filename!r}.")
    async with unit_of_work(ctx.reads) as session:
        if await store.get_sample(session, sample_id) is None:
            raise SampleNotFound(sample_id)
        if await store.get_extra_file_by_name(session, sample_id, filename):
            raise duplicate
    blob = await ctx.blobs.put_stream(chunks, max_bytes=ctx.settings.max_sample_bytes)
    try:
        async with unit_of_work(ctx.sessions) as session:
            if await store.get_sample(session, sample_id) is None:
                raise SampleNotFound(sample_id)
            if await store.get_extra_file_by_name(session, sample_id, filename):
                raise duplicate
            return await store.add_extra_file(
                session,
                SampleExtraFile(
                    sample_id=sample_id,
                    name=filename,
                    sha256=blob.sha256,
                    size_bytes=blob.size_bytes,
                ),
            )
    except IntegrityError:
        raise duplicate from None


async def _extra_file(session: AsyncSession, sample_id: int, extra_id: int) -> SampleExtraFile:
    if await store.get_sample(session, sample_id) is None:
        raise SampleNotFound(sample_id)
    extra = await store.get_extra_file(session, sample_id, extra_id)
    if extra is None:
        raise ExtraFileNotFound(extra_id)
    return extra


async def extra_file_download(ctx: Context, sample_id: int, extra_id: int) -> StoredFile:
    async with unit_of_work(ctx.reads) as session:
        extra = await _extra_file(session, sample_id, extra_id)
    return await stored_file(ctx, extra.sha256, extra.name)


async def delete_extra_file(
    ctx: Context, actor: Principal | None, sample_id: int, extra_id: int
) -> None:
    """Remove an extra file's row; its blob stays."""
    ensure_allowed(actor, Action.EDIT_SUITE)
    async with unit_of_work(ctx.sessions) as session:
        extra = await _extra_file(session, sample_id, extra_id)
        await store.delete_extra_file(session, extra)
