"""SIGKILL the API process while clients submit: every accepted run exists, none twice.

A real ``runplane serve`` on PostgreSQL (no workers: runs stay queued), clients that
submit with ``Idempotency-Key`` and, like any careful CI client, retry a request whose
answer they never got with the same key. The server is killed mid-stream and started
again on the same database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.acceptance.test_cli import _free_port
from tests.conftest import DemoRepo

pytestmark = pytest.mark.postgres
RUNPLANE = [sys.executable, "-m", "runplane.cli.main"]
CLIENTS = 4
RUNS = 60


def _env(pg_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPLANE_")}
    env.update(
        RUNPLANE_DATABASE_URL=pg_url,
        RUNPLANE_SECRET_KEY="crash-test-secret",
        RUNPLANE_DATA_DIR=str(data_dir),
        RUNPLANE_WORKERS="0",
        RUNPLANE_RATE_LIMIT_ENABLED="false",
    )
    return env


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*RUNPLANE, *args], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    return done.stdout


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*RUNPLANE, "serve", "--port", str(port), "--workers", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/system/health", timeout=1).is_success:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")


async def test_killed_api_loses_no_accepted_run_and_duplicates_none(
    tmp_path: Path, pg_url: str, demo_repo: DemoRepo
) -> None:
    env = _env(pg_url, tmp_path / "data")
    _cli(
        env,
        "users",
        "create",
        "--email",
        "ci@example.com",
        "--password",
        "password123",
        "--role",
        "contributor",
    )
    token = (
        _cli(
            env,
            "tokens",
            "create",
            "--email",
            "ci@example.com",
            "--name",
            "ci",
            "--scopes",
            "runs:read,runs:write",
        )
        .strip()
        .splitlines()[-1]
    )
    _cli(
        env,
        "projects",
        "create",
        "--repository",
        "demo/calculator",
        "--repo-url",
        str(demo_repo.path),
        "--test-command",
        "true",
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    log = tmp_path / "serve.log"
    server = _serve(env, port, log)
    accepted: dict[str, int] = {}
    keys = [f"crash-{i}" for i in range(RUNS)]
    pending = list(keys)
    killed = asyncio.Event()

    async def client(http: httpx.AsyncClient) -> None:
        while pending:
            key = pending.pop(0)
            try:
                response = await http.post(
                    "/runs",
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                    json={
                        "repository": "demo/calculator",
                        "commit_sha": demo_repo.passing_sha,
                        "platform": "linux",
                    },
                )
            except httpx.HTTPError:
                pending.append(key)  # no answer: retry later with the same key
                await killed.wait()
                await asyncio.sleep(0.2)
                continue
            assert response.status_code in (201, 202), response.text
            run_id = response.json()["run_id"]
            assert accepted.setdefault(key, run_id) == run_id, "a replay changed the run"

    async def killer() -> None:
        nonlocal server
        while len(accepted) < RUNS // 3:
            await asyncio.sleep(0.01)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        killed.set()
        server = await asyncio.to_thread(_serve, env, port, log)

    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await asyncio.gather(killer(), *(client(http) for _ in range(CLIENTS)))
        # Replays of accepted keys answer with the same run, never a new one.
        for key in keys[:5]:
            again = await http.post(
                "/runs",
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                json={
                    "repository": "demo/calculator",
                    "commit_sha": demo_repo.passing_sha,
                    "platform": "linux",
                },
            )
            assert again.json()["run_id"] == accepted[key]
    server.send_signal(signal.SIGTERM)
    server.wait(30)

    assert sorted(accepted) == sorted(keys)
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT idempotency_key, id FROM runs").fetchall()
    by_key: dict[str, list[int]] = {}
    for key, run_id in rows:
        by_key.setdefault(key, []).append(run_id)
    assert {k: v for k, v in by_key.items() if len(v) > 1} == {}, "duplicated runs"
    assert {k: v[0] for k, v in by_key.items()} == accepted
