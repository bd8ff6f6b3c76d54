"""Rate limits of the Sample Platform API (contract A.3 step 2, A.4).

Small limits (3 reads, 2 writes, 2 token creations) make every bucket cheap to exhaust;
the last tests check the contract's real numbers on an app with default settings.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from runplane.api.app import create_app
from runplane.config import Settings
from runplane.domain.permissions import ALL_SCOPES, Role, Scope
from runplane.services import accounts
from tests.conftest import make_settings

BASE = "/api/v1"
PASSWORD = "password123"
READS, WRITES, CREATES = 3, 2, 2
RATE_LIMIT = re.compile(r"^limit=(\d+), remaining=(\d+), reset=(\d+)$")
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _client(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@dataclass
class Limited:
    app: FastAPI
    #: From 127.0.0.1.
    client: httpx.AsyncClient
    settings: Settings

    @property
    def ctx(self) -> Any:
        return self.app.state.runtime.ctx

    def client_from(self, ip: str) -> httpx.AsyncClient:
        return _client(self.app, ip)

    async def user(self, role: Role = Role.ADMIN) -> str:
        email = f"{role.value}-{uuid.uuid4().hex[:8]}@example.com"
        await accounts.create_user(self.ctx, email, PASSWORD, role)
        return email

    async def tokens(
        self, n: int, role: Role = Role.ADMIN, scopes: tuple[Scope, ...] = ALL_SCOPES
    ) -> list[dict[str, str]]:
        """``n`` bearer headers of one user (issued by the service: no HTTP, no bucket)."""
        email = await self.user(role)
        out = []
        for i in range(n):
            issued = await accounts.issue_for_email(self.ctx, email, f"t{i}", list(scopes), 30)
            out.append({"Authorization": f"Bearer {issued.token}"})
        return out


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Limited]:
    """The app as conftest's ``_api`` builds it, with these settings."""
    app = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app), _client(app, "127.0.0.1") as client:
        yield Limited(app=app, client=client, settings=settings)


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Limited]:
    settings = make_settings(
        tmp_path / "data",
        rate_limit_reads=READS,
        rate_limit_writes=WRITES,
        rate_limit_token_create=CREATES,
    )
    async with running(settings) as app:
        yield app


def rate_headers(response: httpx.Response, limit: int, remaining: int, window: int = 60) -> int:
    """Check the five rate-limit headers; returns X-RateLimit-Reset."""
    h = response.headers
    assert h["X-RateLimit-Limit"] == str(limit), (response.status_code, dict(h))
    assert h["X-RateLimit-Remaining"] == str(remaining), (response.status_code, dict(h))
    reset = int(h["X-RateLimit-Reset"])
    now = int(time.time())
    assert now <= reset <= now + window + 1, (reset, now)
    match = RATE_LIMIT.match(h["RateLimit"])
    assert match, h["RateLimit"]
    assert (int(match[1]), int(match[2])) == (limit, remaining)
    assert 0 <= int(match[3]) <= window
    assert h["RateLimit-Policy"] == f"{limit};w={window}"
    return reset


def assert_429(response: httpx.Response, limit: int, window: int = 60) -> int:
    assert response.status_code == 429, response.text
    rate_headers(response, limit, 0, window)
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window
    assert response.json() == {
        "code": "rate_limited",
        "message": f"Rate limit exceeded. Retry after {retry_after} seconds.",
        "details": {"retry_after": retry_after, "limit": limit, "window": f"{window}s"},
    }
    assert response.headers["content-type"].startswith("application/json")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    return retry_after


# ---- headers and the 429 ------------------------------------------------------------------


async def test_reads_count_down_then_429(limited: Limited) -> None:
    [h] = await limited.tokens(1)
    resets = []
    for remaining in range(READS - 1, -1, -1):
        response = await limited.client.get(f"{BASE}/runs", headers=h)
        assert response.status_code == 200, response.text
        resets.append(rate_headers(response, READS, remaining))

    over = await limited.client.get(f"{BASE}/runs", headers=h)
    assert_429(over, READS)
    # A fixed window: the reset time does not move while it lasts.
    assert {int(over.headers["X-RateLimit-Reset"]), *resets} == {resets[0]}
    # Over the limit, nothing else is looked at: no 400 for the path, no 403, no 404.
    for path in ("/runs/abc", "/runs/999999", "/projects", "/auth/me"):
        assert_429(await limited.client.get(f"{BASE}{path}", headers=h), READS)


