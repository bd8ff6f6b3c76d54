"""One heartbeat per worker process for all the runs it executes.

Every ``lease_seconds / 3`` one UPDATE renews the leases of all runs held here, and
every ``cancel_poll_seconds`` one SELECT reads their statuses (a cancel made in
another process, or a reaper that took a run away). Per-run loops did the same with
two queries per running run: at 50 runs per worker they starved the connection pool,
and pools sized for them exceeded PostgreSQL's connection limit with two workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from runplane.domain.status import RunStatus
from runplane.services.context import Context
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import utcnow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Held:
    worker_id: str
    #: Set when the run is no longer RUNNING (canceled elsewhere, taken away).
    stop: asyncio.Event
    #: Called once when the lease is lost (reaped, or not renewable in time).
    lost: Callable[[], None]
    #: Loop time until which the last renewal keeps the lease valid.
    valid_until: float


class RunLiveness:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._held: dict[int, _Held] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="runplane-run-liveness")

    async def stop(self) -> None:
        # Stopped by an event, never by task.cancel(): a cancel inside a transaction can
        # leave SQLite's write lock held.
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @contextlib.contextmanager
    def hold(
        self, run_id: int, worker_id: str, stop: asyncio.Event, lost: Callable[[], None]
    ) -> Iterator[None]:
        """Keep ``run_id``'s lease (claimed just now) alive while the block runs."""
        valid_until = asyncio.get_running_loop().time() + self.ctx.settings.lease_seconds
        self._held[run_id] = _Held(worker_id, stop, lost, valid_until)
        try:
            yield
        finally:
            self._held.pop(run_id, None)

    async def _loop(self) -> None:
        settings = self.ctx.settings
        loop = asyncio.get_running_loop()
        renew_every = settings.lease_seconds / 3
        tick = min(settings.cancel_poll_seconds, renew_every)
        next_renewal = loop.time() + renew_every
        while not await event_within(self._stopping, tick):
            if not self._held:
                continue
            if loop.time() >= next_renewal:
                next_renewal = loop.time() + renew_every
                await self._renew()
            await self._check_statuses()

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        held = dict(self._held)
        lease = self.ctx.settings.lease_seconds
        try:
            async with unit_of_work(self.ctx.sessions) as session:
                kept = await store.renew_leases(
                    session,
                    {run_id: h.worker_id for run_id, h in held.items()},
                    utcnow() + timedelta(seconds=lease),
                )
        except Exception:
            log.exception("lease renewal of %d run(s) failed; retrying", len(held))
            now = loop.time()
            self._drop({run_id for run_id, h in held.items() if now >= h.valid_until})
            return
        now = loop.time()
        for run_id in kept:
            held[run_id].valid_until = now + lease
        self._drop(set(held) - kept)

    def _drop(self, lost: set[int]) -> None:
        for run_id in lost:
            h = self._held.get(run_id)
            if h is not None:
                # The reaper (or a restart) decided this run's fate: stop working on it.
                log.warning("run %s: lease lost by %s", run_id, h.worker_id)
                h.lost()

    async def _check_statuses(self) -> None:
        watched = {run_id: h for run_id, h in self._held.items() if not h.stop.is_set()}
        if not watched:
            return
        try:
            async with unit_of_work(self.ctx.reads) as session:
                statuses = await store.get_statuses(session, list(watched))
        except Exception:
            log.exception("status check of %d run(s) failed; retrying", len(watched))
            return
        for run_id, h in watched.items():
            if statuses.get(run_id) is not RunStatus.RUNNING:
                h.stop.set()


async def event_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()
