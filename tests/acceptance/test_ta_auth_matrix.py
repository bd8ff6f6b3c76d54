"""Who may call what in the Tester Army dialect: every ``/ta`` operation, table-driven.

For each operation of ``/ta/openapi.json``: no (or a bad) key → 401 ``Unauthorized``;
a token without the required scope → 403 ``Forbidden``; a user whose role may not act
→ 403 ``Forbidden``; every allowed role with a token holding only the required scope
gets through, with an ``sk_`` key and with a runplane ``spci_`` token alike, under both
base URLs (``/ta/v1`` and ``/ta/api/v1``). Then the order of the checks: authenticate,
role, scope, path id, body.

One app (no workers) is shared by the module: the probes name nothing that exists, or
create a throwaway resource no other probe looks at. Usage limits are off
(``usage_runs_per_day=0``) so the run-creating probes cannot run out of quota. Tokens
are real (issued by the accounts service, sent as ``Authorization: Bearer``); no
dependency is overridden.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from runplane.api.app import create_app
from runplane.api.security_headers import API_SECURITY_HEADERS
from runplane.domain.permissions import ALL_SCOPES, Role, Scope, scopes_allowed_for
from runplane.services import accounts
from tests.conftest import Api, make_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

BASE = "/ta/v1"
ALIAS = "/ta/api/v1"
#: A valid id that names nothing: allowed callers get past auth and reach the 404.
MISSING = "5f0c1c8e-4a8e-4d6b-9a57-0d3c1e2f4a6b"
#: A project reference (id or shortId) that names nothing.
MISSING_REF = "no-such-project"
PASSWORD = "password123"
UNAUTHORIZED = {"error": "Unauthorized", "message": "Invalid or missing API key."}
RUN_CONTROL = frozenset({Role.ADMIN, Role.CONTRIBUTOR, Role.TESTER})
SUITE_EDIT = frozenset({Role.ADMIN, Role.CONTRIBUTOR})
RR, RW = Scope.RUNS_READ, Scope.RUNS_WRITE
PREFIXES = (accounts.TESTER_ARMY_PREFIX, accounts.TOKEN_PREFIX)
STEPS = [{"type": "act", "title": "Open the home page"}]


@dataclass(frozen=True)
class Route:
    method: str
    #: The path as the OpenAPI document spells it (``/v1/...``).
    path: str
    #: The scope the token must hold.
    scope: Scope
    #: The roles allowed to act; None: every role.
    roles: frozenset[Role] | None = None
    #: What an allowed caller gets for the probe request below.
    ok: int = 200
    body: dict[str, Any] | None = None
    #: Query string of the probe request (without ``?``).
    query: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, base: str = BASE) -> str:
        values = dict.fromkeys(("id", "testId", "groupId", "batchId"), MISSING)
        values |= {"projectId": MISSING_REF, "name": "shot.png"}
        url = base + self.path.removeprefix("/v1").format(**values)
        return f"{url}?{self.query}" if self.query else url

    @property
    def allowed_roles(self) -> frozenset[Role]:
        return self.roles if self.roles is not None else frozenset(Role)


ROUTES: tuple[Route, ...] = (
    # runs: a valid prompt queues a throwaway run (no workers, so it stays queued).
    Route("POST", "/v1/runs", RW, RUN_CONTROL, ok=202, body={"prompt": "open https://x.test"}),
    Route("GET", "/v1/runs", RR),
    Route("GET", "/v1/runs/{id}", RR, ok=404),
    Route("POST", "/v1/runs/{id}/cancel", RW, RUN_CONTROL, ok=404),
    Route("GET", "/v1/runs/{id}/screenshots/{name}", RR, ok=404),
    Route("POST", "/v1/tests/{testId}/runs", RW, RUN_CONTROL, ok=404),
    Route("POST", "/v1/groups/{groupId}/runs", RW, RUN_CONTROL, ok=404),
    # batches
    Route("POST", "/v1/batches/{batchId}/cancel", RW, RUN_CONTROL, ok=404),
    Route("POST", "/v1/batches/{batchId}/rerun", RW, RUN_CONTROL, ok=404),
    # projects: a valid body creates a throwaway project.
    Route("GET", "/v1/projects", RR),
    Route(
        "POST",
        "/v1/projects",
        RW,
        SUITE_EDIT,
        ok=201,
        body={"name": "matrix probe", "url": "https://probe.example.com"},
    ),
    Route("GET", "/v1/projects/{projectId}", RR, ok=404),
    Route("PATCH", "/v1/projects/{projectId}", RW, SUITE_EDIT, ok=404, body={"name": "x"}),
    Route("DELETE", "/v1/projects/{projectId}", RW, SUITE_EDIT, ok=404),
    # tests
    Route("GET", "/v1/tests", RR, ok=404, query=f"projectId={MISSING_REF}"),
    Route(
        "POST",
        "/v1/tests",
        RW,
        SUITE_EDIT,
        ok=404,
        body={"title": "t", "steps": STEPS, "projectId": MISSING_REF},
    ),
    Route("GET", "/v1/tests/{testId}", RR, ok=404),
    Route("PATCH", "/v1/tests/{testId}", RW, SUITE_EDIT, ok=404, body={"title": "x"}),
    Route("DELETE", "/v1/tests/{testId}", RW, SUITE_EDIT, ok=404),
    # groups
    Route("GET", "/v1/groups", RR, ok=404, query=f"projectId={MISSING_REF}"),
    Route(
        "POST",
        "/v1/groups",
        RW,
        SUITE_EDIT,
        ok=404,
        body={"projectId": MISSING_REF, "name": "g"},
    ),
    Route("GET", "/v1/groups/{groupId}", RR, ok=404),
    Route("PATCH", "/v1/groups/{groupId}", RW, SUITE_EDIT, ok=404, body={"name": "x"}),
    Route("DELETE", "/v1/groups/{groupId}", RW, SUITE_EDIT, ok=404),
    Route("POST", "/v1/groups/{groupId}/tests", RW, SUITE_EDIT, ok=404, body={"testId": MISSING}),
    Route("DELETE", "/v1/groups/{groupId}/tests/{testId}", RW, SUITE_EDIT, ok=404),
)
#: A few routes also probed under the ``/ta/api/v1`` alias (a read, a run, a suite edit).
ALIAS_ROUTES = tuple(
    r
    for r in ROUTES
    if r.id
    in {
        "GET /v1/runs",
        "POST /v1/runs",
        "GET /v1/runs/{id}",
        "POST /v1/batches/{batchId}/cancel",
        "POST /v1/projects",
        "PATCH /v1/groups/{groupId}",
    }
)


def _cases(pairs: Iterable[tuple[Route, Role]]) -> list[Any]:
    return [pytest.param(r, role, id=f"{r.id} [{role.value}]") for r, role in pairs]


def _missing_scope_cases() -> list[Any]:
    """Admin always; plus one non-admin role that may act (the least privileged one)."""
    pairs: list[tuple[Route, Role]] = []
    for r in ROUTES:
        pairs.append((r, Role.ADMIN))
        others = r.allowed_roles - {Role.ADMIN}
        other = Role.USER if Role.USER in others else min(others, default=None)
        if other is not None and r.scope in scopes_allowed_for(other):
            pairs.append((r, other))
    return _cases(pairs)


def _role_denied_cases() -> list[Any]:
    return _cases(
        (r, role) for r in ROUTES if r.roles is not None for role in sorted(set(Role) - r.roles)
    )


def _allowed_cases() -> list[Any]:
    return [
        pytest.param(r, role, prefix, id=f"{r.id} [{role.value}, {prefix}]")
        for r in ROUTES
        for role in sorted(r.allowed_roles)
        for prefix in PREFIXES
    ]


def _role_message(roles: Iterable[Role]) -> str:
    return f"This action requires one of the roles: {', '.join(sorted(r.value for r in roles))}."


def _scope_message(scope: Scope) -> str:
    return f"This token lacks the required scope: {scope.value}."


# ---- the shared app and a pool of real tokens -------------------------------------------


@dataclass
class Matrix:
    api: Api
    _emails: dict[Role, str] = field(default_factory=dict)
    _tokens: dict[tuple[Role, frozenset[Scope], str], str] = field(default_factory=dict)

    async def email(self, role: Role) -> str:
        """One user per role (password hashing is the slow part of making a user)."""
        if role not in self._emails:
            email = f"ta-matrix-{role.value}@example.com"
            await accounts.create_user(self.api.ctx, email, PASSWORD, role)
            self._emails[role] = email
        return self._emails[role]

    async def issue(
        self, role: Role, scopes: Iterable[Scope], prefix: str = accounts.TESTER_ARMY_PREFIX
    ) -> accounts.IssuedToken:
        return await accounts.issue_for_email(
            self.api.ctx,
            await self.email(role),
            f"m-{uuid.uuid4().hex[:12]}",
            list(scopes),
            1,
            prefix=prefix,
        )

    async def token(
        self, role: Role, scopes: Iterable[Scope], prefix: str = accounts.TESTER_ARMY_PREFIX
    ) -> str:
        key = (role, frozenset(scopes), prefix)
        if key not in self._tokens:
            self._tokens[key] = (await self.issue(role, key[1], prefix)).token
        return self._tokens[key]

    async def headers(
        self, role: Role, scopes: Iterable[Scope], prefix: str = accounts.TESTER_ARMY_PREFIX
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(role, scopes, prefix)}"}

    async def call(
        self,
        route: Route,
        headers: dict[str, str] | None = None,
        url: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if route.body is not None and "json" not in kwargs and "content" not in kwargs:
            kwargs["json"] = route.body
        return await self.api.client.request(
            route.method, url or route.url(), headers=headers or {}, **kwargs
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def matrix(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Matrix]:
    data: Path = tmp_path_factory.mktemp("ta-auth-matrix") / "data"
    app = create_app(make_settings(data, usage_runs_per_day=0), run_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Matrix(Api(app=app, client=client, ctx=app.state.runtime.ctx))


def _assert_forbidden(response: httpx.Response, message: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {"error": "Forbidden", "message": message}


def _assert_unauthorized(response: httpx.Response, context: Any = None) -> None:
    assert response.status_code == 401, (context, response.text)
    assert response.json() == UNAUTHORIZED, context
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer"), context


# ---- the table is complete ----------------------------------------------------------------

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


async def _document(matrix: Matrix) -> dict[str, Any]:
    # The document itself is public.
    response = await matrix.api.client.get("/ta/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def test_table_covers_every_openapi_operation(matrix: Matrix) -> None:
    document = await _document(matrix)
    documented = {
        (method.upper(), path): op
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }
    in_table = {(r.method, r.path) for r in ROUTES}
    assert len(in_table) == len(ROUTES), "duplicate rows in ROUTES"
    missing = sorted(set(documented) - in_table)
    stale = sorted(in_table - set(documented))
    assert not missing, f"operations without an auth-matrix row: {missing}"
    assert not stale, f"auth-matrix rows for operations that no longer exist: {stale}"
    # Every operation needs the bearer key: global security, overridden nowhere.
    assert document["security"] == [{"bearerAuth": []}]
    assert document["servers"] == [{"url": "/ta"}]
    for r in ROUTES:
        op = documented[(r.method, r.path)]
        assert "security" not in op, r.id
        # What the probes expect is what the document promises.
        for status in (r.ok, 401, 403):
            assert str(status) in op["responses"], (r.id, status)


# ---- 401 ------------------------------------------------------------------------------------

BAD_AUTHORIZATION = (
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNzd29yZA==",
    "Bearer not-a-runplane-token",
    "Bearer sk_" + "A" * 43,  # well formed, unknown
    "Bearer spci_" + "A" * 43,
    "Bearer sk_" + "A" * 600,  # longer than any token may be
)


async def _bad_authorizations(matrix: Matrix) -> list[str | None]:
    valid = await matrix.token(Role.ADMIN, ALL_SCOPES)
    basic = base64.b64encode(f"{valid}:".encode()).decode()
    # A valid secret under another scheme (or none) is still no bearer key.
    return [*BAD_AUTHORIZATION, f"Token {valid}", valid, f"Basic {basic}", f"Bearer {valid}x"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
async def test_missing_or_invalid_key_is_401(matrix: Matrix, route: Route) -> None:
    for authorization in await _bad_authorizations(matrix):
        headers = {} if authorization is None else {"Authorization": authorization}
        _assert_unauthorized(await matrix.call(route, headers), authorization)


@pytest.mark.parametrize("route", ALIAS_ROUTES, ids=lambda r: r.id)
async def test_missing_or_invalid_key_is_401_under_the_alias(matrix: Matrix, route: Route) -> None:
    for authorization in await _bad_authorizations(matrix):
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await matrix.call(route, headers, url=route.url(ALIAS))
        _assert_unauthorized(response, authorization)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
async def test_401_comes_before_path_and_body_checks(matrix: Matrix, route: Route) -> None:
    url = route.url().replace(MISSING, "not-a-uuid")
    response = await matrix.call(
        route, url=url, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    _assert_unauthorized(response)


async def test_401_even_when_the_path_id_holds_a_newline(matrix: Matrix) -> None:
    """The gate answers before routing, whatever the path holds.

    Without a key: 401 ``Unauthorized``; with one, the malformed id is a 400
    ``ValidationError`` (a project reference is any string: 404 ``NotFound``). Both in
    the dialect's envelope and with the security headers. Regression: a newline inside
    a path segment (``/ta/v1/runs/a%0Ab``) made the ``/ta`` mount's pattern miss, so the
    request skipped the dialect's gate and the outer app (``api/app.py``,
    ``_outer_http_error``) answered 404 in the native envelope, without those headers.
    """
    admin = await matrix.headers(Role.ADMIN, ALL_SCOPES)
    wrong = []
    for route in ROUTES:
        if "{" not in route.path:
            continue
        by_ref = "{projectId}" in route.path
        for base in (BASE, ALIAS):
            url = route.url(base).replace(MISSING, "a%0Ab").replace(MISSING_REF, "a%0Ab")
            for headers, status, error in (
                ({}, 401, "Unauthorized"),
                (admin, 404 if by_ref else 400, "NotFound" if by_ref else "ValidationError"),
            ):
                response = await matrix.call(route, headers, url=url)
                body = response.json()
                missing = {
                    name: response.headers.get(name)
                    for name, value in API_SECURITY_HEADERS.items()
                    if response.headers.get(name) != value
                }
                if (
                    response.status_code != status
                    or set(body) != {"error", "message"}
                    or body["error"] != error
                    or (status == 401 and body != UNAUTHORIZED)
                    or missing
                ):
                    wrong.append(
                        f"{route.method} {url} (key: {bool(headers)}) → {response.status_code} "
                        f"{response.text}, security headers wrong: {missing}"
                    )
    assert not wrong, "not answered by the dialect:\n" + "\n".join(wrong)


async def test_revoked_key_is_401(matrix: Matrix) -> None:
    admin = await matrix.issue(Role.ADMIN, ALL_SCOPES)
    victim = await matrix.issue(Role.CONTRIBUTOR, (RR, RW))
    headers = {"Authorization": f"Bearer {victim.token}"}
    assert (await matrix.api.client.get(f"{BASE}/runs", headers=headers)).status_code == 200
    principal = await accounts.authenticate(matrix.api.ctx, admin.token)
    await accounts.revoke(matrix.api.ctx, principal, victim.row.id)
    for route in ROUTES:
        _assert_unauthorized(await matrix.call(route, headers), route.id)


# ---- 403: scope -----------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "role"), _missing_scope_cases())
async def test_token_without_the_scope_is_403(matrix: Matrix, route: Route, role: Role) -> None:
    held = scopes_allowed_for(role) - {route.scope}
    response = await matrix.call(route, await matrix.headers(role, held))
    _assert_forbidden(response, _scope_message(route.scope))


# ---- 403: role ------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "role"), _role_denied_cases())
async def test_role_that_may_not_act_is_403(matrix: Matrix, route: Route, role: Role) -> None:
    assert route.roles is not None
    # Everything the role may hold, the route's scope included.
    held = scopes_allowed_for(role)
    assert route.scope in held
    for prefix in PREFIXES:
        response = await matrix.call(route, await matrix.headers(role, held, prefix))
        _assert_forbidden(response, _role_message(route.roles))


# ---- allowed ------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "role", "prefix"), _allowed_cases())
async def test_allowed_role_with_only_the_scope_gets_through(
    matrix: Matrix, route: Route, role: Role, prefix: str
) -> None:
    headers = await matrix.headers(role, (route.scope,), prefix)
    response = await matrix.call(route, headers)
    assert response.status_code not in (401, 403), response.text
    assert response.status_code == route.ok, response.text
    if route.ok >= 400:
        assert response.json()["error"] == "NotFound", response.text


@pytest.mark.parametrize("route", ALIAS_ROUTES, ids=lambda r: r.id)
async def test_the_alias_applies_the_same_rules(matrix: Matrix, route: Route) -> None:
    url = route.url(ALIAS)
    for role in sorted(set(Role)):
        headers = await matrix.headers(role, scopes_allowed_for(role))
        response = await matrix.call(route, headers, url=url)
        if role in route.allowed_roles:
            assert response.status_code == route.ok, (role, response.text)
        else:
            assert route.roles is not None
            _assert_forbidden(response, _role_message(route.roles))
    held = scopes_allowed_for(Role.ADMIN) - {route.scope}
    response = await matrix.call(route, await matrix.headers(Role.ADMIN, held), url=url)
    _assert_forbidden(response, _scope_message(route.scope))


async def test_a_spci_token_of_a_reader_only_reads(matrix: Matrix) -> None:
    """The default runplane token scopes (runs:read, results:read) read but never write."""
    headers = await matrix.headers(Role.ADMIN, (RR, Scope.RESULTS_READ), accounts.TOKEN_PREFIX)
    for route in ROUTES:
        response = await matrix.call(route, headers)
        if route.scope is RR:
            assert response.status_code == route.ok, (route.id, response.text)
        else:
            _assert_forbidden(response, _scope_message(RW))


# ---- order of checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if "{" in r.path and r.roles is not None], ids=lambda r: r.id
)
async def test_role_then_scope_then_path_id(matrix: Matrix, route: Route) -> None:
    assert route.roles is not None
    url = route.url().replace(MISSING, "not-a-uuid")
    denied = min(set(Role) - route.roles)
    response = await matrix.call(route, await matrix.headers(denied, (RR,)), url=url)
    _assert_forbidden(response, _role_message(route.roles))
    response = await matrix.call(route, await matrix.headers(Role.CONTRIBUTOR, (RR,)), url=url)
    _assert_forbidden(response, _scope_message(RW))
    response = await matrix.call(route, await matrix.headers(Role.CONTRIBUTOR, (RW,)), url=url)
    if "projectId" in route.path:
        # A project reference is any string (an id or a shortId): no format to fail.
        assert response.status_code == 404, response.text
    else:
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "ValidationError"


@pytest.mark.parametrize("route", [r for r in ROUTES if r.body is not None], ids=lambda r: r.id)
async def test_role_and_scope_come_before_the_body_schema(matrix: Matrix, route: Route) -> None:
    bad = {"unexpected": True}
    if route.roles is not None:
        denied = min(set(Role) - route.roles)
        response = await matrix.call(
            route, await matrix.headers(denied, scopes_allowed_for(denied)), json=bad
        )
        _assert_forbidden(response, _role_message(route.roles))
    held = scopes_allowed_for(Role.ADMIN) - {route.scope}
    response = await matrix.call(route, await matrix.headers(Role.ADMIN, held), json=bad)
    _assert_forbidden(response, _scope_message(route.scope))
    response = await matrix.call(route, await matrix.headers(Role.ADMIN, (route.scope,)), json=bad)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "ValidationError"
