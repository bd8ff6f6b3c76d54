"""Shared fixtures: real SQLite files, the real PostgreSQL, the real app over ASGI."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import redis
import uvicorn
from fastapi import FastAPI

from runplane.api.app import create_app
from runplane.api.demo_site import serve_demo_site
from runplane.config import Settings
from runplane.domain.permissions import ALL_SCOPES, Role, Scope, scopes_allowed_for
from runplane.runtime import Runtime
from runplane.services import accounts, demo, projects
from runplane.services.context import Context
from runplane.store.models import Run

PG_ADMIN_DSN = os.environ.get("RUNPLANE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc)


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    problem = _pg_available()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_DSN} is required in CI: {problem}")
        pytest.skip(f"PostgreSQL at {PG_ADMIN_DSN} is unreachable: {problem}")
    return PG_ADMIN_DSN


@pytest.fixture
def pg_url(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"rp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin_dsn.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "workers": 2,
        "lease_seconds": 10.0,
        "reaper_interval_seconds": 1.0,
        "grace_period_seconds": 1.0,
        "cancel_poll_seconds": 0.5,
        "dispatch_poll_seconds": 0.2,
        # Contract defaults are tested in test_rate_limits; elsewhere they would
        # only make tests depend on how many requests they happen to send.
        "rate_limit_reads": 100_000,
        "rate_limit_writes": 100_000,
        "rate_limit_token_create": 100_000,
        # Browser runs here test pages served on 127.0.0.1.
        "browser_network": "any",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Database and services without workers (for store/service tests)."""
    rt = await Runtime.open(settings, run_workers=False)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture
def ctx(runtime: Runtime) -> Context:
    return runtime.ctx


@dataclass
class DemoRepo:
    path: Path
    passing_sha: str
    failing_sha: str


@pytest.fixture(scope="session")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> DemoRepo:
    path = tmp_path_factory.mktemp("demo-repo")
    passing, failing = demo.make_demo_repository(path)
    return DemoRepo(path, passing, failing)


@dataclass
class Api:
    """The running app, an httpx client on it, and helpers to make users and tokens."""

    app: FastAPI
    client: httpx.AsyncClient
    ctx: Context

    async def token(self, role: Role = Role.ADMIN, scopes: tuple[Scope, ...] | None = None) -> str:
        email = f"{role.value}-{uuid.uuid4().hex[:8]}@example.com"
        await accounts.create_user(self.ctx, email, "password123", role)
        chosen = list(scopes if scopes is not None else ALL_SCOPES)
        if role is not Role.ADMIN and scopes is None:
            chosen = [s for s in chosen if s in scopes_allowed_for(role)]
        issued = await accounts.issue_for_email(self.ctx, email, "t", chosen, 30)
        return issued.token

    async def headers(
        self, role: Role = Role.ADMIN, scopes: tuple[Scope, ...] | None = None
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(role, scopes)}"}

    async def ta_headers(self, role: Role = Role.CONTRIBUTOR) -> dict[str, str]:
        """An ``sk_`` key (a Tester Army client's kind) with the role's run scopes."""
        email = f"ta-{role.value}-{uuid.uuid4().hex[:8]}@example.com"
        await accounts.create_user(self.ctx, email, "password123", role)
        scopes = [s for s in (Scope.RUNS_READ, Scope.RUNS_WRITE) if s in scopes_allowed_for(role)]
        issued = await accounts.issue_for_email(
            self.ctx, email, "ta", scopes, 30, prefix=accounts.TESTER_ARMY_PREFIX
        )
        return {"Authorization": f"Bearer {issued.token}"}

    async def project(
        self, repo: DemoRepo | Path, repository: str = "demo/calculator", **fields: Any
    ) -> int:
        path = repo.path if isinstance(repo, DemoRepo) else repo
        spec = projects.ProjectSpec(
            repository=repository,
            repo_url=str(path),
            test_command=fields.pop("test_command", "python3 run_tests.py {failed_tests}"),
            **fields,
        )
        return (await projects.create(self.ctx, None, spec)).id

    async def submit(
        self, headers: dict[str, str], sha: str, repository: str = "demo/calculator", **extra: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/runs",
            headers=headers,
            json={"repository": repository, "commit_sha": sha, "platform": "linux", **extra},
        )
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for(
        self, headers: dict[str, str], run_id: int, statuses: set[str], timeout: float = 60
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            response = await self.client.get(f"/api/v1/runs/{run_id}", headers=headers)
            body: dict[str, Any] = response.json()
            if body.get("status") in statuses:
                return body
            if loop.time() > deadline:
                raise AssertionError(f"run {run_id} still {body.get('status')}")
            await asyncio.sleep(0.1)


async def _api(settings: Settings, run_workers: bool) -> AsyncIterator[Api]:
    app = create_app(settings, run_workers=run_workers)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app=app, client=client, ctx=app.state.runtime.ctx)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The app with in-process workers."""
    async for value in _api(settings, run_workers=True):
        yield value


@pytest.fixture
async def api_no_workers(settings: Settings) -> AsyncIterator[Api]:
    """The app without workers: runs stay queued."""
    async for value in _api(settings, run_workers=False):
        yield value


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system Chromium browser runs drive; skipped without it (a failure in CI)."""
    path = os.environ.get("RUNPLANE_CHROMIUM_PATH") or shutil.which("chromium")
    if not path:
        if IN_CI:
            pytest.fail("Chromium is required in CI (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """Base URL of a small real web application for browser runs."""
    with serve_demo_site() as base:
        yield base


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


REDIS_URL = os.environ.get("RUNPLANE_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _redis_available() -> str | None:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3) as r:
            r.ping()
            return None
    except Exception as exc:
        return str(exc)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (``RUNPLANE_TEST_REDIS``; db 15 by default, flushed by ``redis_db``)."""
    problem = _redis_available()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is required in CI: {problem}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {problem}")
    return REDIS_URL


@pytest.fixture
def redis_db(redis_url: str) -> str:
    """``redis_url``, its database emptied for this test."""
    with redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3) as r:
        r.flushdb()
    return redis_url


T = TypeVar("T")


@dataclass
class LiveServer:
    """The whole app served over real HTTP by uvicorn on a thread with its own event loop."""

    url: str
    ctx: Context
    loop: asyncio.AbstractEventLoop

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``work`` (a service call) on the server's loop; usable from sync or async tests."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def user(self, role: Role = Role.ADMIN, password: str = "password123") -> str:
        email = f"{role.value}-{uuid.uuid4().hex[:8]}@example.com"
        self.call(accounts.create_user(self.ctx, email, password, role))
        return email

    def token(self, role: Role = Role.ADMIN, scopes: tuple[Scope, ...] | None = None) -> str:
        email = self.user(role)
        chosen = list(scopes if scopes is not None else ALL_SCOPES)
        if role is not Role.ADMIN and scopes is None:
            chosen = [s for s in chosen if s in scopes_allowed_for(role)]
        return self.call(accounts.issue_for_email(self.ctx, email, "t", chosen, 30)).token


def serve_live(settings: Settings, run_workers: bool = True) -> Iterator[LiveServer]:
    app = create_app(settings, run_workers=run_workers)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    for _ in range(600):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    if not server.started:
        raise RuntimeError("the live server did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app.state.runtime.ctx, loop)
    finally:
        server.should_exit = True
        thread.join(60)
        loop.close()


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The app with in-process workers on a real port (for the CLI and the browser)."""
    yield from serve_live(settings)


__all__ = ["Api", "DemoRepo", "LiveServer", "Run", "eventually", "make_settings", "serve_live"]
