"""Browser runs end to end: the dialect's API, the real workers and a real headless Chromium
against a real local web application; webhooks to a real local receiver."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runplane.config import Settings
from runplane.execution.process_tree import processes_with_marker
from runplane.services.webhooks import SIGNATURE_HEADER, verify_signature, webhook_signing_key
from tests.conftest import Api, _api, eventually, make_settings

TA = "/ta/v1"
pytestmark = pytest.mark.usefixtures("chromium")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data",
        webhook_allow_private=True,
        webhook_backoff_seconds=0.1,
        webhook_poll_seconds=0.1,
        browser_step_timeout_ms=3000,
    )


async def _finished(api: Api, headers: dict[str, str], run_id: str, timeout: float = 60) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = (await api.client.get(f"{TA}/runs/{run_id}", headers=headers)).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            if body["status"] == "failed":
                await _print_log(api, run_id)
            return body
        assert loop.time() < deadline, f"run {run_id} still {body['status']}"
        await asyncio.sleep(0.1)


async def _print_log(api: Api, run_uuid: str) -> None:
    """Shown by pytest when a test fails: what the agent said."""
    native = await api.headers()
    listed = (await api.client.get("/api/v1/runs", headers=native)).json()["data"]
    for row in listed:
        if row["uuid"] == run_uuid:
            log = await api.client.get(f"/api/v1/runs/{row['run_id']}/logs", headers=native)
            for line in log.json()["data"]:
                print(line["source"], line["message"])


async def _status(api: Api, headers: dict[str, str], run_id: str, wanted: str) -> None:
    async def check() -> bool:
        got = (await api.client.get(f"{TA}/runs/{run_id}", headers=headers)).json()
        return bool(got["status"] == wanted)

    await eventually(check, timeout=30)


async def _prompt(api: Api, headers: dict[str, str], prompt: str, **extra: Any) -> str:
    response = await api.client.post(
        f"{TA}/runs", headers=headers, json={"prompt": prompt, **extra}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _no_processes_left(api: Api) -> bool:
    return processes_with_marker(api.ctx.instance_tag) == []


async def test_a_prompt_run_passes_in_a_real_browser(api: Api, site: str) -> None:
    headers = await api.ta_headers()
    prompt = f"""# sign in and land on the dashboard
