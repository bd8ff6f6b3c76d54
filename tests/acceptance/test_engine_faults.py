"""Faults around the engine: lost workers, crashed servers, runaway output."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from runplane.domain.status import RunStatus
from runplane.runtime import Runtime
from runplane.store import logs as log_store
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import Run, utcnow
from runplane.store.runs import EventSpec
from tests.acceptance.test_runs_api import TERMINAL, _alive, _head, _repo
from tests.conftest import Api, make_settings


async def _claimed_run(rt: Runtime, worker: str, lease_seconds: float) -> int:
    async with unit_of_work(rt.ctx.sessions) as session:
        run = Run(repository="o/r", commit_sha="a" * 40, platform="linux")
        await store.insert_run(session, run, EventSpec("queued"))
        await store.transition(
            session,
            run.id,
            RunStatus.RUNNING,
            EventSpec("claimed"),
            worker_id=worker,
            lease_expires_at=utcnow() + timedelta(seconds=lease_seconds),
        )
        return run.id


async def test_startup_takes_back_runs_of_a_dead_local_worker(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "d", workers=0)
    rt = await Runtime.open(settings, run_workers=False)
    dead = await _claimed_run(rt, f"{socket.gethostname()}:999999:0", lease_seconds=3600)
    other_host = await _claimed_run(rt, "elsewhere:1:0", lease_seconds=3600)
    mine = await _claimed_run(rt, f"{socket.gethostname()}:{os.getpid()}:0", 3600)
    await rt.close()

    rt = await Runtime.open(settings, run_workers=True)  # start-up reaps
    try:
        async with unit_of_work(rt.ctx.sessions) as session:
            assert await store.get_status(session, dead) is RunStatus.ERROR
            assert (await store.get_run(session, dead)).reason == "worker_lost"  # type: ignore[union-attr]
            # A run claimed under our own pid belongs to an earlier process.
            assert await store.get_status(session, mine) is RunStatus.ERROR
            # Another host's worker may be alive: only its lease can tell.
            assert await store.get_status(session, other_host) is RunStatus.RUNNING
    finally:
        await rt.close()


async def test_reaper_takes_back_expired_leases(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "d", workers=0, reaper_interval_seconds=0.2)
    rt = await Runtime.open(settings, run_workers=True)
    try:
        run_id = await _claimed_run(rt, "elsewhere:1:0", lease_seconds=0.3)
        canceling = await _claimed_run(rt, "elsewhere:2:0", lease_seconds=0.3)
        async with unit_of_work(rt.ctx.sessions) as session:
            await store.transition(session, canceling, RunStatus.CANCELING, EventSpec("c"))
        for _ in range(50):
            async with unit_of_work(rt.ctx.sessions) as session:
                a = await store.get_status(session, run_id)
                b = await store.get_status(session, canceling)
            if a is RunStatus.ERROR and b is RunStatus.CANCELED:
                break
            await asyncio.sleep(0.1)
        assert (a, b) == (RunStatus.ERROR, RunStatus.CANCELED)
    finally:
        await rt.close()


async def test_output_is_capped_and_the_truncation_noted(api: Api, tmp_path: Path) -> None:
    api.ctx.settings.max_log_bytes = 20_000
    repo = _repo(tmp_path, "for i in $(seq 1 5000); do echo line-$i-xxxxxxxxxx; done")
    await api.project(repo, repository="o/noisy", test_command="sh t.sh")
    h = await api.headers()
    run = await api.submit(h, _head(repo), repository="o/noisy")
    done = await api.wait_for(h, run["run_id"], TERMINAL)
    assert done["status"] == "pass"
    async with unit_of_work(api.ctx.sessions) as session:
        lines = await log_store.read_lines(session, run["run_id"], after_seq=0, limit=100_000)
        row = await store.get_run(session, run["run_id"])
    assert row is not None and row.log_truncated and row.log_bytes == 20_000
    assert any("output truncated" in line.message for line in lines)
    kept = [x.message for x in lines if x.source == "test_runner"]
    # The last kept line was cut mid-line, so it has no newline of its own.
    assert sum(len(m) + 1 for m in kept) - 1 == 20_000


async def test_shutdown_stops_running_runs_and_records_why(tmp_path: Path) -> None:
    from tests.conftest import _api

    pid_file = tmp_path / "pid"
    repo = _repo(tmp_path, f"echo $$ > {pid_file}; sleep 300")
    settings = make_settings(tmp_path / "d")
    run_id = 0
    async for api in _api(settings, run_workers=True):
        await api.project(repo, repository="o/long", test_command="sh t.sh")
        h = await api.headers()
        run_id = (await api.submit(h, _head(repo), repository="o/long"))["run_id"]
        await api.wait_for(h, run_id, {"running"})
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
    # The lifespan has ended: the server is down.
    assert not _alive(int(pid_file.read_text()))
    rt = await Runtime.open(settings, run_workers=False)
    try:
        async with unit_of_work(rt.ctx.sessions) as session:
            run = await store.get_run(session, run_id)
        assert run is not None
        assert (run.status, run.reason) == ("error", "worker_shutdown")
    finally:
        await rt.close()


async def _running_sleeper(
    tmp_path: Path, api: Api, repository: str
) -> tuple[dict[str, str], int, int]:
    """A run whose test sleeps, once its test process runs: (headers, run id, its pid)."""
    pid_file = tmp_path / "pid"
    repo = _repo(tmp_path, f"echo $$ > {pid_file}; sleep 300")
    await api.project(repo, repository=repository, test_command="sh t.sh")
    h = await api.headers()
    run_id = (await api.submit(h, _head(repo), repository=repository))["run_id"]
    await api.wait_for(h, run_id, {"running"})
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.05)
    return h, run_id, int(pid_file.read_text())


async def test_a_cancel_written_by_another_process_is_seen_by_the_status_poll(
    tmp_path: Path, api: Api
) -> None:
    h, run_id, pid = await _running_sleeper(tmp_path, api, "o/poll")
    # No signal reaches the worker: only its process's status poll can notice this.
    async with unit_of_work(api.ctx.sessions) as session:
        assert await store.transition(
            session, run_id, RunStatus.CANCELING, EventSpec("canceled elsewhere")
        )
    body = await api.wait_for(h, run_id, {"canceled"}, timeout=10)
    assert body["status"] == "canceled"
    assert not _alive(pid)


async def test_a_worker_that_lost_its_lease_stops_and_writes_nothing(
    tmp_path: Path, api: Api
) -> None:
    _, run_id, pid = await _running_sleeper(tmp_path, api, "o/lease")
    # Another worker owns the run now (as after a reap and a new claim): the next
    # lease renewal finds it gone.
    async with unit_of_work(api.ctx.sessions) as session:
        await session.execute(update(Run).where(Run.id == run_id).values(worker_id="elsewhere:1:0"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + api.ctx.settings.lease_seconds
    while _alive(pid):
        assert loop.time() < deadline, "the process of a lost run still runs"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    async with unit_of_work(api.ctx.sessions) as session:
        run = await store.get_run(session, run_id)
    # The new owner decides; the old worker wrote nothing.
    assert run is not None
    assert (run.status, run.worker_id) == ("running", "elsewhere:1:0")
