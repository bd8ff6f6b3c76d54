"""Everything a running runplane process holds: engine, context, workers, reaper.

``create_app`` and the CLI build one of these; nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from runplane.config import Settings
from runplane.dispatch.distributed import DistributedDispatcher
from runplane.dispatch.local import LocalDispatcher
from runplane.dispatch.reaper import (
    reap_dead_local_workers,
    reap_expired_leases,
    reaper_loop,
)
from runplane.services.context import Context, NoSignals, load_secret_key
from runplane.services.webhooks import WebhookDeliverer
from runplane.store.blobs import make_blob_store
from runplane.store.database import is_sqlite_url, make_engine, make_sessionmaker, migrate

log = logging.getLogger(__name__)
#: Given the context, the function that renders a run's webhook body.
PayloadFactory = Callable[[Context], Callable[[int], Awaitable[dict[str, Any] | None]]]


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    ctx: Context
    dispatcher: LocalDispatcher | DistributedDispatcher | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _deliverer: WebhookDeliverer | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        run_workers: bool,
        webhook_payload: PayloadFactory | None = None,
        worker_queues: Sequence[str] | None = None,
        drain_seconds: float = 0.0,
    ) -> Runtime:
        """Migrate, connect and (when ``run_workers``) start workers and the reaper.

        ``webhook_payload`` renders a run's webhook body (a dialect's run object); with
        it, this process also delivers due webhooks. On PostgreSQL, procrastinate
        delivers runs: every process defers the runs it queues, and workers take jobs
        from ``worker_queues`` (None: all) and drain for ``drain_seconds`` on close.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        await asyncio.to_thread(migrate, url)
        engine = make_engine(url, pool_size=settings.database_pool_size)
        ctx = Context(
            settings=settings,
            sessions=make_sessionmaker(engine),
            reads=make_sessionmaker(engine, read_only=True),
            secret_key=load_secret_key(settings),
            signals=NoSignals(),
            blobs=make_blob_store(settings),
        )
        runtime = cls(settings=settings, engine=engine, ctx=ctx)
        distributed = None
        if not is_sqlite_url(url):
            workers = settings.workers if run_workers else 0
            distributed = DistributedDispatcher(
                ctx, workers, queues=worker_queues, drain_seconds=drain_seconds
            )
            runtime.dispatcher = ctx.signals = distributed
        if run_workers:
            reaped = await reap_dead_local_workers(ctx)
            reaped += await reap_expired_leases(ctx)
            if reaped:
                log.warning("took back %d run(s) left by dead workers: %s", len(reaped), reaped)
            runtime._tasks.append(asyncio.create_task(reaper_loop(ctx, runtime._stop)))
            if settings.workers > 0 and distributed is None:
                runtime.dispatcher = LocalDispatcher(ctx, settings.workers)
                ctx.signals = runtime.dispatcher
                await runtime.dispatcher.start()
            if webhook_payload is not None:
                runtime._deliverer = WebhookDeliverer(ctx, webhook_payload(ctx))
                runtime._tasks.append(asyncio.create_task(runtime._deliverer.run(runtime._stop)))
        if distributed is not None:
            await distributed.start()
        return runtime

    async def close(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._deliverer is not None:
            await self._deliverer.aclose()
        await self.engine.dispose()