open {site}/login
fill "Email" with "ada@example.com"
fill "Password" with "{{{{password}}}}"
click button "Log in"
expect text "Welcome, ada@example.com"
expect url "/welcome"
expect title "Dashboard"
screenshot
"""
    run_id = await _prompt(
        api, headers, prompt, credentials={"email": "ada@example.com", "password": "pw-123456"}
    )
    run = await _finished(api, headers, run_id)
    assert run["status"] == "completed", run
    output = run["output"]
    assert output["result"] == "PASS", output
    assert [s["status"] for s in output["steps"]] == ["passed"] * 8
    assert run["stepResults"] == output["steps"]
    assert run["durationMs"] > 0 and run["startedAt"] and run["completedAt"]
    assert len(output["screenshots"]) == 1
    shot = await api.client.get(
        output["screenshots"][0].replace("http://testserver", ""), headers=headers
    )
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/png"
    assert shot.content.startswith(b"\x89PNG")
    assert "pw-123456" not in json.dumps(run)
    # The native dialect shows the same run, with the agent's log.
    native = await api.headers()
    listed = (await api.client.get("/api/v1/runs", headers=native)).json()["data"]
    (row,) = [r for r in listed if r["uuid"] == run_id]
    assert row["status"] == "pass"
    log = await api.client.get(f"/api/v1/runs/{row['run_id']}/logs", headers=native)
    assert "[agent]" in log.text and "pw-123456" not in log.text
    assert _no_processes_left(api)


async def _project_with_tests(
    api: Api, headers: dict[str, str], site: str, tests: list[list[dict[str, Any]]], **group: Any
) -> tuple[str, list[str], str]:
    project = await api.client.post(
        f"{TA}/projects", headers=headers, json={"name": "Shop", "url": site}
    )
    assert project.status_code == 201, project.text
    project_id = project.json()["project"]["id"]
    made = await api.client.post(
        f"{TA}/groups",
        headers=headers,
        json={"projectId": project_id, "name": "Checkout", **group},
    )
    assert made.status_code == 201, made.text
    group_id = made.json()["group"]["id"]
    test_ids = []
    for i, steps in enumerate(tests):
        test = await api.client.post(
            f"{TA}/tests",
            headers=headers,
            json={"projectId": project_id, "groupId": group_id, "title": f"t{i}", "steps": steps},
        )
        assert test.status_code == 201, test.text
        test_ids.append(test.json()["test"]["id"])
    return project_id, test_ids, group_id


async def test_a_failing_assertion_gives_an_issue_and_a_screenshot(api: Api, site: str) -> None:
    headers = await api.ta_headers()
    steps = [
        {"type": "act", "title": "open /login"},
        {"type": "javascript", "code": "return document.title === 'Sign in'"},
        {"type": "assert", "title": 'expect text "Free shipping"'},
        {"type": "act", "title": 'click "Log in"'},
    ]
    project_id, (test_id,), _ = await _project_with_tests(api, headers, site, [steps])
    started = await api.client.post(f"{TA}/tests/{test_id}/runs", headers=headers, json={})
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued" and started.json()["testId"] == test_id
    run = await _finished(api, headers, started.json()["runId"])
    assert run["status"] == "completed" and run["type"] == "test"
    assert run["projectId"] == project_id and run["testId"] == test_id
    output = run["output"]
    assert output["result"] == "FAILED"
    assert [s["status"] for s in output["steps"]] == ["passed", "passed", "failed"]
    assert output["steps"][2]["errorCode"] == "assertion_failed"
    (issue,) = output["issues"]
    assert issue["url"].startswith(site) and issue["screenshotUrl"]
    shot = await api.client.get(
        issue["screenshotUrl"].replace("http://testserver", ""), headers=headers
    )
    assert shot.status_code == 200 and shot.content.startswith(b"\x89PNG")
    listed = await api.client.get(f"{TA}/runs", params={"testId": test_id}, headers=headers)
    assert [r["id"] for r in listed.json()["runs"]] == [run["id"]]


async def test_an_unsupported_instruction_is_a_step_error(api: Api, site: str) -> None:
    headers = await api.ta_headers()
    run_id = await _prompt(api, headers, f"open {site}\nmake sure the shop looks nice")
    run = await _finished(api, headers, run_id)
    assert run["status"] == "completed"
    assert run["output"]["result"] == "FAILED"
    assert run["output"]["steps"][-1]["errorCode"] == "unsupported_instruction"
    # The worker's own files are out of reach.
    local = await _finished(api, headers, await _prompt(api, headers, "open file:///etc/hostname"))
    assert local["output"]["result"] == "FAILED"
    assert local["output"]["steps"][0]["errorCode"] == "navigation_failed"
    assert "only http(s)" in local["output"]["steps"][0]["error"]


async def test_cancel_of_a_running_run_is_409_and_a_native_cancel_kills_the_browser(
    api: Api, site: str
) -> None:
    headers = await api.ta_headers()
    run_id = await _prompt(api, headers, f"open {site}\nwait 30 s\nexpect text 'never'")
    await _status(api, headers, run_id, "running")
    await eventually(lambda: asyncio.sleep(0, result=not _no_processes_left(api)))
    refused = await api.client.post(f"{TA}/runs/{run_id}/cancel", headers=headers)
    assert refused.status_code == 409
    assert refused.json()["message"] == "Run is running; only queued runs can be cancelled."
    native = await api.headers()
    listed = (await api.client.get("/api/v1/runs", headers=native)).json()["data"]
    (row,) = [r for r in listed if r["uuid"] == run_id]
    cancel = await api.client.post(f"/api/v1/runs/{row['run_id']}/cancel", headers=native)
    assert cancel.status_code == 202
    run = await _finished(api, headers, run_id)
    assert run["status"] == "cancelled" and run["output"] is None
    assert _no_processes_left(api)


async def test_a_run_over_its_time_limit_fails_and_the_browser_dies(
    tmp_path: Path, site: str
) -> None:
    settings = make_settings(tmp_path / "t", browser_timeout_seconds=4)
    async for api in _api(settings, run_workers=True):
        headers = await api.ta_headers()
        run_id = await _prompt(api, headers, f"open {site}\nwait 30 s")
        run = await _finished(api, headers, run_id)
        assert run["status"] == "failed"
        assert run["error"]["code"] == "timeout"
        assert _no_processes_left(api)


async def test_group_batch_sequential_cancel_and_rerun(api: Api, site: str) -> None:
    headers = await api.ta_headers()
    slow = [{"type": "act", "title": f"open {site}\nwait 30 s"}]
    _, test_ids, group_id = await _project_with_tests(
        api, headers, site, [slow, slow], runMode="sequential"
    )
    started = await api.client.post(f"{TA}/groups/{group_id}/runs", headers=headers, json={})
    assert started.status_code == 202, started.text
    batch = started.json()
    assert batch["status"] == "queued" and batch["count"] == 2
    assert batch["queuedRunIds"] == batch["runIds"] and batch["cancelledRunIds"] == []
    first, second = batch["runIds"]
    await _status(api, headers, first, "running")
    await asyncio.sleep(1.0)  # a free worker must still not take the second run
    assert (await api.client.get(f"{TA}/runs/{second}", headers=headers)).json()[
        "status"
    ] == "queued"

    cancelled = await api.client.post(f"{TA}/batches/{batch['batchId']}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["cancelled"] == 2 and sorted(body["cancelledRunIds"]) == sorted([first, second])
    assert body["alreadyFinished"] == 0
    for run_id in (first, second):
        assert (await _finished(api, headers, run_id))["status"] == "cancelled"
    assert _no_processes_left(api)
    again = await api.client.post(f"{TA}/batches/{batch['batchId']}/cancel", headers=headers)
    assert again.status_code == 200
    assert again.json()["cancelled"] == 0 and again.json()["alreadyFinished"] == 2

    # Disable one test: the rerun skips it and queues the other in a new batch.
    patched = await api.client.patch(
        f"{TA}/tests/{test_ids[1]}", headers=headers, json={"enabled": False}
    )
    assert patched.status_code == 200, patched.text
    rerun = await api.client.post(f"{TA}/batches/{batch['batchId']}/rerun", headers=headers)
    assert rerun.status_code == 202, rerun.text
    new = rerun.json()
    assert new["sourceBatchId"] == batch["batchId"] and new["batchId"] != batch["batchId"]
    assert new["skippedTestIds"] == [test_ids[1]] and new["count"] == 1
    await api.client.post(f"{TA}/batches/{new['batchId']}/cancel", headers=headers)
    unknown = await api.client.post(f"{TA}/batches/{group_id}/cancel", headers=headers)
    assert unknown.status_code == 404


@dataclass
class Receiver:
    url: str
    answers: list[int]
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@contextmanager
def receiver(answers: list[int]) -> Iterator[Receiver]:
    """A webhook receiver: answers each POST with the next status (the last one repeats)."""
    state = Receiver("", answers)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.got.append(({k: v for k, v in self.headers.items()}, body))
            code = state.answers[min(len(state.got), len(state.answers)) - 1]
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_a_webhook_is_delivered_signed(api: Api, site: str) -> None:
    headers = await api.ta_headers()
    with receiver([200]) as hook:
        run_id = await _prompt(
            api, headers, f"open {site}\nexpect text 'shop'", webhookUrl=hook.url
        )
        pending = (await api.client.get(f"{TA}/runs/{run_id}", headers=headers)).json()
        assert pending["webhookUrl"] == hook.url and pending["webhookStatus"] == "pending"
        await _finished(api, headers, run_id)

        async def delivered() -> bool:
            got = (await api.client.get(f"{TA}/runs/{run_id}", headers=headers)).json()
            return bool(got["webhookStatus"] == "delivered")

        await eventually(delivered, timeout=30)
        ((sent_headers, body),) = hook.got
    payload = json.loads(body)
    assert payload["id"] == run_id and payload["status"] == "completed"
    assert payload["output"]["result"] == "PASS"
    key = webhook_signing_key(api.ctx)
    assert verify_signature(key, sent_headers[SIGNATURE_HEADER], body)
    assert not verify_signature(b"another key", sent_headers[SIGNATURE_HEADER], body)


async def test_a_failing_webhook_is_retried_three_times_then_failed(api: Api, site: str) -> None:
    headers = await api.ta_headers()
    with receiver([500]) as hook:
        run_id = await _prompt(api, headers, f"open {site}", webhookUrl=hook.url)
        await _finished(api, headers, run_id)

        async def failed() -> bool:
            got = (await api.client.get(f"{TA}/runs/{run_id}", headers=headers)).json()
            return bool(got["webhookStatus"] == "failed")

        await eventually(failed, timeout=30)
        await asyncio.sleep(0.5)
        assert len(hook.got) == 4


async def test_webhook_urls_are_checked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "w", webhook_allow_private=False)
    async for api in _api(settings, run_workers=False):
        headers = await api.ta_headers()
        for url in ("http://127.0.0.1:9/hook", "ftp://example.com/x", "http://10.1.2.3/x"):
            response = await api.client.post(
                f"{TA}/runs", headers=headers, json={"prompt": "open x", "webhookUrl": url}
            )
            assert response.status_code == 400, url
            assert response.json()["error"] == "ValidationError"


async def test_an_external_agent_command_answers_instead(tmp_path: Path) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(
        "import json, sys\n"
        "doc = json.load(sys.stdin)\n"
        "print('external agent for', doc['runId'], file=sys.stderr)\n"
        "json.dump({'featureName': doc['featureName'], 'result': 'PASS',"
        " 'description': 'checked ' + doc['prompt'], 'screenshots': [], 'issues': []},"
        " sys.stdout)\n"
    )
    settings = make_settings(tmp_path / "x", agent_command=f"{sys.executable} {agent}")
    async for api in _api(settings, run_workers=True):
        headers = await api.ta_headers()
        run_id = await _prompt(api, headers, "make sure the shop looks nice")
        run = await _finished(api, headers, run_id)
        assert run["status"] == "completed"
        assert run["output"]["description"] == "checked make sure the shop looks nice"


async def test_the_network_policy_keeps_browsers_off_this_machine(
    tmp_path: Path, site: str
) -> None:
    settings = make_settings(tmp_path / "n", browser_network="private")
    async for api in _api(settings, run_workers=True):
        headers = await api.ta_headers()
        for target in (site, "http://169.254.169.254/latest/meta-data", "http://localhost:9/"):
            run = await _finished(api, headers, await _prompt(api, headers, f"open {target}"))
            (step,) = run["output"]["steps"]
            assert step["errorCode"] == "navigation_failed", step
            assert "blocked by the network policy" in step["error"], step


async def test_a_prep_test_runs_first_and_a_deleted_test_is_skipped_on_rerun(
    api: Api, site: str
) -> None:
    headers = await api.ta_headers()
    prep = [{"type": "act", "title": f"open {site}\nwait 2 s"}]
    quick = [{"type": "act", "title": f"open {site}/login"}]
    _, (a, b, prep_id), group_id = await _project_with_tests(
        api, headers, site, [quick, quick, prep]
    )
    patched = await api.client.patch(
        f"{TA}/groups/{group_id}", headers=headers, json={"prepTestId": prep_id}
    )
    assert patched.status_code == 200, patched.text
    batch = (await api.client.post(f"{TA}/groups/{group_id}/runs", headers=headers)).json()
    runs = [await _finished(api, headers, r) for r in batch["runIds"]]
    assert [r["testId"] for r in runs] == [prep_id, a, b]
    for other in runs[1:]:
        # Concurrent group, but nothing starts before the prep test is done.
        assert other["startedAt"] >= runs[0]["completedAt"], (runs[0], other)
    assert all(r["output"]["result"] == "PASS" for r in runs)

    deleted = await api.client.delete(f"{TA}/tests/{a}", headers=headers)
    assert deleted.status_code == 200, deleted.text
    rerun = (
        await api.client.post(f"{TA}/batches/{batch['batchId']}/rerun", headers=headers)
    ).json()
    assert rerun["skippedTestIds"] == [a] and rerun["count"] == 2
    again = [await _finished(api, headers, r) for r in rerun["runIds"]]
    assert [r["testId"] for r in again] == [prep_id, b]
    assert again[1]["startedAt"] >= again[0]["completedAt"]
