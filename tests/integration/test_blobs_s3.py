"""Both blob stores behave alike; the S3 one against moto's real HTTP server.

moto runs in server mode (a thread serving HTTP on 127.0.0.1), not as an in-process
mock of botocore, so requests, streaming bodies, ranges and multipart transfers go
over a real socket the way they would against S3 or MinIO.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from runplane.domain.errors import PayloadTooLarge
from runplane.store.blobs import CHUNK_BYTES, BlobStore, LocalBlobStore, make_blob_store
from runplane.store.blobs_s3 import S3BlobStore
from tests.acceptance import test_regression_runs as regression
from tests.acceptance.test_samples_api import upload
from tests.conftest import Api, _api, make_settings

BUCKET = "runplane-test"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 on a free port, with fake credentials for this module's tests only."""
    # Module scope rules out the function-scoped ``monkeypatch``; a MonkeyPatch context
    # undoes the environment when the module's tests are done.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # Nothing from the developer's ~/.aws (profiles, endpoints, tokens) may leak in.
        nowhere = tmp_path_factory.mktemp("aws") / "none"
        mp.setenv("AWS_CONFIG_FILE", str(nowhere))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            _, port = server.get_host_and_port()
            url = f"http://127.0.0.1:{port}"
            s3(url).create_bucket(Bucket=BUCKET)
            yield url
        finally:
            server.stop()


def s3(url: str) -> Any:
    """A plain client for setting up and inspecting the bucket."""
    return boto3.session.Session().client("s3", endpoint_url=url, region_name="us-east-1")


def _keys(url: str, prefix: str) -> list[str]:
    pages = s3(url).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@dataclass
class Backend:
    store: BlobStore
    #: Names of everything the store keeps (to show dedup and that a rejected stream
    #: left nothing behind).
    stored: Callable[[], list[str]]
    #: Where partial writes are staged; empty whenever no write is in progress.
    staging: Path


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        root = tmp_path / "blobs"
        store = LocalBlobStore(root)
        return Backend(
            store,
            lambda: sorted(p.name for p in root.glob("??/??/*") if p.is_file()),
            root / "tmp",
        )
    url: str = request.getfixturevalue("moto_url")
    prefix = f"t-{uuid.uuid4().hex[:8]}"  # a fresh namespace per test in the shared bucket
    settings = make_settings(
        tmp_path / "data", blob_url=f"s3://{BUCKET}/{prefix}/", s3_endpoint_url=url
    )
    s3_store = make_blob_store(settings)
    assert isinstance(s3_store, S3BlobStore) and s3_store.prefix == prefix
    return Backend(
        s3_store,
        lambda: [k.rsplit("/", 1)[1] for k in _keys(url, prefix + "/")],
        settings.data_dir / "blob-staging",
    )


