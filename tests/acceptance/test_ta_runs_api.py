"""The Tester Army dialect's runs over HTTP: shapes, cancel rules, usage limit, wait mode."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from runplane.config import Settings
from runplane.domain.permissions import Role, Scope
from tests.conftest import Api, _api, make_settings

TA = "/ta/v1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", usage_runs_per_day=5)


async def _submit(
    api: Api, headers: dict[str, str], prompt: str = "open https://example.com"
) -> dict[str, Any]:
    response = await api.client.post(f"{TA}/runs", headers=headers, json={"prompt": prompt})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_submit_get_and_list_shapes(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.ta_headers()
    created = await _submit(api, headers)
    assert set(created) == {"id", "status", "createdAt"}
    assert created["status"] == "queued"
    uuid.UUID(created["id"])
    assert created["createdAt"].endswith("Z") and "." in created["createdAt"]

    got = (await api.client.get(f"{TA}/runs/{created['id']}", headers=headers)).json()
    assert got["id"] == created["id"]
    assert got["type"] == "chat"
    assert got["status"] == "queued"
    assert got["input"] == {"prompt": "open https://example.com"}
    assert got["output"] is None and got["error"] is None
    assert got["webhookUrl"] is None and got["webhookStatus"] is None
    assert got["startedAt"] is None and got["completedAt"] is None

    # Both base URLs serve the same dialect.
    again = await api.client.get(f"/ta/api/v1/runs/{created['id']}", headers=headers)
    assert again.status_code == 200 and again.json()["id"] == created["id"]


async def test_list_is_a_cursor_page_stable_under_inserts(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.ta_headers(Role.ADMIN)
    ids = [(await _submit(api, headers, f"open https://example.com/{i}"))["id"] for i in range(3)]
    first = (await api.client.get(f"{TA}/runs", params={"limit": 2}, headers=headers)).json()
    assert [r["id"] for r in first["runs"]] == ids[::-1][:2]
    assert first["nextCursor"]
    await _submit(api, headers, "open https://example.com/new")  # must not shift the next page
    second = (
        await api.client.get(
            f"{TA}/runs", params={"limit": 2, "cursor": first["nextCursor"]}, headers=headers
        )
    ).json()
    assert [r["id"] for r in second["runs"]] == [ids[0]]
    assert second["nextCursor"] is None
    queued = await api.client.get(f"{TA}/runs", params={"status": "queued"}, headers=headers)
    assert len(queued.json()["runs"]) == 4
    done = await api.client.get(f"{TA}/runs", params={"status": "completed"}, headers=headers)
    assert done.json()["runs"] == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"status": "canceled"}, "status"),  # SP spelling is not TA spelling
        ({"cursor": "!!!"}, "cursor"),
        ({"projectId": "nope"}, "projectId"),
    ],
)
async def test_list_rejects_bad_parameters(
    api_no_workers: Api, params: dict[str, Any], fragment: str
) -> None:
    headers = await api_no_workers.ta_headers()
    response = await api_no_workers.client.get(f"{TA}/runs", params=params, headers=headers)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "ValidationError" and fragment in body["message"]


async def test_errors_use_the_dialect_envelope(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.ta_headers()
    missing = await api.client.post(f"{TA}/runs", headers=headers, json={})
    assert missing.status_code == 400
    assert missing.json() == {"error": "ValidationError", "message": "prompt: Required"}
    not_json = await api.client.post(
        f"{TA}/runs", headers={**headers, "Content-Type": "application/json"}, content=b"{"
    )
    assert not_json.status_code == 400 and not_json.json()["error"] == "ValidationError"
    bad_id = await api.client.get(f"{TA}/runs/not-a-uuid", headers=headers)
    assert bad_id.status_code == 400 and bad_id.json()["error"] == "ValidationError"
    unknown = await api.client.get(f"{TA}/runs/{uuid.uuid4()}", headers=headers)
    assert unknown.status_code == 404 and unknown.json()["error"] == "NotFound"
    for auth in ({}, {"Authorization": "Bearer sk_nope"}, {"Authorization": "Basic x"}):
        response = await api.client.get(f"{TA}/runs", headers=auth)
        assert response.status_code == 401
        assert response.json() == {
            "error": "Unauthorized",
            "message": "Invalid or missing API key.",
        }
    nowhere = await api.client.get(f"{TA}/nothing-here", headers=headers)
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "NotFound"
    wrong_method = await api.client.delete(f"{TA}/runs", headers=headers)
    assert wrong_method.status_code == 405 and set(wrong_method.json()) == {"error", "message"}


async def test_credentials_are_accepted_in_both_shapes_and_never_returned(
    api_no_workers: Api,
) -> None:
    api = api_no_workers
    headers = await api.ta_headers()
    for credentials in (
        {"email": "a@example.com", "password": "s3cret-one"},
        [{"username": "bob", "password": "s3cret-two"}],
    ):
        response = await api.client.post(
            f"{TA}/runs",
            headers=headers,
            json={"prompt": "open https://example.com", "credentials": credentials},
        )
        assert response.status_code == 202, response.text
        got = await api.client.get(f"{TA}/runs/{response.json()['id']}", headers=headers)
        assert "s3cret" not in got.text
    bad = await api.client.post(
        f"{TA}/runs", headers=headers, json={"prompt": "x", "credentials": [{"username": "u"}]}
    )
    assert bad.status_code == 400


async def test_a_spci_token_with_run_scopes_works_and_scopes_hold(api_no_workers: Api) -> None:
    api = api_no_workers
    native = await api.headers(Role.CONTRIBUTOR)
    created = await _submit(api, native)
    reader = await api.headers(Role.USER, (Scope.RUNS_READ,))
    assert (await api.client.get(f"{TA}/runs/{created['id']}", headers=reader)).status_code == 200
    denied = await api.client.post(f"{TA}/runs", headers=reader, json={"prompt": "open x"})
    assert denied.status_code == 403 and denied.json()["error"] == "Forbidden"
    no_read = await api.headers(Role.ADMIN, (Scope.RESULTS_READ,))
    assert (await api.client.get(f"{TA}/runs", headers=no_read)).status_code == 403
    # The same run, seen through the native dialect.
    run = (await api.client.get(f"{TA}/runs/{created['id']}", headers=native)).json()
    listed = await api.client.get("/api/v1/runs", headers=native)
    assert any(r["uuid"] == run["id"] for r in listed.json()["data"])


async def test_cancel_only_cancels_queued_runs(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.ta_headers()
    created = await _submit(api, headers)
    first = await api.client.post(f"{TA}/runs/{created['id']}/cancel", headers=headers)
    assert first.status_code == 200
    assert first.json() == {"id": created["id"], "status": "cancelled"}
    got = (await api.client.get(f"{TA}/runs/{created['id']}", headers=headers)).json()
    assert got["status"] == "cancelled" and got["completedAt"]
    second = await api.client.post(f"{TA}/runs/{created['id']}/cancel", headers=headers)
    assert second.status_code == 409
    assert second.json() == {
        "error": "Conflict",
        "message": "Run is cancelled; only queued runs can be cancelled.",
    }
    unknown = await api.client.post(f"{TA}/runs/{uuid.uuid4()}/cancel", headers=headers)
    assert unknown.status_code == 404
    malformed = await api.client.post(f"{TA}/runs/123/cancel", headers=headers)
    assert malformed.status_code == 400
    anonymous = await api.client.post(f"{TA}/runs/{created['id']}/cancel")
    assert anonymous.status_code == 401
    viewer = await api.ta_headers(Role.USER)
    forbidden = await api.client.post(f"{TA}/runs/{created['id']}/cancel", headers=viewer)
    assert forbidden.status_code == 403


async def test_usage_limit_answers_429_with_retry_after(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.ta_headers()
    created = [await _submit(api, headers) for _ in range(5)]
    first = created[0]
    over = await api.client.post(f"{TA}/runs", headers=headers, json={"prompt": "open x"})
    assert over.status_code == 429
    assert over.json()["error"] == "UsageLimitExceeded"
    assert 0 < int(over.headers["Retry-After"]) <= 86400
    # Restarting a finished browser run through the native API runs it again: it counts.
    await api.client.post(f"{TA}/runs/{first['id']}/cancel", headers=headers)
    native = (await api.client.get("/api/v1/runs", headers=headers)).json()["data"]
    (row,) = [r for r in native if r["uuid"] == first["id"]]
    restart = await api.client.post(f"/api/v1/runs/{row['run_id']}/restart", headers=headers)
    assert restart.status_code == 429 and restart.json()["code"] == "rate_limited"
    assert "Retry-After" in restart.headers
    # The quota is per owner: someone else may still run.
    other = await api.ta_headers()
    assert (
        await api.client.post(f"{TA}/runs", headers=other, json={"prompt": "o"})
    ).status_code == 202


async def test_wait_times_out_with_504_and_the_run_keeps_going(api_no_workers: Api) -> None:
    api = api_no_workers
    headers = await api.ta_headers()
    response = await api.client.post(
        f"{TA}/runs", params={"wait": 1}, headers=headers, json={"prompt": "open x"}
    )
    assert response.status_code == 504
    body = response.json()
    assert body["error"] == "GatewayTimeout"
    got = await api.client.get(f"{TA}/runs/{body['id']}", headers=headers)
    assert got.status_code == 200 and got.json()["status"] == "queued"
    too_long = await api.client.post(
        f"{TA}/runs", params={"wait": 301}, headers=headers, json={"prompt": "open x"}
    )
    assert too_long.status_code == 400


async def test_rate_limit_is_shared_with_the_native_dialect(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "rl", rate_limit_reads=3, workers=0)
    async for api in _api(settings, run_workers=False):
        headers = await api.ta_headers()
        codes = []
        for path in ("/api/v1/runs", f"{TA}/runs", "/api/v1/runs", f"{TA}/runs"):
            response = await api.client.get(path, headers=headers)
            codes.append(response.status_code)
        assert codes == [200, 200, 200, 429]
        assert response.json()["error"] == "RateLimited"
        assert "Retry-After" in response.headers and "X-RateLimit-Limit" in response.headers
