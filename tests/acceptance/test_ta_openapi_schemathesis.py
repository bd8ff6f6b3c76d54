"""Schemathesis against the Tester Army document ``/ta/openapi.json``, in process over ASGI.

Every operation gets generated requests, valid and invalid, sent as an admin whose
token has every scope, to a database holding a web project, a group with two tests, a
queued prompt run (with a screenshot), a cancelled run and a batch of the group, so
that the path ids resolve about half of the time. Workers are off: every run stays
queued, so ``?wait=`` answers 504 after ``max_wait_seconds`` (1 s here). Usage limits
are off and webhooks may point anywhere, so no check depends on quotas or on DNS.

Checks: schemathesis' defaults (among them no 5xx, documented status codes, bodies
and headers as documented, invalid data rejected, valid data accepted) plus the
dialect's envelope: every error body is ``{error, message}``, both non-empty strings
(only the 409 of a batch cancel and the 504 of a ``wait`` add fields).

The seed data is written beforehand through a ``Runtime`` of its own on the same data
directory; schemathesis starts the app's lifespan on its first request, and the module
shuts it down at the end. Deleting a seeded project, test or group would leave the
operations after it with nothing to find, so such a DELETE is pointed at a throwaway
copy made through the API just before.

The targeted tests at the end guard against three bugs the fuzzing once ran into: PATCH
fields documented nullable but rejected as null (the document no longer declares null
for them, and null is still a 400); a 405's ``Allow`` naming only one route's methods;
a newline in a path id escaping the dialect's gate and envelope.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from runplane.api.app import create_app
from runplane.api.security_headers import API_SECURITY_HEADERS
from runplane.config import Settings
from runplane.domain.permissions import ALL_SCOPES, Role
from runplane.runtime import Runtime
from runplane.services import accounts, browser_runs, web_suite
from runplane.services import runs as runs_service
from runplane.store import browser_runs as browser_store
from runplane.store.database import unit_of_work
from runplane.store.models import RunScreenshot
from tests.acceptance.test_openapi_schemathesis import _run_async
from tests.conftest import make_settings

ADMIN_EMAIL = "ta-schemathesis-admin@example.com"
MAX_EXAMPLES = 20
SCREENSHOT = "seed-shot.png"
#: The smallest valid PNG (1×1, transparent).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
#: PATCH fields that may be left out but not set to null (the column needs a value).
NOT_NULL_PATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "/v1/projects/{projectId}": ("name", "url"),
    "/v1/tests/{testId}": ("title", "steps", "enabled"),
    "/v1/groups/{groupId}": ("name", "runMode"),
}
STEPS = [{"type": "act", "title": "Open the home page"}, {"type": "assert", "title": "It loads"}]


# ---- seed data ----------------------------------------------------------------------


@dataclass
class Seed:
    token: str
    #: The project's id and its shortId (both name it).
    project_refs: list[str]
    test_ids: list[str]
    #: The seeded non-default group and the project's default group.
    group_ids: list[str]
    batch_ids: list[str]
    #: Queued, cancelled, and the batch's (queued) runs.
    run_ids: list[str]


async def _seed(settings: Settings) -> Seed:
    runtime = await Runtime.open(settings, run_workers=False)
    try:
        ctx = runtime.ctx
        await accounts.create_user(ctx, ADMIN_EMAIL, "password-for-schemathesis", Role.ADMIN)
        issued = await accounts.issue_for_email(
            ctx, ADMIN_EMAIL, "main", list(ALL_SCOPES), 30, prefix=accounts.TESTER_ARMY_PREFIX
        )
        admin = await accounts.authenticate(ctx, issued.token)
        project = await web_suite.create_project(
            ctx, admin, web_suite.ProjectSpec(name="Shop", url="https://shop.example.com")
        )
        group = await web_suite.create_group(
            ctx, admin, web_suite.GroupSpec(project_ref=project.id, name="Smoke")
        )
        tests = [
            await web_suite.create_test(
                ctx,
                admin,
                web_suite.TestSpec(
                    project_ref=project.id, title=title, steps=STEPS, group_id=group.group.id
                ),
            )
            for title in ("Pricing", "Checkout")
        ]
        (default,) = [
            g.group for g in await web_suite.list_groups(ctx, project.id) if g.group.is_default
        ]
        queued = await browser_runs.submit_prompt(ctx, admin, "open https://shop.example.com")
        cancelled = await browser_runs.submit_prompt(ctx, admin, "open https://shop.example.com/x")
        await runs_service.cancel_queued(ctx, admin, cancelled.id)
        batch = await browser_runs.submit_group(ctx, admin, group.group.id)
        # A screenshot of the queued run, so the PNG route has something to serve.
        source = settings.data_dir / "seed-shot.png"
        source.write_bytes(PNG)
        blob = await ctx.blobs.put_file(source)
        async with unit_of_work(ctx.sessions) as session:
            await browser_store.add_screenshots(
                session,
                [
                    RunScreenshot(
                        run_id=queued.id,
                        name=SCREENSHOT,
                        sha256=blob.sha256,
                        size_bytes=blob.size_bytes,
                    )
                ],
            )
    finally:
        await runtime.close()
    return Seed(
        token=issued.token,
        project_refs=[project.id, project.short_id],
        test_ids=[t.test.id for t in tests],
        group_ids=[group.group.id, default.id],
        batch_ids=[batch.batch.id],
        run_ids=[queued.uuid, cancelled.uuid, *(r.uuid for r in batch.runs)],
    )


# ---- schema and app -----------------------------------------------------------------


@dataclass
class Target:
    app: FastAPI
    seed: Seed

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.seed.token}"}


def _config(seed: Seed) -> SchemathesisConfig:
    """Deterministic and bounded; known ids half of the time."""
    known: dict[str, list[Any]] = {
        "path.id": seed.run_ids,
        "path.name": [SCREENSHOT],
        "path.projectId": seed.project_refs,
        "query.projectId": seed.project_refs,
        "body.projectId": seed.project_refs,
        "path.testId": seed.test_ids,
        "query.testId": seed.test_ids,
        "body.testId": seed.test_ids,
        "body.prepTestId": seed.test_ids,
        "path.groupId": seed.group_ids,
        "query.groupId": seed.group_ids,
        "body.groupId": seed.group_ids,
        "path.batchId": seed.batch_ids,
    }
    return SchemathesisConfig.from_dict(
        {
            "dictionaries": {key: {"values": values} for key, values in known.items()},
            "parameters": {key: {"dictionary": key, "probability": 0.5} for key in known},
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                # The test sends the admin token itself.
                "with-security-parameters": False,
                "database": "none",
            },
            "checks": {
                # A well-formed request may name nothing (404), meet a state that does
                # not allow it (409: a run no longer queued, a disabled test, the 20th
                # group, the default group's deletion, a batch with nothing to re-run),
                # or wait for a run no worker will take (504: workers are off).
                "positive_data_acceptance": {"expected-statuses": ["2xx", 404, 409, 504, "5xx"]},
            },
        }
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    settings = make_settings(
        tmp_path_factory.mktemp("ta-schemathesis") / "data",
        usage_runs_per_day=0,
        max_wait_seconds=1,
        webhook_allow_private=True,
    )
    seed = _run_async(_seed(settings))
    app = create_app(settings, run_workers=False)
    try:
        yield Target(app=app, seed=seed)
    finally:
        # Schemathesis started the lifespan on its first request; this closes the runtime.
        asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def api_schema(target: Target) -> Any:
    return schemathesis.openapi.from_asgi(
        "/ta/openapi.json", target.app, config=_config(target.seed)
    )


# ---- checks -------------------------------------------------------------------------

#: (status, method, path) whose error bodies carry more than ``{error, message}``.
EXTENDED_ERRORS = {
    # The batch's outcome beside the error: which runs were cancelled, which failed.
    (409, "POST", "/v1/batches/{batchId}/cancel"),
    # The id of the run that keeps going.
    (504, "POST", "/v1/runs"),
}


def ta_error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx body is ``{error, message}``, both non-empty strings."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if (response.status_code, case.method, case.path) not in EXTENDED_ERRORS:
        assert set(body) == {"error", "message"}, f"error body keys: {sorted(body)}"
    return True


RUN_STARTS = {("POST", "/v1/tests/{testId}/runs"), ("POST", "/v1/groups/{groupId}/runs")}
WEBHOOK_TAKERS = {("POST", "/v1/runs"), ("POST", "/v1/tests/{testId}/runs")}


def _is_web_url(value: Any) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


def _rejected_by_contract(case: Any, response: Any) -> bool:
    """A 400 for a schema-valid request, by a rule JSON Schema does not (or cannot) state."""
    if response.status_code != 400:
        return False
    message: str = response.json().get("message", "")
    op = (case.method, case.path)
    body = case.body if isinstance(case.body, dict) else {}
    query = case.query or {}
    rules = (
        # The enum lists the mobile platforms; runplane runs web pages only.
        op in RUN_STARTS
        and body.get("platform") in ("ios", "android")
        and message.startswith("platform: ")
        and "not supported (web only)" in message,
        # The browser opens it: an http(s) URL with a host, never ``file:`` and the like.
        op in RUN_STARTS
        and body.get("targetUrl") is not None
        and not _is_web_url(body["targetUrl"])
        and message == "targetUrl: Must be an http(s) URL",
        # Stateful: every member may have been disabled or removed by an earlier case.
        op == ("POST", "/v1/groups/{groupId}/runs")
        and message == "groupId: The group has no enabled tests to run.",
        # A webhook URL must be an http(s) URL (private addresses are allowed here).
        op in WEBHOOK_TAKERS
        and isinstance(body.get("webhookUrl"), str)
        and not _is_web_url(body["webhookUrl"].strip())
        and message.startswith("Invalid webhook URL: "),
        # ``minLength: 1`` counts spaces; a prompt of nothing but whitespace is blank.
        op == ("POST", "/v1/runs")
        and isinstance(body.get("prompt"), str)
        and not body["prompt"].strip()
        and message == "prompt: Required",
        # A cursor is opaque: only one the server handed out names a position.
        op in {("GET", "/v1/runs"), ("GET", "/v1/tests")}
        and query.get("cursor") is not None
        and message == "cursor: Invalid cursor",
        # The enum lists mobile; only web projects are supported (the operation says so).
        op == ("POST", "/v1/projects")
        and body.get("projectType") == "mobile"
        and message.startswith("projectType: Mobile apps are not supported"),
        op == ("POST", "/v1/tests")
        and body.get("platform") == "mobile"
        and message.startswith("platform: Mobile apps are not supported"),
    )
    return any(rules)


def _times_out_as_documented(case: Any, response: Any) -> bool:
    """``?wait=`` on a run no worker takes: the documented 504 ``GatewayTimeout``."""
    return (
        response.status_code == 504
        and (case.method, case.path) == ("POST", "/v1/runs")
        and (case.query or {}).get("wait") not in (None, 0, "0")
        and response.json().get("error") == "GatewayTimeout"
    )


# ---- throwaway copies for destructive calls -----------------------------------------


def _create(case: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    operation = case.operation.schema[path]["POST"]
    response = operation.Case(body=body, media_type="application/json").call(headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _spare_seeded(case: Any, target: Target) -> None:
    """Point a DELETE of a seeded project, test or group at a throwaway one instead."""
    if case.method != "DELETE":
        return
    params = case.path_parameters or {}
    seed, headers = target.seed, target.headers
    if case.path == "/v1/projects/{projectId}" and params.get("projectId") in seed.project_refs:
        project = _create(case, "/v1/projects", {"name": "spare", "url": "https://x.test"}, headers)
        params["projectId"] = project["project"]["id"]
    elif case.path == "/v1/tests/{testId}" and params.get("testId") in seed.test_ids:
        body = {"title": "spare", "steps": STEPS, "projectId": seed.project_refs[0]}
        params["testId"] = _create(case, "/v1/tests", body, headers)["test"]["id"]
    elif case.path == "/v1/groups/{groupId}" and params.get("groupId") == seed.group_ids[0]:
        # In a project of its own, so the seeded project's 20-group limit cannot interfere.
        project = _create(case, "/v1/projects", {"name": "spare", "url": "https://x.test"}, headers)
        body = {"projectId": project["project"]["id"], "name": "spare"}
        params["groupId"] = _create(case, "/v1/groups", body, headers)["group"]["id"]


# ---- the test -----------------------------------------------------------------------

schema = schemathesis.pytest.from_fixture("api_schema")


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@schema.parametrize()
def test_ta_api_conforms_to_its_openapi(case: Any, target: Target) -> None:
    headers = target.headers
    _spare_seeded(case, target)
    response = case.call(headers=headers)
    excluded: list[Any] = []
    if _rejected_by_contract(case, response):
        excluded.append(positive_data_acceptance)
    if _times_out_as_documented(case, response):
        excluded.append(not_a_server_error)
    case.validate_response(
        response,
        headers=headers,
        transport_kwargs={"headers": headers},
        additional_checks=[ta_error_envelope],
        excluded_checks=excluded,
    )


# ---- regression tests of bugs the fuzzing above once ran into -------------------------


def _path_parameters(seed: Seed, path: str) -> dict[str, str]:
    known = {
        "id": seed.run_ids[0],
        "name": SCREENSHOT,
        "projectId": seed.project_refs[0],
        "testId": seed.test_ids[0],
        "groupId": seed.group_ids[0],
        "batchId": seed.batch_ids[0],
    }
    return {k: v for k, v in known.items() if "{" + k + "}" in path}


def _declares_null(schema: dict[str, Any]) -> bool:
    """Whether a JSON Schema admits null, however it says so."""
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if schema.get("nullable") is True:
        return True
    options = [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
    return any(_declares_null(option) for option in options)


def _header(response: Any, name: str) -> str:
    """A header's value, whether the response keeps one string or a list per name."""
    for key in (name, name.lower()):
        values = response.headers.get(key)
        if values is not None:
            return ", ".join(values) if isinstance(values, list) else str(values)
    return ""


