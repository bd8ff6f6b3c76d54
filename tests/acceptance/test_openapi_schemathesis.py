"""Schemathesis against our own ``/api/v1/openapi.json``, in process over ASGI.

Every operation gets generated requests, valid and invalid, sent as an admin whose
token has every scope, to a database holding the demo project, a finished run (with
results, log lines and progress) and a queued run, so that some path ids resolve.
Workers are off: runs submitted during the test stay queued.

Checks: schemathesis' defaults (among them no 5xx, documented status codes, bodies
and headers as documented, invalid data rejected, valid data accepted) plus our
envelope: every error body is exactly ``{code, message, details}``.

Schemathesis' ASGI client is synchronous: it runs the app, lifespan included, on an
event loop thread of its own. The seed data is therefore written beforehand through
a separate ``Runtime`` on the same data directory, and the lifespan is shut down
when the module is done.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from runplane.api.app import create_app
from runplane.config import Settings
from runplane.domain.permissions import ALL_SCOPES, Role
from runplane.domain.status import TERMINAL, RunStatus
from runplane.runtime import Runtime
from runplane.services import accounts, projects, results
from runplane.services import runs as runs_service
from runplane.store.database import unit_of_work
from runplane.store.models import RegressionOutput, RegressionTest, Sample
from tests.conftest import DemoRepo, make_settings

ADMIN_EMAIL = "schemathesis-admin@example.com"
ADMIN_PASSWORD = "password-for-schemathesis"
REPOSITORY = "demo/calculator"
MAX_EXAMPLES = 25
T = TypeVar("T")


# ---- seed data ----------------------------------------------------------------------


@dataclass
class Seed:
    token: str
    project_ids: list[int]
    run_ids: list[int]
    result_ids: list[int]
    #: Tokens the fuzzer may revoke by id (not the one the test authenticates with).
    spare_token_ids: list[int]
    #: A finished regression run's sample, test and output (run id is in run_ids).
    sample_ids: list[int]
    regression_ids: list[int]
    output_ids: list[int]


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on a loop of its own, leaving any loop pytest-asyncio set up alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def _wait_terminal(runtime: Runtime, run_id: int, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while RunStatus((await runs_service.get(runtime.ctx, run_id)).status) not in TERMINAL:
        if loop.time() > deadline:
            raise AssertionError(f"seed run {run_id} did not finish")
        await asyncio.sleep(0.1)


def _request(sha: str) -> runs_service.RunRequest:
    return runs_service.RunRequest(repository=REPOSITORY, commit_sha=sha, platform="linux")


async def _seed_regression(
    runtime: Runtime, principal: Any, repo: DemoRepo
) -> tuple[int, int, int, int]:
    """A project whose program is the demo's runner, one test, and a finished run of it."""
    ctx = runtime.ctx
    project = await projects.create(
        ctx,
        principal,
        projects.ProjectSpec(
            repository="fuzz/regression", repo_url=str(repo.path), program="run_tests.py"
        ),
    )
    source = ctx.settings.data_dir / "seed-sample.txt"
    source.write_bytes(b"seed sample\n")
    blob = await ctx.blobs.put_file(source)
    async with unit_of_work(ctx.sessions) as session:
        sample = Sample(
            sha256=blob.sha256,
            name="seed.txt",
            extension="txt",
            size_bytes=blob.size_bytes,
            tags=["seed"],
        )
        session.add(sample)
        await session.flush()
        test = RegressionTest(
            project_id=project.id,
            sample_id=sample.id,
            active=True,
            command="cp {input} {output_dir}/out.txt",
        )
        session.add(test)
        await session.flush()
        output = RegressionOutput(
            regression_test_id=test.id, filename="out.txt", expected_hash="0" * 64
        )
        session.add(output)
        await session.flush()
        ids = (sample.id, test.id, output.id)
    run, _ = await runs_service.submit(
        ctx,
        principal,
        runs_service.RunRequest(
            repository="fuzz/regression", commit_sha=repo.passing_sha, platform="linux"
        ),
    )
    await _wait_terminal(runtime, run.id)
    return (run.id, *ids)


async def _seed(settings: Settings, repo: DemoRepo) -> Seed:
    """An admin with an all-scopes token, the demo project, a finished and a queued run."""
    runtime = await Runtime.open(settings, run_workers=True)
    try:
        ctx = runtime.ctx
        await accounts.create_user(ctx, ADMIN_EMAIL, ADMIN_PASSWORD, Role.ADMIN)
        spare = [
            await accounts.issue_for_email(ctx, ADMIN_EMAIL, f"spare-{n}", list(ALL_SCOPES), 30)
            for n in range(2)
        ]
        issued = await accounts.issue_for_email(ctx, ADMIN_EMAIL, "main", list(ALL_SCOPES), 30)
        principal = await accounts.authenticate(ctx, issued.token)
        project = await projects.create(
            ctx,
            principal,
            projects.ProjectSpec(
                repository=REPOSITORY,
                repo_url=str(repo.path),
                test_command="python3 run_tests.py {failed_tests}",
                timeout_seconds=120,
            ),
        )
        finished, _ = await runs_service.submit(ctx, principal, _request(repo.failing_sha))
        await _wait_terminal(runtime, finished.id)
        regression_run, sample_id, test_id, output_id = await _seed_regression(
            runtime, principal, repo
        )
        samples, _ = await results.samples(
            ctx, finished.id, statuses=None, name=None, limit=100, offset=0
        )
    finally:
        await runtime.close()
    # No workers from here on, so this run stays queued.
    runtime = await Runtime.open(settings, run_workers=False)
    try:
        queued, _ = await runs_service.submit(runtime.ctx, principal, _request(repo.passing_sha))
    finally:
        await runtime.close()
    return Seed(
        token=issued.token,
        project_ids=[project.id],
        run_ids=[finished.id, queued.id, regression_run],
        result_ids=[r.result_id for r in samples],
        spare_token_ids=[t.row.id for t in spare],
        sample_ids=[sample_id],
        regression_ids=[test_id],
        output_ids=[output_id],
    )


