"""Everything a running runplane process holds: engine, context, workers, reaper.

``create_app`` and the CLI build one of these; nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from runplane.config import Settings
from runplane.dispatch.local import LocalDispatcher
from runplane.dispatch.reaper import (
    reap_dead_local_workers,
    reap_expired_leases,
    reaper_loop,
)
from runplane.services.context import Context, NoSignals, load_secret_key
from runplane.store.blobs import LocalBlobStore
from runplane.store.database import make_engine, make_sessionmaker, migrate

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    ctx: Context
    dispatcher: LocalDispatcher | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def open(cls, settings: Settings, *, run_workers: bool) -> Runtime:
        """Migrate, connect and (when ``run_workers``) start workers and the reaper."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        await asyncio.to_thread(migrate, url)
        engine = make_engine(url)
        ctx = Context(
            settings=settings,
            sessions=make_sessionmaker(engine),
            reads=make_sessionmaker(engine, read_only=True),
            secret_key=load_secret_key(settings),
            signals=NoSignals(),
            blobs=LocalBlobStore(settings.blobs_dir),
        )
        runtime = cls(settings=settings, engine=engine, ctx=ctx)
        if run_workers:
            reaped = await reap_dead_local_workers(ctx)
            reaped += await reap_expired_leases(ctx)
            if reaped:
                log.warning("took back %d run(s) left by dead workers: %s", len(reaped), reaped)
            runtime._tasks.append(asyncio.create_task(reaper_loop(ctx, runtime._stop)))
            if settings.workers > 0:
                runtime.dispatcher = LocalDispatcher(ctx, settings.workers)
                ctx.signals = runtime.dispatcher
                await runtime.dispatcher.start()
        return runtime

    async def close(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.engine.dispose()
