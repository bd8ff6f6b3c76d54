"""``GET /metrics``: who may scrape, what the database figures say after real runs (SQLite
and PostgreSQL), HTTP request metrics by route template, and run ids on a worker's log lines.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message, Receive, Scope, Send

from runplane.api.metrics import UNMATCHED, HttpMetrics, HttpMetricsMiddleware
from runplane.domain.permissions import ALL_SCOPES, Role
from runplane.domain.permissions import Scope as TokenScope
from runplane.logging_setup import make_handler
from runplane.services import accounts
from runplane.store.database import unit_of_work
from runplane.store.models import WebhookDelivery
from tests.conftest import Api, DemoRepo, _api, make_settings

TERMINAL = {"pass", "fail", "error", "canceled"}
METRICS_ONLY = (TokenScope.METRICS_READ,)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def scrape(api: Api, headers: dict[str, str] | None = None) -> Samples:
    response = await api.client.get(
        "/metrics", headers=headers or await api.headers(Role.ADMIN, METRICS_ONLY)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def assert_histogram(found: Samples, name: str, count: int) -> None:
    """``count`` observations, and buckets that are cumulative and end in ``+Inf``."""
    assert value(found, f"{name}_count") == count
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (sample, labels), v in found.items()
        if sample == f"{name}_bucket"
    )
    assert buckets[-1] == (float("inf"), count)
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"{name} buckets are not cumulative: {buckets}"


# ---- who may scrape ---------------------------------------------------------------------


async def test_metrics_needs_a_token_with_metrics_read(api_no_workers: Api) -> None:
    api = api_no_workers
    for headers in ({}, {"Authorization": "Bearer junk"}, {"Authorization": "Basic eDp5"}):
        response = await api.client.get("/metrics", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json() == {
            "code": "unauthorized",
            "message": "Bearer token is missing, expired, or invalid.",
            "details": {},
        }
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")

    without = tuple(s for s in ALL_SCOPES if s is not TokenScope.METRICS_READ)
    response = await api.client.get("/metrics", headers=await api.headers(Role.ADMIN, without))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"
    assert response.json()["details"] == {
        "required_scopes": ["metrics:read"],
        "missing_scopes": ["metrics:read"],
        "token_scopes": sorted(s.value for s in without),
    }

    response = await api.client.get("/metrics", headers=await api.headers(Role.ADMIN, METRICS_ONLY))
    assert response.status_code == 200, response.text
    assert "# TYPE runplane_queue_depth gauge" in response.text
    # The gate's headers, as on every API response.
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "X-RateLimit-Limit" in response.headers


async def test_only_admins_may_put_metrics_read_on_a_token(api_no_workers: Api) -> None:
    api = api_no_workers
    answers: dict[Role, httpx.Response] = {}
    for role in (Role.ADMIN, Role.CONTRIBUTOR):
        email = f"scraper-{role.value}@example.com"
        await accounts.create_user(api.ctx, email, "password123", role)
        answers[role] = await api.client.post(
            "/api/v1/auth/tokens",
            json={
                "email": email,
                "password": "password123",
                "token_name": "prometheus",
                "scopes": ["metrics:read"],
            },
        )
    admin, contributor = answers[Role.ADMIN], answers[Role.CONTRIBUTOR]
    assert admin.status_code == 201, admin.text
    assert admin.json()["scopes"] == ["metrics:read"]
    assert contributor.status_code == 403, contributor.text
    assert contributor.json()["details"] == {"disallowed_scopes": ["metrics:read"]}
    found = await scrape(api, {"Authorization": f"Bearer {admin.json()['token']}"})
    assert value(found, "runplane_queue_depth") == 0


# ---- what the database says ---------------------------------------------------------------


async def _pass_fail_and_cancel(api: Api, demo_repo: DemoRepo) -> dict[str, int]:
    """A passed and a failed run of demo/calculator, and a canceled running run of demo/slow."""
    await api.project(demo_repo)
    await api.project(demo_repo, repository="demo/slow", test_command="sleep 300")
    h = await api.headers()
    passed = await api.submit(h, demo_repo.passing_sha)
    failed = await api.submit(h, demo_repo.failing_sha)
    slow = await api.submit(h, demo_repo.passing_sha, repository="demo/slow")
    await api.wait_for(h, slow["run_id"], {"running"})
    response = await api.client.post(
        f"/api/v1/runs/{slow['run_id']}/cancel", headers=h, json={"reason": "metrics test"}
    )
    assert response.status_code == 202, response.text
    ends = {
        "pass": passed["run_id"],
        "fail": failed["run_id"],
        "canceled": slow["run_id"],
    }
    for status, run_id in ends.items():
        assert (await api.wait_for(h, run_id, TERMINAL))["status"] == status
    return ends


async def _assert_after_pass_fail_and_cancel(api: Api) -> None:
    found = await scrape(api)
    calculator, slow = "demo/calculator", "demo/slow"
    assert value(found, "runplane_runs", status="passed", project=calculator) == 1
    assert value(found, "runplane_runs", status="failed", project=calculator) == 1
    assert value(found, "runplane_runs", status="canceled", project=slow) == 1
    # Every status is there for every project, at zero if need be.
    assert value(found, "runplane_runs", status="queued", project=calculator) == 0
    assert value(found, "runplane_runs", status="passed", project=slow) == 0
    assert value(found, "runplane_queue_depth") == 0
    assert value(found, "runplane_runs_running") == 0
    # All three started and finished; only the canceled one had a cancel to time.
    assert_histogram(found, "runplane_run_queue_seconds", 3)
    assert_histogram(found, "runplane_run_duration_seconds", 3)
    assert_histogram(found, "runplane_cancel_latency_seconds", 1)
    latency = value(found, "runplane_cancel_latency_seconds_sum")
    assert 0 < latency < 30, latency
    assert value(found, "runplane_run_duration_seconds_sum") > latency


async def test_run_metrics_after_a_pass_a_fail_and_a_cancel(api: Api, demo_repo: DemoRepo) -> None:
    await _pass_fail_and_cancel(api, demo_repo)
    await _assert_after_pass_fail_and_cancel(api)


@pytest.mark.postgres
async def test_run_metrics_on_postgresql(tmp_path: Path, pg_url: str, demo_repo: DemoRepo) -> None:
    settings = make_settings(tmp_path / "data", database_url=pg_url)
    async for api in _api(settings, run_workers=True):
        await _pass_fail_and_cancel(api, demo_repo)
        await _assert_after_pass_fail_and_cancel(api)


@pytest.fixture
async def api_pg_no_workers(tmp_path: Path, pg_url: str) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path / "data", database_url=pg_url)
    async for api in _api(settings, run_workers=False):
        yield api


async def _assert_queue_and_webhooks(api: Api, demo_repo: DemoRepo) -> None:
    await api.project(demo_repo)
    h = await api.headers()
    ids = [(await api.submit(h, demo_repo.passing_sha))["run_id"] for _ in range(3)]
    response = await api.client.post(f"/api/v1/runs/{ids[0]}/cancel", headers=h)
    assert response.status_code == 202, response.text
    async with unit_of_work(api.ctx.sessions) as session:
        for run_id, state in zip(ids, ("delivered", "failed", "failed"), strict=True):
            session.add(WebhookDelivery(run_id=run_id, url="https://hooks.example/x", state=state))

    found = await scrape(api)
    assert value(found, "runplane_queue_depth") == 2
    assert value(found, "runplane_runs", status="queued", project="demo/calculator") == 2
    assert value(found, "runplane_runs", status="canceled", project="demo/calculator") == 1
    assert value(found, "runplane_runs_running") == 0
    # Nothing started: no queue time yet, and a queued run's cancel is not a cancel latency.
    assert_histogram(found, "runplane_run_queue_seconds", 0)
    assert_histogram(found, "runplane_cancel_latency_seconds", 0)
    assert value(found, "runplane_webhook_deliveries", status="failed") == 2
    assert value(found, "runplane_webhook_deliveries", status="delivered") == 1
    assert value(found, "runplane_webhook_deliveries", status="pending") == 0


async def test_queue_depth_and_webhook_deliveries(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    await _assert_queue_and_webhooks(api_no_workers, demo_repo)


@pytest.mark.postgres
async def test_queue_depth_and_webhook_deliveries_on_postgresql(
    api_pg_no_workers: Api, demo_repo: DemoRepo
) -> None:
    await _assert_queue_and_webhooks(api_pg_no_workers, demo_repo)


# ---- HTTP requests -------------------------------------------------------------------------


async def test_http_metrics_are_labelled_by_route_template(api_no_workers: Api) -> None:
    api = api_no_workers
    h = await api.headers()
    ta_id = "0b5e6a7c-0000-4000-8000-000000000777"
    calls = [
        ("GET", "/api/v1/runs/987654", 404),
        ("GET", "/api/v1/runs/987654/progress", 404),
        ("GET", "/api/v1/runs", 200),
        ("GET", f"/ta/v1/runs/{ta_id}", 404),
        ("GET", "/ta/api/v1/runs", 200),
        ("GET", "/api/v1/no-such-thing/555111", 404),
        ("GET", "/nowhere/555222", 404),
        ("GET", "/api/v1/openapi.json", 200),
        ("BREW", "/api/v1/runs", 405),
    ]
    for method, path, status in calls:
        response = await api.client.request(method, path, headers=h)
        assert response.status_code == status, (path, response.text)
    # Answered by the gate, before any routing.
    assert (await api.client.get("/api/v1/runs/987654")).status_code == 401
    await scrape(api)
    found = await scrape(api)

    def requests(method: str, route: str, status: int) -> float:
        return value(
            found, "runplane_http_requests_total", method=method, route=route, status=str(status)
        )

    assert requests("GET", "/api/v1/runs/{run_id}", 404) == 1
    assert requests("GET", "/api/v1/runs/{run_id}/progress", 404) == 1
    assert requests("GET", "/api/v1/runs", 200) == 1
    assert requests("GET", "/ta/v1/runs/{id}", 404) == 1
    assert requests("GET", "/ta/api/v1/runs", 200) == 1
    assert requests("GET", "/api/v1/openapi.json", 200) == 1
    assert requests("GET", UNMATCHED, 404) == 2
    assert requests("GET", UNMATCHED, 401) == 1
    assert requests("OTHER", "/api/v1/runs", 405) == 1
    # The first scrape is counted by the second.
    assert requests("GET", "/metrics", 200) == 1
    assert (
        value(
            found,
            "runplane_http_request_duration_seconds_count",
            method="GET",
            route="/api/v1/runs",
            status="200",
        )
        == 1
    )
    labels = {v for (_, pairs), _ in found.items() for _, v in pairs}
    leaked = [v for v in labels if any(raw in v for raw in ("987654", "555", ta_id, "BREW"))]
    assert leaked == []


async def test_route_template_of_routers_included_in_routers_in_a_mount() -> None:
    """FastAPI nests included routers: the template is rebuilt from mount, prefixes, route."""
    items = APIRouter(prefix="/items")

    @items.get("/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @items.get("/{item_id}/parts/{part}")
    async def part(item_id: int, part: str) -> dict[str, str]:
        return {"part": part}

    versioned = APIRouter(prefix="/v2")
    versioned.include_router(items)
    sub = FastAPI()
    sub.include_router(versioned)
    sub.include_router(versioned, prefix="/api")
    http = HttpMetrics()
    app = FastAPI()
    app.add_middleware(HttpMetricsMiddleware, metrics=http)
    app.mount("/sub", sub)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/sub/v2/items/42", "/sub/api/v2/items/7/parts/wheel", "/sub/v2/nope"):
            await client.get(path)
    routes = {
        (s.labels["route"], s.labels["status"])
        for family in http.registry.collect()
        for s in family.samples
        if s.name == "runplane_http_requests_total"
    }
    assert routes == {
        ("/sub/v2/items/{item_id}", "200"),
        ("/sub/api/v2/items/{item_id}/parts/{part}", "200"),
        (UNMATCHED, "404"),
    }


async def test_the_middleware_passes_a_stream_through_unbuffered() -> None:
    """The second chunk is only produced once the first has reached the client."""
    first_sent = asyncio.Event()

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await asyncio.wait_for(first_sent.wait(), 5)
        await send({"type": "http.response.body", "body": b"two", "more_body": False})

    received: list[bytes] = []

    async def client_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            received.append(message["body"])
            first_sent.set()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    http = HttpMetrics()
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/events", "headers": []}
    await HttpMetricsMiddleware(streaming, http)(scope, receive, client_send)
    assert received == [b"one", b"two"]
    labels = {"method": "GET", "route": UNMATCHED, "status": "200"}
    assert http.registry.get_sample_value("runplane_http_requests_total", labels) == 1


# ---- run ids on a worker's log lines ------------------------------------------------------


async def test_worker_log_lines_carry_the_run_id(tmp_path: Path, demo_repo: DemoRepo) -> None:
    """Needs ``execute_run`` to bind ``current_run_id`` (``logging_setup.bound_run_id``)."""
    data = tmp_path / "data"
    data.mkdir()
    # A file where the workspaces directory should be: the executor fails, and logs it.
    (data / "workspaces").write_text("not a directory")
    stream = io.StringIO()
    handler = make_handler("json", stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        async for api in _api(make_settings(data), run_workers=True):
            await api.project(demo_repo)
            h = await api.headers()
            run = await api.submit(h, demo_repo.passing_sha)
            done = await api.wait_for(h, run["run_id"], TERMINAL)
            assert done["status"] == "error"
    finally:
        root.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    executor = [line for line in lines if line["logger"].startswith("runplane.execution")]
    assert executor, lines
    assert all(line.get("run_id") == run["run_id"] for line in executor), executor
    assert any("NotADirectoryError" in line.get("exc_info", "") for line in executor)
