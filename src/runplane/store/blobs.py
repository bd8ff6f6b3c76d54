"""Content-addressed file storage behind one small interface.

Samples, actual outputs and baselines are stored once per sha256. ``LocalBlobStore``
keeps them under a directory; ``S3BlobStore`` (blobs_s3.py) keeps them in an
S3-compatible bucket shared by workers on several hosts; ``make_blob_store`` picks one
from the settings. Writes stream through a temporary file while the hash is computed, so
a file is never held whole in memory, and identical bytes always give the same key.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from runplane.domain.errors import PayloadTooLarge

if TYPE_CHECKING:
    from runplane.config import Settings

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Blob:
    sha256: str
    size_bytes: int


class BlobStore(Protocol):
    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> Blob:
        """Store a stream; raises ``PayloadTooLarge`` past ``max_bytes`` (nothing is kept)."""
        ...

    async def put_file(self, path: Path) -> Blob: ...

    async def exists(self, sha256: str) -> bool: ...

    async def size(self, sha256: str) -> int | None: ...

    def read(self, sha256: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks."""
        ...

    async def head(self, sha256: str, limit: int) -> bytes:
        """At most ``limit`` bytes from the start of the blob."""
        ...

    async def copy_to(self, sha256: str, target: Path) -> None: ...

    async def delete(self, sha256: str) -> None: ...


async def spool(
    chunks: AsyncIterator[bytes], max_bytes: int, directory: Path | None
) -> tuple[Path, Blob]:
    """Write a stream to a new file in ``directory`` (None: the system's temporary directory)
    while hashing it: the key of a blob is known only at the end. Past ``max_bytes`` it
    raises ``PayloadTooLarge`` and keeps nothing."""
    fd, name = tempfile.mkstemp(dir=directory, prefix="blob-")
    tmp = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"Upload exceeds the limit of {max_bytes} bytes.", limit=max_bytes
                    )
                digest.update(chunk)
                fh.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, Blob(digest.hexdigest(), size)


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def _commit(self, tmp: Path, digest: str) -> None:
        final = self._path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            tmp.unlink()  # deduplicated: the same bytes are already stored
        else:
            os.replace(tmp, final)

    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> Blob:
        tmp, blob = await spool(chunks, max_bytes, self.root / "tmp")
        try:
            await asyncio.to_thread(self._commit, tmp, blob.sha256)
            return blob
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    async def put_file(self, path: Path) -> Blob:
        def work() -> Blob:
            digest = hashlib.sha256()
            fd, name = tempfile.mkstemp(dir=self.root / "tmp")
            tmp = Path(name)
            size = 0
            try:
                with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                    while chunk := src.read(CHUNK_BYTES):
                        digest.update(chunk)
                        dst.write(chunk)
                        size += len(chunk)
                self._commit(tmp, digest.hexdigest())
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return Blob(digest.hexdigest(), size)

        return await asyncio.to_thread(work)

    async def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    async def size(self, sha256: str) -> int | None:
        path = self._path(sha256)
        return path.stat().st_size if path.is_file() else None

    async def read(self, sha256: str) -> AsyncIterator[bytes]:
        with open(self._path(sha256), "rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
                yield chunk

    async def head(self, sha256: str, limit: int) -> bytes:
        def work() -> bytes:
            with open(self._path(sha256), "rb") as fh:
                return fh.read(limit)

        return await asyncio.to_thread(work)

    async def copy_to(self, sha256: str, target: Path) -> None:
        await asyncio.to_thread(shutil.copyfile, self._path(sha256), target)

    async def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)


#: S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens, starting and
#: ending with a letter or digit (rejecting others here beats an opaque error later).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/optional/prefix`` -> ``(bucket, prefix)``; ``ValueError`` otherwise."""
    problem = f"RUNPLANE_BLOB_URL={url!r} is not s3://bucket/optional/prefix"
    parts = urlsplit(url)
    if parts.scheme != "s3" or parts.query or parts.fragment:
        raise ValueError(f"{problem} (an empty value stores blobs in data_dir/blobs)")
    # netloc, not hostname: userinfo or a port ("s3://key@bucket:1") must fail, not vanish.
    if not _BUCKET.fullmatch(parts.netloc):
        raise ValueError(f"{problem}: {parts.netloc!r} is not a valid bucket name")
    prefix = parts.path.strip("/")
    if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
        raise ValueError(f"{problem}: the prefix {prefix!r} has empty or relative segments")
    return parts.netloc, prefix


def make_blob_store(settings: Settings) -> BlobStore:
    """The store ``settings.blob_url`` names: empty -> ``data_dir/blobs``, ``s3://`` -> S3.

    Raises ``ValueError`` for any other value, so a typo stops start-up instead of
    silently writing to a local directory other hosts cannot see.
    """
    if not settings.blob_url:
        return LocalBlobStore(settings.blobs_dir)
    bucket, prefix = parse_s3_url(settings.blob_url)
    # Imported here so boto3 (slow to import, large) loads only in S3 deployments.
    import boto3
    from botocore.config import Config

    from runplane.store.blobs_s3 import S3BlobStore

    config = Config(
        # Regression suites run many tests at once and transfers use several threads:
        # room beyond botocore's default of 10 pooled connections avoids waiting on it.
        max_pool_connections=32,
        retries={"mode": "standard"},
        # Custom endpoints (MinIO and the like) usually have no per-bucket DNS names.
        s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
    )
    # A session of its own: boto3's default session is shared module state and not
    # thread-safe to create clients from; the client itself is thread-safe.
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        config=config,
    )
    return S3BlobStore(bucket, prefix, client, staging_dir=settings.data_dir / "blob-staging")
