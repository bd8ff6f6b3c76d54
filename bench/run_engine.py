"""Benchmark of the run engine: the real app with its in-process workers, on SQLite.

    .venv/bin/python bench/run_engine.py [--runs N] [--cancels N] [--spawns N]
                                         [--workers N] [--out bench/results/run_engine.json]

Measures (a) submit→running latency, (b) cancel→terminal latency of running runs,
(c) end-to-end throughput of trivial runs and (d) the raw subprocess spawn rate of this
process, for comparison. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from runplane import __version__
from runplane.api.app import create_app
from runplane.config import Settings
from runplane.domain.permissions import ALL_SCOPES, Role
from runplane.domain.status import TERMINAL, RunStatus
from runplane.services import accounts, projects
from runplane.services.context import Context
from runplane.store.database import unit_of_work
from runplane.store.models import Run, RunEvent

TRIVIAL = "bench/trivial"
SLEEPER = "bench/sleeper"
TERMINAL_VALUES = [s.value for s in TERMINAL]
DEFAULT_OUT = Path(__file__).parent / "results" / "run_engine.json"


# ---- statistics -----------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def stats_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 2),
        "p99": round(percentile(ms, 99), 2),
        "mean": round(sum(ms) / len(ms), 2) if ms else float("nan"),
        "min": round(min(ms), 2) if ms else float("nan"),
        "max": round(max(ms), 2) if ms else float("nan"),
    }


# ---- set-up ---------------------------------------------------------------------------


def make_repository(path: Path) -> str:
    """A one-commit git repository; returns the commit."""
    env = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@runplane.local",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@runplane.local",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(path),
    }

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(path), *args], check=True, capture_output=True, text=True, env=env
        )
        return out.stdout.strip()

    path.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=master")
    (path / "README").write_text("runplane benchmark repository\n")
    git("add", ".")
    git("commit", "--quiet", "-m", "bench")
    return git("rev-parse", "HEAD")


@dataclass
class Bench:
    client: httpx.AsyncClient
    ctx: Context
    headers: dict[str, str]
    sha: str

    async def submit(self, repository: str) -> int:
        response = await self.client.post(
            "/api/v1/runs",
            headers=self.headers,
            json={"repository": repository, "commit_sha": self.sha, "platform": "linux"},
        )
        if response.status_code != 202:
            raise RuntimeError(f"submit failed: {response.status_code} {response.text}")
        run_id: int = response.json()["run_id"]
        return run_id

    async def cancel(self, run_id: int) -> None:
        response = await self.client.post(f"/api/v1/runs/{run_id}/cancel", headers=self.headers)
        if response.status_code != 202:
            raise RuntimeError(f"cancel failed: {response.status_code} {response.text}")

    async def run(self, run_id: int) -> Run:
        async with unit_of_work(self.ctx.sessions) as session:
            run = await session.get(Run, run_id)
        assert run is not None
        return run

    async def runs(self, run_ids: Sequence[int]) -> list[Run]:
        async with unit_of_work(self.ctx.sessions) as session:
            rows = await session.execute(select(Run).where(Run.id.in_(run_ids)))
            return list(rows.scalars())

    async def wait_status(
        self, run_id: int, statuses: set[str], timeout: float = 60, interval: float = 0.005
    ) -> Run:
        deadline = time.monotonic() + timeout
        while True:
            run = await self.run(run_id)
            if run.status in statuses:
                return run
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} still {run.status} after {timeout} s")
            await asyncio.sleep(interval)

    async def wait_testing(self, run_id: int, timeout: float = 60) -> None:
        """Until the run's test step has started (its 'testing' progress row)."""
        deadline = time.monotonic() + timeout
        while True:
            async with unit_of_work(self.ctx.sessions) as session:
                found = await session.scalar(
                    select(func.count())
                    .select_from(RunEvent)
                    .where(RunEvent.run_id == run_id, RunEvent.state == "testing")
                )
            if found:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} never started testing")
            await asyncio.sleep(0.005)

    async def event_time(self, run_id: int, status: str) -> datetime | None:
        async with unit_of_work(self.ctx.sessions) as session:
            return await session.scalar(
                select(RunEvent.created_at)
                .where(RunEvent.run_id == run_id, RunEvent.status == status)
                .order_by(RunEvent.id)
                .limit(1)
            )


