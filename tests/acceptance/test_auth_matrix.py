"""Who may call what (contract A.2/A.3): every ``/api/v1`` operation, table-driven.

For each operation of the app's OpenAPI document: no (or a bad) token → 401; a token
without the required scope → 403 ``missing_scopes``; a user whose role may not act →
403 ``required_roles``; every allowed role with a token holding only the required
scope gets through. Then the order of the checks: authenticate, role, scope, path id,
body (POST /runs: body, then role).

One app (no workers) is shared by the module: nothing here changes what another probe
sees, and it keeps the ~200 probes cheap. Tokens are real (issued by the accounts
service and presented as ``Authorization: Bearer``); no dependency is overridden.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from runplane.api.app import create_app
from runplane.domain.permissions import ALL_SCOPES, Role, Scope, scopes_allowed_for
from runplane.services import accounts
from tests.conftest import Api, make_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

BASE = "/api/v1"
#: A valid id that names nothing: allowed callers get past auth and reach the 404.
MISSING_ID = 2_000_000_000
RUN_CONTROL = frozenset({Role.ADMIN, Role.CONTRIBUTOR, Role.TESTER})
ADMIN_ONLY = frozenset({Role.ADMIN})
PASSWORD = "password123"
UNAUTHORIZED = {
    "code": "unauthorized",
    "message": "Bearer token is missing, expired, or invalid.",
    "details": {},
}
#: Valid body for POST /runs; no project serves this repository, so allowed → 422.
RUN_BODY = {"repository": "matrix/no-project", "commit_sha": "a" * 40, "platform": "linux"}
REGRESSION_TEST_BODY = {"project_id": MISSING_ID, "sample_id": MISSING_ID, "command": "x"}
OUTPUT_PATH = "/regression-tests/{regression_test_id}/outputs/{output_id}"
SUITE_EDIT = frozenset({Role.ADMIN, Role.CONTRIBUTOR})
PROJECT_BODY = {
    "repository": "matrix/created-by-probe",
    "repo_url": "/nonexistent/matrix-repo",
    "test_command": "true",
}


@dataclass(frozen=True)
class Route:
    method: str
    #: The path as the OpenAPI document spells it (without ``/api/v1``).
    path: str
    #: The scope the token must hold; None: any valid token will do.
    scope: Scope | None = None
    #: The roles allowed to act; None: every role.
    roles: frozenset[Role] | None = None
    public: bool = False
    #: What an allowed caller gets for the probe request below.
    ok: int = 200
    body: dict[str, Any] | None = None
    #: The probe revokes the token that makes it (so it needs a fresh one).
    revokes_token: bool = False
    #: Query string of the probe request (without ``?``).
    query: str = ""
    #: The probe sends a small ``application/octet-stream`` body.
    raw: bool = False

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def url(self) -> str:
        ids = (
            "run_id",
            "regression_test_id",
            "token_id",
            "project_id",
            "sample_id",
            "extra_id",
            "category_id",
            "output_id",
            "variant_id",
            "regression_id",
        )
        values: dict[str, Any] = {**dict.fromkeys(ids, MISSING_ID), "artifact_id": "log"}
        url = BASE + self.path.format(**values)
        return f"{url}?{self.query}" if self.query else url

    @property
    def allowed_roles(self) -> frozenset[Role]:
        return self.roles if self.roles is not None else frozenset(Role)


RR, RW, SR = Scope.RUNS_READ, Scope.RUNS_WRITE, Scope.SYSTEM_READ
RS, BW = Scope.RESULTS_READ, Scope.BASELINES_WRITE
RUN_OUTPUT = (
    "/runs/{run_id}/samples/{sample_id}/regression-tests/{regression_id}/outputs/{output_id}"
)
APPROVAL_BODY = {"regression_id": 1, "output_id": 1, "reason": "the new output is right"}
SW, TM = Scope.SYSTEM_WRITE, Scope.TOKENS_MANAGE

ROUTES: tuple[Route, ...] = (
    # /auth
    Route("POST", "/auth/tokens", public=True, ok=201),
    Route("GET", "/auth/tokens", TM, ADMIN_ONLY),
    Route("DELETE", "/auth/tokens/current", ok=204, revokes_token=True),
    Route("DELETE", "/auth/tokens/{token_id}", ok=404),
    Route("GET", "/auth/me"),
    # /runs
    Route("GET", "/runs", RR),
    # Role is checked inside the handler, after the body: a valid body is needed.
    Route("POST", "/runs", RW, RUN_CONTROL, ok=422, body=RUN_BODY),
    Route("GET", "/runs/{run_id}", RR, ok=404),
    Route("GET", "/runs/{run_id}/summary", RR, ok=404),
    Route("GET", "/runs/{run_id}/progress", RR, ok=404),
    Route("GET", "/runs/{run_id}/config", RR, ok=404),
    Route("GET", "/runs/{run_id}/logs", SR, ok=404),
    Route("GET", "/runs/{run_id}/logs/raw", SR, ok=404),
    Route("GET", "/runs/{run_id}/logs/stream", SR, ok=404),
    Route("GET", "/runs/{run_id}/samples", RR, ok=404),
    Route("GET", "/runs/{run_id}/samples/{regression_test_id}", RR, ok=404),
    Route("POST", "/runs/{run_id}/cancel", RW, RUN_CONTROL, ok=404),
    Route("POST", "/runs/{run_id}/retry", RW, RUN_CONTROL, ok=404),
    Route("POST", "/runs/{run_id}/restart", RW, RUN_CONTROL, ok=404),
    # regression results of a run
    Route("GET", "/runs/{run_id}/artifacts", RS, ok=404),
    Route("GET", "/runs/{run_id}/artifacts/{artifact_id}/download", RS, ok=404),
    Route("GET", "/runs/{run_id}/errors", RS, ok=404),
    Route("GET", "/runs/{run_id}/error-summary", RS, ok=404),
    Route("GET", RUN_OUTPUT + "/expected", RS, ok=404),
    Route("GET", RUN_OUTPUT + "/actual", RS, ok=404),
    Route("GET", RUN_OUTPUT + "/diff", RS, ok=404),
    Route(
        "GET",
        "/runs/{run_id}/samples/{sample_id}/expected",
        RS,
        ok=404,
        query="regression_id=1&output_id=1",
    ),
    Route(
        "GET",
        "/runs/{run_id}/samples/{sample_id}/actual",
        RS,
        ok=404,
        query="regression_id=1&output_id=1",
    ),
    Route(
        "POST",
        "/runs/{run_id}/samples/{sample_id}/baseline-approval",
        BW,
        ADMIN_ONLY,
        ok=404,
        body=APPROVAL_BODY,
    ),
    Route("GET", "/samples/{sample_id}/history", RR, ok=404),
    # /system
    Route("GET", "/system/health", public=True),
    Route("GET", "/system/queue", SR),
    # /projects (runplane extension)
    Route("GET", "/projects", RR),
    Route("POST", "/projects", SW, ADMIN_ONLY, ok=201, body=PROJECT_BODY),
    Route("GET", "/projects/{project_id}", RR, ok=404),
    Route("PATCH", "/projects/{project_id}", SW, ADMIN_ONLY, ok=404, body={"test_command": "x"}),
    Route("DELETE", "/projects/{project_id}", SW, ADMIN_ONLY, ok=404),
    # /samples (regression suite)
    Route("GET", "/samples", RR),
    # No filename and no body: allowed callers reach the 422 "filename is required".
    Route("POST", "/samples/upload", RW, SUITE_EDIT, ok=422, raw=True),
    Route("GET", "/samples/{sample_id}", RR, ok=404),
    Route("PATCH", "/samples/{sample_id}", RW, SUITE_EDIT, ok=404, body={"notes": "x"}),
    Route("DELETE", "/samples/{sample_id}", RW, SUITE_EDIT, ok=404),
    Route("GET", "/samples/{sample_id}/download", RR, ok=404),
    Route(
        "POST",
        "/samples/{sample_id}/extra-files",
        RW,
        SUITE_EDIT,
        ok=404,
        query="filename=x",
        raw=True,
    ),
    Route("GET", "/samples/{sample_id}/extra-files/{extra_id}/download", RR, ok=404),
    Route("DELETE", "/samples/{sample_id}/extra-files/{extra_id}", RW, SUITE_EDIT, ok=404),
    # /categories
    Route("GET", "/categories", RR),
    Route("POST", "/categories", RW, SUITE_EDIT, ok=201, body={"name": "matrix-probe"}),
    Route("DELETE", "/categories/{category_id}", RW, SUITE_EDIT, ok=404),
    # /regression-tests
    Route("GET", "/regression-tests", RR),
    # No such project: allowed callers get 422.
    Route("POST", "/regression-tests", RW, SUITE_EDIT, ok=422, body=REGRESSION_TEST_BODY),
    Route("GET", "/regression-tests/{regression_test_id}", RR, ok=404),
    Route("PATCH", "/regression-tests/{regression_test_id}", RW, SUITE_EDIT, ok=404, body={}),
    Route("DELETE", "/regression-tests/{regression_test_id}", RW, SUITE_EDIT, ok=404),
    Route(
        "POST",
        "/regression-tests/{regression_test_id}/outputs",
        RW,
        SUITE_EDIT,
        ok=404,
        body={"filename": "out.srt"},
    ),
    Route("PATCH", OUTPUT_PATH, RW, SUITE_EDIT, ok=404, body={"ignore": True}),
    Route("DELETE", OUTPUT_PATH, RW, SUITE_EDIT, ok=404),
    Route("PUT", OUTPUT_PATH + "/baseline", RW, SUITE_EDIT, ok=404, raw=True),
    Route("GET", OUTPUT_PATH + "/download", RR, ok=404),
    Route("GET", OUTPUT_PATH + "/variants", RR, ok=404),
    Route("POST", OUTPUT_PATH + "/variants", RW, SUITE_EDIT, ok=404, body={"sha256": "a" * 64}),
    Route("DELETE", OUTPUT_PATH + "/variants/{variant_id}", RW, SUITE_EDIT, ok=404),
    Route("GET", OUTPUT_PATH + "/variants/{variant_id}/download", RR, ok=404),
)
PROTECTED = tuple(r for r in ROUTES if not r.public)


def _cases(pairs: Iterable[tuple[Route, Role]]) -> list[Any]:
    return [pytest.param(r, role, id=f"{r.id} [{role.value}]") for r, role in pairs]


def _missing_scope_cases() -> list[Any]:
    """Admin always; plus one non-admin role that may act, when it could hold the scope."""
    pairs: list[tuple[Route, Role]] = []
    for r in PROTECTED:
        if r.scope is None:
            continue
        pairs.append((r, Role.ADMIN))
        others = r.allowed_roles - {Role.ADMIN}
        other = Role.USER if Role.USER in others else min(others, default=None)
        if other is not None and r.scope in scopes_allowed_for(other):
            pairs.append((r, other))
    return _cases(pairs)


def _role_denied_cases() -> list[Any]:
    return _cases(
        (r, role) for r in PROTECTED if r.roles is not None for role in sorted(set(Role) - r.roles)
    )


def _allowed_cases() -> list[Any]:
    return _cases((r, role) for r in PROTECTED for role in sorted(r.allowed_roles))


# ---- the shared app and a pool of real tokens -------------------------------------------


@dataclass
class Matrix:
    api: Api
    _emails: dict[Role, str] = field(default_factory=dict)
    _tokens: dict[tuple[Role, frozenset[Scope]], str] = field(default_factory=dict)

    async def email(self, role: Role) -> str:
        """One user per role (password hashing is the slow part of making a token)."""
        if role not in self._emails:
            email = f"matrix-{role.value}@example.com"
            await accounts.create_user(self.api.ctx, email, PASSWORD, role)
            self._emails[role] = email
        return self._emails[role]

    async def token(self, role: Role, scopes: Iterable[Scope], *, fresh: bool = False) -> str:
        key = (role, frozenset(scopes))
        if fresh or key not in self._tokens:
            issued = await accounts.issue_for_email(
                self.api.ctx, await self.email(role), f"m-{uuid.uuid4().hex[:12]}", list(key[1]), 1
            )
            if fresh:
                return issued.token
            self._tokens[key] = issued.token
        return self._tokens[key]

    async def headers(
        self, role: Role, scopes: Iterable[Scope], *, fresh: bool = False
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(role, scopes, fresh=fresh)}"}

    async def call(
        self,
        route: Route,
        headers: dict[str, str] | None = None,
        url: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if route.body is not None and "json" not in kwargs and "content" not in kwargs:
            kwargs["json"] = route.body
        if route.raw and "json" not in kwargs and "content" not in kwargs:
            kwargs["content"] = b"probe"
            headers = {**(headers or {}), "Content-Type": "application/octet-stream"}
        return await self.api.client.request(
            route.method, url or route.url, headers=headers or {}, **kwargs
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def matrix(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Matrix]:
    data: Path = tmp_path_factory.mktemp("auth-matrix") / "data"
    app = create_app(make_settings(data), run_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Matrix(Api(app=app, client=client, ctx=app.state.runtime.ctx))


def _forbidden(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == "forbidden" and body["message"]
    return body["details"]  # type: ignore[no-any-return]


def _assert_missing_scope(response: httpx.Response, scope: Scope, held: Iterable[Scope]) -> None:
    details = _forbidden(response)
    assert details == {
        "required_scopes": [scope.value],
        "missing_scopes": [scope.value],
        "token_scopes": sorted(s.value for s in held),
    }


def _assert_role_denied(response: httpx.Response, roles: Iterable[Role], role: Role) -> None:
    details = _forbidden(response)
    assert details == {"required_roles": sorted(r.value for r in roles), "user_role": role.value}


# ---- the table is complete ----------------------------------------------------------------


async def test_table_covers_every_openapi_operation(matrix: Matrix) -> None:
    response = await matrix.api.client.get(f"{BASE}/openapi.json")
    assert response.status_code == 200
    paths: dict[str, dict[str, Any]] = response.json()["paths"]
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    documented = {
        (method.upper(), path): op
        for path, item in paths.items()
        for method, op in item.items()
        if method in methods
    }
    in_table = {(r.method, r.path) for r in ROUTES}
    assert len(in_table) == len(ROUTES), "duplicate rows in ROUTES"
    missing = sorted(set(documented) - in_table)
    stale = sorted(in_table - set(documented))
    assert not missing, f"operations without an auth-matrix row: {missing}"
    assert not stale, f"auth-matrix rows for operations that no longer exist: {stale}"
    for r in ROUTES:
        # ``security: []`` in the document exactly where the table says "public".
        assert (documented[(r.method, r.path)].get("security") == []) is r.public, r.id


# ---- 401 ------------------------------------------------------------------------------------

BAD_AUTHORIZATION = (
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNzd29yZA==",
    "Bearer not-a-runplane-token",
    "Bearer spci_" + "A" * 43,  # well formed, unknown
    "Bearer spci_" + "A" * 600,  # longer than any token may be
)


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: r.id)
async def test_missing_or_invalid_token_is_401(matrix: Matrix, route: Route) -> None:
    valid = await matrix.token(Role.ADMIN, ALL_SCOPES)
    # A valid secret under another scheme is still no bearer token.
    for authorization in (*BAD_AUTHORIZATION, f"Token {valid}", f"{valid}"):
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await matrix.call(route, headers)
        assert response.status_code == 401, (authorization, response.text)
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: r.id)
async def test_401_comes_before_path_and_body_checks(matrix: Matrix, route: Route) -> None:
    url = route.url.replace(str(MISSING_ID), "abc") if "{" in route.path else route.url
    response = await matrix.call(route, url=url, content=b"{not json", headers=None)
    assert response.status_code == 401, response.text
    assert response.json() == UNAUTHORIZED


# ---- public endpoints ----------------------------------------------------------------------


async def test_post_auth_tokens_needs_no_token(matrix: Matrix) -> None:
    email = await matrix.email(Role.USER)
    body = {"email": email, "password": PASSWORD, "token_name": "public-probe"}
    response = await matrix.api.client.post(f"{BASE}/auth/tokens", json=body)
    assert response.status_code == 201, response.text
    # A junk Authorization header is ignored rather than answered with 401.
    body["token_name"] = "public-probe-2"
    response = await matrix.api.client.post(
        f"{BASE}/auth/tokens", json=body, headers={"Authorization": "Bearer junk"}
    )
    assert response.status_code == 201, response.text


async def test_health_needs_no_token(matrix: Matrix) -> None:
    for headers in ({}, {"Authorization": "Bearer junk"}, {"Authorization": "Basic x"}):
        response = await matrix.api.client.get(f"{BASE}/system/health", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["status"] in {"ok", "degraded"}


# ---- 403: scope -----------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "role"), _missing_scope_cases())
async def test_token_without_the_scope_is_403(matrix: Matrix, route: Route, role: Role) -> None:
    assert route.scope is not None
    held = scopes_allowed_for(role) - {route.scope}
    response = await matrix.call(route, await matrix.headers(role, held))
    _assert_missing_scope(response, route.scope, held)


# ---- 403: role ------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "role"), _role_denied_cases())
async def test_role_that_may_not_act_is_403(matrix: Matrix, route: Route, role: Role) -> None:
    assert route.roles is not None
    # Everything the role may hold; that includes the route's scope whenever a
    # non-admin can hold it at all (system:write and tokens:manage are admin-only).
    held = scopes_allowed_for(role)
    response = await matrix.call(route, await matrix.headers(role, held))
    _assert_role_denied(response, route.roles, role)


# ---- allowed ------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "role"), _allowed_cases())
async def test_allowed_role_with_only_the_scope_gets_through(
    matrix: Matrix, route: Route, role: Role
) -> None:
    scopes = (route.scope,) if route.scope else ()
    headers = await matrix.headers(role, scopes, fresh=route.revokes_token)
    response = await matrix.call(route, headers)
    assert response.status_code not in (401, 403), response.text
    assert response.status_code == route.ok, response.text
    if route.method == "POST" and route.path == "/projects":
        # Undo the probe's project so the next allowed role can create it again.
        project_id = response.json()["project_id"]
        deleted = await matrix.api.client.delete(
            f"{BASE}/projects/{project_id}",
            headers=await matrix.headers(Role.ADMIN, (Scope.SYSTEM_WRITE,)),
        )
        assert deleted.status_code == 204
    if route.method == "POST" and route.path == "/categories":
        category_id = response.json()["id"]
        deleted = await matrix.api.client.delete(
            f"{BASE}/categories/{category_id}",
            headers=await matrix.headers(Role.ADMIN, (Scope.RUNS_WRITE,)),
        )
        assert deleted.status_code == 204


async def test_non_admins_cannot_hold_admin_scopes(matrix: Matrix) -> None:
    """What the role-denied rows rely on: a non-admin token never has the admin scopes."""
    expected = {Scope.RUNS_READ, Scope.RUNS_WRITE, Scope.RESULTS_READ, Scope.SYSTEM_READ}
    admin_only = sorted(s.value for s in set(ALL_SCOPES) - expected)
    for role in (Role.USER, Role.CONTRIBUTOR, Role.TESTER):
        assert scopes_allowed_for(role) == expected
        response = await matrix.api.client.post(
            f"{BASE}/auth/tokens",
            json={
                "email": await matrix.email(role),
                "password": PASSWORD,
                "token_name": f"deny-{role.value}",
                "scopes": ["runs:read", *admin_only],
            },
        )
        body = _forbidden(response)
        assert body == {"disallowed_scopes": admin_only}
        assert response.json()["message"] == (
            f"Your current role ({role.value}) does not permit requesting the following "
            f"scopes: {', '.join(admin_only)}"
        )


# ---- order of checks ----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["cancel", "retry", "restart"])
async def test_role_is_checked_before_scope_on_run_control(matrix: Matrix, action: str) -> None:
    held = (Scope.RUNS_READ,)
    response = await matrix.api.client.post(
        f"{BASE}/runs/{MISSING_ID}/{action}", headers=await matrix.headers(Role.USER, held)
    )
    _assert_role_denied(response, RUN_CONTROL, Role.USER)
    # An allowed role without the scope gets the scope error instead.
    response = await matrix.api.client.post(
        f"{BASE}/runs/{MISSING_ID}/{action}",
        headers=await matrix.headers(Role.TESTER, held),
    )
    _assert_missing_scope(response, Scope.RUNS_WRITE, held)


async def test_role_is_checked_before_scope_on_admin_routes(matrix: Matrix) -> None:
    held = (Scope.RUNS_READ,)
    headers = await matrix.headers(Role.CONTRIBUTOR, held)
    response = await matrix.api.client.get(f"{BASE}/auth/tokens", headers=headers)
    _assert_role_denied(response, ADMIN_ONLY, Role.CONTRIBUTOR)
    response = await matrix.api.client.delete(f"{BASE}/projects/{MISSING_ID}", headers=headers)
    _assert_role_denied(response, ADMIN_ONLY, Role.CONTRIBUTOR)


@pytest.mark.parametrize(
    ("raw_id", "message"),
    [
        ("abc", "run_id must be a positive integer."),
        ("1.5", "run_id must be a positive integer."),
        ("0", "run_id must be between 1 and 2147483647."),
        ("2147483648", "run_id must be between 1 and 2147483647."),
    ],
)
async def test_scope_is_checked_before_the_path_id(
    matrix: Matrix, raw_id: str, message: str
) -> None:
    without = (Scope.RESULTS_READ,)
    response = await matrix.api.client.get(
        f"{BASE}/runs/{raw_id}", headers=await matrix.headers(Role.USER, without)
    )
    _assert_missing_scope(response, Scope.RUNS_READ, without)

    response = await matrix.api.client.get(
        f"{BASE}/runs/{raw_id}", headers=await matrix.headers(Role.USER, (Scope.RUNS_READ,))
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "validation_error" and body["message"] == message
    assert body["details"]["fields"]["run_id"] == [message]

    # Run control: role, then scope, then the id.
    url = f"{BASE}/runs/{raw_id}/cancel"
    rw = (Scope.RUNS_WRITE,)
    response = await matrix.api.client.post(url, headers=await matrix.headers(Role.USER, rw))
    _assert_role_denied(response, RUN_CONTROL, Role.USER)
    response = await matrix.api.client.post(
        url, headers=await matrix.headers(Role.CONTRIBUTOR, (Scope.RUNS_READ,))
    )
    _assert_missing_scope(response, Scope.RUNS_WRITE, (Scope.RUNS_READ,))
    response = await matrix.api.client.post(url, headers=await matrix.headers(Role.CONTRIBUTOR, rw))
    assert response.status_code == 400 and response.json()["message"] == message


async def test_scope_is_checked_before_the_body(matrix: Matrix) -> None:
    bad_bodies: list[dict[str, Any]] = [
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        {"content": b"<xml/>", "headers": {"Content-Type": "application/xml"}},
        {"json": {"unexpected": True}},
    ]
    admin_without = tuple(s for s in ALL_SCOPES if s is not Scope.SYSTEM_WRITE)
    user_without = (Scope.RUNS_READ,)
    for kwargs in bad_bodies:
        extra = kwargs.pop("headers", {})
        response = await matrix.api.client.post(
            f"{BASE}/projects",
            headers={**await matrix.headers(Role.ADMIN, admin_without), **extra},
            **kwargs,
        )
        _assert_missing_scope(response, Scope.SYSTEM_WRITE, admin_without)
        response = await matrix.api.client.post(
            f"{BASE}/runs",
            headers={**await matrix.headers(Role.USER, user_without), **extra},
            **kwargs,
        )
        _assert_missing_scope(response, Scope.RUNS_WRITE, user_without)
        # With the scope, the same body is what fails.
        response = await matrix.api.client.post(
            f"{BASE}/projects",
            headers={**await matrix.headers(Role.ADMIN, (Scope.SYSTEM_WRITE,)), **extra},
            **kwargs,
        )
        assert response.status_code in (400, 415), response.text
        assert response.json()["code"] == "validation_error"


async def test_post_runs_checks_the_role_after_the_body(matrix: Matrix) -> None:
    headers = await matrix.headers(Role.USER, (Scope.RUNS_WRITE,))
    url = f"{BASE}/runs"

    response = await matrix.api.client.post(
        url, headers={**headers, "Content-Type": "application/json"}, content=b"{oops"
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "Request body must be valid JSON."

    response = await matrix.api.client.post(
        url, headers={**headers, "Content-Type": "text/plain"}, content=b"{}"
    )
    assert response.status_code == 415, response.text

    response = await matrix.api.client.post(url, headers=headers, json={**RUN_BODY, "x": 1})
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "Request failed schema validation."

    response = await matrix.api.client.post(url, headers=headers, json={"repository": "a/b"})
    assert response.status_code == 400, response.text

    response = await matrix.api.client.post(url, headers=headers, json=RUN_BODY)
    _assert_role_denied(response, RUN_CONTROL, Role.USER)
