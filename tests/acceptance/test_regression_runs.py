"""Regression runs end to end: a real tiny program over a handful of samples."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from runplane.store.database import unit_of_work
from runplane.store.models import (
    OutputVariant,
    RegressionOutput,
    RegressionTest,
    Sample,
    SampleExtraFile,
)
from tests.acceptance.test_runs_api import TERMINAL, _alive
from tests.conftest import Api

PROGRAM = """#!/usr/bin/env python3
import os, sys, time
src, out_dir = sys.argv[1], sys.argv[2]
text = open(src).read()
if text.startswith("SLEEP"):
    with open(os.environ["PID_DIR"] + "/" + str(os.getpid()), "w"):
        pass
    time.sleep(float(text.split()[1]))
if "MISSING" not in text:
    open(os.path.join(out_dir, "out.txt"), "w").write(text.upper())
print("processed", src)
if "EXIT3" in text:
    sys.exit(3)
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _git_repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "tool"
    repo.mkdir()
    (repo / "tool.py").write_text(PROGRAM)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "tool"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return repo, head


async def _suite(
    api: Api,
    project_id: int,
    cases: dict[str, tuple[bytes, bytes | None]],
    variants: dict[str, bytes] | None = None,
) -> dict[str, int]:
    """Samples and tests straight into the store: name -> (input, baseline)."""
    ids: dict[str, int] = {}
    async with unit_of_work(api.ctx.sessions) as session:
        for name, (data, baseline) in cases.items():
            path = api.ctx.settings.data_dir / f"upload-{name}"
            path.write_bytes(data)
            blob = await api.ctx.blobs.put_file(path)
            sample = Sample(
                sha256=blob.sha256,
                name=f"{name}.txt",
                extension="txt",
                size_bytes=blob.size_bytes,
                tags=["t"],
            )
            session.add(sample)
            await session.flush()
            test = RegressionTest(
                project_id=project_id,
                sample_id=sample.id,
                command="{program} {input} {output_dir}",
                active=True,
            )
            session.add(test)
            await session.flush()
            expected = None
            if baseline is not None:
                path.write_bytes(baseline)
                expected = (await api.ctx.blobs.put_file(path)).sha256
            output = RegressionOutput(
                regression_test_id=test.id, filename="out.txt", expected_hash=expected
            )
            session.add(output)
            await session.flush()
            if variants and name in variants:
                session.add(OutputVariant(output_id=output.id, sha256=sha(variants[name])))
            ids[name] = test.id
    return ids


@pytest.fixture
async def tool(api: Api, tmp_path: Path) -> tuple[int, str]:
    repo, head = _git_repo(tmp_path)
    project_id = await api.project(
        repo,
        repository="acme/tool",
        test_command=None,
        program="tool.py",
        build_command="chmod +x tool.py",
        env={"PID_DIR": str(tmp_path)},
    )
    return project_id, head


