"""The ``BlobStore`` protocol over an S3-compatible bucket (AWS S3, MinIO, Ceph, ...).

Workers on several hosts share one bucket, so a sample uploaded to one host is the
input of a run on another. Semantics match ``LocalBlobStore``: keys are sha256s, a
stream is hashed while it is written to a local staging file (never held whole in
memory), nothing is kept past ``max_bytes``, and bytes already stored are not
uploaded again.

boto3 is synchronous, so every call runs in a worker thread (``asyncio.to_thread``)
and the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from runplane.store.blobs import CHUNK_BYTES, Blob, spool

#: Error codes S3 (and compatible servers) use for "no such object". ``head_object``
#: has no body, so it only carries the HTTP status as its code.
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _is_missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_CODES


def _check_sha(sha256: str) -> None:
    # The same check as LocalBlobStore: a key must never be built from arbitrary input.
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256: {sha256!r}")


class S3BlobStore:
    """Blobs as objects ``{prefix}/{sha[:2]}/{sha}`` in ``bucket``.

    ``client`` is a boto3 S3 client (thread-safe, so one is shared by all threads).
    ``staging_dir`` holds streamed uploads while they are hashed and counted; it
    should be on a disk with room for the largest sample (the system temp directory
    is often a small tmpfs).
    """

    def __init__(
        self, bucket: str, prefix: str, client: Any, *, staging_dir: Path | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.staging_dir = staging_dir
        if staging_dir is not None:
            staging_dir.mkdir(parents=True, exist_ok=True)

    def key(self, sha256: str) -> str:
        _check_sha(sha256)
        # Two hex digits spread keys over 256 prefixes: S3 scales request rates per prefix.
        name = f"{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{name}" if self.prefix else name

    # -- sync helpers, always called in a worker thread --------------------------------

    def _size_sync(self, sha256: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    def _upload_sync(self, path: Path, digest: str) -> None:
        # HEAD first: identical bytes are stored once, and a re-upload of a 4 GiB sample
        # that is already there costs one request instead of the whole transfer. Two
        # hosts racing past the HEAD both write the same bytes to the same key: harmless.
        if self._size_sync(digest) is not None:
            return
        # upload_file switches to a parallel multipart upload for large files (a single
        # PUT stops at 5 GiB) and reads the file in parts, never whole.
        self.client.upload_file(
            str(path),
            self.bucket,
            self.key(digest),
            ExtraArgs={"ContentType": "application/octet-stream"},
        )

    def _get_sync(self, sha256: str, **extra: Any) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256), **extra)
        except ClientError as exc:
            if _is_missing(exc):
                # What LocalBlobStore raises, so callers see one error for both backends.
                raise FileNotFoundError(f"no blob {sha256}") from exc
            raise

    # -- the protocol ------------------------------------------------------------------

    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> Blob:
        # The sha256 (the key) is known only at the end of the stream, and S3 cannot
        # rename an object, so the stream goes to a local file first and is uploaded
        # once it is complete and within the limit: nothing is stored past max_bytes.
        tmp, blob = await spool(chunks, max_bytes, self.staging_dir)
        try:
            await asyncio.to_thread(self._upload_sync, tmp, blob.sha256)
            return blob
        finally:
            tmp.unlink(missing_ok=True)

    async def put_file(self, path: Path) -> Blob:
        # No staging copy (unlike LocalBlobStore, which needs one to rename atomically):
        # an S3 object appears only once its upload completes, and callers hand in
        # finished files (outputs of exited processes), so hashing then uploading the
        # file itself reads it twice but writes nothing locally.
        def work() -> Blob:
            digest = hashlib.sha256()
            size = 0
            with open(path, "rb") as src:
                while chunk := src.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
            sha = digest.hexdigest()
            self._upload_sync(path, sha)
            return Blob(sha, size)

        return await asyncio.to_thread(work)

    async def exists(self, sha256: str) -> bool:
        return await self.size(sha256) is not None

    async def size(self, sha256: str) -> int | None:
        return await asyncio.to_thread(self._size_sync, sha256)

    async def read(self, sha256: str) -> AsyncIterator[bytes]:
        # One streaming GET, read a chunk at a time in a thread: one request per blob
        # (not one per ranged chunk) and at most CHUNK_BYTES in memory.
        response = await asyncio.to_thread(self._get_sync, sha256)
        body = response["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK_BYTES):
                yield chunk
        finally:
            # A client that stops reading (a closed download) must not leave the
            # connection half-read in the pool.
            body.close()

    async def head(self, sha256: str, limit: int) -> bytes:
        if limit <= 0:
            _check_sha(sha256)
            return b""

        def work() -> bytes:
            try:
                # A ranged GET: only the bytes asked for cross the network.
                response = self._get_sync(sha256, Range=f"bytes=0-{limit - 1}")
            except ClientError as exc:
                # S3 answers 416 to any range of an empty object; its head is empty.
                if str(exc.response.get("Error", {}).get("Code", "")) == "InvalidRange":
                    return b""
                raise
            body = response["Body"]
            try:
                data: bytes = body.read(limit)
            finally:
                body.close()
            return data

        return await asyncio.to_thread(work)

    async def copy_to(self, sha256: str, target: Path) -> None:
        def work() -> None:
            try:
                # download_file fetches large objects in parallel ranged parts straight
                # into a temporary file beside target, renamed when complete.
                self.client.download_file(self.bucket, self.key(sha256), str(target))
            except ClientError as exc:
                if _is_missing(exc):
                    raise FileNotFoundError(f"no blob {sha256}") from exc
                raise

        await asyncio.to_thread(work)

    async def delete(self, sha256: str) -> None:
        # S3 deletes are idempotent, like unlink(missing_ok=True).
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self.key(sha256))