@asynccontextmanager
async def started(
    settings: Settings, repo: Path, sha: str, *, run_workers: bool = True
) -> AsyncIterator[Bench]:
    """The app (with its in-process workers unless ``run_workers`` is off), an admin token
    and the two benchmark projects."""
    app = create_app(settings, run_workers=run_workers)
    async with app.router.lifespan_context(app):
        ctx: Context = app.state.runtime.ctx
        email = "bench@runplane.local"
        await accounts.create_user(ctx, email, uuid.uuid4().hex, Role.ADMIN)
        issued = await accounts.issue_for_email(ctx, email, "bench", list(ALL_SCOPES), 1)
        for repository, command in ((TRIVIAL, "true"), (SLEEPER, "sleep 60")):
            spec = projects.ProjectSpec(
                repository=repository, repo_url=str(repo), test_command=command
            )
            await projects.create(ctx, None, spec)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            yield Bench(client, ctx, {"Authorization": f"Bearer {issued.token}"}, sha)


# ---- the measurements -----------------------------------------------------------------


def _seconds(later: datetime | None, earlier: datetime | None) -> float:
    assert later is not None and earlier is not None
    return (later - earlier).total_seconds()


async def submit_to_running(bench: Bench, n: int) -> dict[str, Any]:
    """(a) One run at a time on idle workers: started_at - created_at."""
    ids = []
    for _ in range(n):
        run_id = await bench.submit(TRIVIAL)
        await bench.wait_status(run_id, set(TERMINAL_VALUES), interval=0.02)
        ids.append(run_id)
    rows = await bench.runs(ids)
    return {
        "submit_to_running_ms": stats_ms([_seconds(r.started_at, r.created_at) for r in rows]),
        "submit_to_done_ms": stats_ms([_seconds(r.completed_at, r.created_at) for r in rows]),
        "statuses": _count(rows),
    }


async def cancel_to_terminal(bench: Bench, n: int) -> dict[str, Any]:
    """(b) `sleep 60` runs, canceled once their test step runs."""
    client_s: list[float] = []
    db_s: list[float] = []
    for _ in range(n):
        run_id = await bench.submit(SLEEPER)
        await bench.wait_testing(run_id)
        await asyncio.sleep(0.1)  # let /bin/sh start `sleep`
        t0 = time.perf_counter()
        await bench.cancel(run_id)
        run = await bench.wait_status(run_id, {RunStatus.CANCELED.value}, interval=0.002)
        client_s.append(time.perf_counter() - t0)
        db_s.append(_seconds(run.completed_at, await bench.event_time(run_id, "canceling")))
    return {
        "cancel_to_canceled_ms": stats_ms(client_s),
        "canceling_to_canceled_db_ms": stats_ms(db_s),
    }


async def throughput(bench: Bench, n: int) -> dict[str, Any]:
    """(c) Submit n trivial runs back to back, time until all are terminal."""
    t0 = time.perf_counter()
    ids = [await bench.submit(TRIVIAL) for _ in range(n)]
    submitted = time.perf_counter() - t0
    deadline = time.monotonic() + 600
    while True:
        async with unit_of_work(bench.ctx.sessions) as session:
            done = await session.scalar(
                select(func.count())
                .select_from(Run)
                .where(Run.id.in_(ids), Run.status.in_(TERMINAL_VALUES))
            )
        if done == n:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {n} runs finished")
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - t0
    rows = await bench.runs(ids)
    first = min(r.created_at for r in rows)
    last = max(r.completed_at for r in rows if r.completed_at is not None)
    db_span = (last - first).total_seconds()
    return {
        "runs": n,
        "wall_seconds": round(wall, 3),
        "runs_per_second": round(n / wall, 2),
        "db_span_seconds": round(db_span, 3),
        "runs_per_second_db": round(n / db_span, 2),
        "submissions_per_second": round(n / submitted, 1),
        "queue_wait_ms": stats_ms([_seconds(r.started_at, r.created_at) for r in rows]),
        "statuses": _count(rows),
    }


def _count(rows: Sequence[Run]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row.status] = out.get(row.status, 0) + 1
    return out