async def test_regression_run_statuses_summary_diff_and_approval(
    api: Api, tool: tuple[int, str]
) -> None:
    project_id, head = tool
    ids = await _suite(
        api,
        project_id,
        {
            "match": (b"hello", b"HELLO"),
            "mismatch": (b"world", b"WORLD!!\n"),
            "missing": (b"MISSING", b"X"),
            "exit": (b"EXIT3", b"EXIT3"),
            "variant": (b"variant", b"something else"),
        },
        variants={"variant": b"VARIANT"},
    )
    h = await api.headers()
    run = await api.submit(h, head, repository="acme/tool")
    done = await api.wait_for(h, run["run_id"], TERMINAL)
    assert done["status"] == "fail", done

    page = (await api.client.get(f"/api/v1/runs/{run['run_id']}/samples", headers=h)).json()
    status = {row["regression_test_id"]: row for row in page["data"]}
    assert {name: status[i]["status"] for name, i in ids.items()} == {
        "match": "pass",
        "mismatch": "fail",
        "missing": "missing_output",
        "exit": "fail",
        "variant": "pass",
    }
    assert status[ids["exit"]]["exit_code"] == 3 and status[ids["exit"]]["expected_rc"] == 0
    mismatch = status[ids["mismatch"]]
    assert mismatch["outputs"][0]["status"] == "diff_mismatch"
    assert mismatch["outputs"][0]["actual_hash"] == sha(b"WORLD")
    assert status[ids["missing"]]["outputs"][0]["status"] == "missing_output"

    summary = (await api.client.get(f"/api/v1/runs/{run['run_id']}/summary", headers=h)).json()
    assert (
        summary["total_samples"],
        summary["pass_count"],
        summary["fail_count"],
        summary["missing_output_count"],
        summary["skipped_count"],
    ) == (5, 2, 2, 1, 0)

    base = (
        f"/api/v1/runs/{run['run_id']}/samples/{mismatch['sample_id']}/regression-tests/"
        f"{ids['mismatch']}/outputs/{mismatch['outputs'][0]['output_id']}"
    )
    actual = await api.client.get(base + "/actual", headers=h)
    assert actual.status_code == 200 and actual.content == b"WORLD"
    expected = await api.client.get(base + "/expected", headers=h)
    assert expected.content == b"WORLD!!\n"
    diff = (await api.client.get(base + "/diff", headers=h)).json()
    assert "-WORLD!!" in diff["diff"] and "+WORLD" in diff["diff"] and not diff["binary"]

    errors = (await api.client.get(f"/api/v1/runs/{run['run_id']}/error-summary", headers=h)).json()
    kinds = {b["key"]: b["count"] for b in errors["data"]}
    assert kinds == {"diff_mismatch": 1, "missing_output": 1, "exit_code_mismatch": 1}

    approval = await api.client.post(
        f"/api/v1/runs/{run['run_id']}/samples/{mismatch['sample_id']}/baseline-approval",
        headers=h,
        json={
            "regression_id": ids["mismatch"],
            "output_id": mismatch["outputs"][0]["output_id"],
            "reason": "upper-casing without the exclamation marks is right",
        },
    )
    assert approval.status_code == 202, approval.text
    assert approval.json()["new_hash"] == sha(b"WORLD")
    again = await api.client.post(
        f"/api/v1/runs/{run['run_id']}/samples/{mismatch['sample_id']}/baseline-approval",
        headers=h,
        json={
            "regression_id": ids["mismatch"],
            "output_id": mismatch["outputs"][0]["output_id"],
            "reason": "approving the same output twice",
        },
    )
    assert again.status_code == 422

    retry = await api.client.post(
        f"/api/v1/runs/{run['run_id']}/retry", headers=h, json={"failed_only": True}
    )
    assert retry.status_code == 202, retry.text
    rerun = await api.wait_for(h, retry.json()["new_run_id"], TERMINAL)
    rows = (await api.client.get(f"/api/v1/runs/{rerun['run_id']}/samples", headers=h)).json()
    assert {r["regression_test_id"]: r["status"] for r in rows["data"]} == {
        ids["mismatch"]: "pass",
        ids["missing"]: "missing_output",
        ids["exit"]: "fail",
    }
    history = (
        await api.client.get(f"/api/v1/samples/{mismatch['sample_id']}/history", headers=h)
    ).json()
    assert [e["status"] for e in history["data"]] == ["pass", "fail"]
    assert history["data"][1]["failure_signature"].startswith("diff_mismatch:output:")
    failing = (
        await api.client.get(
            f"/api/v1/samples/{mismatch['sample_id']}/history",
            params={"status": "fail", "branch": "master"},
            headers=h,
        )
    ).json()
    assert [e["run_id"] for e in failing["data"]] == [run["run_id"]]
    later = (
        await api.client.get(
            f"/api/v1/samples/{mismatch['sample_id']}/history",
            params={"created_after": "2999-01-01T00:00:00Z"},
            headers=h,
        )
    ).json()
    assert later["pagination"]["total"] == 0
    tagged = (
        await api.client.get(
            f"/api/v1/runs/{run['run_id']}/samples", params={"tag": "T", "name": "mis"}, headers=h
        )
    ).json()
    assert [r["sample_name"] for r in tagged["data"]] == ["mismatch.txt", "missing.txt"]
    untagged = (
        await api.client.get(
            f"/api/v1/runs/{run['run_id']}/samples", params={"tag": "nope"}, headers=h
        )
    ).json()
    assert untagged["pagination"]["total"] == 0
    no_category = (
        await api.client.get(
            f"/api/v1/runs/{run['run_id']}/samples", params={"category": "video"}, headers=h
        )
    ).json()
    assert no_category["pagination"]["total"] == 0

    artifacts = (await api.client.get(f"/api/v1/runs/{run['run_id']}/artifacts", headers=h)).json()
    types = sorted(a["type"] for a in artifacts["data"])
    assert types.count("actual_output") == 4 and "build_log" in types


async def test_selected_ids_must_be_active(api: Api, tool: tuple[int, str]) -> None:
    project_id, head = tool
    ids = await _suite(api, project_id, {"a": (b"a", b"A"), "b": (b"b", b"B")})
    h = await api.headers()
    bad = await api.client.post(
        "/api/v1/runs",
        headers=h,
        json={
            "repository": "acme/tool",
            "commit_sha": head,
            "platform": "linux",
            "regression_test_ids": [ids["a"], 9999],
        },
    )
    assert bad.status_code == 422 and bad.json()["details"]["inactive_ids"] == [9999]
    one = await api.submit(h, head, repository="acme/tool", regression_test_ids=[ids["b"]])
    done = await api.wait_for(h, one["run_id"], TERMINAL)
    assert done["status"] == "pass"
    config = (await api.client.get(f"/api/v1/runs/{one['run_id']}/samples", headers=h)).json()
    assert [r["regression_test_id"] for r in config["data"]] == [ids["b"]]


