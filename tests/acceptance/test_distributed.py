"""Distributed mode for real: `runplane worker` processes + an API process on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
from sqlalchemy import func, select

from runplane.dispatch.distributed import libpq_url
from runplane.dispatch.workers import parse_worker_id
from runplane.execution.process_tree import processes_with_marker
from runplane.store import runs as store
from runplane.store.database import migrate, unit_of_work
from runplane.store.models import Project, Run, RunEvent, utcnow
from runplane.store.runs import EventSpec
from tests.acceptance.test_log_stream import assert_contiguous, raw, stream, text_of
from tests.conftest import Api, DemoRepo, _api, make_settings

pytestmark = pytest.mark.postgres

SECRET = "distributed-test-secret-key-0123456789"
#: Short leases so a SIGKILLed worker's run is taken back within seconds.
LEASE_SECONDS = 3.0
TERMINAL = {"pass", "fail", "error", "canceled"}


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


@dataclass
class Cluster:
    api: Api
    pg_url: str
    tmp: Path
    workers: list[Worker] = field(default_factory=list)

    def start_worker(
        self, name: str, concurrency: int = 4, drain: float = 30.0, labels: str = "linux"
    ) -> Worker:
        data = self.tmp / name
        data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "RUNPLANE_DATABASE_URL": self.pg_url,
            "RUNPLANE_SECRET_KEY": SECRET,
            "RUNPLANE_DATA_DIR": str(data),
            "RUNPLANE_LEASE_SECONDS": str(LEASE_SECONDS),
            "RUNPLANE_REAPER_INTERVAL_SECONDS": "1",
            "RUNPLANE_GRACE_PERIOD_SECONDS": "1",
        }
        log_path = self.tmp / f"{name}.log"
        log = log_path.open("wb")
        command = [sys.executable, "-m", "runplane.cli.main", "worker"]
        command += ["--concurrency", str(concurrency), "--drain-timeout", str(drain)]
        command += ["--labels", labels]
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        worker = Worker(name, proc, log_path, log)
        self.workers.append(worker)
        return worker

    async def wait_registered(self, count: int, timeout: float = 30) -> None:
        """Until ``count`` procrastinate workers beat (the processes are taking jobs)."""
        deadline = time.monotonic() + timeout
        while True:
            with psycopg.connect(libpq_url(self.pg_url)) as conn:
                row = conn.execute(
                    "SELECT to_regclass('procrastinate_workers') IS NOT NULL"
                ).fetchone()
                ready = row is not None and row[0]
                alive = (
                    conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
                    if ready
                    else (0,)
                )
            if alive is not None and alive[0] >= count:
                return
            for worker in self.workers:
                assert worker.proc.poll() is None, f"{worker.name} died:\n{worker.output()}"
            assert time.monotonic() < deadline, "workers did not start"
            await asyncio.sleep(0.2)

    def worker_of(self, run: Run) -> Worker:
        owner = parse_worker_id(run.worker_id or "")
        assert owner is not None
        return next(w for w in self.workers if w.proc.pid == owner[1])

    async def run_row(self, run_id: int) -> Run:
        async with unit_of_work(self.api.ctx.reads) as session:
            run = await session.get(Run, run_id)
        assert run is not None
        return run

    async def wait_status(self, run_id: int, statuses: set[str], timeout: float) -> Run:
        deadline = time.monotonic() + timeout
        while True:
            run = await self.run_row(run_id)
            if run.status in statuses:
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run.status}"
            await asyncio.sleep(0.05)

    def marked(self, run_id: int) -> list[Any]:
        return processes_with_marker(self.api.ctx.process_marker_prefix(run_id))


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str) -> AsyncIterator[Cluster]:
    """The API in this process (no workers: it only defers) and two worker processes."""
    settings = make_settings(
        tmp_path / "api",
        database_url=pg_url,
        workers=0,
        secret_key=SECRET,
        lease_seconds=LEASE_SECONDS,
        reaper_interval_seconds=1.0,
    )
    async for api in _api(settings, run_workers=False):
        c = Cluster(api=api, pg_url=pg_url, tmp=tmp_path)
        try:
            c.start_worker("w1")
            c.start_worker("w2")
            await c.wait_registered(2)
            yield c
        finally:
            for worker in c.workers:
                if worker.proc.poll() is None:
                    worker.proc.kill()
                worker.proc.wait(10)
                worker.log.close()


async def _projects(c: Cluster, demo_repo: DemoRepo) -> dict[str, str]:
    await c.api.project(demo_repo, repository="demo/true", test_command="true")
    await c.api.project(demo_repo, repository="demo/sleep", test_command="sleep 60")
    await c.api.project(demo_repo, repository="demo/short", test_command="sleep 2")
    return await c.api.headers()


async def test_200_runs_on_two_workers_each_run_exactly_once(
    cluster: Cluster, demo_repo: DemoRepo
) -> None:
    h = await _projects(cluster, demo_repo)
    sem = asyncio.Semaphore(20)

    async def submit() -> int:
        async with sem:
            run = await cluster.api.submit(h, demo_repo.passing_sha, repository="demo/true")
            return int(run["run_id"])

    ids = await asyncio.gather(*(submit() for _ in range(200)))
    assert len(set(ids)) == 200

    deadline = time.monotonic() + 90
    while True:
        async with unit_of_work(cluster.api.ctx.reads) as session:
            rows = (
                await session.execute(
                    select(Run.status, func.count()).where(Run.id.in_(ids)).group_by(Run.status)
                )
            ).all()
        statuses = {status: count for status, count in rows}
        if statuses.get("passed") == 200:
            break
        assert not set(statuses) - {"queued", "running", "passed"}, statuses
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.3)

    async with unit_of_work(cluster.api.ctx.reads) as session:
        picked = Counter(
            (
                await session.scalars(
                    select(RunEvent.run_id).where(
                        RunEvent.run_id.in_(ids), RunEvent.message.like("Picked up by worker%")
                    )
                )
            ).all()
        )
        owners = (await session.scalars(select(Run.worker_id).where(Run.id.in_(ids)))).all()
    assert all(picked[i] == 1 for i in ids), [i for i in ids if picked[i] != 1]
    pids = Counter(parse_worker_id(o or "") for o in owners)
    worker_pids = {w.proc.pid for w in cluster.workers}
    assert {owner[1] for owner in pids if owner} == worker_pids, pids


async def test_cancel_reaches_the_worker_process(cluster: Cluster, demo_repo: DemoRepo) -> None:
    h = await _projects(cluster, demo_repo)
    run = await cluster.api.submit(h, demo_repo.passing_sha, repository="demo/sleep")
    run_id = int(run["run_id"])
    await cluster.wait_status(run_id, {"running"}, timeout=20)
    deadline = time.monotonic() + 10
    while not cluster.marked(run_id):
        assert time.monotonic() < deadline, "the run's sleep never started"
        await asyncio.sleep(0.05)

    started = time.monotonic()
    response = await cluster.api.client.post(f"/api/v1/runs/{run_id}/cancel", headers=h)
    assert response.status_code == 202, response.text
    done = await cluster.wait_status(run_id, {"canceled", "error", "passed", "failed"}, 5)
    took = time.monotonic() - started
    assert done.status == "canceled", done.status
    # The worker's in-process event (NOTIFY / procrastinate abort), not the status poll.
    assert took < 2.5, f"cancel took {took:.2f} s"
    assert cluster.marked(run_id) == []
    assert all(w.proc.poll() is None for w in cluster.workers)


async def test_logs_a_worker_writes_are_readable_live_through_the_api(
    cluster: Cluster, demo_repo: DemoRepo
) -> None:
    """The worker is another process (another host, for all it knows): logs are rows."""
    h = await _projects(cluster, demo_repo)
    await cluster.api.project(
        demo_repo, repository="demo/talk", test_command="echo hello-from-worker; sleep 3"
    )
    run = await cluster.api.submit(h, demo_repo.passing_sha, repository="demo/talk")
    run_id = int(run["run_id"])
    deadline = time.monotonic() + 20
    while True:
        got = await cluster.api.client.get(f"/api/v1/runs/{run_id}/logs", headers=h)
        # 404 until the worker wrote the first line (the contract's "no log yet").
        assert got.status_code in (200, 404), got.text
        lines = [line["message"] for line in got.json().get("data", [])]
        if "hello-from-worker" in lines:
            break
        assert time.monotonic() < deadline, f"no live log line: {lines}"
        await asyncio.sleep(0.1)
    assert (await cluster.run_row(run_id)).status == "running"
    assert got.json()["pagination"]["next_cursor"] is not None
    # The stream, opened while the worker runs, follows it to the end. (Over ASGI the
    # client sees the body when it is complete; test_log_stream follows one live.)
    events = await stream(cluster.api, run_id, h)
    assert "hello-from-worker" in text_of(events)
    assert_contiguous(events, 0)
    assert text_of(events).encode() == await raw(cluster.api, run_id, h)
    assert events[-1].kind == "end"
    assert events[-1].data["status"] == "passed"


async def test_sigkill_of_a_worker_loses_only_its_run(
    cluster: Cluster, demo_repo: DemoRepo
) -> None:
    h = await _projects(cluster, demo_repo)
    run = await cluster.api.submit(h, demo_repo.passing_sha, repository="demo/sleep")
    run_id = int(run["run_id"])
    row = await cluster.wait_status(run_id, {"running"}, timeout=20)
    deadline = time.monotonic() + 10
    while not cluster.marked(run_id):
        assert time.monotonic() < deadline, "the run's sleep never started"
        await asyncio.sleep(0.05)
    victim = cluster.worker_of(row)
    survivor = next(w for w in cluster.workers if w is not victim)

    killed = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    lost = await cluster.wait_status(run_id, TERMINAL | {"error"}, timeout=LEASE_SECONDS + 6)
    took = time.monotonic() - killed
    assert (lost.status, lost.reason) == ("error", "worker_lost"), survivor.output()
    assert took < LEASE_SECONDS + 4, f"took {took:.1f} s"
    deadline = time.monotonic() + 5
    while cluster.marked(run_id):
        assert time.monotonic() < deadline, "the lost run's processes survived"
        await asyncio.sleep(0.1)

    # The survivor keeps taking runs.
    more = [
        int((await cluster.api.submit(h, demo_repo.passing_sha, repository="demo/true"))["run_id"])
        for _ in range(3)
    ]
    for other in more:
        done = await cluster.wait_status(other, {"passed", "failed", "error"}, timeout=30)
        assert done.status == "passed"
        assert cluster.worker_of(done) is survivor
    assert survivor.proc.poll() is None


async def test_sigterm_drains_the_running_run_and_exits_0(
    cluster: Cluster, demo_repo: DemoRepo
) -> None:
    h = await _projects(cluster, demo_repo)
    run = await cluster.api.submit(h, demo_repo.passing_sha, repository="demo/short")
    run_id = int(run["run_id"])
    row = await cluster.wait_status(run_id, {"running"}, timeout=20)
    draining = cluster.worker_of(row)
    draining.proc.send_signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    code = await loop.run_in_executor(None, draining.proc.wait, 30)
    assert code == 0, draining.output()
    done = await cluster.run_row(run_id)
    assert done.status == "passed", (done.status, done.reason, draining.output())
    assert cluster.marked(run_id) == []


async def test_labels_choose_the_queue_and_a_drain_timeout_stops_the_run(
    cluster: Cluster, demo_repo: DemoRepo
) -> None:
    h = await _projects(cluster, demo_repo)
    await cluster.api.project(
        demo_repo, repository="demo/windows", test_command="sleep 60", platform="windows"
    )
    windows = cluster.start_worker("w3", concurrency=1, drain=1.0, labels="windows")
    await cluster.wait_registered(3)
    run = await cluster.api.submit(
        h, demo_repo.passing_sha, repository="demo/windows", platform="windows"
    )
    run_id = int(run["run_id"])
    row = await cluster.wait_status(run_id, {"running"}, timeout=20)
    # Only the worker labelled windows takes runs of the runs-windows queue.
    assert cluster.worker_of(row) is windows
    deadline = time.monotonic() + 10
    while not cluster.marked(run_id):
        assert time.monotonic() < deadline, "the run's sleep never started"
        await asyncio.sleep(0.05)

    windows.proc.send_signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    code = await loop.run_in_executor(None, windows.proc.wait, 30)
    assert code == 0, windows.output()
    done = await cluster.run_row(run_id)
    assert (done.status, done.reason) == ("error", "worker_shutdown"), windows.output()
    assert cluster.marked(run_id) == []


async def test_a_lost_defer_is_recovered_by_a_worker_sweeper(
    cluster: Cluster, demo_repo: DemoRepo
) -> None:
    """A run committed but never deferred (its API process died in between) still runs."""
    await _projects(cluster, demo_repo)
    async with unit_of_work(cluster.api.ctx.sessions) as session:
        project_id = await session.scalar(
            select(Project.id).where(Project.repository == "demo/true")
        )
        run = Run(
            project_id=project_id,
            repository="demo/true",
            commit_sha=demo_repo.passing_sha,
            platform="linux",
            queued_at=utcnow() - timedelta(seconds=30),
        )
        # Straight into the store: no signal, so no procrastinate job.
        await store.insert_run(session, run, EventSpec("Run queued."))
    done = await cluster.wait_status(run.id, {"passed", "failed", "error"}, timeout=20)
    assert done.status == "passed"


async def test_a_job_carries_the_runs_queue_priority_and_queueing_lock(
    cluster: Cluster, demo_repo: DemoRepo
) -> None:
    h = await _projects(cluster, demo_repo)
    run = await cluster.api.submit(h, demo_repo.passing_sha, repository="demo/true", priority=7)
    run_id = int(run["run_id"])
    await cluster.wait_status(run_id, {"passed"}, timeout=20)
    with psycopg.connect(libpq_url(cluster.pg_url)) as conn:
        jobs = conn.execute(
            "SELECT queue_name, priority, args->>'run_id' FROM procrastinate_jobs"
            " WHERE queueing_lock = %s",
            (f"run-{run_id}",),
        ).fetchall()
    assert jobs == [("runs-linux", 7, str(run_id))]


async def test_migrations_apply_once_when_processes_start_together(pg_url: str) -> None:
    await asyncio.gather(*(asyncio.to_thread(migrate, pg_url) for _ in range(4)))
    with psycopg.connect(libpq_url(pg_url)) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
    assert row == (0,)


def test_worker_refuses_sqlite(tmp_path: Path) -> None:
    env = {**os.environ, "RUNPLANE_DATABASE_URL": "", "RUNPLANE_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "runplane.cli.main", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "needs RUNPLANE_DATABASE_URL=postgresql" in done.stderr
