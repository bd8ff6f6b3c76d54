"""Takes runs back from workers that died: expired leases, and dead local processes.

A ``running`` run whose worker is gone becomes ``error`` (reason ``worker_lost``);
a ``canceling`` one becomes ``canceled``, since a cancel was asked for anyway. The
worker, if it was only slow, then loses its final compare-and-set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import psutil

from runplane.dispatch.workers import parse_worker_id
from runplane.domain.status import RunStatus
from runplane.execution.process_tree import kill_tree
from runplane.execution.workspace import remove_stale
from runplane.services.context import Context
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import Run, utcnow
from runplane.store.runs import EventSpec

log = logging.getLogger(__name__)


async def _take_back(ctx: Context, run: Run, why: str, *, lease_check: bool) -> bool:
    status = RunStatus(run.status)
    target = RunStatus.CANCELED if status is RunStatus.CANCELING else RunStatus.ERROR
    async with unit_of_work(ctx.sessions) as session:
        done = await store.transition(
            session,
            run.id,
            target,
            EventSpec(why, "reaper"),
            expected={status},
            owner=run.worker_id,
            completed_at=utcnow(),
            lease_expired_at=utcnow() if lease_check else None,
            reason="worker_lost" if target is RunStatus.ERROR else "canceled",
            lease_expires_at=None,
        )
    if done is not None:
        log.warning("run %s: %s -> %s (%s)", run.id, status.value, target.value, why)
        # A crashed worker may have left its processes and workspace behind.
        await kill_tree(ctx.process_marker_prefix(run.id), None, 0.0)
        await asyncio.to_thread(remove_stale, ctx.settings.workspaces_dir, run.id)
    return done is not None


async def reap_expired_leases(ctx: Context) -> list[int]:
    """Runs whose worker stopped renewing its lease."""
    async with unit_of_work(ctx.reads) as session:
        expired = await store.expired_leases(session, utcnow())
    return [
        run.id
        for run in expired
        if await _take_back(
            ctx, run, f"Worker {run.worker_id} lost: its lease expired.", lease_check=True
        )
    ]


async def reap_dead_local_workers(ctx: Context) -> list[int]:
    """Runs held by a worker process of this host that no longer exists.

    Called at start-up, before this process's workers start: a run claimed under
    our own pid then belongs to an earlier process that reused it.
    """
    host, me = socket.gethostname(), os.getpid()
    async with unit_of_work(ctx.reads) as session:
        active = await store.active_runs(session)
    reaped = []
    for run in active:
        owner = parse_worker_id(run.worker_id or "")
        if owner is None or owner[0] != host:
            continue
        if owner[1] == me or not psutil.pid_exists(owner[1]):
            if await _take_back(
                ctx, run, f"Worker {run.worker_id} is gone (server restart).", lease_check=False
            ):
                reaped.append(run.id)
    return reaped


async def reaper_loop(ctx: Context, stop: asyncio.Event) -> None:
    """Every ``reaper_interval_seconds`` until ``stop`` is set (never cancelled mid-write)."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ctx.settings.reaper_interval_seconds)
        if stop.is_set():
            return
        try:
            await reap_expired_leases(ctx)
        except Exception:
            log.exception("reaper pass failed")