async def test_cancel_mid_suite_keeps_finished_and_leaves_the_rest_not_started(
    api: Api, tool: tuple[int, str], tmp_path: Path
) -> None:
    project_id, head = tool
    async with unit_of_work(api.ctx.sessions) as session:
        project = await session.get(
            __import__("runplane.store.models").store.models.Project, project_id
        )
        assert project is not None
        project.regression_concurrency = 2
    await _suite(
        api,
        project_id,
        {
            "fast": (b"quick", b"QUICK"),
            "slow1": (b"SLEEP 60", None),
            "slow2": (b"SLEEP 61", None),
            "later": (b"later", b"LATER"),
        },
    )
    h = await api.headers()
    run = await api.submit(h, head, repository="acme/tool")
    for _ in range(200):
        if len([p for p in tmp_path.iterdir() if p.name.isdigit()]) == 2:
            break
        await asyncio.sleep(0.05)
    pids = [int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()]
    assert len(pids) == 2
    response = await api.client.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=h)
    assert response.json()["status"] == "accepted"
    done = await api.wait_for(h, run["run_id"], TERMINAL)
    assert done["status"] == "canceled"
    for pid in pids:
        assert not _alive(pid)
    rows = (await api.client.get(f"/api/v1/runs/{run['run_id']}/samples", headers=h)).json()
    statuses = sorted(r["status"] for r in rows["data"])
    assert statuses == ["not_started", "not_started", "not_started", "pass"]


async def test_extra_files_sit_beside_the_input(api: Api, tool: tuple[int, str]) -> None:
    project_id, head = tool
    ids = await _suite(api, project_id, {"with-extra": (b"input\n", b"input\nconfig\n")})
    async with unit_of_work(api.ctx.sessions) as session:
        test = await session.get(RegressionTest, ids["with-extra"])
        assert test is not None
        test.command = "cat {input} cfg.txt > {output_dir}/out.txt"
        path = api.ctx.settings.data_dir / "cfg"
        path.write_bytes(b"config\n")
        blob = await api.ctx.blobs.put_file(path)
        session.add(
            SampleExtraFile(
                sample_id=test.sample_id,
                name="cfg.txt",
                sha256=blob.sha256,
                size_bytes=blob.size_bytes,
            )
        )
    h = await api.headers()
    run = await api.submit(h, head, repository="acme/tool")
    done = await api.wait_for(h, run["run_id"], TERMINAL)
    assert done["status"] == "pass", done


async def test_tests_a_run_never_reached_count_as_skipped(api: Api, tmp_path: Path) -> None:
    repo, head = _git_repo(tmp_path)
    project_id = await api.project(
        repo,
        repository="acme/broken",
        test_command=None,
        program="tool.py",
        build_command="exit 1",
    )
    await _suite(api, project_id, {"a": (b"a1", b"A1"), "b": (b"b1", b"B1")})
    h = await api.headers()
    run = await api.submit(h, head, repository="acme/broken")
    done = await api.wait_for(h, run["run_id"], TERMINAL)
    assert (done["status"], done["status_reason"]) == ("error", "build_failed")
    summary = (await api.client.get(f"/api/v1/runs/{run['run_id']}/summary", headers=h)).json()
    assert (summary["total_samples"], summary["skipped_count"], summary["pass_count"]) == (2, 2, 0)


async def test_a_variant_match_serves_the_variant_as_expected(
    api: Api, tool: tuple[int, str]
) -> None:
    project_id, head = tool
    await _suite(api, project_id, {"v": (b"vv", b"other")}, variants={"v": b"VV"})
    h = await api.headers()
    run = await api.submit(h, head, repository="acme/tool")
    await api.wait_for(h, run["run_id"], TERMINAL)
    row = (await api.client.get(f"/api/v1/runs/{run['run_id']}/samples", headers=h)).json()
    sample = row["data"][0]
    output = sample["outputs"][0]
    assert output["status"] == "match" and output["expected_hash"] == sha(b"VV")
    base = (
        f"/api/v1/runs/{run['run_id']}/samples/{sample['sample_id']}/regression-tests/"
        f"{sample['regression_test_id']}/outputs/{output['output_id']}"
    )
    diff = (await api.client.get(base + "/diff", headers=h)).json()
    assert diff["identical"] is True
    assert (await api.client.get(base + "/expected", headers=h)).content == b"VV"