# ---- schema and app -----------------------------------------------------------------


@dataclass
class Target:
    app: FastAPI
    seed: Seed
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _config(seed: Seed) -> SchemathesisConfig:
    """Deterministic and bounded; known ids and credentials half of the time."""
    known: dict[str, list[Any]] = {
        "path.run_id": seed.run_ids,
        "path.project_id": seed.project_ids,
        "path.regression_test_id": seed.result_ids,
        "path.token_id": seed.spare_token_ids,
        "path.sample_id": seed.sample_ids,
        "path.regression_id": seed.regression_ids,
        "query.regression_id": seed.regression_ids,
        "path.output_id": seed.output_ids,
        "query.output_id": seed.output_ids,
        "body.regression_id": seed.regression_ids,
        "body.output_id": seed.output_ids,
        "body.repository": [REPOSITORY],
        "body.email": [ADMIN_EMAIL],
        "body.password": [ADMIN_PASSWORD],
    }
    known = {key: values for key, values in known.items() if values}
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
                # 422 is the contract's answer to a well-formed request naming
                # something that does not fit, e.g. a repository without a project;
                # 416 to a well-formed Range past the end of a run's log.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 416, 422, 429, "5xx"]
                },
            },
        }
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, demo_repo: DemoRepo) -> Iterator[Target]:
    # A queued run's log stream ends only at log_stream_max_seconds: keep that short.
    settings = make_settings(
        tmp_path_factory.mktemp("schemathesis") / "data",
        log_stream_keepalive_seconds=0.2,
        log_stream_max_seconds=0.5,
    )
    seed = _run_async(_seed(settings, demo_repo))
    app = create_app(settings, run_workers=False)
    try:
        yield Target(app=app, seed=seed, token=seed.token)
    finally:
        # Schemathesis started the lifespan on its first request; this closes the runtime.
        asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def api_schema(target: Target) -> Any:
    return schemathesis.openapi.from_asgi(
        "/api/v1/openapi.json", target.app, config=_config(target.seed)
    )


# ---- checks -------------------------------------------------------------------------


def error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx body is exactly ``{code, message, details}``, ``details`` an object."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    assert set(body) == {"code", "message", "details"}, f"error body keys: {sorted(body)}"
    assert isinstance(body["code"], str) and body["code"], body
    assert isinstance(body["message"], str), body
    assert isinstance(body["details"], dict), body
    return True


def _utc(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _rejected_by_contract(case: Any, response: Any) -> bool:
    """A 400 for a rule JSON Schema cannot state: cross-field, after trimming, or stateful."""
    if response.status_code != 400:
        return False
    if case.method == "GET" and case.path in ("/runs", "/samples/{sample_id}/history"):
        query = case.query or {}
        after, before = _utc(query.get("created_after")), _utc(query.get("created_before"))
        return after is not None and before is not None and after > before
    body = case.body if isinstance(case.body, dict) else {}
    if case.method == "POST" and case.path == "/runs/{run_id}/cancel":
        reason = body.get("reason")
        return isinstance(reason, str) and 0 < len(reason.strip()) < runs_service.CANCEL_REASON_MIN
    if case.method == "POST" and case.path == "/auth/tokens":
        # Token names are unique per user.
        fields = response.json().get("details", {}).get("fields", {})
        return any("already exists" in m for m in fields.get("token_name", []))
    return False


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
def test_api_conforms_to_its_openapi(case: Any, target: Target) -> None:
    revokes = case.method == "DELETE" and case.path.startswith("/auth/tokens")
    # DELETE /auth/tokens/current revokes the token it is sent with: give it its own.
    headers = {"Authorization": f"Bearer {_issue(case)}"} if revokes else target.headers
    response = case.call(headers=headers)
    case.validate_response(
        response,
        headers=headers,
        transport_kwargs={"headers": headers},
        additional_checks=[error_envelope],
        excluded_checks=[positive_data_acceptance] if _rejected_by_contract(case, response) else [],
    )
    if revokes:
        _keep_main_token(case, target)


def _issue(case: Any) -> str:
    """A new all-scopes admin token, through the API."""
    create = case.operation.schema["/auth/tokens"]["POST"]
    body = {
        "email": ADMIN_EMAIL,
        "password": ADMIN_PASSWORD,
        "token_name": f"t-{uuid.uuid4().hex[:12]}",
        "scopes": [s.value for s in ALL_SCOPES],
    }
    response = create.Case(body=body, media_type="application/json").call()
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def _keep_main_token(case: Any, target: Target) -> None:
    """Admins may revoke any token by id; if a generated id was the main one, replace it."""
    me = case.operation.schema["/auth/me"]["GET"].Case().call(headers=target.headers)
    if me.status_code == 401:
        target.token = _issue(case)
