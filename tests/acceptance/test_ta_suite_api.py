"""Tester Army ``/ta/v1`` projects, tests and groups: CRUD, cascades, limits, errors, auth.

Every test runs on SQLite and on PostgreSQL (skipped when the server is unreachable).
Workers are off: nothing here runs a test, and a run row inserted for the cascade check
must stay as it was put.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runplane.domain.permissions import Role, Scope
from runplane.store import runs as run_store
from runplane.store.database import unit_of_work
from runplane.store.models import BrowserRun, Run, TestGroup, WebTest
from tests.conftest import Api, _api, make_settings

BASE = "/ta/v1"
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
STEPS: list[dict[str, Any]] = [
    {"type": "act", "title": "Open the pricing page"},
    {"type": "assert", "title": "Three plans are listed"},
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def ta(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    overrides = (
        {"database_url": request.getfixturevalue("pg_url")} if request.param == "postgres" else {}
    )
    async for value in _api(make_settings(tmp_path / "data", **overrides), run_workers=False):
        yield value


async def _project(api: Api, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    payload = {"name": "Shop", "url": "https://shop.example.com", **body}
    response = await api.client.post(f"{BASE}/projects", headers=headers, json=payload)
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()["project"]
    return project


async def _test(api: Api, headers: dict[str, str], project_id: str, **body: Any) -> dict[str, Any]:
    payload = {"title": "Pricing", "steps": STEPS, "projectId": project_id, **body}
    response = await api.client.post(f"{BASE}/tests", headers=headers, json=payload)
    assert response.status_code == 201, response.text
    test: dict[str, Any] = response.json()["test"]
    return test


async def _group(api: Api, headers: dict[str, str], project_id: str, **body: Any) -> dict[str, Any]:
    payload = {"projectId": project_id, "name": "Smoke", **body}
    response = await api.client.post(f"{BASE}/groups", headers=headers, json=payload)
    assert response.status_code == 201, response.text
    group: dict[str, Any] = response.json()["group"]
    return group


async def _groups(api: Api, headers: dict[str, str], project_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(
        f"{BASE}/groups", headers=headers, params={"projectId": project_id}
    )
    assert response.status_code == 200, response.text
    groups: list[dict[str, Any]] = response.json()["groups"]
    return groups


def _assert_error(response: Any, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == error, body
    assert body["message"]


# ---- projects -------------------------------------------------------------------------


async def test_project_crud(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.CONTRIBUTOR)
    project = await _project(api, headers, description="The storefront")
    assert project == {
        "id": project["id"],
        "shortId": project["shortId"],
        "name": "Shop",
        "url": "https://shop.example.com",
        "projectType": "web",
        "description": "The storefront",
        "environments": [
            {
                "id": project["id"],
                "name": "Production",
                "slug": "production",
                "kind": "static",
                "url": "https://shop.example.com",
            }
        ],
        "createdAt": project["createdAt"],
        "updatedAt": project["updatedAt"],
    }
    assert uuid.UUID(project["id"]) and re.fullmatch(r"[a-z0-9]{8}", project["shortId"])
    assert ISO_MS.match(project["createdAt"]) and ISO_MS.match(project["updatedAt"])

    listed = (await api.client.get(f"{BASE}/projects", headers=headers)).json()["projects"]
    assert [p["id"] for p in listed] == [project["id"]]
    assert set(listed[0]) == {"id", "shortId", "name", "url", "projectType", "environments"}

    for ref in (project["id"], project["shortId"], project["id"].upper()):
        response = await api.client.get(f"{BASE}/projects/{ref}", headers=headers)
        assert response.status_code == 200 and response.json() == project, ref

    response = await api.client.patch(
        f"{BASE}/projects/{project['shortId']}",
        headers=headers,
        json={"name": "Shop 2", "description": None},
    )
    assert response.status_code == 200, response.text
    changed = response.json()["project"]
    assert changed["name"] == "Shop 2" and changed["description"] is None
    assert changed["url"] == project["url"] and changed["createdAt"] == project["createdAt"]

    response = await api.client.delete(f"{BASE}/projects/{project['id']}", headers=headers)
    assert response.status_code == 200 and response.json() == {"deleted": True, "id": project["id"]}
    response = await api.client.get(f"{BASE}/projects/{project['id']}", headers=headers)
    _assert_error(response, 404, "NotFound")


async def test_project_validation(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.ADMIN)
    response = await api.client.post(
        f"{BASE}/projects",
        headers=headers,
        json={"name": "App", "url": "x", "projectType": "mobile"},
    )
    _assert_error(response, 400, "ValidationError")
    assert "mobile" in response.json()["message"].lower()
    bad_bodies: list[dict[str, Any]] = [
        {"url": "https://a.example"},
        {"name": "", "url": "https://a.example"},
        {"name": "A", "url": "https://a.example", "description": "x" * 2001},
        {"name": "A", "url": "https://a.example", "owner": "me"},
    ]
    for bad in bad_bodies:
        response = await api.client.post(f"{BASE}/projects", headers=headers, json=bad)
        _assert_error(response, 400, "ValidationError")
    assert response.json()["message"].startswith("owner: ")
    project = await _project(api, headers)
    response = await api.client.patch(
        f"{BASE}/projects/{project['id']}", headers=headers, json={"url": None}
    )
    _assert_error(response, 400, "ValidationError")
    assert response.json()["message"].startswith("url: ")
    for ref in ("nosuchid", str(uuid.uuid4())):
        for method in ("GET", "PATCH", "DELETE"):
            response = await api.client.request(
                method,
                f"{BASE}/projects/{ref}",
                headers=headers,
                json={} if method == "PATCH" else None,
            )
            _assert_error(response, 404, "NotFound")


async def test_the_api_v1_base_url_serves_the_same_routes(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.ADMIN)
    project = await _project(api, headers)
    response = await api.client.get(f"/ta/api/v1/projects/{project['shortId']}", headers=headers)
    assert response.status_code == 200 and response.json() == project
    response = await api.client.post(
        "/ta/api/v1/tests",
        headers=headers,
        json={"title": "T", "steps": STEPS, "projectId": project["id"]},
    )
    assert response.status_code == 201, response.text
    listed = await api.client.get(
        f"{BASE}/tests", headers=headers, params={"projectId": project["id"]}
    )
    assert [t["id"] for t in listed.json()["tests"]] == [response.json()["test"]["id"]]


async def test_project_delete_cascades_to_groups_tests_and_runs(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.ADMIN)
    project = await _project(api, headers)
    other = await _project(api, headers, name="Other")
    test = await _test(api, headers, project["id"])
    group = await _group(api, headers, project["id"])
    run_id = await _browser_run(api, project["id"], test["id"])
    other_run_id = await _browser_run(api, other["id"], None)

    response = await api.client.delete(f"{BASE}/projects/{project['shortId']}", headers=headers)
    assert response.status_code == 200 and response.json() == {"deleted": True, "id": project["id"]}

    for path in (f"/tests/{test['id']}", f"/groups/{group['id']}"):
        _assert_error(await api.client.get(f"{BASE}{path}", headers=headers), 404, "NotFound")
    async with unit_of_work(api.ctx.reads) as session:
        assert await session.get(Run, run_id) is None
        assert await session.get(BrowserRun, run_id) is None
        assert await session.get(Run, other_run_id) is not None
        assert await session.get(WebTest, test["id"]) is None
        assert await session.get(TestGroup, group["id"]) is None


async def _browser_run(api: Api, project_id: str, test_id: str | None) -> int:
    """A queued browser run of a project, written straight to the store."""
    async with unit_of_work(api.ctx.sessions) as session:
        run = await run_store.insert_run(
            session,
            Run(repository="web", commit_sha="0" * 40, platform="web"),
            run_store.EventSpec(message="queued by the test"),
        )
        session.add(
            BrowserRun(
                run_id=run.id,
                kind="test",
                input={"title": "Pricing", "steps": STEPS},
                project_id=project_id,
                test_id=test_id,
            )
        )
        await session.flush()
        return run.id


# ---- tests ----------------------------------------------------------------------------


async def test_test_crud(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.CONTRIBUTOR)
    project = await _project(api, headers)
    steps = [
        *STEPS,
        {"type": "javascript", "code": "return {success: true}"},
        {"type": "screenshot"},
        {"type": "login", "title": "Sign in", "temporaryEmail": True},
        {"type": "files", "fileIds": [str(uuid.uuid4())]},
    ]
    test = await _test(api, headers, project["shortId"], steps=steps, description="Plans")
    assert test == {
        "id": test["id"],
        "title": "Pricing",
        "steps": steps,
        "description": "Plans",
        "enabled": True,
        "platform": "web",
        "projectId": project["id"],
        "projectUrl": project["url"],
        "projectName": project["name"],
        "createdAt": test["createdAt"],
        "updatedAt": test["updatedAt"],
    }
    assert ISO_MS.match(test["createdAt"])

    response = await api.client.get(f"{BASE}/tests/{test['id']}", headers=headers)
    assert response.status_code == 200, response.text
    detail = response.json()
    default = next(g for g in await _groups(api, headers, project["id"]) if g["isDefault"])
    assert detail == {
        **test,
        "groups": [{"id": default["id"], "name": "Default", "isDefault": True}],
    }

    response = await api.client.patch(
        f"{BASE}/tests/{test['id']}",
        headers=headers,
        json={"title": "Pricing v2", "enabled": False, "steps": STEPS[:1]},
    )
    assert response.status_code == 200, response.text
    changed = response.json()["test"]
    assert changed["title"] == "Pricing v2" and changed["enabled"] is False
    assert changed["steps"] == STEPS[:1] and changed["description"] == "Plans"

    response = await api.client.delete(f"{BASE}/tests/{test['id']}", headers=headers)
    assert response.status_code == 200 and response.json() == {"deleted": True, "id": test["id"]}
    for method in ("GET", "PATCH", "DELETE"):
        response = await api.client.request(
            method,
            f"{BASE}/tests/{test['id']}",
            headers=headers,
            json={} if method == "PATCH" else None,
        )
        _assert_error(response, 404, "NotFound")


async def test_test_validation(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.ADMIN)
    project = await _project(api, headers)
    base = {"title": "T", "steps": STEPS, "projectId": project["id"]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"steps": STEPS, "projectId": project["id"]}, "title: Required"),
        ({**base, "steps": [STEPS[0]] * 51}, "steps: "),
        ({**base, "steps": []}, "steps: "),
        (
            {**base, "steps": [{"type": "javascript", "title": "x"}]},
            "steps.0.javascript.code: Required",
        ),
        ({**base, "steps": [{"type": "act"}]}, "steps.0.act.title: Required"),
        ({**base, "steps": [{"type": "hover", "title": "x"}]}, "steps.0: "),
        (
            {**base, "steps": [{"type": "act", "title": "x", "selector": "#a"}]},
            "steps.0.act.selector: ",
        ),
        ({**base, "colour": "red"}, "colour: "),
        ({**base, "groupId": "not-a-uuid"}, "groupId: "),
        ({**base, "enabled": "yes"}, "enabled: "),
        ({**base, "platform": "mobile"}, "platform: "),
    ]
    for body, message in cases:
        response = await api.client.post(f"{BASE}/tests", headers=headers, json=body)
        _assert_error(response, 400, "ValidationError")
        assert response.json()["message"].startswith(message), (body, response.json())
    response = await api.client.get(f"{BASE}/tests/not-a-uuid", headers=headers)
    _assert_error(response, 400, "ValidationError")
    assert response.json()["message"].startswith("testId: ")
    response = await api.client.get(f"{BASE}/tests", headers=headers)
    _assert_error(response, 400, "ValidationError")
    assert response.json()["message"] == "projectId: Required"
    response = await api.client.post(
        f"{BASE}/tests", headers=headers, json={**base, "projectId": "nosuchid"}
    )
    _assert_error(response, 404, "NotFound")
    test = await _test(api, headers, project["id"])
    for patch in ({"title": None}, {"steps": None}, {"projectId": project["id"]}):
        response = await api.client.patch(f"{BASE}/tests/{test['id']}", headers=headers, json=patch)
        _assert_error(response, 400, "ValidationError")


async def test_test_created_in_a_group_joins_it_and_the_default_group(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.ADMIN)
    project = await _project(api, headers)
    group = await _group(api, headers, project["id"])
    test = await _test(api, headers, project["id"], groupId=group["id"])
    detail = (await api.client.get(f"{BASE}/tests/{test['id']}", headers=headers)).json()
    assert [(g["name"], g["isDefault"]) for g in detail["groups"]] == [
        ("Default", True),
        ("Smoke", False),
    ]
    other = await _project(api, headers, name="Other")
    foreign = await _group(api, headers, other["id"])
    response = await api.client.post(
        f"{BASE}/tests",
        headers=headers,
        json={"title": "T", "steps": STEPS, "projectId": project["id"], "groupId": foreign["id"]},
    )
    _assert_error(response, 400, "ValidationError")
    response = await api.client.post(
        f"{BASE}/tests",
        headers=headers,
        json={
            "title": "T",
            "steps": STEPS,
            "projectId": project["id"],
            "groupId": str(uuid.uuid4()),
        },
    )
    _assert_error(response, 404, "NotFound")


async def test_test_pagination_is_stable_under_inserts(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.ADMIN)
    project = await _project(api, headers)
    created = [(await _test(api, headers, project["id"], title=f"T{i}"))["id"] for i in range(5)]
    params: dict[str, Any] = {"projectId": project["shortId"], "limit": 2}

    first = (await api.client.get(f"{BASE}/tests", headers=headers, params=params)).json()
    assert first["projectName"] == "Shop" and first["projectUrl"] == project["url"]
    assert [t["id"] for t in first["tests"]] == created[:2] and first["nextCursor"]
    # A test created between page fetches sorts last: no page repeats or skips a row.
    created.append((await _test(api, headers, project["id"], title="late"))["id"])
    seen = [t["id"] for t in first["tests"]]
    cursor = first["nextCursor"]
    while cursor:
        page = await api.client.get(
            f"{BASE}/tests", headers=headers, params={**params, "cursor": cursor}
        )
        assert page.status_code == 200, page.text
        seen += [t["id"] for t in page.json()["tests"]]
        cursor = page.json()["nextCursor"]
    assert seen == created

    whole = (
        await api.client.get(f"{BASE}/tests", headers=headers, params={"projectId": project["id"]})
    ).json()
    assert [t["id"] for t in whole["tests"]] == created and whole["nextCursor"] is None

    group = await _group(api, headers, project["id"])
    for test_id in (created[4], created[1]):
        await api.client.post(
            f"{BASE}/groups/{group['id']}/tests", headers=headers, json={"testId": test_id}
        )
    in_group = await api.client.get(
        f"{BASE}/tests",
        headers=headers,
        params={"projectId": project["id"], "groupId": group["id"]},
    )
    assert [t["id"] for t in in_group.json()["tests"]] == [created[1], created[4]]

    for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "garbage!"}, {"cursor": "WzFd"}):
        response = await api.client.get(f"{BASE}/tests", headers=headers, params={**params, **bad})
        _assert_error(response, 400, "ValidationError")


# ---- groups ---------------------------------------------------------------------------


async def test_group_crud_and_default_group(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.CONTRIBUTOR)
    project = await _project(api, headers)
    [default] = await _groups(api, headers, project["id"])
    assert default == {
        "id": default["id"],
        "name": "Default",
        "isDefault": True,
        "testCount": 0,
        "prepTestId": None,
    }
    test = await _test(api, headers, project["id"])

    group = await _group(api, headers, project["id"], runMode="sequential", prepTestId=test["id"])
    assert group == {
        "id": group["id"],
        "name": "Smoke",
        "isDefault": False,
        "runMode": "sequential",
        "prepTestId": test["id"],
        "projectId": project["id"],
        "createdAt": group["createdAt"],
        "updatedAt": group["updatedAt"],
        "testIds": [test["id"]],
    }
    response = await api.client.get(f"{BASE}/groups/{group['id']}", headers=headers)
    assert response.status_code == 200 and response.json() == group
    groups = await _groups(api, headers, project["shortId"])
    assert [(g["name"], g["testCount"]) for g in groups] == [("Default", 1), ("Smoke", 1)]

    response = await api.client.patch(
        f"{BASE}/groups/{group['id']}",
        headers=headers,
        json={"name": "Nightly", "runMode": "concurrent", "prepTestId": None},
    )
    assert response.status_code == 200, response.text
    changed = response.json()["group"]
    assert (changed["name"], changed["runMode"], changed["prepTestId"]) == (
        "Nightly",
        "concurrent",
        None,
    )

    response = await api.client.delete(f"{BASE}/groups/{default['id']}", headers=headers)
    _assert_error(response, 409, "Conflict")
    response = await api.client.delete(f"{BASE}/groups/{group['id']}", headers=headers)
    assert response.status_code == 200 and response.json() == {"deleted": True, "id": group["id"]}
    for method in ("GET", "PATCH", "DELETE"):
        response = await api.client.request(
            method,
            f"{BASE}/groups/{group['id']}",
            headers=headers,
            json={} if method == "PATCH" else None,
        )
        _assert_error(response, 404, "NotFound")
    # The group's test is still in the project.
    assert (await api.client.get(f"{BASE}/tests/{test['id']}", headers=headers)).status_code == 200


async def test_group_membership_is_idempotent(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.ADMIN)
    project = await _project(api, headers)
    group = await _group(api, headers, project["id"])
    first = await _test(api, headers, project["id"], title="A")
    second = await _test(api, headers, project["id"], title="B")
    url = f"{BASE}/groups/{group['id']}/tests"

    expected = {"groupId": group["id"], "testId": second["id"], "added": True}
    response = await api.client.post(url, headers=headers, json={"testId": second["id"]})
    assert response.status_code == 201 and response.json() == expected
    response = await api.client.post(url, headers=headers, json={"testId": second["id"]})
    assert response.status_code == 200 and response.json() == {**expected, "added": False}
    await api.client.post(url, headers=headers, json={"testId": first["id"]})
    detail = (await api.client.get(f"{BASE}/groups/{group['id']}", headers=headers)).json()
    assert detail["testIds"] == [second["id"], first["id"]]

    await api.client.patch(
        f"{BASE}/groups/{group['id']}", headers=headers, json={"prepTestId": second["id"]}
    )
    for removed in (True, False):
        response = await api.client.delete(f"{url}/{second['id']}", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "groupId": group["id"],
            "testId": second["id"],
            "removed": removed,
        }
    detail = (await api.client.get(f"{BASE}/groups/{group['id']}", headers=headers)).json()
    assert detail["testIds"] == [first["id"]] and detail["prepTestId"] is None

    other = await _project(api, headers, name="Other")
    foreign = await _test(api, headers, other["id"])
    response = await api.client.post(url, headers=headers, json={"testId": foreign["id"]})
    _assert_error(response, 400, "ValidationError")
    response = await api.client.post(url, headers=headers, json={"testId": str(uuid.uuid4())})
    _assert_error(response, 404, "NotFound")
    response = await api.client.post(
        f"{BASE}/groups/{uuid.uuid4()}/tests", headers=headers, json={"testId": first["id"]}
    )
    _assert_error(response, 404, "NotFound")
    response = await api.client.delete(f"{url}/not-a-uuid", headers=headers)
    _assert_error(response, 400, "ValidationError")


async def test_a_project_has_at_most_20_groups(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.ADMIN)
    project = await _project(api, headers)
    for i in range(19):  # the default group is the 20th
        await _group(api, headers, project["id"], name=f"G{i}")
    response = await api.client.post(
        f"{BASE}/groups", headers=headers, json={"projectId": project["id"], "name": "one too many"}
    )
    _assert_error(response, 409, "Conflict")
    assert len(await _groups(api, headers, project["id"])) == 20


async def test_group_validation(ta: Api) -> None:
    api = ta
    headers = await api.headers(Role.ADMIN)
    project = await _project(api, headers)
    bad_bodies: list[dict[str, Any]] = [
        {"projectId": project["id"]},
        {"projectId": project["id"], "name": ""},
        {"projectId": project["id"], "name": "G", "runMode": "parallel"},
        {"projectId": project["id"], "name": "G", "prepTestId": "nope"},
        {"projectId": project["id"], "name": "G", "isDefault": True},
    ]
    for bad in bad_bodies:
        response = await api.client.post(f"{BASE}/groups", headers=headers, json=bad)
        _assert_error(response, 400, "ValidationError")
    response = await api.client.post(
        f"{BASE}/groups", headers=headers, json={"projectId": "nosuchid", "name": "G"}
    )
    _assert_error(response, 404, "NotFound")
    response = await api.client.post(
        f"{BASE}/groups",
        headers=headers,
        json={"projectId": project["id"], "name": "G", "prepTestId": str(uuid.uuid4())},
    )
    _assert_error(response, 404, "NotFound")
    response = await api.client.get(
        f"{BASE}/groups", headers=headers, params={"projectId": "nosuchid"}
    )
    _assert_error(response, 404, "NotFound")
    response = await api.client.get(f"{BASE}/groups/123", headers=headers)
    _assert_error(response, 400, "ValidationError")


# ---- auth -----------------------------------------------------------------------------


async def test_read_only_users_may_read_but_not_write(ta: Api) -> None:
    api = ta
    admin = await api.headers(Role.ADMIN)
    project = await _project(api, admin)
    test = await _test(api, admin, project["id"])
    [default] = await _groups(api, admin, project["id"])
    readers = [
        await api.headers(Role.USER, (Scope.RUNS_READ, Scope.RESULTS_READ)),
        # A writing role whose token lacks runs:write is refused the same way.
        await api.headers(Role.CONTRIBUTOR, (Scope.RUNS_READ,)),
    ]
    reads = [
        ("GET", "/projects", None),
        ("GET", f"/projects/{project['id']}", None),
        ("GET", f"/tests?projectId={project['id']}", None),
        ("GET", f"/tests/{test['id']}", None),
        ("GET", f"/groups?projectId={project['id']}", None),
        ("GET", f"/groups/{default['id']}", None),
    ]
    writes = [
        ("POST", "/projects", {"name": "X", "url": "https://x.example"}),
        ("PATCH", f"/projects/{project['id']}", {"name": "X"}),
        ("DELETE", f"/projects/{project['id']}", None),
        ("POST", "/tests", {"title": "T", "steps": STEPS, "projectId": project["id"]}),
        ("PATCH", f"/tests/{test['id']}", {"title": "X"}),
        ("DELETE", f"/tests/{test['id']}", None),
        ("POST", "/groups", {"projectId": project["id"], "name": "G"}),
        ("PATCH", f"/groups/{default['id']}", {"name": "X"}),
        ("DELETE", f"/groups/{default['id']}", None),
        ("POST", f"/groups/{default['id']}/tests", {"testId": test["id"]}),
        ("DELETE", f"/groups/{default['id']}/tests/{test['id']}", None),
    ]
    for headers in readers:
        for method, path, body in reads:
            response = await api.client.request(method, f"{BASE}{path}", headers=headers, json=body)
            assert response.status_code == 200, (method, path, response.text)
        for method, path, body in writes:
            response = await api.client.request(method, f"{BASE}{path}", headers=headers, json=body)
            _assert_error(response, 403, "Forbidden")
    for method, path, body in reads + writes:
        response = await api.client.request(method, f"{BASE}{path}", json=body)
        _assert_error(response, 401, "Unauthorized")


async def test_the_openapi_document_lists_each_operation_once(ta: Api) -> None:
    response = await ta.client.get("/ta/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    operations = {
        (method, path): op["operationId"]
        for path, item in paths.items()
        for method, op in item.items()
        # Runs of tests and groups belong to the runs routes.
        if path.startswith(("/v1/projects", "/v1/tests", "/v1/groups"))
        and not path.endswith("/runs")
    }
    assert sorted(operations.values()) == sorted(
        [
            "list-projects",
            "create-a-project",
            "get-a-project",
            "update-a-project",
            "delete-a-project",
            "list-tests",
            "create-a-test",
            "get-a-test",
            "update-a-test",
            "delete-a-test",
            "list-test-groups",
            "create-a-test-group",
            "get-a-test-group",
            "update-a-test-group",
            "delete-a-test-group",
            "add-a-test-to-a-group",
            "remove-a-test-from-a-group",
        ]
    )
    assert not any(path.startswith("/api/v1/") for path in paths)
    add = paths["/v1/groups/{groupId}/tests"]["post"]["responses"]
    assert {"200", "201", "404"} <= set(add)
