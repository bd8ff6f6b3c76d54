"""What ``GET /metrics`` reports about runs and webhooks: one consistent read of the database.

The API turns a ``RunMetrics`` into Prometheus families; nothing here knows about
HTTP or the exposition format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runplane.domain.status import RunStatus
from runplane.services.context import Context
from runplane.store import metrics as store
from runplane.store.database import unit_of_work
from runplane.store.metrics import Histogram
from runplane.store.webhooks import STATES as WEBHOOK_STATES

#: Waiting for a worker: sub-second when workers are free, minutes when they are not.
QUEUE_BUCKETS_SECONDS: tuple[float, ...] = (
    0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip
#: A run's execution, checkout to verdict (the default time limit is an hour).
DURATION_BUCKETS_SECONDS: tuple[float, ...] = (
    1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200,
)  # fmt: skip
#: Cancel of a running run to its end: the kill grace period (3 s) plus the poll.
CANCEL_BUCKETS_SECONDS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60)


@dataclass(frozen=True, slots=True)
class RunMetrics:
    #: (internal status, repository) → runs; every status is present for each repository.
    runs: Mapping[tuple[str, str], int]
    queue_depth: int
    #: ``running`` and ``canceling``: runs a worker is executing now.
    running: int
    queue_seconds: Histogram
    duration_seconds: Histogram
    cancel_latency_seconds: Histogram
    #: Delivery state (``pending``, ``delivered``, ``failed``) → deliveries.
    webhook_deliveries: Mapping[str, int]


async def snapshot(ctx: Context) -> RunMetrics:
    async with unit_of_work(ctx.reads) as session:
        counts = await store.count_runs_by_status_and_repository(session)
        timings = await store.run_timings(
            session,
            queue_bounds=QUEUE_BUCKETS_SECONDS,
            duration_bounds=DURATION_BUCKETS_SECONDS,
            cancel_bounds=CANCEL_BUCKETS_SECONDS,
        )
        deliveries = await store.count_webhook_deliveries_by_state(session)
    # Zeros rather than missing series: a project whose last queued run started
    # should read 0 queued, not vanish from the graph.
    repositories = {repository for _, repository, _ in counts}
    runs = {(status.value, repo): 0 for status in RunStatus for repo in repositories}
    for status, repository, count in counts:
        runs[(status, repository)] = count
    by_status: dict[str, int] = {}
    for (status, _), count in runs.items():
        by_status[status] = by_status.get(status, 0) + count
    return RunMetrics(
        runs=runs,
        queue_depth=by_status.get(RunStatus.QUEUED.value, 0),
        running=by_status.get(RunStatus.RUNNING.value, 0)
        + by_status.get(RunStatus.CANCELING.value, 0),
        queue_seconds=timings.queue,
        duration_seconds=timings.duration,
        cancel_latency_seconds=timings.cancel_latency,
        webhook_deliveries={**dict.fromkeys(sorted(WEBHOOK_STATES), 0), **deliveries},
    )