def _security_headers_missing(response: Any) -> dict[str, str]:
    return {
        name: _header(response, name)
        for name, value in API_SECURITY_HEADERS.items()
        if _header(response, name) != value
    }


def test_patch_null_only_where_the_document_allows_it(api_schema: Any, target: Target) -> None:
    """Null for a non-nullable PATCH field is a 400, and the document does not declare null.

    Regression: ProjectUpdate.name/url, TestUpdate.title/steps/enabled and
    GroupUpdate.name/runMode were documented ``anyOf [..., {type: null}]`` while the
    server answered 400 "May not be null" (``_NotNull`` in
    ``api/tester_army/schemas_suite.py``). The fields that do declare null take it.
    """
    document = api_schema.raw_schema
    components = document["components"]["schemas"]
    wrong = []
    not_nullable: dict[str, tuple[str, ...]] = {}
    for path, item in document["paths"].items():
        if "patch" not in item:
            continue
        ref = item["patch"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        properties = components[ref.rsplit("/", 1)[1]]["properties"]
        not_nullable[path] = tuple(n for n, s in properties.items() if not _declares_null(s))
        operation = api_schema[path]["PATCH"]
        for name, schema in properties.items():
            response = operation.Case(
                path_parameters=_path_parameters(target.seed, path),
                body={name: None},
                media_type="application/json",
            ).call(headers=target.headers)
            body = response.json()
            if _declares_null(schema):
                if response.status_code != 200:
                    wrong.append(f"PATCH {path} {{{name!r}: null}} (nullable) → {body}")
            elif response.status_code != 400 or body != {
                "error": "ValidationError",
                "message": f"{name}: May not be null",
            }:
                wrong.append(f"PATCH {path} {{{name!r}: null}} → {response.status_code} {body}")
    assert not wrong, "PATCH null answered against the document:\n" + "\n".join(wrong)
    # The fields that need a value are exactly those the document keeps null out of.
    assert not_nullable == NOT_NULL_PATCH_FIELDS


def test_405_allow_lists_every_method_of_the_path(api_schema: Any, target: Target) -> None:
    """RFC 9110: ``Allow`` names the methods the resource supports, all of them.

    Regression: on every path with more than one operation the dialect's 405 handler
    (``api/tester_army/errors.py``) passed on Starlette's header, which named only the
    methods of the first route that matched the path.
    """
    wrong = []
    for path, item in api_schema.raw_schema["paths"].items():
        documented = {m.upper() for m in item} & {"GET", "POST", "PUT", "PATCH", "DELETE"}
        assert "PUT" not in documented, path
        response = (
            api_schema[path][next(iter(documented))]
            .Case(method="PUT", path_parameters=_path_parameters(target.seed, path))
            .call(headers=target.headers)
        )
        assert response.status_code == 405, (path, response.text)
        assert response.json()["error"] == "MethodNotAllowed", response.text
        allow = {m.strip().upper() for m in _header(response, "Allow").split(",") if m.strip()}
        if allow - {"HEAD", "OPTIONS"} != documented:
            wrong.append(f"PUT {path}: Allow {sorted(allow)}, documented {sorted(documented)}")
    assert not wrong, "405 Allow headers missing methods:\n" + "\n".join(wrong)


def test_a_newline_in_a_path_id_is_answered_by_the_dialect(api_schema: Any, target: Target) -> None:
    """A newline in a path id reaches the dialect: its gate, envelope and headers.

    Without a token it is the gate's 401; with one, a malformed id is a 400
    ``ValidationError`` (a project reference is any string: 404 ``NotFound``).
    Regression: with a newline inside a path segment (``/ta/v1/runs/a%0Ab``) the ``/ta``
    mount's pattern did not match, and the outer app (``api/app.py``,
    ``_outer_http_error``) answered 404 in the native envelope, without the gate.
    """
    wrong = []
    for path, item in api_schema.raw_schema["paths"].items():
        params = _path_parameters(target.seed, path)
        if not params:
            continue
        method = next(iter(item)).upper()
        name = next(iter(params))
        # Sent percent-encoded as is: httpx would drop a raw newline from the URL.
        case = api_schema[path][method].Case(path_parameters={**params, name: "a%0Ab"})
        expected = 404 if name == "projectId" else 400
        for headers, status, error in (
            ({}, 401, "Unauthorized"),
            (target.headers, expected, "NotFound" if expected == 404 else "ValidationError"),
        ):
            response = case.call(headers=headers)
            body = response.json()
            missing = _security_headers_missing(response)
            if (
                response.status_code != status
                or set(body) != {"error", "message"}
                or body["error"] != error
                or not (isinstance(body["message"], str) and body["message"])
                or missing
            ):
                wrong.append(
                    f"{method} {path} ({name}=a%0Ab, token: {bool(headers)}) → "
                    f"{response.status_code} {body}, security headers wrong: {missing}"
                )
    assert not wrong, "answered outside the dialect:\n" + "\n".join(wrong)