async def test_writes_have_their_own_smaller_bucket(limited: Limited) -> None:
    [h] = await limited.tokens(1)
    requests = [
        ("POST", "/runs/999999/cancel", 404),
        ("DELETE", "/projects/999999", 404),
    ]
    for (method, path, status), remaining in zip(requests, (1, 0), strict=True):
        response = await limited.client.request(method, f"{BASE}{path}", headers=h)
        assert response.status_code == status, response.text
        rate_headers(response, WRITES, remaining)
    for method, path in (("PATCH", "/projects/1"), ("POST", "/runs"), ("DELETE", "/auth/tokens/9")):
        assert_429(
            await limited.client.request(method, f"{BASE}{path}", headers=h, json={}), WRITES
        )
    # The token still has all its reads.
    response = await limited.client.get(f"{BASE}/runs", headers=h)
    assert response.status_code == 200
    rate_headers(response, READS, READS - 1)


async def test_every_kind_of_response_carries_the_headers(limited: Limited) -> None:
    """200, 201, 204, 400, 401, 403, 404 (handler and routing), 405, 415, 422."""
    admin = await limited.tokens(11)
    [reader] = await limited.tokens(1, Role.USER, (Scope.RUNS_READ,))
    email = await limited.user(Role.USER)
    cases: list[tuple[str, str, dict[str, str], dict[str, Any], int]] = [
        ("GET", "/runs", admin[0], {}, 200),
        ("GET", "/system/health", {}, {}, 200),
        ("DELETE", "/auth/tokens/current", admin[1], {}, 204),
        ("GET", "/runs/abc", admin[2], {}, 400),
        ("GET", "/runs", {}, {}, 401),
        ("GET", "/system/queue", reader, {}, 403),
        ("GET", "/runs/999999", admin[3], {}, 404),
        ("GET", "/no/such/route", admin[4], {}, 404),
        ("PUT", "/runs", admin[5], {}, 405),
        ("POST", "/runs", admin[6], {"content": b"{}", "headers": {"Content-Type": "a/b"}}, 415),
        (
            "POST",
            "/runs",
            admin[7],
            {"json": {"repository": "no/project", "commit_sha": "a" * 40, "platform": "linux"}},
            422,
        ),
    ]
    for method, path, headers, kwargs, status in cases:
        extra = kwargs.pop("headers", {})
        response = await limited.client.request(
            method, f"{BASE}{path}", headers={**headers, **extra}, **kwargs
        )
        assert response.status_code == status, (method, path, response.text)
        read = method in ("GET", "HEAD", "OPTIONS")
        limit = READS if read else WRITES
        if not headers:  # by IP: the two unauthenticated GETs share one bucket
            remaining = READS - 1 if path == "/system/health" else READS - 2
        else:
            remaining = limit - 1
        rate_headers(response, limit, remaining)
        if status == 401:
            assert response.headers["WWW-Authenticate"].lower().startswith("bearer")

    created = await limited.client.post(
        f"{BASE}/auth/tokens", json={"email": email, "password": PASSWORD, "token_name": "x"}
    )
    assert created.status_code == 201
    rate_headers(created, CREATES, CREATES - 1, window=900)


# ---- keys ------------------------------------------------------------------------------------


async def test_buckets_are_per_token(limited: Limited) -> None:
    first, second = await limited.tokens(2)
    for _ in range(READS):
        assert (await limited.client.get(f"{BASE}/runs", headers=first)).status_code == 200
    assert_429(await limited.client.get(f"{BASE}/runs", headers=first), READS)

    # Same user, same address, another token: a full bucket.
    response = await limited.client.get(f"{BASE}/runs", headers=second)
    assert response.status_code == 200
    rate_headers(response, READS, READS - 1)
    # Unauthenticated traffic from the same address is counted apart, by IP.
    response = await limited.client.get(f"{BASE}/runs")
    assert response.status_code == 401
    rate_headers(response, READS, READS - 1)


async def test_unauthenticated_requests_are_limited_per_ip(limited: Limited) -> None:
    for remaining in range(READS - 1, -1, -1):
        response = await limited.client.get(f"{BASE}/runs")
        assert response.status_code == 401
        rate_headers(response, READS, remaining)
    # 429 comes before the 401, and the public health check shares the IP's read bucket.
    assert_429(await limited.client.get(f"{BASE}/runs"), READS)
    assert_429(await limited.client.get(f"{BASE}/system/health"), READS)

    async with limited.client_from("10.1.2.3") as elsewhere:
        response = await elsewhere.get(f"{BASE}/runs")
        assert response.status_code == 401
        rate_headers(response, READS, READS - 1)
        assert (await elsewhere.get(f"{BASE}/system/health")).status_code == 200

    # A valid token from the exhausted address has its own bucket.
    [h] = await limited.tokens(1)
    response = await limited.client.get(f"{BASE}/runs", headers=h)
    assert response.status_code == 200
    rate_headers(response, READS, READS - 1)


