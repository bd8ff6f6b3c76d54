"""``/samples``: streamed uploads (raw and multipart), dedup, filters, downloads, extra files."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runplane.domain.permissions import Role, Scope
from tests.conftest import Api, DemoRepo

BASE = "/api/v1"
OCTET = {"Content-Type": "application/octet-stream"}


async def upload(
    api: Api,
    headers: dict[str, str],
    content: bytes,
    filename: str = "clip.ts",
    expect: int = 201,
    **params: str,
) -> dict[str, Any]:
    response = await api.client.post(
        f"{BASE}/samples/upload",
        headers={**headers, **OCTET},
        params={"filename": filename, **params},
        content=content,
    )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_raw_upload_get_and_download(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.headers()
    data = os.urandom(300_000)
    sample = await upload(api, headers, data, "Broadcast.TS", tags="dvb,CEA-608", notes="hi")
    assert sample["sha256"] == hashlib.sha256(data).hexdigest()
    assert sample["name"] == "Broadcast.TS" and sample["extension"] == "ts"
    assert sample["size_bytes"] == len(data)
    assert sample["tags"] == ["dvb", "CEA-608"] and sample["notes"] == "hi"
    assert sample["regression_test_count"] == 0 and sample["active"] is False
    assert sample["extra_files"] == [] and sample["created_at"].endswith("Z")

    got = await api.client.get(f"{BASE}/samples/{sample['sample_id']}", headers=headers)
    assert got.status_code == 200 and got.json() == sample

    download = await api.client.get(
        f"{BASE}/samples/{sample['sample_id']}/download", headers=headers
    )
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-length"] == str(len(data))
    assert download.headers["content-disposition"].startswith('attachment; filename="Broadcast.TS"')


async def test_same_bytes_twice_is_one_sample_with_merged_tags(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.headers(Role.CONTRIBUTOR)
    data = b"the same bytes" * 1000
    first = await upload(api, headers, data, "a.mp4", tags="one")
    again = await upload(api, headers, data, "b.mkv", expect=200, tags="ONE,two")
    assert again["sample_id"] == first["sample_id"]
    assert again["sha256"] == first["sha256"]
    assert again["name"] == "a.mp4"  # the first upload named it
    assert again["tags"] == ["one", "two"]
    listed = await api.client.get(f"{BASE}/samples", headers=headers)
    assert listed.json()["pagination"]["total"] == 1


async def test_multipart_upload(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.headers()
    data = os.urandom(2 * 1024 * 1024 + 17)  # bigger than the in-memory spool
    response = await api.client.post(
        f"{BASE}/samples/upload",
        headers=headers,
        params={"tags": "multipart"},
        files={"file": ("dir\\from-browser.srt", data, "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    sample = response.json()
    assert sample["name"] == "from-browser.srt" and sample["extension"] == "srt"
    assert sample["sha256"] == hashlib.sha256(data).hexdigest()
    assert sample["tags"] == ["multipart"]
    # The query's filename wins over the part's.
    response = await api.client.post(
        f"{BASE}/samples/upload",
        headers=headers,
        params={"filename": "named.bin"},
        files={"file": ("ignored.txt", b"other bytes")},
    )
    assert response.status_code == 201 and response.json()["name"] == "named.bin"
    # Same bytes as raw: the multipart sample.
    again = await upload(api, headers, data, "x", expect=200)
    assert again["sample_id"] == sample["sample_id"]


async def test_upload_rejections(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.headers()
    url = f"{BASE}/samples/upload"
    # No filename with a raw body.
    response = await api.client.post(url, headers={**headers, **OCTET}, content=b"x")
    assert response.status_code == 422 and response.json()["code"] == "unprocessable"
    for bad in ("a/b", "", "x" * 256):
        response = await api.client.post(
            url, headers={**headers, **OCTET}, params={"filename": bad}, content=b"x"
        )
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["code"] == "validation_error"
    response = await api.client.post(
        url, headers={**headers, **OCTET}, params={"filename": ".."}, content=b"x"
    )
    assert response.status_code == 422
    response = await api.client.post(
        url, headers={**headers, **OCTET}, params={"filename": "a", "tags": "ok,bad tag"}
    )
    assert response.status_code == 400
    response = await api.client.post(
        url, headers={**headers, "Content-Type": "text/plain"}, params={"filename": "a"}
    )
    assert response.status_code == 415
    # Multipart without a file part.
    response = await api.client.post(url, headers=headers, files={"other": ("a", b"x")})
    assert response.status_code == 400 and "file" in response.json()["details"]["fields"]
    response = await api.client.post(
        url,
        headers={**headers, "Content-Type": "multipart/form-data"},
        content=b"no boundary",
    )
    assert response.status_code == 400
    # Roles and scopes.
    for role in (Role.TESTER, Role.USER):
        response = await api.client.post(
            url, headers={**await api.headers(role), **OCTET}, params={"filename": "a"}
        )
        assert response.status_code == 403
        assert response.json()["details"]["required_roles"] == ["admin", "contributor"]
    only_read = await api.headers(Role.ADMIN, (Scope.RUNS_READ,))
    response = await api.client.post(url, headers={**only_read, **OCTET}, params={"filename": "a"})
    assert response.status_code == 403
    assert response.json()["details"]["missing_scopes"] == ["runs:write"]
    listed = await api.client.get(f"{BASE}/samples", headers=headers)
    assert listed.json()["pagination"]["total"] == 0


async def test_size_cap_is_413_and_keeps_nothing(api_no_workers: Api) -> None:
    api = api_no_workers
    api.ctx.settings.max_sample_bytes = 1000
    headers = await api.headers()

    async def body(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // 100):
            yield b"y" * 100

    # Streamed (no Content-Length): stopped while reading.
    response = await api.client.post(
        f"{BASE}/samples/upload",
        headers={**headers, **OCTET},
        params={"filename": "big.ts"},
        content=body(5000),
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    # Declared too large: refused before reading.
    response = await api.client.post(
        f"{BASE}/samples/upload",
        headers={**headers, **OCTET},
        params={"filename": "big.ts"},
        content=b"z" * 1001,
    )
    assert response.status_code == 413
    response = await api.client.post(
        f"{BASE}/samples/upload", headers=headers, files={"file": ("big.ts", b"w" * 5000)}
    )
    assert response.status_code == 413
    # At the limit is fine.
    await upload(api, headers, b"q" * 1000, "limit.ts")
    listed = await api.client.get(f"{BASE}/samples", headers=headers)
    assert listed.json()["pagination"]["total"] == 1
    leftovers = list((api.ctx.settings.blobs_dir / "tmp").iterdir())
    assert leftovers == []


async def test_50_mb_upload_streams_in_bounded_memory(api_no_workers: Api) -> None:
    """50 MB through the API while tracemalloc's peak stays under 16 MB."""
    api = api_no_workers
    headers = await api.headers()
    chunk = os.urandom(256 * 1024)
    count = 200  # 50 MiB
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(chunk)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield chunk

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = await api.client.post(
            f"{BASE}/samples/upload",
            headers={**headers, **OCTET},
            params={"filename": "fifty.ts"},
            content=body(),
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == count * len(chunk)
    assert response.json()["sha256"] == expected.hexdigest()
    assert peak < 16 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"

    # The download streams too, and returns the same bytes.
    got = hashlib.sha256()
    size = 0
    async with api.client.stream(
        "GET", f"{BASE}/samples/{response.json()['sample_id']}/download", headers=headers
    ) as download:
        assert download.status_code == 200
        async for part in download.aiter_bytes():
            got.update(part)
            size += len(part)
    assert size == count * len(chunk) and got.hexdigest() == expected.hexdigest()


async def test_filters_and_pages(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    headers = await api.headers()
    a = await upload(api, headers, b"aaa", "Alpha.ts", tags="dvb,teletext")
    b = await upload(api, headers, b"bbb", "beta.MP4", tags="DVB")
    c = await upload(api, headers, b"ccc", "gamma_100%.ts")
    project_id = await api.project(demo_repo)
    test = await api.client.post(
        f"{BASE}/regression-tests",
        headers=headers,
        json={
            "project_id": project_id,
            "sample_id": a["sample_id"],
            "command": "{program} {input}",
            "active": True,
        },
    )
    assert test.status_code == 201, test.text
    await api.client.post(
        f"{BASE}/regression-tests",
        headers=headers,
        json={"project_id": project_id, "sample_id": b["sample_id"], "command": "x"},
    )

    async def ids(**params: Any) -> list[int]:
        response = await api.client.get(f"{BASE}/samples", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [s["sample_id"] for s in response.json()["data"]]

    assert await ids() == [a["sample_id"], b["sample_id"], c["sample_id"]]
    assert await ids(status="active") == [a["sample_id"]]
    assert await ids(status="inactive") == [b["sample_id"], c["sample_id"]]
    assert await ids(tag="dvb") == [a["sample_id"], b["sample_id"]]
    assert await ids(tag="TELETEXT") == [a["sample_id"]]
    assert await ids(tag="tele") == []
    assert await ids(tag='x"') == []
    assert await ids(name="ALPHA") == [a["sample_id"]]
    assert await ids(name="_100%") == [c["sample_id"]]
    assert await ids(name="%") == [c["sample_id"]]
    assert await ids(extension="mp4") == [b["sample_id"]]
    assert await ids(extension="TS") == [a["sample_id"], c["sample_id"]]
    assert await ids(sha256=b["sha256"].upper()) == [b["sample_id"]]
    response = await api.client.get(f"{BASE}/samples/{a['sample_id']}", headers=headers)
    assert response.json()["regression_test_count"] == 1 and response.json()["active"] is True
    response = await api.client.get(f"{BASE}/samples/{b['sample_id']}", headers=headers)
    assert response.json()["regression_test_count"] == 1 and response.json()["active"] is False

    page = await api.client.get(f"{BASE}/samples", headers=headers, params={"limit": 2})
    assert page.json()["pagination"] == {"limit": 2, "offset": 0, "total": 3, "next_offset": 2}
    for params in ({"status": "x"}, {"sha256": "abc"}, {"extension": "a.b"}, {"limit": 0}):
        response = await api.client.get(f"{BASE}/samples", headers=headers, params=params)
        assert response.status_code == 400, params
    # Any role with runs:read may list.
    reader = await api.headers(Role.USER, (Scope.RUNS_READ,))
    assert (await api.client.get(f"{BASE}/samples", headers=reader)).status_code == 200


async def test_patch_and_delete(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    headers = await api.headers()
    sample = await upload(api, headers, b"patch me", "old.ts", tags="a")
    url = f"{BASE}/samples/{sample['sample_id']}"
    response = await api.client.patch(
        url, headers=headers, json={"name": "new.mkv", "tags": ["b", "B", "c"], "notes": "n"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "new.mkv" and body["extension"] == "mkv"
    assert body["tags"] == ["b", "c"] and body["notes"] == "n"
    response = await api.client.patch(url, headers=headers, json={"notes": None})
    assert response.json()["notes"] is None and response.json()["tags"] == ["b", "c"]
    for bad in ({"name": "a/b"}, {"tags": ["no spaces"]}, {"unknown": 1}, {"notes": 5}):
        response = await api.client.patch(url, headers=headers, json=bad)
        assert response.status_code == 400, bad
    response = await api.client.patch(url, headers=headers, json={"name": "."})
    assert response.status_code == 422
    response = await api.client.patch(f"{BASE}/samples/999999", headers=headers, json={})
    assert response.status_code == 404
    assert response.json()["details"] == {"resource": "sample", "id": 999999}

    project_id = await api.project(demo_repo)
    test = await api.client.post(
        f"{BASE}/regression-tests",
        headers=headers,
        json={"project_id": project_id, "sample_id": sample["sample_id"], "command": "x"},
    )
    response = await api.client.delete(url, headers=headers)
    assert response.status_code == 409, response.text
    assert response.json()["details"] == {"regression_test_count": 1}
    test_url = f"{BASE}/regression-tests/{test.json()['regression_test_id']}"
    assert (await api.client.delete(test_url, headers=headers)).status_code == 204
    assert (await api.client.delete(url, headers=headers)).status_code == 204
    assert (await api.client.get(url, headers=headers)).status_code == 404
    assert (await api.client.delete(url, headers=headers)).status_code == 404
    assert (await api.client.get(url + "/download", headers=headers)).status_code == 404
    # Uploading the bytes again makes a new sample (201, not the deleted one's 200).
    again = await upload(api, headers, b"patch me", "again.ts")
    assert again["name"] == "again.ts"


async def test_extra_files(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.headers(Role.CONTRIBUTOR)
    sample = await upload(api, headers, b"main sample", "main.ts")
    url = f"{BASE}/samples/{sample['sample_id']}/extra-files"
    data = os.urandom(5000)
    response = await api.client.post(
        url, headers={**headers, **OCTET}, params={"filename": "track.srt"}, content=data
    )
    assert response.status_code == 201, response.text
    extra = response.json()
    assert extra["name"] == "track.srt" and extra["size_bytes"] == 5000
    assert extra["sha256"] == hashlib.sha256(data).hexdigest()
    got = await api.client.get(f"{BASE}/samples/{sample['sample_id']}", headers=headers)
    assert got.json()["extra_files"] == [extra]

    download = await api.client.get(f"{url}/{extra['extra_id']}/download", headers=headers)
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-length"] == "5000"

    response = await api.client.post(
        url, headers={**headers, **OCTET}, params={"filename": "track.srt"}, content=b"x"
    )
    assert response.status_code == 409
    response = await api.client.post(url, headers={**headers, **OCTET}, content=b"x")
    assert response.status_code == 400  # filename is required
    response = await api.client.post(
        f"{BASE}/samples/999999/extra-files",
        headers={**headers, **OCTET},
        params={"filename": "a"},
        content=b"x",
    )
    assert response.status_code == 404
    assert response.json()["details"] == {"resource": "sample", "id": 999999}
    missing = await api.client.get(f"{url}/999999/download", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["details"] == {"resource": "extra_file", "id": 999999}

    assert (
        await api.client.delete(f"{url}/{extra['extra_id']}", headers=headers)
    ).status_code == 204
    assert (
        await api.client.delete(f"{url}/{extra['extra_id']}", headers=headers)
    ).status_code == 404
    got = await api.client.get(f"{BASE}/samples/{sample['sample_id']}", headers=headers)
    assert got.json()["extra_files"] == []


@pytest.mark.parametrize("name", ["résumé.ts", 'quo"te.ts'])
async def test_download_names_are_safe_headers(api_no_workers: Api, name: str) -> None:
    api = api_no_workers
    headers = await api.headers()
    sample = await upload(api, headers, name.encode(), name)
    assert sample["name"] == name
    response = await api.client.get(
        f"{BASE}/samples/{sample['sample_id']}/download", headers=headers
    )
    assert response.status_code == 200 and response.content == name.encode()
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and "filename*=UTF-8''" in disposition
