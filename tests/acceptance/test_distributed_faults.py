"""Distributed mode under faults: a cancel storm, dropped PostgreSQL connections, priority.

Reuses the ``runplane worker`` subprocess helpers of ``test_distributed``; each test
gets its own secret key (so its own instance tag) and its own worker line-up.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import psutil
import psycopg
import pytest
from sqlalchemy import func, select

import tests.acceptance.test_distributed as td
from runplane.dispatch.distributed import CANCEL_CHANNEL, libpq_url
from runplane.dispatch.workers import parse_worker_id
from runplane.execution.process_tree import processes_with_marker
from runplane.store.database import unit_of_work
from runplane.store.models import Run, RunEvent
from tests.acceptance.test_distributed import TERMINAL, Cluster
from tests.conftest import Api, DemoRepo, _api, make_settings

pytestmark = pytest.mark.postgres

ACTIVE = {"queued", "running", "canceling"}


@asynccontextmanager
async def cluster_of(
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    workers: Sequence[tuple[str, int]],
    *,
    lease_seconds: float | None = None,
) -> AsyncIterator[Cluster]:
    """The API in this process (defers only) and ``workers`` (name, concurrency)."""
    # A secret of its own: processes_with_marker(instance_tag) then sees this test only.
    monkeypatch.setattr(td, "SECRET", f"faults-{uuid.uuid4().hex}")
    if lease_seconds is not None:
        monkeypatch.setattr(td, "LEASE_SECONDS", lease_seconds)
    settings = make_settings(
        tmp_path / "api",
        database_url=pg_url,
        workers=0,
        secret_key=td.SECRET,
        lease_seconds=td.LEASE_SECONDS,
        reaper_interval_seconds=1.0,
    )
    apis = cast(AsyncGenerator[Api, None], _api(settings, run_workers=False))
    api = await apis.__anext__()
    c = Cluster(api=api, pg_url=pg_url, tmp=tmp_path)
    try:
        for name, concurrency in workers:
            c.start_worker(name, concurrency=concurrency, drain=1.0)
        await c.wait_registered(len(workers))
        yield c
    finally:
        try:
            for worker in c.workers:
                if worker.proc.poll() is None:
                    worker.proc.send_signal(signal.SIGTERM)
            for worker in c.workers:
                try:
                    worker.proc.wait(20)
                except Exception:
                    worker.proc.kill()
                    worker.proc.wait(10)
                worker.log.close()
            # Whatever a failed test left behind must not outlive it.
            for proc in processes_with_marker(api.ctx.instance_tag):
                try:
                    proc.kill()
                except psutil.Error:
                    pass
        finally:
            await apis.aclose()


async def _submit(
    c: Cluster, h: dict[str, str], repo: DemoRepo, repository: str, **extra: Any
) -> int:
    return int((await c.api.submit(h, repo.passing_sha, repository=repository, **extra))["run_id"])


async def _counts(c: Cluster, ids: Sequence[int]) -> dict[str, int]:
    async with unit_of_work(c.api.ctx.reads) as session:
        rows = (
            await session.execute(
                select(Run.status, func.count()).where(Run.id.in_(ids)).group_by(Run.status)
            )
        ).all()
    return {status: count for status, count in rows}


async def _wait_counts(
    c: Cluster, ids: Sequence[int], want: str, timeout: float, allowed: set[str]
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = await _counts(c, ids)
        if counts.get(want) == len(ids):
            return counts
        assert not set(counts) - allowed - {want}, counts
        assert time.monotonic() < deadline, counts
        await asyncio.sleep(0.1)


def _alive(proc: psutil.Process) -> bool:
    try:
        # is_running() compares create_time too: a recycled pid is not this process.
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _sleeps_under(pids: Sequence[int]) -> list[psutil.Process]:
    """The ``sleep 60`` processes descending from the given worker processes."""
    found = []
    for pid in pids:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            continue
        for child in children:
            try:
                if child.cmdline()[:2] == ["sleep", "60"]:
                    found.append(child)
            except psutil.Error:
                continue
    return found


async def test_cancel_storm_of_100_running_runs_on_two_workers(
    tmp_path: Path, pg_url: str, demo_repo: DemoRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 100
    # 100 runs starting at once on 2 cores delay lease renewals by seconds: the 3 s
    # lease of test_distributed would lose some of them to the reaper (worker_lost).
    workers = [("w1", 50), ("w2", 50)]
    async with cluster_of(tmp_path, pg_url, monkeypatch, workers, lease_seconds=15.0) as c:
        await c.api.project(demo_repo, repository="demo/sleep", test_command="sleep 60")
        h = await c.api.headers()
        sem = asyncio.Semaphore(20)

        async def submit() -> int:
            async with sem:
                run = await c.api.submit(h, demo_repo.passing_sha, repository="demo/sleep")
                return int(run["run_id"])

        t0 = time.monotonic()
        ids = await asyncio.gather(*(submit() for _ in range(n)))
        await _wait_counts(c, ids, "running", timeout=60, allowed={"queued"})
        # Every run's `sleep 60` is up (the tree the cancel has to kill).
        deadline = time.monotonic() + 30
        tag = c.api.ctx.instance_tag
        while True:
            sleeps = _sleeps_under([w.proc.pid for w in c.workers])
            if len(sleeps) >= n:
                break
            assert time.monotonic() < deadline, f"{len(sleeps)} of {n} sleeps started"
            await asyncio.sleep(0.2)
        all_running = time.monotonic() - t0
        assert len(processes_with_marker(tag)) >= n
        async with unit_of_work(c.api.ctx.reads) as session:
            owners = set(
                (await session.scalars(select(Run.worker_id).where(Run.id.in_(ids)))).all()
            )
        pids = {owner[1] for owner in map(parse_worker_id, (o or "" for o in owners)) if owner}
        # Both workers took a share of the storm.
        assert pids == {w.proc.pid for w in c.workers}, owners

        async def cancel(run_id: int) -> int:
            response = await c.api.client.post(f"/api/v1/runs/{run_id}/cancel", headers=h)
            return response.status_code

        started = time.monotonic()
        codes = await asyncio.gather(*(cancel(i) for i in ids))
        accepted = time.monotonic() - started
        assert set(codes) == {202}, codes
        final = await _wait_counts(c, ids, "canceled", timeout=60, allowed={"running", "canceling"})
        storm = time.monotonic() - started
        async with unit_of_work(c.api.ctx.reads) as session:
            marks = dict(
                (
                    await session.execute(
                        select(RunEvent.run_id, func.min(RunEvent.created_at))
                        .where(RunEvent.run_id.in_(ids), RunEvent.status == "canceling")
                        .group_by(RunEvent.run_id)
                    )
                ).all()
            )
            rows = await session.execute(select(Run.id, Run.completed_at).where(Run.id.in_(ids)))
            ends = {run_id: completed for run_id, completed in rows.all()}
        each = sorted((e - marks[i]).total_seconds() for i, e in ends.items() if e and i in marks)
        span = (max(e for e in ends.values() if e) - min(marks.values())).total_seconds()
        print(
            f"\ncancel storm: {n} runs running after {all_running:.1f} s; the {n} cancel"
            f" requests answered in {accepted:.2f} s; all canceled {storm:.2f} s after the"
            f" first request (DB: first canceling -> last canceled {span:.2f} s; canceling"
            f" -> canceled per run p50 {each[len(each) // 2]:.2f} s, max {each[-1]:.2f} s)"
        )

        assert final == {"canceled": n}
        deadline = time.monotonic() + 10
        while processes_with_marker(tag) or any(_alive(p) for p in sleeps):
            assert time.monotonic() < deadline, (
                processes_with_marker(tag),
                [p for p in sleeps if _alive(p)],
            )
            await asyncio.sleep(0.1)
        async with unit_of_work(c.api.ctx.reads) as session:
            stuck = await session.scalar(
                select(func.count()).select_from(Run).where(Run.status.in_(ACTIVE))
            )
        assert stuck == 0
        assert all(w.proc.poll() is None for w in c.workers)


def _terminate_backends(pg_url: str) -> int:
    """Ends every connection of the test database but this admin one."""
    conninfo = libpq_url(pg_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (row[0],),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def _cancel_listeners(pg_url: str) -> int:
    """Connections whose last statement was the cancel listener's LISTEN."""
    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query = %s",
            (f"LISTEN {CANCEL_CHANNEL}",),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_workers_survive_the_database_dropping_every_connection(
    tmp_path: Path, pg_url: str, demo_repo: DemoRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the status poll, a cancel reaches a worker through its LISTEN (or
    # procrastinate's abort), i.e. through connections made after the drops.
    monkeypatch.setenv("RUNPLANE_CANCEL_POLL_SECONDS", "60")
    async with cluster_of(tmp_path, pg_url, monkeypatch, [("w1", 1), ("w2", 1)]) as c:
        await c.api.project(demo_repo, repository="demo/four", test_command="sleep 4")
        await c.api.project(demo_repo, repository="demo/true", test_command="true")
        await c.api.project(demo_repo, repository="demo/sleep", test_command="sleep 60")
        h = await c.api.headers()
        deadline = time.monotonic() + 10
        while _cancel_listeners(pg_url) < 2:
            assert time.monotonic() < deadline, "the cancel listeners never started"
            await asyncio.sleep(0.1)

        # Two runs running (one per worker), one queued behind them.
        ids = [await _submit(c, h, demo_repo, "demo/four") for _ in range(3)]
        await _wait_counts(c, ids[:1], "running", timeout=20, allowed={"queued"})
        deadline = time.monotonic() + 20
        while (await _counts(c, ids)).get("running", 0) < 2:
            assert time.monotonic() < deadline, await _counts(c, ids)
            await asyncio.sleep(0.05)
        assert (await _counts(c, ids)).get("queued") == 1

        await asyncio.sleep(1.0)
        first = _terminate_backends(pg_url)
        await asyncio.sleep(1.5)
        second = _terminate_backends(pg_url)
        assert first > 0 and second > 0, (first, second)

        deadline = time.monotonic() + 60
        while True:
            counts = await _counts(c, ids)
            if sum(counts.get(s, 0) for s in TERMINAL | {"passed", "failed"}) == len(ids):
                break
            assert time.monotonic() < deadline, (counts, [w.output() for w in c.workers])
            await asyncio.sleep(0.2)
        rows = [await c.run_row(i) for i in ids]
        outcome = [(r.status, r.reason) for r in rows]
        # A drop that hits a run's own unretried query (e.g. loading its suite) ends it
        # error/internal_error; it must end either way, never stay running or queued.
        assert all(r.status in {"passed", "error"} for r in rows), outcome
        print(f"\nafter two drops of every connection: {outcome}")

        # New work after the drops: executed ...
        after = await _submit(c, h, demo_repo, "demo/true")
        done = await c.wait_status(after, TERMINAL | {"passed", "failed"}, timeout=30)
        assert done.status == "passed", (done.status, done.reason)

        # ... and a cancel still reaches the worker: its listener reconnected.
        deadline = time.monotonic() + 10
        while _cancel_listeners(pg_url) < 2:
            assert time.monotonic() < deadline, "the cancel listeners did not reconnect"
            await asyncio.sleep(0.1)
        run_id = await _submit(c, h, demo_repo, "demo/sleep")
        await c.wait_status(run_id, {"running"}, timeout=20)
        deadline = time.monotonic() + 10
        while not c.marked(run_id):
            assert time.monotonic() < deadline, "the run's sleep never started"
            await asyncio.sleep(0.05)
        started = time.monotonic()
        response = await c.api.client.post(f"/api/v1/runs/{run_id}/cancel", headers=h)
        assert response.status_code == 202, response.text
        canceled = await c.wait_status(run_id, TERMINAL | {"passed", "failed"}, timeout=10)
        took = time.monotonic() - started
        assert canceled.status == "canceled", (canceled.status, canceled.reason)
        assert took < 2.5, f"cancel took {took:.2f} s"
        assert c.marked(run_id) == []
        assert all(w.proc.poll() is None for w in c.workers), [w.output() for w in c.workers]


async def test_workers_ride_out_a_3_second_database_outage(
    tmp_path: Path, pg_url: str, demo_repo: DemoRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No connection at all for 3 s (the database refuses them), the server untouched."""
    workers = [("w1", 1), ("w2", 1)]
    async with cluster_of(tmp_path, pg_url, monkeypatch, workers, lease_seconds=15.0) as c:
        await c.api.project(demo_repo, repository="demo/four", test_command="sleep 4")
        h = await c.api.headers()
        ids = [await _submit(c, h, demo_repo, "demo/four") for _ in range(3)]
        deadline = time.monotonic() + 20
        while (await _counts(c, ids)).get("running", 0) < 2:
            assert time.monotonic() < deadline, await _counts(c, ids)
            await asyncio.sleep(0.05)
        with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
            row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        name = row[0]
        admin = pg_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            try:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
                await asyncio.sleep(3.0)
            finally:
                conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        deadline = time.monotonic() + 40
        while (counts := await _counts(c, ids)).keys() - {"passed", "error"}:
            assert time.monotonic() < deadline, counts
            await asyncio.sleep(0.2)
        rows = [await c.run_row(i) for i in ids]
        print(f"\nafter a 3 s outage: {[(r.status, r.reason) for r in rows]}")
        after = await _submit(c, h, demo_repo, "demo/four")
        done = await c.wait_status(after, TERMINAL | {"passed", "failed"}, timeout=30)
        assert done.status == "passed", (done.status, done.reason)
        assert all(w.proc.poll() is None for w in c.workers), [w.output() for w in c.workers]


async def test_a_higher_priority_run_starts_first_among_the_waiting(
    tmp_path: Path, pg_url: str, demo_repo: DemoRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with cluster_of(tmp_path, pg_url, monkeypatch, [("w1", 1)]) as c:
        await c.api.project(demo_repo, repository="demo/short", test_command="sleep 2")
        await c.api.project(demo_repo, repository="demo/true", test_command="true")
        h = await c.api.headers()
        busy = await _submit(c, h, demo_repo, "demo/short")
        await c.wait_status(busy, {"running"}, timeout=20)
        low = [await _submit(c, h, demo_repo, "demo/true") for _ in range(5)]
        high_id = await _submit(c, h, demo_repo, "demo/true", priority=10)
        assert (await c.run_row(busy)).status == "running", "queued too slowly for the test"
        ids = [busy, *low, high_id]
        await _wait_counts(c, ids, "passed", timeout=60, allowed={"queued", "running"})
        rows = {i: await c.run_row(i) for i in ids}
        order = sorted(ids[1:], key=lambda i: (rows[i].started_at, i))
        assert order[0] == high_id, [(i, rows[i].priority, rows[i].started_at) for i in order]
        # The rest keep their submission order.
        assert order[1:] == low, order