async def test_hammering_with_an_invalid_token_gets_429_before_401(limited: Limited) -> None:
    bad = {"Authorization": "Bearer spci_" + "X" * 43}
    junk = {"Authorization": "Bearer junk"}
    for remaining, headers in zip(range(WRITES - 1, -1, -1), (bad, junk), strict=True):
        response = await limited.client.post(f"{BASE}/runs", headers=headers, json={})
        assert response.status_code == 401
        rate_headers(response, WRITES, remaining)
    for headers in (bad, junk, {}):
        over = await limited.client.post(f"{BASE}/runs", headers=headers, json={})
        assert_429(over, WRITES)
        assert "WWW-Authenticate" not in over.headers

    # Reads from that address are a separate bucket, still open.
    response = await limited.client.get(f"{BASE}/runs", headers=bad)
    assert response.status_code == 401
    rate_headers(response, READS, READS - 1)


# ---- token creation ---------------------------------------------------------------------------


async def test_token_creation_has_its_own_bucket_per_ip(limited: Limited) -> None:
    email = await limited.user(Role.USER)
    url = f"{BASE}/auth/tokens"

    def body(name: str, password: str = PASSWORD) -> dict[str, str]:
        return {"email": email, "password": password, "token_name": name}

    ok = await limited.client.post(url, json=body("one"))
    assert ok.status_code == 201
    reset = rate_headers(ok, CREATES, 1, window=900)
    assert reset > int(time.time()) + 60  # the 15-minute window, not the minute one
    wrong = await limited.client.post(url, json=body("two", "wrong-password"))
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
    rate_headers(wrong, CREATES, 0, window=900)

    over = await limited.client.post(url, json=body("three"))
    retry_after = assert_429(over, CREATES, window=900)
    assert retry_after > 60
    # Keyed by address even when a valid bearer token is presented.
    token = ok.json()["token"]
    assert_429(
        await limited.client.post(
            url, json=body("four"), headers={"Authorization": f"Bearer {token}"}
        ),
        CREATES,
        window=900,
    )

    # The write bucket of that address (and of the token) is untouched...
    response = await limited.client.post(f"{BASE}/runs", json={})
    assert response.status_code == 401
    rate_headers(response, WRITES, WRITES - 1)
    response = await limited.client.delete(
        f"{BASE}/auth/tokens/current", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 204
    rate_headers(response, WRITES, WRITES - 1)

    # ...and another address may still create tokens.
    async with limited.client_from("10.9.8.7") as elsewhere:
        response = await elsewhere.post(url, json=body("five"))
        assert response.status_code == 201, response.text
        rate_headers(response, CREATES, 1, window=900)


async def test_exhausted_writes_do_not_block_token_creation(limited: Limited) -> None:
    email = await limited.user(Role.USER)
    async with limited.client_from("10.0.0.5") as client:
        for _ in range(WRITES):
            assert (await client.post(f"{BASE}/runs", json={})).status_code == 401
        assert_429(await client.post(f"{BASE}/runs", json={}), WRITES)
        response = await client.post(
            f"{BASE}/auth/tokens", json={"email": email, "password": PASSWORD, "token_name": "x"}
        )
        assert response.status_code == 201, response.text
        rate_headers(response, CREATES, CREATES - 1, window=900)


# ---- windows and defaults -------------------------------------------------------------------


async def test_the_window_resets(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", rate_limit_reads=1, rate_limit_window_seconds=1)
    async with running(settings) as app:
        assert (await app.client.get(f"{BASE}/system/health")).status_code == 200
        over = await app.client.get(f"{BASE}/system/health")
        assert_429(over, 1, window=1)
        assert over.headers["Retry-After"] == "1"
        await asyncio.sleep(1.1)
        again = await app.client.get(f"{BASE}/system/health")
        assert again.status_code == 200, again.text
        rate_headers(again, 1, 0, window=1)


async def test_contract_default_limits(tmp_path: Path) -> None:
    """120 reads and 20 writes a minute, 5 token creations per 15 minutes."""
    settings = Settings(data_dir=tmp_path / "data", workers=0)
    assert (settings.rate_limit_reads, settings.rate_limit_writes) == (120, 20)
    assert settings.rate_limit_window_seconds == 60
    assert (settings.rate_limit_token_create, settings.rate_limit_token_create_window_seconds) == (
        5,
        900,
    )
    async with running(settings) as app:
        response = await app.client.get(f"{BASE}/system/health")
        rate_headers(response, 120, 119)

        for remaining in range(19, -1, -1):
            response = await app.client.delete(f"{BASE}/auth/tokens/current")
            assert response.status_code == 401
            rate_headers(response, 20, remaining)
        assert_429(await app.client.delete(f"{BASE}/auth/tokens/current"), 20)

        # Schema failures are counted too (and cost no password check).
        for remaining in range(4, -1, -1):
            response = await app.client.post(f"{BASE}/auth/tokens", json={})
            assert response.status_code == 400
            rate_headers(response, 5, remaining, window=900)
        assert_429(await app.client.post(f"{BASE}/auth/tokens", json={}), 5, window=900)
