"""The distributed dispatcher: procrastinate delivers run ids to workers on any host.

PostgreSQL stays the truth. A procrastinate job carries nothing but a run id, and
``execute_run`` claims the run with a compare-and-set, so a duplicate delivery is a
no-op and a lost one is repaired by re-deferring (the sweeper below):

* ``run_queued`` defers a job with the queueing lock ``run-<id>`` (at most one job
  per run waits in the queue), on the queue of the run's platform (``runs-linux``),
  with the run's priority as the job's priority.
* ``cancel_requested`` sends ``NOTIFY runplane_cancel, '<id>'`` and asks procrastinate
  to abort the run's job; a worker LISTENs on that channel and sets the cancel event
  of the run it executes. ``execute_run``'s status poll is the fallback.
* The sweeper re-defers queued runs that have no live job: a defer lost because the
  API process died between commit and defer, a run offered while its project was at
  its parallel limit, or a run that waited for an earlier run of its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from procrastinate import App, JobContext, PsycopgConnector
from procrastinate.app import WorkerOptions
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.job_context import AbortReason
from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    cast,
    column,
    exists,
    func,
    literal,
    or_,
    select,
    table,
)
from sqlalchemy.engine import make_url

from runplane.dispatch.workers import worker_id
from runplane.domain.status import RunStatus
from runplane.execution.executor import execute_run
from runplane.execution.liveness import RunLiveness
from runplane.services.context import Context
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import Run, utcnow

# The claim condition of the embedded dispatcher, so a run of a sequential batch is
# executed only after the earlier runs of its batch (execute_run does not check it).
from runplane.store.runs import waits_for_batch_sibling

log = logging.getLogger(__name__)

TASK_NAME = "runplane.execute_run"
CANCEL_CHANNEL = "runplane_cancel"
#: Key of the dispatcher in the jobs' ``additional_context``.
HOST_KEY = "runplane_dispatcher"
#: A queued run without a job for this long lost its defer (its API process died).
LOST_DEFER_SECONDS = 5.0
#: How often a worker process looks for queued runs that have no job.
SWEEP_INTERVAL_SECONDS = 1.0
#: Runs re-deferred per sweep at most (the next sweep takes the rest).
SWEEP_BATCH = 200
#: A ``doing`` job whose procrastinate worker has not beaten for this long is dead
#: (procrastinate's own ``stalled_worker_timeout`` default).
STALLED_WORKER_SECONDS = 30.0
#: procrastinate polls this often besides LISTEN/NOTIFY for abort requests...
POLL_SECONDS = 1.0
#: ... and for new jobs: a slot freed while no NOTIFY is due waits up to this long, which
#: measured as most of a trivial run's cost at 1 s (bench/distributed.py).
FETCH_POLL_SECONDS = 0.2


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy) as a libpq URL (psycopg, procrastinate)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def queue_for_platform(platform: str) -> str:
    """The procrastinate queue of runs for ``platform``: the one place names are made."""
    return f"runs-{platform}"


def queues_for_labels(labels: Sequence[str]) -> list[str]:
    return [queue_for_platform(label) for label in labels]


def queueing_lock(run_id: int) -> str:
    return f"run-{run_id}"


async def execute_run_task(context: JobContext, run_id: int) -> None:
    """The one procrastinate task: execute ``run_id`` in this worker process."""
    host = context.additional_context.get(HOST_KEY)
    if not isinstance(host, DistributedDispatcher):
        raise RuntimeError("runplane jobs run in runplane workers only")
    job_id = context.job.id
    await host.execute(run_id, job_id or 0, context.abort_reason)


def build_app(database_url: str, *, pool_size: int) -> App:
    app = App(
        connector=PsycopgConnector(conninfo=libpq_url(database_url), min_size=1, max_size=pool_size)
    )
    app.task(name=TASK_NAME, pass_context=True)(execute_run_task)
    return app


class DistributedDispatcher:
    """``RunSignals`` that defer procrastinate jobs; with ``concurrency`` > 0 also a worker.

    ``queues`` (None: every queue) are the queues this process's worker takes jobs
    from. ``drain_seconds`` is how long a stopping worker lets running runs finish
    before it stops them (they end ``error``/``worker_shutdown``).
    """

    def __init__(
        self,
        ctx: Context,
        concurrency: int,
        *,
        queues: Sequence[str] | None = None,
        drain_seconds: float = 0.0,
    ) -> None:
        self.ctx = ctx
        self.concurrency = concurrency
        self.queues = list(queues) if queues is not None else None
        self.drain_seconds = drain_seconds
        url = ctx.settings.resolved_database_url
        self._conninfo = libpq_url(url)
        # A worker's pool serves the job fetcher, the LISTEN of new jobs, heartbeats
        # and one status write per finishing job (short, so a few connections serve
        # many jobs); a defer-only process needs little.
        self.app = build_app(url, pool_size=min(8, 3 + concurrency) if concurrency else 4)
        self._task = self.app.tasks[TASK_NAME]
        #: Cancel events of the runs executing here (a list: a duplicate delivery of a
        #: run briefly executes beside the real one before it loses the claim).
        self._cancels: dict[int, list[asyncio.Event]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._sweep_now = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._side: list[asyncio.Task[None]] = []
        self._liveness = RunLiveness(ctx)

    # RunSignals (called after the change is committed; kept sync: the work is spawned)
    def run_queued(self, run_id: int) -> None:
        self._spawn(self._defer_queued(run_id), f"defer run {run_id}")

    def cancel_requested(self, run_id: int) -> None:
        for event in self._cancels.get(run_id, ()):
            event.set()
        self._spawn(self._signal_cancel(run_id), f"signal the cancel of run {run_id}")

    @property
    def worker_task(self) -> asyncio.Task[None] | None:
        """The procrastinate worker of this process (None without workers)."""
        return self._worker

    async def start(self) -> None:
        await self.app.open_async()
        if self.concurrency <= 0:
            return
        options: WorkerOptions = {
            "concurrency": self.concurrency,
            "name": worker_id("procrastinate"),
            "wait": True,
            # The process owns its signals: SIGTERM means drain, see ``stop``.
            "install_signal_handlers": False,
            "shutdown_graceful_timeout": self.drain_seconds,
            "fetch_job_polling_interval": FETCH_POLL_SECONDS,
            "abort_job_polling_interval": POLL_SECONDS,
            "additional_context": {HOST_KEY: self},
        }
        if self.queues is not None:
            options["queues"] = self.queues
        self._liveness.start()
        self._worker = asyncio.create_task(
            self.app.run_worker_async(**options),
            name="runplane-procrastinate-worker",
        )
        self._side = [
            asyncio.create_task(self._listen_for_cancels(), name="runplane-cancel-listener"),
            asyncio.create_task(self._sweep_loop(), name="runplane-sweeper"),
        ]

    async def stop(self) -> None:
        """Stop taking jobs, drain running runs (up to ``drain_seconds``), close the pool."""
        if self._worker is not None:
            # Cancelling run_worker_async is procrastinate's graceful stop: no new jobs,
            # running ones get ``shutdown_graceful_timeout``, then are aborted.
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            except Exception:
                # Closing must go on (listener, pool, engine) whatever the worker did.
                log.exception("the procrastinate worker failed")
            self._worker = None
        self._stop.set()
        self._sweep_now.set()
        await asyncio.gather(*self._side, return_exceptions=True)
        self._side = []
        await self._liveness.stop()
        # Defers still in flight must reach the database before the pool goes.
        await asyncio.gather(*self._pending, return_exceptions=True)
        await self.app.close_async()

    # Deferring
    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work.close()
            log.warning("no event loop to %s; the sweeper will catch up", what)
            return

        async def logged() -> None:
            try:
                await work
            except Exception:
                # The database is the truth: a lost defer is re-deferred by a sweeper,
                # a lost cancel signal is noticed by execute_run's status poll.
                log.exception("could not %s", what)

        task = loop.create_task(logged())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _defer_queued(self, run_id: int) -> None:
        async with unit_of_work(self.ctx.reads) as session:
            run = await store.get_run(session, run_id)
        if run is not None and run.status == RunStatus.QUEUED.value:
            await self.defer(run_id, run.platform, run.priority)

    async def defer(self, run_id: int, platform: str, priority: int) -> bool:
        """Queue a job for ``run_id``; False when one already waits (the queueing lock)."""
        try:
            await self._task.configure(
                queueing_lock=queueing_lock(run_id),
                queue=queue_for_platform(platform),
                priority=priority,
            ).defer_async(run_id=run_id)
        except AlreadyEnqueued:
            return False
        return True

    # Cancel
    async def _signal_cancel(self, run_id: int) -> None:
        await self.app.connector.execute_query_async(
            "SELECT pg_notify(%(channel)s, %(payload)s)",
            channel=CANCEL_CHANNEL,
            payload=str(run_id),
        )
        # procrastinate's abort also reaches the worker (it cancels the job's task,
        # which ``execute`` turns into the run's cancel event).
        rows = await self.app.connector.execute_query_all_async(
            "SELECT id FROM procrastinate_jobs WHERE queueing_lock = %(lock)s AND status = 'doing'",
            lock=queueing_lock(run_id),
        )
        for row in rows:
            await self.app.job_manager.cancel_job_by_id_async(int(row["id"]), abort=True)

    def _cancel_arrived(self, payload: str) -> None:
        try:
            run_id = int(payload)
        except ValueError:
            log.warning("ignoring a malformed %s payload %r", CANCEL_CHANNEL, payload)
            return
        for event in self._cancels.get(run_id, ()):
            event.set()

    async def _listen_for_cancels(self) -> None:
        """LISTEN on a dedicated connection, reconnecting after a failure."""
        while not self._stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute("LISTEN runplane_cancel")
                    # A cancel sent while we were not listening is in the database.
                    await self._recheck_cancels()
                    while not self._stop.is_set():
                        async for notify in conn.notifies(timeout=1.0):
                            self._cancel_arrived(notify.payload)
            except Exception:
                log.warning("cancel listener lost its connection; reconnecting", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)

    async def _recheck_cancels(self) -> None:
        run_ids = list(self._cancels)
        if not run_ids:
            return
        async with unit_of_work(self.ctx.reads) as session:
            rows = await session.execute(
                select(Run.id).where(Run.id.in_(run_ids), Run.status == RunStatus.CANCELING.value)
            )
            canceling = list(rows.scalars())
        for run_id in canceling:
            self._cancel_arrived(str(run_id))

    # Executing (called by ``execute_run_task`` in this worker process)
    async def execute(
        self, run_id: int, job_id: int, abort_reason: Callable[[], AbortReason | None]
    ) -> None:
        cancel, shutdown = asyncio.Event(), asyncio.Event()
        self._cancels.setdefault(run_id, []).append(cancel)
        aborted = False
        try:
            async with unit_of_work(self.ctx.reads) as session:
                waiting = await session.scalar(
                    select(Run.id).where(Run.id == run_id, waits_for_batch_sibling())
                )
            if waiting is not None:
                # Offered again by a sweeper once the earlier runs of its batch ended.
                return
            run = asyncio.create_task(
                execute_run(
                    self.ctx,
                    run_id,
                    worker_id=worker_id(f"job{job_id}"),
                    liveness=self._liveness,
                    cancel=cancel,
                    shutdown=shutdown,
                )
            )
            while not run.done():
                try:
                    # procrastinate aborts a job by cancelling its task: shielded, the
                    # run is stopped the one clean way (kill tree, final CAS) instead.
                    await asyncio.shield(run)
                except asyncio.CancelledError:
                    if run.done():
                        break
                    aborted = True
                    if abort_reason() is AbortReason.USER_REQUEST:
                        cancel.set()
                    else:
                        shutdown.set()
            run.result()
        finally:
            events = self._cancels.get(run_id, [])
            if cancel in events:
                events.remove(cancel)
            if not events:
                self._cancels.pop(run_id, None)
            # A finished run may free a project slot or unblock its batch's next run.
            self._sweep_now.set()
        if aborted:
            raise asyncio.CancelledError

    # Sweeping
    async def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_now.wait(), SWEEP_INTERVAL_SECONDS)
            self._sweep_now.clear()
            if self._stop.is_set():
                return
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep of queued runs failed")

    async def sweep(self) -> list[int]:
        """Re-defer queued runs that have no live job; returns their ids."""
        async with unit_of_work(self.ctx.reads) as session:
            rows = (await session.execute(_orphans(utcnow()))).all()
        free: dict[int, int] = {}
        deferred = []
        for run_id, platform, priority, project_id, limit, active in rows:
            if project_id is not None and limit is not None:
                # Offer a limited project only its free slots, oldest first: the runs
                # beyond them would just lose the claim and keep their order less well.
                left = free.setdefault(project_id, limit - active)
                if left <= 0:
                    continue
                free[project_id] = left - 1
            if await self.defer(run_id, platform, priority):
                deferred.append(run_id)
        if deferred:
            log.info("deferred %d queued run(s) that had no job: %s", len(deferred), deferred)
        return deferred


_jobs = table(
    "procrastinate_jobs",
    column("id", Integer),
    column("queueing_lock", String),
    column("status", String),
    column("worker_id", Integer),
)
_workers = table("procrastinate_workers", column("id", Integer), column("last_heartbeat"))


def _orphans(now: datetime) -> Select[int, str, int, int | None, int | None, int]:
    """Queued runs ready to run that have no waiting job and no job of a live worker,
    and either had a job once (it ended without claiming them) or were queued long
    enough ago that their defer must be lost."""
    lock = literal("run-", String) + cast(Run.id, String)
    status = cast(_jobs.c.status, String)
    live_job = exists().where(
        _jobs.c.queueing_lock == lock,
        or_(
            status == "todo",
            and_(
                status == "doing",
                exists().where(
                    _workers.c.id == _jobs.c.worker_id,
                    _workers.c.last_heartbeat
                    > func.now() - timedelta(seconds=STALLED_WORKER_SECONDS),
                ),
            ),
        ),
    )
    had_job = exists().where(
        _jobs.c.queueing_lock == lock, status.in_(["succeeded", "failed", "aborted", "cancelled"])
    )
    limit, active = store.project_slots()
    return (
        select(Run.id, Run.platform, Run.priority, Run.project_id, limit, active)
        .where(
            Run.status == RunStatus.QUEUED.value,
            ~waits_for_batch_sibling(),
            ~live_job,
            or_(had_job, Run.queued_at < now - timedelta(seconds=LOST_DEFER_SECONDS)),
        )
        .order_by(Run.priority.desc(), Run.id.asc())
        .limit(SWEEP_BATCH)
    )
