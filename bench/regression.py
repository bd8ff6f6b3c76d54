"""Benchmark of regression testing: tests per second for a trivial program.

    .venv/bin/python bench/regression.py [--tests N] [--out bench/results/regression.json]

Starts the real app (SQLite, one in-process worker), makes a project whose program
copies its input to ``out.txt``, N samples and N regression tests with baselines, runs
the suite at the default concurrency (CPU count) and reports tests per second over the
testing phase. Beside it, in the same process: the raw rate of spawning the same shell
command with asyncio at the same concurrency, and through runplane's ``run_command``
(process group, marker, tree sweep) — so the engine's own overhead is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from runplane.api.app import create_app
from runplane.config import Settings
from runplane.domain.permissions import ALL_SCOPES, Role
from runplane.execution.process_tree import run_command
from runplane.services import accounts, projects
from runplane.store.database import unit_of_work
from runplane.store.models import (
    RegressionOutput,
    RegressionResult,
    RegressionTest,
    Run,
    RunEvent,
    Sample,
)

DEFAULT_OUT = Path(__file__).parent / "results" / "regression.json"
PROGRAM = '#!/bin/sh\ncat "$1" > "$2/out.txt"\n'


def make_repository(path: Path) -> str:
    path.mkdir(parents=True)
    (path / "prog.sh").write_text(PROGRAM)
    (path / "prog.sh").chmod(0o755)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "prog"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, env=env)
    return subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


async def suite_rate(tests: int, root: Path) -> dict[str, Any]:
    sha = make_repository(root / "repo")
    settings = Settings(data_dir=root / "data", workers=1, rate_limit_enabled=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        ctx = app.state.runtime.ctx
        await accounts.create_user(ctx, "bench@example.com", "benchpass1", Role.ADMIN)
        token = (
            await accounts.issue_for_email(ctx, "bench@example.com", "b", list(ALL_SCOPES), 1)
        ).token
        project = await projects.create(
            ctx,
            None,
            projects.ProjectSpec(
                repository="bench/regression", repo_url=str(root / "repo"), program="prog.sh"
            ),
        )
        async with unit_of_work(ctx.sessions) as session:
            for i in range(tests):
                data = f"sample {i}\n".encode()
                path = root / "sample"
                path.write_bytes(data)
                blob = await ctx.blobs.put_file(path)
                sample = Sample(
                    sha256=blob.sha256,
                    name=f"s{i}.txt",
                    extension="txt",
                    size_bytes=blob.size_bytes,
                    tags=[],
                )
                session.add(sample)
                await session.flush()
                test = RegressionTest(
                    project_id=project.id,
                    sample_id=sample.id,
                    command="{program} {input} {output_dir}",
                    active=True,
                )
                session.add(test)
                await session.flush()
                session.add(
                    RegressionOutput(
                        regression_test_id=test.id, filename="out.txt", expected_hash=blob.sha256
                    )
                )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            response = await client.post(
                "/api/v1/runs",
                headers={"Authorization": f"Bearer {token}"},
                json={"repository": "bench/regression", "commit_sha": sha, "platform": "linux"},
            )
            run_id = response.json()["run_id"]
            while True:
                async with unit_of_work(ctx.reads) as session:
                    run = await session.get(Run, run_id)
                    assert run is not None
                    if run.completed_at is not None:
                        break
                await asyncio.sleep(0.2)
        async with unit_of_work(ctx.reads) as session:
            start = (
                await session.scalars(
                    select(RunEvent.created_at).where(
                        RunEvent.run_id == run_id, RunEvent.state == "testing"
                    )
                )
            ).first()
            statuses = (
                await session.scalars(
                    select(RegressionResult.status).where(RegressionResult.run_id == run_id)
                )
            ).all()
        assert start is not None and run.completed_at is not None
        phase = (run.completed_at - start).total_seconds()
        return {
            "tests": tests,
            "concurrency": os.cpu_count(),
            "run_status": run.status,
            "passed": sum(1 for s in statuses if s == "pass"),
            "testing_phase_seconds": round(phase, 3),
            "tests_per_second": round(tests / phase, 1),
        }


async def spawn_rates(count: int, root: Path) -> dict[str, Any]:
    concurrency = os.cpu_count() or 1
    src = root / "in.txt"
    src.write_text("x\n")
    gate = asyncio.Semaphore(concurrency)

    async def raw(i: int) -> None:
        async with gate:
            out = root / f"raw{i}"
            out.mkdir()
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                f'cat "{src}" > "{out}/out.txt"',
                stdout=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
            await proc.wait()

    async def supervised(i: int) -> None:
        async with gate:
            out = root / f"sup{i}"
            out.mkdir()

            async def sink(_: bytes) -> None:
                return None

            await run_command(
                f'cat "{src}" > "{out}/out.txt"',
                cwd=root,
                env=dict(os.environ),
                marker=f"bench-{uuid.uuid4().hex}",
                on_output=sink,
                stop=asyncio.Event(),
                deadline=None,
                grace_seconds=0,
            )

    t0 = time.perf_counter()
    await asyncio.gather(*(raw(i) for i in range(count)))
    raw_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    await asyncio.gather(*(supervised(i) for i in range(count)))
    sup_s = time.perf_counter() - t0
    return {
        "commands": count,
        "concurrency": concurrency,
        "raw_spawn_per_second": round(count / raw_s, 1),
        "run_command_per_second": round(count / sup_s, 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        suite = await suite_rate(args.tests, root)
        spawns = await spawn_rates(args.tests, root)
    return {"suite": suite, "spawn": spawns}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    s, p = result["suite"], result["spawn"]
    print(
        f"regression suite   {s['tests']} tests, concurrency {s['concurrency']}: "
        f"{s['tests_per_second']} tests/s ({s['testing_phase_seconds']} s, "
        f"{s['passed']} passed, run {s['run_status']})"
    )
    print(
        f"raw spawn          {p['raw_spawn_per_second']} commands/s "
        f"(same shell command, same concurrency)"
    )
    print(
        f"run_command        {p['run_command_per_second']} commands/s "
        f"(process group + marker + tree sweep)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
