"""``/categories`` and ``/regression-tests``: CRUD, outputs, baselines and variants."""

from __future__ import annotations

import hashlib
from typing import Any

from runplane.domain.permissions import Role, Scope
from tests.conftest import Api, DemoRepo

BASE = "/api/v1"
OCTET = {"Content-Type": "application/octet-stream"}


async def _sample(api: Api, headers: dict[str, str], data: bytes, name: str) -> dict[str, Any]:
    response = await api.client.post(
        f"{BASE}/samples/upload",
        headers={**headers, **OCTET},
        params={"filename": name},
        content=data,
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def _category(api: Api, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = await api.client.post(f"{BASE}/categories", headers=headers, json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _test(api: Api, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await api.client.post(f"{BASE}/regression-tests", headers=headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_categories(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    headers = await api.headers(Role.CONTRIBUTOR)
    response = await api.client.post(
        f"{BASE}/categories", headers=headers, json={"name": "Teletext", "description": "TT"}
    )
    assert response.status_code == 201, response.text
    teletext = response.json()
    assert teletext == {
        "id": teletext["id"],
        "name": "Teletext",
        "description": "TT",
        "test_count": 0,
    }
    dvb = await _category(api, headers, "DVB")
    response = await api.client.post(f"{BASE}/categories", headers=headers, json={"name": "DVB"})
    assert response.status_code == 409 and response.json()["code"] == "conflict"
    for bad in ({}, {"name": ""}, {"name": "x" * 65}, {"name": " lead"}, {"name": 5}):
        response = await api.client.post(f"{BASE}/categories", headers=headers, json=bad)
        assert response.status_code == 400, bad

    listed = await api.client.get(f"{BASE}/categories", headers=headers)
    assert [c["name"] for c in listed.json()["data"]] == ["DVB", "Teletext"]
    assert listed.json()["pagination"]["total"] == 2

    sample = await _sample(api, headers, b"s", "s.ts")
    project_id = await api.project(demo_repo)
    test = await _test(
        api,
        headers,
        project_id=project_id,
        sample_id=sample["sample_id"],
        command="{program} {input}",
        categories=["DVB"],
    )
    listed = await api.client.get(f"{BASE}/categories", headers=headers)
    assert [c["test_count"] for c in listed.json()["data"]] == [1, 0]
    response = await api.client.delete(f"{BASE}/categories/{dvb['id']}", headers=headers)
    assert response.status_code == 409 and response.json()["details"] == {"test_count": 1}
    response = await api.client.patch(
        f"{BASE}/regression-tests/{test['regression_test_id']}",
        headers=headers,
        json={"categories": []},
    )
    assert response.status_code == 200 and response.json()["categories"] == []
    assert (
        await api.client.delete(f"{BASE}/categories/{dvb['id']}", headers=headers)
    ).status_code == 204
    response = await api.client.delete(f"{BASE}/categories/{dvb['id']}", headers=headers)
    assert response.status_code == 404
    assert response.json()["details"] == {"resource": "category", "id": dvb["id"]}

    tester = await api.headers(Role.TESTER)
    response = await api.client.post(f"{BASE}/categories", headers=tester, json={"name": "x"})
    assert response.status_code == 403
    reader = await api.headers(Role.USER, (Scope.RUNS_READ,))
    assert (await api.client.get(f"{BASE}/categories", headers=reader)).status_code == 200


async def test_regression_test_crud(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    headers = await api.headers()
    project_id = await api.project(demo_repo)
    sample = await _sample(api, headers, b"input bytes", "input.ts")
    other = await _sample(api, headers, b"other input", "other.mkv")
    await _category(api, headers, "DVB")
    await _category(api, headers, "CEA-608")
    baseline = await _sample(api, headers, b"expected srt", "expected.srt")

    created = await _test(
        api,
        headers,
        project_id=project_id,
        sample_id=sample["sample_id"],
        command="{program} {input} -o {output_dir}/out.srt",
        categories=["DVB", "CEA-608"],
        description="first",
        timeout_seconds=30,
        outputs=[{"filename": "out.srt", "expected_hash": baseline["sha256"].upper()}],
    )
    test_id = created["regression_test_id"]
    assert created["project_id"] == project_id and created["sample_id"] == sample["sample_id"]
    assert created["sample_name"] == "input.ts"
    assert created["active"] is False  # as in the Sample Platform
    assert created["input_type"] == "file" and created["output_type"] == "file"
    assert created["expected_rc"] == 0 and created["timeout_seconds"] == 30
    assert created["categories"] == ["CEA-608", "DVB"]
    assert created["created_at"].endswith("Z") and created["updated_at"].endswith("Z")
    [output] = created["outputs"]
    assert output["filename"] == "out.srt" and output["expected_hash"] == baseline["sha256"]
    assert output["ignore"] is False and output["variants"] == []

    url = f"{BASE}/regression-tests/{test_id}"
    got = await api.client.get(url, headers=headers)
    assert got.status_code == 200 and got.json() == created

    response = await api.client.patch(
        url,
        headers=headers,
        json={
            "active": True,
            "expected_rc": 2,
            "input_type": "stdin",
            "output_type": "stdout",
            "sample_id": other["sample_id"],
            "description": None,
            "command": None,  # null for a required field: left as it is
        },
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["active"] is True and patched["expected_rc"] == 2
    assert patched["input_type"] == "stdin" and patched["output_type"] == "stdout"
    assert patched["sample_id"] == other["sample_id"] and patched["sample_name"] == "other.mkv"
    assert patched["description"] is None and patched["command"] == created["command"]
    assert patched["categories"] == ["CEA-608", "DVB"]

    second = await _test(
        api, headers, project_id=project_id, sample_id=sample["sample_id"], command="x"
    )

    async def ids(**params: Any) -> list[int]:
        response = await api.client.get(f"{BASE}/regression-tests", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [t["regression_test_id"] for t in response.json()["data"]]

    both = [test_id, second["regression_test_id"]]
    assert await ids() == both
    assert await ids(project_id=project_id) == both
    assert await ids(project_id=999) == []
    assert await ids(active="true") == [test_id]
    assert await ids(active="false") == [second["regression_test_id"]]
    assert await ids(category="DVB") == [test_id]
    assert await ids(category="nope") == []
    assert await ids(sample_id=sample["sample_id"]) == [second["regression_test_id"]]
    for params in ({"active": "yes"}, {"project_id": 0}, {"sample_id": "a"}):
        response = await api.client.get(f"{BASE}/regression-tests", headers=headers, params=params)
        assert response.status_code == 400, params

    assert (await api.client.delete(url, headers=headers)).status_code == 204
    assert (await api.client.get(url, headers=headers)).status_code == 404
    response = await api.client.patch(url, headers=headers, json={"active": False})
    assert response.status_code == 404
    assert response.json()["details"] == {"resource": "regression_test", "id": test_id}


async def test_regression_test_rejections(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    headers = await api.headers()
    project_id = await api.project(demo_repo)
    sample = await _sample(api, headers, b"bytes", "a.ts")
    await _category(api, headers, "DVB")
    good = {"project_id": project_id, "sample_id": sample["sample_id"], "command": "x"}
    url = f"{BASE}/regression-tests"

    async def post(body: dict[str, Any]) -> Any:
        return await api.client.post(url, headers=headers, json=body)

    response = await post({**good, "categories": ["DVB", "zzz", "aaa"]})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "unprocessable"
    assert response.json()["details"] == {"unknown_categories": ["aaa", "zzz"]}
    response = await post({**good, "project_id": 999})
    assert response.status_code == 422 and response.json()["details"] == {"project_id": 999}
    response = await post({**good, "sample_id": 999})
    assert response.status_code == 422 and response.json()["details"] == {"sample_id": 999}
    response = await post({**good, "outputs": [{"filename": "o", "expected_hash": "a" * 64}]})
    assert response.status_code == 422
    assert response.json()["details"] == {"unknown_hashes": ["a" * 64]}
    response = await post({**good, "outputs": [{"filename": "o"}, {"filename": "o"}]})
    assert response.status_code == 422
    assert response.json()["details"] == {"duplicate_filenames": ["o"]}
    for bad in (
        {**good, "command": ""},
        {**good, "command": "x" * 501},
        {**good, "input_type": "pipe"},
        {**good, "output_type": "file2"},
        {**good, "expected_rc": 256},
        {**good, "expected_rc": -1},
        {**good, "timeout_seconds": 0},
        {**good, "timeout_seconds": 86401},
        {**good, "description": "d" * 1025},
        {**good, "active": "true"},
        {**good, "extra": 1},
        {**good, "outputs": [{"filename": "a/b"}]},
        {"sample_id": sample["sample_id"], "command": "x"},
    ):
        response = await post(bad)
        assert response.status_code == 400, (bad, response.text)
    # Nothing was created by any of these.
    listed = await api.client.get(url, headers=headers)
    assert listed.json()["pagination"]["total"] == 0
    for role in (Role.TESTER, Role.USER):
        response = await api.client.post(url, headers=await api.headers(role), json=good)
        assert response.status_code == 403, role
    response = await api.client.post(
        url, headers=await api.headers(Role.CONTRIBUTOR, (Scope.RUNS_WRITE,)), json=good
    )
    assert response.status_code == 201


async def test_outputs_baselines_and_variants(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    headers = await api.headers(Role.CONTRIBUTOR)
    project_id = await api.project(demo_repo)
    sample = await _sample(api, headers, b"sample", "s.ts")
    test = await _test(
        api, headers, project_id=project_id, sample_id=sample["sample_id"], command="x"
    )
    test_url = f"{BASE}/regression-tests/{test['regression_test_id']}"

    response = await api.client.post(
        f"{test_url}/outputs", headers=headers, json={"filename": "out.srt"}
    )
    assert response.status_code == 201, response.text
    output = response.json()
    assert output == {
        "output_id": output["output_id"],
        "filename": "out.srt",
        "expected_hash": None,
        "ignore": False,
        "variants": [],
    }
    out_url = f"{test_url}/outputs/{output['output_id']}"
    response = await api.client.post(
        f"{test_url}/outputs", headers=headers, json={"filename": "out.srt"}
    )
    assert response.status_code == 409
    response = await api.client.post(
        f"{test_url}/outputs", headers=headers, json={"filename": ".."}
    )
    assert response.status_code == 422

    # No baseline yet.
    response = await api.client.get(f"{out_url}/download", headers=headers)
    assert response.status_code == 404
    assert response.json()["details"] == {"resource": "baseline", "id": output["output_id"]}

    baseline = b"1\n00:00:01,000 --> 00:00:02,000\nHello\n"
    response = await api.client.put(
        f"{out_url}/baseline", headers={**headers, **OCTET}, content=baseline
    )
    assert response.status_code == 200, response.text
    assert response.json()["expected_hash"] == hashlib.sha256(baseline).hexdigest()
    download = await api.client.get(f"{out_url}/download", headers=headers)
    assert download.status_code == 200 and download.content == baseline
    assert 'filename="out.srt"' in download.headers["content-disposition"]
    response = await api.client.put(
        f"{out_url}/baseline", headers={**headers, "Content-Type": "text/plain"}, content=b"x"
    )
    assert response.status_code == 415

    # Variants: the hash of any stored file.
    variant_bytes = b"1\n00:00:01,000 --> 00:00:02,000\nHello!\n"
    stored = await _sample(api, headers, variant_bytes, "variant.srt")
    response = await api.client.post(
        f"{out_url}/variants", headers=headers, json={"sha256": stored["sha256"]}
    )
    assert response.status_code == 201, response.text
    variant = response.json()
    assert variant == {"variant_id": variant["variant_id"], "sha256": stored["sha256"]}
    response = await api.client.post(
        f"{out_url}/variants", headers=headers, json={"sha256": stored["sha256"].upper()}
    )
    assert response.status_code == 409
    response = await api.client.post(
        f"{out_url}/variants", headers=headers, json={"sha256": "b" * 64}
    )
    assert response.status_code == 422
    assert response.json()["details"] == {"unknown_hashes": ["b" * 64]}
    response = await api.client.post(f"{out_url}/variants", headers=headers, json={"sha256": "x"})
    assert response.status_code == 400

    listed = await api.client.get(f"{out_url}/variants", headers=headers)
    assert listed.status_code == 200 and listed.json()["data"] == [variant]
    variant_url = f"{out_url}/variants/{variant['variant_id']}"
    download = await api.client.get(f"{variant_url}/download", headers=headers)
    assert download.status_code == 200 and download.content == variant_bytes
    got = await api.client.get(test_url, headers=headers)
    assert got.json()["outputs"][0]["variants"] == [variant]

    # PATCH: rename, ignore, set the baseline by hash, clear it.
    response = await api.client.patch(
        out_url, headers=headers, json={"filename": "renamed.srt", "ignore": True}
    )
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "renamed.srt" and response.json()["ignore"] is True
    assert response.json()["variants"] == [variant]
    response = await api.client.patch(
        out_url, headers=headers, json={"expected_hash": stored["sha256"]}
    )
    assert response.json()["expected_hash"] == stored["sha256"]
    response = await api.client.patch(out_url, headers=headers, json={"expected_hash": "c" * 64})
    assert response.status_code == 422
    response = await api.client.patch(out_url, headers=headers, json={"expected_hash": None})
    assert response.status_code == 200 and response.json()["expected_hash"] is None
    second = await api.client.post(
        f"{test_url}/outputs",
        headers=headers,
        json={"filename": "second.txt", "expected_hash": stored["sha256"], "ignore": True},
    )
    assert second.status_code == 201, second.text
    response = await api.client.patch(out_url, headers=headers, json={"filename": "second.txt"})
    assert response.status_code == 409

    # Deletes, and ids that belong to another parent read as absent.
    other = await _test(
        api, headers, project_id=project_id, sample_id=sample["sample_id"], command="y"
    )
    foreign = f"{BASE}/regression-tests/{other['regression_test_id']}/outputs/{output['output_id']}"
    response = await api.client.get(f"{foreign}/variants", headers=headers)
    assert response.status_code == 404
    assert response.json()["details"] == {"resource": "output", "id": output["output_id"]}
    assert (await api.client.delete(variant_url, headers=headers)).status_code == 204
    response = await api.client.delete(variant_url, headers=headers)
    assert response.status_code == 404
    assert response.json()["details"]["resource"] == "variant"
    assert (await api.client.delete(out_url, headers=headers)).status_code == 204
    assert (await api.client.delete(out_url, headers=headers)).status_code == 404
    got = await api.client.get(test_url, headers=headers)
    assert [o["filename"] for o in got.json()["outputs"]] == ["second.txt"]

    # Deleting a test deletes its outputs and variants with it.
    second_id = second.json()["output_id"]
    response = await api.client.post(
        f"{test_url}/outputs/{second_id}/variants",
        headers=headers,
        json={"sha256": sample["sha256"]},
    )
    assert response.status_code == 201
    assert (await api.client.delete(test_url, headers=headers)).status_code == 204
    response = await api.client.get(f"{test_url}/outputs/{second_id}/variants", headers=headers)
    assert response.status_code == 404


async def test_baseline_upload_size_cap_and_missing_ids(
    api_no_workers: Api, demo_repo: DemoRepo
) -> None:
    api = api_no_workers
    headers = await api.headers()
    project_id = await api.project(demo_repo)
    sample = await _sample(api, headers, b"sample", "s.ts")
    test = await _test(
        api,
        headers,
        project_id=project_id,
        sample_id=sample["sample_id"],
        command="x",
        outputs=[{"filename": "out.txt"}],
    )
    output_id = test["outputs"][0]["output_id"]
    url = f"{BASE}/regression-tests/{test['regression_test_id']}/outputs/{output_id}/baseline"
    api.ctx.settings.max_sample_bytes = 10
    response = await api.client.put(url, headers={**headers, **OCTET}, content=b"x" * 11)
    assert response.status_code == 413
    response = await api.client.put(url, headers={**headers, **OCTET}, content=b"x" * 10)
    assert response.status_code == 200
    missing = f"{BASE}/regression-tests/999999/outputs/{output_id}/baseline"
    response = await api.client.put(missing, headers={**headers, **OCTET}, content=b"x")
    assert response.status_code == 404
    assert response.json()["details"] == {"resource": "regression_test", "id": 999999}
