"""The embedded dispatcher: a pool of asyncio workers in the server process.

Workers take queued runs from the database (priority, then age). A submit wakes
them at once; polling covers runs queued by another process. A cancel reaches
the worker through an in-process event, and polling in ``execute_run`` covers a
cancel made elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from runplane.dispatch.workers import worker_id
from runplane.execution.executor import execute_run
from runplane.execution.liveness import RunLiveness
from runplane.services.context import Context
from runplane.store import runs as store
from runplane.store.database import unit_of_work

log = logging.getLogger(__name__)


class LocalDispatcher:
    """Runs up to ``concurrency`` runs at once in this process; also the ``RunSignals``."""

    def __init__(self, ctx: Context, concurrency: int) -> None:
        self.ctx = ctx
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._cancels: dict[int, asyncio.Event] = {}
        self._claiming: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        # Shutdown is cooperative: a task cancelled inside a transaction could leave
        # SQLite's write lock held, so workers are asked to stop and then awaited.
        self._shutdown = asyncio.Event()
        self._liveness = RunLiveness(ctx)

    # RunSignals
    def run_queued(self, run_id: int) -> None:
        self._wake.set()

    def cancel_requested(self, run_id: int) -> None:
        event = self._cancels.get(run_id)
        if event is not None:
            event.set()

    async def start(self) -> None:
        self._liveness.start()
        self._tasks = [
            asyncio.create_task(self._work(slot), name=f"runplane-worker-{slot}")
            for slot in range(self.concurrency)
        ]

    async def stop(self, timeout_seconds: float = 30.0) -> None:
        """Stop taking runs, stop running ones (they end ``worker_shutdown``), wait for all."""
        self._shutdown.set()
        self._wake.set()
        done, pending = (
            await asyncio.wait(self._tasks, timeout=timeout_seconds)
            if self._tasks
            else (set(), set())
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*done, *pending, return_exceptions=True)
        self._tasks = []
        await self._liveness.stop()

    async def _candidate(self) -> int | None:
        async with unit_of_work(self.ctx.reads) as session:
            ids = await store.next_queued_ids(session, self.concurrency * 2 + 1)
        for run_id in ids:
            if run_id not in self._claiming:
                self._claiming.add(run_id)
                return run_id
        return None

    async def _work(self, slot: int) -> None:
        me = worker_id(slot)
        while not self._shutdown.is_set():
            self._wake.clear()
            try:
                run_id = await self._candidate()
            except Exception:
                log.exception("worker %s: could not look for queued runs", me)
                run_id = None
            if run_id is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), self.ctx.settings.dispatch_poll_seconds
                    )
                continue
            cancel = asyncio.Event()
            self._cancels[run_id] = cancel
            try:
                await execute_run(
                    self.ctx,
                    run_id,
                    worker_id=me,
                    liveness=self._liveness,
                    cancel=cancel,
                    shutdown=self._shutdown,
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker %s: run %s failed", me, run_id)
            finally:
                self._cancels.pop(run_id, None)
                self._claiming.discard(run_id)
            # Another run may be waiting: look again without sleeping.
            self._wake.set()
