"""The run lifecycle over HTTP: submit, watch, cancel, retry, restart (Sample Platform)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import psutil
import pytest

from runplane.domain.permissions import Role
from tests.conftest import Api, DemoRepo, eventually

TERMINAL = {"pass", "fail", "error", "canceled"}


async def test_failing_commit_runs_to_fail_with_results_logs_and_progress(
    api: Api, demo_repo: DemoRepo
) -> None:
    await api.project(demo_repo)
    h = await api.headers()
    run = await api.submit(h, demo_repo.failing_sha)
    assert run["status"] == "queued"
    assert run["run_id"] >= 1 and run["commit_short"] == demo_repo.failing_sha[:7]

    running = await api.wait_for(h, run["run_id"], {"running"} | TERMINAL)
    done = await api.wait_for(h, run["run_id"], TERMINAL)
    assert running["status"] in {"running", "fail"}
    assert done["status"] == "fail" and done["exit_code"] == 1
    assert done["completed_at"].endswith("Z") and len(done["completed_at"]) == 20

    samples = (await api.client.get(f"/api/v1/runs/{run['run_id']}/samples", headers=h)).json()
    by_name = {s["sample_name"]: s["status"] for s in samples["data"]}
    assert by_name == {"test_addition": "pass", "test_subtraction": "fail"}
    one = samples["data"][1]
    got = await api.client.get(
        f"/api/v1/runs/{run['run_id']}/samples/{one['regression_test_id']}", headers=h
    )
    assert got.status_code == 200 and got.json()["sample_name"] == one["sample_name"]

    summary = (await api.client.get(f"/api/v1/runs/{run['run_id']}/summary", headers=h)).json()
    assert (summary["total_samples"], summary["pass_count"], summary["fail_count"]) == (2, 1, 1)

    logs = (await api.client.get(f"/api/v1/runs/{run['run_id']}/logs", headers=h)).json()
    text = "\n".join(line["message"] for line in logs["data"])
    assert "running test_subtraction" in text and "1 passed, 1 failed" in text

    progress = (await api.client.get(f"/api/v1/runs/{run['run_id']}/progress", headers=h)).json()
    states = [e["status"] for e in progress["data"]]
    assert states[0] == "preparation" and "testing" in states and states[-1] == "completed"


async def test_passing_commit_passes(api: Api, demo_repo: DemoRepo) -> None:
    await api.project(demo_repo)
    h = await api.headers()
    run = await api.submit(h, demo_repo.passing_sha)
    done = await api.wait_for(h, run["run_id"], TERMINAL)
    assert done["status"] == "pass"
    assert done["run_errors"] == "false"


async def test_log_is_readable_while_the_run_runs(api: Api, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "echo first; sleep 3; echo second")
    await api.project(repo, repository="o/slow", test_command="sh t.sh")
    h = await api.headers()
    run = await api.submit(h, _head(repo), repository="o/slow")

    async def first_line_visible() -> bool:
        r = await api.client.get(f"/api/v1/runs/{run['run_id']}/logs", headers=h)
        if r.status_code != 200:
            return False
        body = r.json()
        return any(line["message"] == "first" for line in body["data"])

    await eventually(first_line_visible, timeout=15)
    now = (await api.client.get(f"/api/v1/runs/{run['run_id']}", headers=h)).json()
    assert now["status"] == "running"
    page = (await api.client.get(f"/api/v1/runs/{run['run_id']}/logs", headers=h)).json()
    assert page["pagination"]["next_cursor"] is not None  # more may come
    await api.wait_for(h, run["run_id"], TERMINAL)


async def test_log_cursor_pages_without_gaps(api: Api, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "for i in $(seq 1 250); do echo line-$i; done")
    await api.project(repo, repository="o/many", test_command="sh t.sh")
    h = await api.headers()
    run = await api.submit(h, _head(repo), repository="o/many")
    await api.wait_for(h, run["run_id"], TERMINAL)
    seen: list[str] = []
    cursor: str | None = "0"
    while cursor is not None:
        page = (
            await api.client.get(
                f"/api/v1/runs/{run['run_id']}/logs",
                params={"cursor": cursor, "limit": 100, "source": "test_runner"},
                headers=h,
            )
        ).json()
        seen += [line["message"] for line in page["data"]]
        cursor = page["pagination"]["next_cursor"]
    assert seen == [f"line-{i}" for i in range(1, 251)]


async def test_cancel_queued_run_then_no_op(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    await api.project(demo_repo)
    h = await api.headers(Role.TESTER)
    run = await api.submit(h, demo_repo.passing_sha)
    first = await api.client.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=h)
    assert first.status_code == 202
    assert first.json() == {
        "run_id": run["run_id"],
        "new_run_id": None,
        "action": "cancel",
        "status": "accepted",
        "message": "Run has been canceled.",
    }
    second = await api.client.post(
        f"/api/v1/runs/{run['run_id']}/cancel", headers=h, json={"reason": "x"}
    )
    # The terminal check comes before reason validation: a bad reason still gets no_op.
    assert second.status_code == 202
    assert second.json()["status"] == "no_op"
    assert second.json()["message"] == "Run is already in terminal state: canceled"
    got = (await api.client.get(f"/api/v1/runs/{run['run_id']}", headers=h)).json()
    assert got["status"] == "canceled" and got["completed_at"] is not None
    trail = (await api.client.get(f"/api/v1/runs/{run['run_id']}/progress", headers=h)).json()
    assert trail["data"][-1]["status"] == "canceled"
    assert trail["data"][-1]["message"].startswith("Canceled by tester-")


async def test_cancel_reason_is_validated_and_recorded(
    api_no_workers: Api, demo_repo: DemoRepo
) -> None:
    api = api_no_workers
    await api.project(demo_repo)
    h = await api.headers()
    run = await api.submit(h, demo_repo.passing_sha)
    url = f"/api/v1/runs/{run['run_id']}/cancel"
    short = await api.client.post(url, headers=h, json={"reason": "  ab "})
    assert short.status_code == 400
    assert short.json()["code"] == "validation_error"
    assert short.json()["details"]["fields"]["reason"] == ["Minimum length is 5."]
    wrong_type = await api.client.post(
        url, headers={**h, "Content-Type": "text/plain"}, content=b"stop it"
    )
    assert wrong_type.status_code == 415
    ok = await api.client.post(url, headers=h, json={"reason": "flaky infrastructure"})
    assert ok.json()["status"] == "accepted"
    trail = (await api.client.get(f"/api/v1/runs/{run['run_id']}/progress", headers=h)).json()
    assert trail["data"][-1]["message"].endswith("via API: flaky infrastructure")


async def test_cancel_running_run_kills_its_process_tree(api: Api, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    script = (
        # A child that ignores SIGTERM, and a grandchild that escapes the process group.
        f"sh -c 'trap \"\" TERM; echo $$ >> {pid_file}; sleep 300' &\n"
        f"setsid sh -c 'echo $$ >> {pid_file}; sleep 300' &\n"
        f"echo $$ >> {pid_file}\n"
        "echo started\n"
        "sleep 300\n"
    )
    repo = _repo(tmp_path, script)
    await api.project(repo, repository="o/hang", test_command="sh t.sh")
    h = await api.headers(Role.CONTRIBUTOR)
    run = await api.submit(h, _head(repo), repository="o/hang")

    async def three_pids() -> bool:
        return pid_file.exists() and len(pid_file.read_text().split()) == 3

    await eventually(three_pids, timeout=20)
    pids = [int(p) for p in pid_file.read_text().split()]
    assert all(psutil.pid_exists(p) for p in pids)

    response = await api.client.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=h)
    assert response.status_code == 202 and response.json()["status"] == "accepted"
    done = await api.wait_for(h, run["run_id"], TERMINAL, timeout=20)
    assert done["status"] == "canceled"
    for pid in pids:
        assert not _alive(pid), f"process {pid} survived the cancel"
    again = await api.client.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=h)
    assert again.json()["status"] == "no_op"
    workspaces = list((api.ctx.settings.workspaces_dir).glob("run-*"))
    assert workspaces == []


async def test_time_limit_kills_tree_and_ends_in_error(api: Api, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    repo = _repo(tmp_path, f"sh -c 'trap \"\" TERM; echo $$ > {pid_file}; sleep 300' & sleep 300")
    await api.project(
        repo,
        repository="o/slow",
        test_command="sh t.sh",
        timeout_seconds=2,
        grace_period_seconds=0.5,
    )
    h = await api.headers()
    run = await api.submit(h, _head(repo), repository="o/slow")
    done = await api.wait_for(h, run["run_id"], TERMINAL, timeout=30)
    assert done["status"] == "error"
    assert done["internal_status"] == "timed_out" and done["status_reason"] == "timeout"
    assert not _alive(int(pid_file.read_text()))
    trail = (await api.client.get(f"/api/v1/runs/{run['run_id']}/progress", headers=h)).json()
    assert "Time limit of 2 s exceeded" in trail["data"][-1]["message"]


async def test_missing_commit_and_failed_build_end_in_error(api: Api, demo_repo: DemoRepo) -> None:
    await api.project(demo_repo)
    await api.project(demo_repo, repository="demo/broken-build", build_command="exit 3")
    h = await api.headers()
    missing = await api.submit(h, "0" * 40)
    broken = await api.submit(h, demo_repo.passing_sha, repository="demo/broken-build")
    m = await api.wait_for(h, missing["run_id"], TERMINAL)
    b = await api.wait_for(h, broken["run_id"], TERMINAL)
    assert (m["status"], m["status_reason"]) == ("error", "commit_not_found")
    assert (b["status"], b["status_reason"]) == ("error", "build_failed")
    trail = (await api.client.get(f"/api/v1/runs/{m['run_id']}/progress", headers=h)).json()
    assert "not found" in trail["data"][-1]["message"]


async def test_retry_creates_a_new_run_and_keeps_the_original(
    api: Api, demo_repo: DemoRepo
) -> None:
    await api.project(demo_repo)
    h = await api.headers()
    original = await api.submit(h, demo_repo.failing_sha, branch="feature/x", pull_request=7)
    before = await api.wait_for(h, original["run_id"], TERMINAL)
    samples_before = (
        await api.client.get(f"/api/v1/runs/{original['run_id']}/samples", headers=h)
    ).json()

    response = await api.client.post(
        f"/api/v1/runs/{original['run_id']}/retry", headers=h, json={"reason": "rerun please"}
    )
    assert response.status_code == 202
    result = response.json()
    assert result["run_id"] == original["run_id"] and result["action"] == "retry"
    assert result["status"] == "accepted" and result["new_run_id"] != original["run_id"]

    new = await api.wait_for(h, result["new_run_id"], TERMINAL)
    assert new["retry_of"] == original["run_id"]
    for field in ("repository", "branch", "commit_sha", "pull_request", "platform"):
        assert new[field] == before[field]
    after = (await api.client.get(f"/api/v1/runs/{original['run_id']}", headers=h)).json()
    assert after == before
    samples_after = (
        await api.client.get(f"/api/v1/runs/{original['run_id']}/samples", headers=h)
    ).json()
    assert samples_after == samples_before


async def test_failed_only_retry_runs_just_the_failed_tests(api: Api, demo_repo: DemoRepo) -> None:
    await api.project(demo_repo)
    h = await api.headers()
    failing = await api.submit(h, demo_repo.failing_sha)
    await api.wait_for(h, failing["run_id"], TERMINAL)
    response = await api.client.post(
        f"/api/v1/runs/{failing['run_id']}/retry", headers=h, json={"failed_only": True}
    )
    assert response.status_code == 202
    new_id = response.json()["new_run_id"]
    new = await api.wait_for(h, new_id, TERMINAL)
    assert new["selected_tests"] == ["test_subtraction"]
    samples = (await api.client.get(f"/api/v1/runs/{new_id}/samples", headers=h)).json()
    assert [s["sample_name"] for s in samples["data"]] == ["test_subtraction"]

    passing = await api.submit(h, demo_repo.passing_sha)
    await api.wait_for(h, passing["run_id"], TERMINAL)
    nothing = await api.client.post(
        f"/api/v1/runs/{passing['run_id']}/retry", headers=h, json={"failed_only": True}
    )
    assert nothing.status_code == 422 and nothing.json()["code"] == "unprocessable"


async def test_failed_only_needs_a_selectable_test_command(api: Api, demo_repo: DemoRepo) -> None:
    await api.project(demo_repo, test_command="python3 run_tests.py")
    h = await api.headers()
    run = await api.submit(h, demo_repo.failing_sha)
    await api.wait_for(h, run["run_id"], TERMINAL)
    response = await api.client.post(
        f"/api/v1/runs/{run['run_id']}/retry", headers=h, json={"failed_only": True}
    )
    assert response.status_code == 422
    assert "{failed_tests}" in response.json()["message"]


async def test_retry_while_running_leaves_the_running_run_alone(api: Api, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "sleep 2")
    await api.project(repo, repository="o/slow", test_command="sh t.sh")
    h = await api.headers()
    run = await api.submit(h, _head(repo), repository="o/slow")
    await api.wait_for(h, run["run_id"], {"running"})
    response = await api.client.post(f"/api/v1/runs/{run['run_id']}/retry", headers=h)
    assert response.status_code == 202
    first = await api.wait_for(h, run["run_id"], TERMINAL)
    second = await api.wait_for(h, response.json()["new_run_id"], TERMINAL)
    assert first["status"] == second["status"] == "pass"


async def test_restart_reuses_the_id_and_wipes_results(api: Api, demo_repo: DemoRepo) -> None:
    await api.project(demo_repo)
    h = await api.headers()
    run = await api.submit(h, demo_repo.failing_sha)
    await api.wait_for(h, run["run_id"], TERMINAL)
    response = await api.client.post(f"/api/v1/runs/{run['run_id']}/restart", headers=h)
    assert response.status_code == 202
    assert response.json() == {
        "run_id": run["run_id"],
        "new_run_id": None,
        "action": "restart",
        "status": "accepted",
        "message": "Run has been queued to run again.",
    }
    trail = (await api.client.get(f"/api/v1/runs/{run['run_id']}/progress", headers=h)).json()
    assert trail["data"][0]["message"].startswith("Restarted by")
    done = await api.wait_for(h, run["run_id"], TERMINAL)
    assert done["status"] == "fail"
    samples = (await api.client.get(f"/api/v1/runs/{run['run_id']}/samples", headers=h)).json()
    assert samples["pagination"]["total"] == 2


async def test_restart_of_a_running_run_is_a_conflict(api: Api, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "sleep 30")
    await api.project(repo, repository="o/slow", test_command="sh t.sh")
    h = await api.headers()
    run = await api.submit(h, _head(repo), repository="o/slow")
    await api.wait_for(h, run["run_id"], {"running"})
    response = await api.client.post(f"/api/v1/runs/{run['run_id']}/restart", headers=h)
    assert response.status_code == 409 and response.json()["code"] == "conflict"
    await api.client.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=h)
    await api.wait_for(h, run["run_id"], TERMINAL)


async def test_idempotency_key(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    await api.project(demo_repo)
    h = await api.headers()
    body = {
        "repository": "demo/calculator",
        "commit_sha": demo_repo.passing_sha,
        "platform": "linux",
    }
    keyed = {**h, "Idempotency-Key": "build-42"}
    first = await api.client.post("/api/v1/runs", headers=keyed, json=body)
    again = await api.client.post("/api/v1/runs", headers=keyed, json=body)
    assert first.status_code == again.status_code == 202
    assert first.json()["run_id"] == again.json()["run_id"]
    other = await api.client.post(
        "/api/v1/runs", headers=keyed, json={**body, "commit_sha": demo_repo.failing_sha}
    )
    assert other.status_code == 409 and other.json()["code"] == "conflict"
    concurrent = await asyncio.gather(
        *[
            api.client.post("/api/v1/runs", headers={**h, "Idempotency-Key": "race"}, json=body)
            for _ in range(5)
        ]
    )
    assert len({r.json()["run_id"] for r in concurrent}) == 1
    listed = (await api.client.get("/api/v1/runs", headers=h)).json()
    assert listed["pagination"]["total"] == 2


async def test_submit_validation(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    await api.project(demo_repo)
    h = await api.headers()
    good = {
        "repository": "demo/calculator",
        "commit_sha": demo_repo.passing_sha,
        "platform": "linux",
    }
    cases = [
        ({**good, "commit_sha": "abc"}, 400, "validation_error"),
        ({**good, "platform": "mac"}, 400, "validation_error"),
        ({**good, "unknown": 1}, 400, "validation_error"),
        ({**good, "regression_test_ids": []}, 400, "validation_error"),
        ({**good, "repository": "nobody/nothing"}, 422, "unprocessable"),
        ({**good, "platform": "windows"}, 422, "unprocessable"),
        ({**good, "regression_test_ids": [3, 1]}, 422, "unprocessable"),
    ]
    for body, status, code in cases:
        response = await api.client.post("/api/v1/runs", headers=h, json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), body
        assert isinstance(response.json()["details"], dict)
    inactive = await api.client.post(
        "/api/v1/runs", headers=h, json={**good, "regression_test_ids": [3, 1]}
    )
    assert inactive.json()["details"]["inactive_ids"] == [1, 3]
    bad_json = await api.client.post(
        "/api/v1/runs", headers={**h, "Content-Type": "application/json"}, content=b"{nope"
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["message"] == "Request body must be valid JSON."
    form = await api.client.post("/api/v1/runs", headers=h, data={"a": "b"})
    assert form.status_code == 415


async def test_list_filters_sort_and_pagination(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    await api.project(demo_repo)
    h = await api.headers()
    ids = []
    for i in range(5):
        run = await api.submit(
            h, demo_repo.passing_sha if i % 2 else demo_repo.failing_sha, branch=f"b{i % 2}"
        )
        ids.append(run["run_id"])
    page = (await api.client.get("/api/v1/runs", params={"limit": 2}, headers=h)).json()
    assert [r["run_id"] for r in page["data"]] == ids[::-1][:2]
    assert page["pagination"] == {"limit": 2, "offset": 0, "total": 5, "next_offset": 2}
    assert page["meta"] == {}
    asc = (await api.client.get("/api/v1/runs", params={"sort": "run_id"}, headers=h)).json()
    assert [r["run_id"] for r in asc["data"]] == ids
    assert [r["queue_position"] for r in asc["data"]] == [1, 2, 3, 4, 5]
    b1 = (await api.client.get("/api/v1/runs", params={"branch": "b1"}, headers=h)).json()
    assert b1["pagination"]["total"] == 2
    sha = (
        await api.client.get(
            "/api/v1/runs", params={"commit_sha": demo_repo.passing_sha}, headers=h
        )
    ).json()
    assert sha["pagination"]["total"] == 2
    queued = (await api.client.get("/api/v1/runs", params={"status": "queued"}, headers=h)).json()
    assert queued["pagination"]["total"] == 5
    none = (await api.client.get("/api/v1/runs", params={"status": "pass"}, headers=h)).json()
    assert none["pagination"]["total"] == 0
    bad: list[dict[str, str | int]] = [
        {"status": "cancelled"},
        {"limit": 0},
        {"limit": "x"},
        {"sort": "name"},
        {"created_after": "yesterday"},
        {"cursor": "abc"},
        {"created_after": "2030-01-01T00:00:00Z", "created_before": "2020-01-01T00:00:00"},
    ]
    for params in bad:
        response = await api.client.get("/api/v1/runs", params=params, headers=h)
        assert response.status_code == 400, params
        assert response.json()["code"] == "validation_error"
    limit = await api.client.get("/api/v1/runs", params={"limit": 101}, headers=h)
    assert limit.json()["message"] == "limit must be between 1 and 100."
    queue = (
        await api.client.get("/api/v1/system/queue", params={"status": "queued"}, headers=h)
    ).json()
    assert queue["queue_depth"] == queue["meta"]["queue_depth"] == 5
    assert [j["position"] for j in queue["data"]] == [1, 2, 3, 4, 5]


async def test_path_ids_and_unknown_routes(api_no_workers: Api) -> None:
    api = api_no_workers
    h = await api.headers()
    abc = await api.client.get("/api/v1/runs/abc", headers=h)
    assert abc.status_code == 400
    assert abc.json()["message"] == "run_id must be a positive integer."
    zero = await api.client.get("/api/v1/runs/0", headers=h)
    assert zero.json()["message"] == "run_id must be between 1 and 2147483647."
    missing = await api.client.get("/api/v1/runs/999", headers=h)
    assert missing.status_code == 404
    assert missing.json() == {
        "code": "not_found",
        "message": "Run 999 not found.",
        "details": {"resource": "run", "id": 999},
    }
    route = await api.client.get("/api/v1/nothing-here", headers=h)
    assert route.status_code == 404 and route.json()["code"] == "not_found"
    method = await api.client.put("/api/v1/runs", headers=h)
    assert method.status_code == 405 and method.json()["code"] == "method_not_allowed"
    assert "GET" in method.headers["allow"]
    for header in (
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
    ):
        assert header in route.headers


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _repo(tmp_path: Path, script: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "t.sh").write_text(script + "\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "t"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    return repo


def _head(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(autouse=True)
def _no_leftover_workspaces() -> None:
    return None


async def test_cancel_racing_a_natural_finish_is_consistent(api: Api, tmp_path: Path) -> None:
    """Whatever wins, an accepted cancel ends canceled and a no_op means the run had ended."""
    repo = _repo(tmp_path, "sleep 0.4")
    await api.project(repo, repository="o/race", test_command="sh t.sh")
    h = await api.headers()
    outcomes = set()
    for delay in (0.25, 0.35, 0.4, 0.45, 0.5, 0.6):
        run = await api.submit(h, _head(repo), repository="o/race")
        await api.wait_for(h, run["run_id"], {"running"} | TERMINAL)
        await asyncio.sleep(delay)
        answer = (await api.client.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=h)).json()
        done = await api.wait_for(h, run["run_id"], TERMINAL)
        if answer["status"] == "accepted":
            assert done["status"] == "canceled"
        else:
            assert answer["status"] == "no_op" and done["status"] == "pass"
        outcomes.add(done["status"])
    assert outcomes <= {"pass", "canceled"}


async def test_declared_artifacts_are_kept_and_downloadable(api: Api, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "mkdir -p build; echo report > build/report.txt; echo x > other.log")
    await api.project(
        repo,
        repository="o/art",
        test_command="sh t.sh",
        artifact_paths=["build/*.txt", "../*", "missing/*"],
    )
    h = await api.headers()
    run = await api.submit(h, _head(repo), repository="o/art")
    await api.wait_for(h, run["run_id"], TERMINAL)
    listed = (await api.client.get(f"/api/v1/runs/{run['run_id']}/artifacts", headers=h)).json()
    files = {a["filename"]: a for a in listed["data"] if a["type"] == "binary"}
    assert list(files) == ["build/report.txt"]
    got = await api.client.get(files["build/report.txt"]["download_url"], headers=h)
    assert got.status_code == 200 and got.content == b"report\n"
    log = next(a for a in listed["data"] if a["type"] == "build_log")
    text = (await api.client.get(log["download_url"], headers=h)).text
    assert "[runplane] Tests passed." in text
