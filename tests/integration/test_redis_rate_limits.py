"""Rate limits in Redis (``RUNPLANE_REDIS_URL``): one budget across API processes.

Each "process" is its own app instance (its own lifespan, runtime and limiter). Apps on one
data dir share the database and so the tokens, as hosts behind a load balancer share one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from limits.errors import StorageError

from runplane.api import rate_limits
from runplane.api.rate_limits import REDIS_KEY_PREFIX
from runplane.config import Settings
from tests.conftest import Api, _api, make_settings

READS = 5
WINDOW = 60
SECRET = "shared-secret-key-of-the-test-cluster"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
DRAFT_HEADERS = ("RateLimit", "RateLimit-Policy")
limiter_log = "runplane.api.rate_limits"

running: Callable[..., AbstractAsyncContextManager[Api]] = asynccontextmanager(_api)


def limited(data_dir: Path, **overrides: Any) -> Settings:
    return make_settings(
        data_dir, rate_limit_reads=READS, secret_key=SECRET, workers=0, **overrides
    )


@asynccontextmanager
async def two_apps(dir_a: Path, dir_b: Path, **overrides: Any) -> AsyncIterator[tuple[Api, Api]]:
    async with (
        running(limited(dir_a, **overrides), run_workers=False) as a,
        running(limited(dir_b, **overrides), run_workers=False) as b,
    ):
        yield a, b


def assert_counted(response: httpx.Response, remaining: int) -> None:
    h = response.headers
    assert h["X-RateLimit-Limit"] == str(READS), dict(h)
    assert h["X-RateLimit-Remaining"] == str(remaining), dict(h)
    now = int(time.time())
    assert now <= int(h["X-RateLimit-Reset"]) <= now + WINDOW + 1
    assert h["RateLimit"].startswith(f"limit={READS}, remaining={remaining}, reset=")
    assert h["RateLimit-Policy"] == f"{READS};w={WINDOW}"


def assert_sample_platform_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert_counted(response, 0)
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW
    assert response.json() == {
        "code": "rate_limited",
        "message": f"Rate limit exceeded. Retry after {retry_after} seconds.",
        "details": {"retry_after": retry_after, "limit": READS, "window": f"{WINDOW}s"},
    }


def assert_tester_army_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert_counted(response, 0)
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW
    assert response.json() == {
        "error": "RateLimited",
        "message": f"Too many requests; back off and retry after {retry_after} seconds.",
    }


async def test_one_token_budget_across_two_apps(tmp_path: Path, redis_db: str) -> None:
    async with two_apps(tmp_path / "data", tmp_path / "data", redis_url=redis_db) as (a, b):
        headers = await a.headers()
        for i, app in enumerate([a, b, a, b, a]):
            response = await app.client.get("/api/v1/runs", headers=headers)
            assert response.status_code == 200, response.text
            assert_counted(response, READS - 1 - i)

        assert_sample_platform_429(await b.client.get("/api/v1/runs", headers=headers))
        assert_sample_platform_429(await a.client.get("/api/v1/runs", headers=headers))
        # The read budget is per token across dialects, so across apps and dialects too.
        assert_tester_army_429(await b.client.get("/ta/v1/runs", headers=headers))

        # Another token has its own budget.
        other = await b.headers()
        response = await a.client.get("/api/v1/runs", headers=other)
        assert response.status_code == 200, response.text
        assert_counted(response, READS - 1)

    with redis.Redis.from_url(redis_db) as r:
        assert r.keys(f"{REDIS_KEY_PREFIX}:*"), "the counters should be in Redis"


async def test_unauthenticated_ip_budget_across_apps_with_own_databases(
    tmp_path: Path, redis_db: str
) -> None:
    """Apps sharing nothing but Redis: requests without a token count per client IP."""
    async with two_apps(tmp_path / "a", tmp_path / "b", redis_url=redis_db) as (a, b):
        for i, app in enumerate([b, a, b, a, b]):
            response = await app.client.get("/api/v1/runs")
            assert response.status_code == 401, response.text
            assert_counted(response, READS - 1 - i)
        assert_sample_platform_429(await a.client.get("/api/v1/runs"))
        assert_sample_platform_429(await b.client.get("/api/v1/runs"))


async def test_memory_limiter_is_per_app(tmp_path: Path) -> None:
    async with two_apps(tmp_path / "data", tmp_path / "data") as (a, b):
        assert a.ctx.settings.redis_url == ""
        headers = await a.headers()
        for i in range(READS):
            response = await a.client.get("/api/v1/runs", headers=headers)
            assert response.status_code == 200, response.text
            assert_counted(response, READS - 1 - i)
        assert_sample_platform_429(await a.client.get("/api/v1/runs", headers=headers))

        # The other process has not seen any of these: a full budget of its own.
        response = await b.client.get("/api/v1/runs", headers=headers)
        assert response.status_code == 200, response.text
        assert_counted(response, READS - 1)


async def test_redis_down_fails_open_without_rate_limit_headers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens on port 1: requests pass, uncounted, and say nothing about limits."""
    caplog.set_level(logging.WARNING, logger="runplane.api.rate_limits")
    settings = limited(tmp_path / "data", redis_url="redis://127.0.0.1:1/0")
    async with running(settings, run_workers=False) as app:
        headers = await app.headers()
        for _ in range(READS + 3):
            response = await app.client.get("/api/v1/runs", headers=headers)
            assert response.status_code == 200, response.text
            for name in (*RATE_HEADERS, *DRAFT_HEADERS, "Retry-After"):
                assert name not in response.headers, (name, dict(response.headers))
            # The other gate headers are still sent.
            assert response.headers["X-Content-Type-Options"] == "nosniff"

        # Writes pass too; authentication still applies.
        response = await app.client.post("/api/v1/runs", headers=headers, json={})
        assert response.status_code not in (429, 500), response.text
        response = await app.client.get("/api/v1/runs")
        assert response.status_code == 401, response.text
        assert "X-RateLimit-Limit" not in response.headers
        response = await app.client.get("/ta/v1/runs")
        assert response.status_code == 401, response.text
        assert "X-RateLimit-Limit" not in response.headers

    warnings = [r for r in caplog.records if r.name == "runplane.api.rate_limits"]
    # Logged, but not once per request.
    assert 1 <= len(warnings) <= 2, [r.getMessage() for r in warnings]
    assert "without rate limits" in warnings[0].getMessage()


async def test_limits_apply_again_once_the_storage_answers(
    redis_db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="runplane.api.rate_limits")
    monkeypatch.setattr(rate_limits, "RETRY_AFTER_FAILURE_SECONDS", 0.0)
    limiter = rate_limits.make_rate_limiter(Settings(redis_url=redis_db))
    try:
        real_hit = limiter._limiter.hit

        async def broken(*_: Any, **__: Any) -> bool:
            raise StorageError(ConnectionError("Redis went away"))

        monkeypatch.setattr(limiter._limiter, "hit", broken)
        assert await limiter.hit("read", "ip:10.0.0.1", 2, WINDOW) is None
        monkeypatch.setattr(limiter._limiter, "hit", real_hit)
        first = await limiter.hit("read", "ip:10.0.0.1", 2, WINDOW)
        assert first is not None and first.allowed and first.remaining == 1
    finally:
        await limiter.aclose()
    messages = [r.getMessage() for r in caplog.records if r.name == limiter_log]
    assert len(messages) == 2 and "reachable again" in messages[1], messages