async def spawn_rate(n: int) -> dict[str, Any]:
    """(d) `true` through asyncio.create_subprocess_exec, sequential and 2 at a time."""

    async def spawn() -> None:
        proc = await asyncio.create_subprocess_exec(
            "true", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
        )
        await proc.wait()

    async def loop(count: int) -> None:
        for _ in range(count):
            await spawn()

    t0 = time.perf_counter()
    await loop(n)
    sequential = time.perf_counter() - t0
    t0 = time.perf_counter()
    await asyncio.gather(loop(n // 2), loop(n - n // 2))
    parallel = time.perf_counter() - t0
    return {
        "spawns": n,
        "sequential_per_second": round(n / sequential, 1),
        "concurrency_2_per_second": round(n / parallel, 1),
        "sequential_ms_each": round(sequential / n * 1000, 3),
    }


# ---- main ---------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    a, b, c, d = result["a"], result["b"], result["c"], result["d"]
    rows: list[tuple[str, str]] = []

    def lat(label: str, s: dict[str, Any]) -> None:
        rows.append((label, f"p50 {s['p50']:8.1f} ms   p99 {s['p99']:8.1f} ms   (n={s['n']})"))

    lat("(a) submit → running (DB)", a["submit_to_running_ms"])
    lat("    submit → done, one run", a["submit_to_done_ms"])
    lat("(b) cancel → canceled (client)", b["cancel_to_canceled_ms"])
    lat("    canceling → canceled (DB)", b["canceling_to_canceled_db_ms"])
    rows.append(
        (
            f"(c) throughput, {result['settings']['workers']} workers",
            f"{c['runs_per_second']:.2f} runs/s wall, {c['runs_per_second_db']:.2f} runs/s DB "
            f"(n={c['runs']})",
        )
    )
    lat("    submit → running in the burst", c["queue_wait_ms"])
    rows.append(
        (
            "(d) spawn `true`",
            f"{d['sequential_per_second']:.0f}/s sequential, "
            f"{d['concurrency_2_per_second']:.0f}/s at concurrency 2",
        )
    )
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="runplane-bench-") as tmp:
        root = Path(tmp)
        sha = make_repository(root / "repo")
        settings = Settings(
            data_dir=root / "data",
            workers=args.workers,
            # The limiter would turn a burst of submissions into 429s; this measures the engine.
            rate_limit_enabled=False,
        )
        started_at = time.perf_counter()
        async with started(settings, root / "repo", sha) as bench:
            a = await submit_to_running(bench, args.runs)
            b = await cancel_to_terminal(bench, args.cancels)
            c = await throughput(bench, args.runs)
        d = await spawn_rate(args.spawns)
        return {
            "meta": {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "runplane": __version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "database": "sqlite",
                "total_seconds": round(time.perf_counter() - started_at, 1),
            },
            "settings": {
                "workers": settings.workers,
                "dispatch_poll_seconds": settings.dispatch_poll_seconds,
                "cancel_poll_seconds": settings.cancel_poll_seconds,
                "grace_period_seconds": settings.grace_period_seconds,
                "runs": args.runs,
                "cancels": args.cancels,
                "spawns": args.spawns,
            },
            "a": a,
            "b": b,
            "c": c,
            "d": d,
        }


def report(
    measure: Coroutine[Any, Any, dict[str, Any]],
    print_table: Callable[[dict[str, Any]], None],
    out: Path,
) -> int:
    """Run a benchmark's ``measure``, print its table, write its JSON to ``out``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(measure)
    print_table(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {out} ({result['meta']['total_seconds']} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=100, help="runs for (a) and for (c)")
    parser.add_argument("--cancels", type=int, default=30, help="canceled runs for (b)")
    parser.add_argument("--spawns", type=int, default=1000, help="processes for (d)")
    parser.add_argument("--workers", type=int, default=2, help="in-process workers")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = parser.parse_args(argv)
    if min(args.runs, args.cancels, args.spawns, args.workers) < 1:
        parser.error("--runs, --cancels, --spawns and --workers must be at least 1")
    return report(main_async(args), print_table, args.out)


if __name__ == "__main__":
    sys.exit(main())
