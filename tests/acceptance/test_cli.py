"""The ``runplane`` command line as a user runs it: subprocesses against a live server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

RUNPLANE = [sys.executable, "-m", "runplane.cli.main"]


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPLANE_")}
    return subprocess.run(
        [*RUNPLANE, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """``runplane serve --demo`` on a free port; yields (base URL, data dir, printed output)."""
    data_dir = tmp_path / "data"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPLANE_")}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                *RUNPLANE,
                "serve",
                "--demo",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/system/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield base, data_dir, log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_serve_demo_prints_a_working_token_and_operator_commands_share_the_data_dir(
    server: tuple[str, Path, str],
) -> None:
    base, data_dir, printed = server
    token = next(
        line.split(":", 1)[1].strip() for line in printed.splitlines() if "admin token" in line
    )
    assert token.startswith("spci_")
    assert "curl -s -X POST" in printed and f"{base}/api/v1/runs" in printed
    h = {"Authorization": f"Bearer {token}"}
    projects = httpx.get(f"{base}/api/v1/projects", headers=h).json()["data"]
    assert {p["repository"] for p in projects} == {"demo/calculator", "demo/shout"}

    # Operator commands against the same data dir while the server runs.
    made = _cli(
        data_dir,
        "users",
        "create",
        "--email",
        "ci@example.com",
        "--password",
        "s3cret-pass",
        "--role",
        "contributor",
    )
    assert made.returncode == 0, made.stderr
    issued = _cli(
        data_dir,
        "tokens",
        "create",
        "--email",
        "ci@example.com",
        "--name",
        "ci",
        "--scopes",
        "runs:read,runs:write",
    )
    assert issued.returncode == 0, issued.stderr
    ci_token = issued.stdout.strip().splitlines()[-1]
    assert ci_token.startswith("spci_") and len(ci_token) == 48

    repo = data_dir / "demo-repo"
    created = _cli(
        data_dir,
        "projects",
        "create",
        "--repository",
        "acme/tool",
        "--repo-url",
        str(repo),
        "--test-command",
        "python3 run_tests.py",
        "--timeout-seconds",
        "120",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
    )
    assert created.returncode == 0, created.stderr
    project = json.loads(created.stdout)
    assert project["id"] >= 2 and project["env"] == {"A": "1", "B": "x=y"}

    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD~1"], capture_output=True, text=True, check=True
    ).stdout.strip()
    ch = {"Authorization": f"Bearer {ci_token}"}
    run = httpx.post(
        f"{base}/api/v1/runs",
        headers=ch,
        json={"repository": "acme/tool", "commit_sha": sha, "platform": "linux"},
    )
    assert run.status_code == 202, run.text
    deadline = time.monotonic() + 60
    while True:
        status = httpx.get(f"{base}/api/v1/runs/{run.json()['run_id']}", headers=ch).json()
        if status["status"] in {"pass", "fail", "error", "canceled"}:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status["status"] == "pass"


def test_operator_errors_are_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    missing = _cli(data_dir, "tokens", "create", "--email", "nobody@example.com", "--name", "x")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("error:") and "Traceback" not in missing.stderr
    bad_scope = _cli(
        data_dir,
        "tokens",
        "create",
        "--email",
        "a@b.c",
        "--name",
        "x",
        "--scopes",
        "runs:everything",
    )
    assert bad_scope.returncode == 2 and "known scopes" in bad_scope.stderr
    assert (
        _cli(
            data_dir,
            "users",
            "create",
            "--email",
            "u@example.com",
            "--password",
            "password1",
            "--role",
            "user",
        ).returncode
        == 0
    )
    too_much = _cli(
        data_dir,
        "tokens",
        "create",
        "--email",
        "u@example.com",
        "--name",
        "x",
        "--scopes",
        "system:write",
    )
    assert too_much.returncode == 1 and "does not permit" in too_much.stderr
    twice = _cli(
        data_dir,
        "users",
        "create",
        "--email",
        "u@example.com",
        "--password",
        "password1",
        "--role",
        "user",
    )
    assert twice.returncode == 1 and "already exists" in twice.stderr