async def test_put_stream_and_put_file_round_trip(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    blob = await store.put_stream(_chunks(b"hello ", b"world"), max_bytes=11)
    assert (blob.sha256, blob.size_bytes) == (sha(b"hello world"), 11)
    assert await store.exists(blob.sha256) and await store.size(blob.sha256) == 11
    assert b"".join([c async for c in store.read(blob.sha256)]) == b"hello world"

    source = tmp_path / "source.bin"
    source.write_bytes(b"from a file\n")
    from_file = await store.put_file(source)
    assert (from_file.sha256, from_file.size_bytes) == (sha(b"from a file\n"), 12)
    assert b"".join([c async for c in store.read(from_file.sha256)]) == b"from a file\n"
    assert sorted(backend.stored()) == sorted([blob.sha256, from_file.sha256])
    assert list(backend.staging.iterdir()) == []


async def test_identical_bytes_are_stored_once(backend: Backend, tmp_path: Path) -> None:
    data = b"same bytes" * 1000
    first = await backend.store.put_stream(_chunks(data), max_bytes=len(data))
    again = await backend.store.put_stream(_chunks(data[:5], data[5:]), max_bytes=len(data))
    source = tmp_path / "same.bin"
    source.write_bytes(data)
    from_file = await backend.store.put_file(source)
    assert first == again == from_file
    assert backend.stored() == [sha(data)]
    assert list(backend.staging.iterdir()) == []


async def test_s3_does_not_upload_known_bytes_again(moto_url: str, tmp_path: Path) -> None:
    prefix = f"dedup-{uuid.uuid4().hex[:8]}"
    store = S3BlobStore(BUCKET, prefix, s3(moto_url), staging_dir=tmp_path / "stage")
    uploads: list[str] = []
    for operation in ("PutObject", "CreateMultipartUpload"):
        store.client.meta.events.register(
            f"before-call.s3.{operation}",
            lambda model, **_: uploads.append(model.name),
        )
    data = b"uploaded once" * 100
    source = tmp_path / "once.bin"
    source.write_bytes(data)
    await store.put_file(source)
    await store.put_file(source)
    await store.put_stream(_chunks(data), max_bytes=len(data))
    assert uploads == ["PutObject"]


async def test_s3_multipart_upload_and_download(moto_url: str, tmp_path: Path) -> None:
    # Past boto3's 8 MiB threshold: upload_file and download_file switch to multipart
    # uploads and parallel ranged GETs; the bytes and the key must not change.
    store = S3BlobStore(BUCKET, f"mp-{uuid.uuid4().hex[:8]}", s3(moto_url))
    data = random.Random(2).randbytes(9 * 1024 * 1024 + 17)
    source = tmp_path / "multipart.bin"
    source.write_bytes(data)
    blob = await store.put_file(source)
    assert blob.sha256 == sha(data) and await store.size(blob.sha256) == len(data)
    target = tmp_path / "back.bin"
    await store.copy_to(blob.sha256, target)
    assert target.read_bytes() == data


async def test_a_stream_past_the_cap_keeps_nothing(backend: Backend) -> None:
    with pytest.raises(PayloadTooLarge):
        await backend.store.put_stream(_chunks(b"12345", b"678901"), max_bytes=10)
    assert backend.stored() == []
    assert list(backend.staging.iterdir()) == []
    assert not await backend.store.exists(sha(b"12345678901"))
    exact = await backend.store.put_stream(_chunks(b"12345", b"67890"), max_bytes=10)
    assert exact.size_bytes == 10 and backend.stored() == [exact.sha256]


async def test_a_large_blob_reads_in_bounded_chunks(backend: Backend, tmp_path: Path) -> None:
    # 5 MiB: five chunks of CHUNK_BYTES, so chunking (not one whole read) is visible.
    data = random.Random(0).randbytes(5 * 1024 * 1024)
    source = tmp_path / "large.bin"
    source.write_bytes(data)
    blob = await backend.store.put_file(source)
    assert blob.size_bytes == len(data)
    chunks = [c async for c in backend.store.read(blob.sha256)]
    assert len(chunks) >= 5 and max(len(c) for c in chunks) <= CHUNK_BYTES
    assert b"".join(chunks) == data

    # A reader that stops early (a closed download) releases the blob cleanly.
    reader = backend.store.read(blob.sha256)
    first = await anext(reader)
    assert first and data.startswith(first)
    await reader.aclose()  # type: ignore[attr-defined]

    target = tmp_path / "copy.bin"
    await backend.store.copy_to(blob.sha256, target)
    assert target.read_bytes() == data
    assert await backend.store.head(blob.sha256, 100) == data[:100]


async def test_head_and_copy_to(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    blob = await store.put_stream(_chunks(b"0123456789"), max_bytes=100)
    assert await store.head(blob.sha256, 4) == b"0123"
    assert await store.head(blob.sha256, 1000) == b"0123456789"
    assert await store.head(blob.sha256, 0) == b""
    empty = await store.put_stream(_chunks(), max_bytes=100)
    assert empty.size_bytes == 0 and await store.size(empty.sha256) == 0
    assert await store.head(empty.sha256, 10) == b""
    assert [c async for c in store.read(empty.sha256)] == []

    target = tmp_path / "out" / "copy.txt"
    target.parent.mkdir()
    await store.copy_to(blob.sha256, target)
    assert target.read_bytes() == b"0123456789"
    await store.copy_to(empty.sha256, tmp_path / "empty")
    assert (tmp_path / "empty").read_bytes() == b""


async def test_unknown_and_deleted_blobs(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    unknown = sha(b"never stored")
    assert await store.size(unknown) is None and not await store.exists(unknown)
    # Both stores report a missing blob the same way, so callers handle one error.
    with pytest.raises(FileNotFoundError):
        await store.head(unknown, 10)
    with pytest.raises(FileNotFoundError):
        await store.copy_to(unknown, tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        [c async for c in store.read(unknown)]

    blob = await store.put_stream(_chunks(b"short-lived"), max_bytes=100)
    await store.delete(blob.sha256)
    assert await store.size(blob.sha256) is None and not await store.exists(blob.sha256)
    assert backend.stored() == []
    await store.delete(blob.sha256)  # deleting again is not an error
    with pytest.raises(ValueError, match="not a sha256"):
        await store.exists("../../etc/passwd")


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3:///prefix",
        "s3://Upper-Case",
        "s3://ab",
        "s3://key:secret@bucket",
        "s3://bucket:9000/x",
        "s3://bucket/a//b",
        "s3://bucket/../x",
        "s3://bucket/p?versioning=1",
        "/srv/blobs",
        "file:///srv/blobs",
        "gs://bucket",
    ],
)
def test_an_invalid_blob_url_stops_start_up(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="RUNPLANE_BLOB_URL"):
        make_blob_store(make_settings(tmp_path, blob_url=url))


def test_the_default_is_the_local_directory(tmp_path: Path) -> None:
    store = make_blob_store(make_settings(tmp_path))
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "blobs"


def test_a_bucket_without_prefix(tmp_path: Path, moto_url: str) -> None:
    store = make_blob_store(make_settings(tmp_path, blob_url="s3://my.bucket-1"))
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("my.bucket-1", "")
    assert store.key("ab" + "0" * 62) == "ab/ab" + "0" * 62


# -- end to end: the regression-run scenario with every blob in S3 ----------------------


@pytest.fixture
async def api(tmp_path: Path, moto_url: str) -> AsyncIterator[Api]:
    """The app with workers, storing blobs under ``s3://runplane-test/rp``.

    Named ``api`` so the ``tool`` fixture of the regression tests (which asks for
    ``api``) builds its project on this app.
    """
    settings = make_settings(
        tmp_path / "data", blob_url=f"s3://{BUCKET}/rp", s3_endpoint_url=moto_url
    )
    async for value in _api(settings, run_workers=True):
        yield value


tool = regression.tool


async def test_regression_runs_over_s3(api: Api, tool: tuple[int, str], moto_url: str) -> None:
    assert isinstance(api.ctx.blobs, S3BlobStore)
    # Samples and baselines in, outputs of a run with workers, statuses, summary, the
    # actual/expected downloads, the diff, a baseline approval and a retry.
    await regression.test_regression_run_statuses_summary_diff_and_approval(api, tool)

    # An upload through the API streams into S3 and downloads back from it.
    headers = await api.headers()
    data = random.Random(1).randbytes(3 * 1024 * 1024)
    sample = await upload(api, headers, data, "big.ts")
    download = await api.client.get(
        f"/api/v1/samples/{sample['sample_id']}/download", headers=headers
    )
    assert download.status_code == 200 and download.content == data

    keys = _keys(moto_url, "rp/")
    for content in (b"hello", b"HELLO", b"WORLD!!\n", b"WORLD", data):
        digest = sha(content)
        assert f"rp/{digest[:2]}/{digest}" in keys
    # Nothing went to the local directory, which other hosts could not see.
    assert not api.ctx.settings.blobs_dir.exists()
    assert list((api.ctx.settings.data_dir / "blob-staging").iterdir()) == []
