"""Aggregates behind ``GET /metrics``, computed by the database at scrape time.

They are read from the tables rather than counted in memory so that every API process
reports the same numbers, whichever process or host executed the runs.

Cost: ``run_timings`` reads every started run once per scrape (one pass computes all
three histograms, bucket counts included, as ``SUM(CASE ...)``); the other queries
are ``GROUP BY`` counts. That is linear in the runs table, which keeps the histograms
cumulative (what ``rate()`` and ``histogram_quantile()`` expect) but grows with history:
at millions of runs, scrape less often or give the scrape a longer timeout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Float, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from runplane.domain.status import RunStatus
from runplane.store.models import Run, RunEvent, WebhookDelivery


class seconds_between(FunctionElement[float]):
    """``end - start`` in seconds (a float), NULL when either is NULL.

    The two backends subtract timestamps differently; this is the one place that knows.
    """

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(arg, **kw) for arg in element.clauses)
    # SQLite keeps these as ISO text in UTC; julianday() reads them (to ~0.1 ms).
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"


@dataclass(frozen=True, slots=True)
class Histogram:
    """Observations of one duration: cumulative counts per upper bound, count and sum."""

    bounds: tuple[float, ...]
    #: ``cumulative[i]`` observations were ``<= bounds[i]``.
    cumulative: tuple[int, ...]
    count: int
    sum_seconds: float


@dataclass(frozen=True, slots=True)
class RunTimings:
    queue: Histogram
    duration: Histogram
    cancel_latency: Histogram


async def count_runs_by_status_and_repository(
    session: AsyncSession,
) -> list[tuple[str, str, int]]:
    """(status, repository, runs) for every pair that has runs."""
    rows = await session.execute(
        select(Run.status, Run.repository, func.count(Run.id)).group_by(Run.status, Run.repository)
    )
    return [(status, repository, count) for status, repository, count in rows.all()]


async def count_webhook_deliveries_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(WebhookDelivery.state, func.count(WebhookDelivery.id)).group_by(
            WebhookDelivery.state
        )
    )
    return {state: count for state, count in rows.all()}


def _cancel_requests() -> Any:
    """When the cancel of each running run was asked for: its ``canceling`` event.

    A run canceled while queued has no such event (it became ``canceled`` at once).
    A restart deletes a run's events, so an earlier attempt's cancel cannot match.
    Joined once, grouped: as a correlated subquery it ran once per histogram column.
    """
    return (
        select(RunEvent.run_id, func.max(RunEvent.created_at).label("at"))
        .where(RunEvent.status == RunStatus.CANCELING.value)
        .group_by(RunEvent.run_id)
        .subquery("cancel_requests")
    )


def _histogram_columns(seconds: ColumnElement[float], bounds: Sequence[float]) -> list[Any]:
    """count, sum, then one cumulative count per bound; NULL observations are skipped."""
    return [
        func.count(seconds),
        func.coalesce(func.sum(seconds), 0.0),
        *(func.coalesce(func.sum(case((seconds <= bound, 1), else_=0)), 0) for bound in bounds),
    ]


def _histogram(row: Sequence[Any], bounds: tuple[float, ...]) -> Histogram:
    count, total, *cumulative = row
    return Histogram(
        bounds=bounds,
        cumulative=tuple(int(c) for c in cumulative),
        count=int(count),
        sum_seconds=float(total),
    )


async def run_timings(
    session: AsyncSession,
    *,
    queue_bounds: tuple[float, ...],
    duration_bounds: tuple[float, ...],
    cancel_bounds: tuple[float, ...],
) -> RunTimings:
    """The three run histograms in one pass over the started runs.

    queue: ``queued_at → started_at`` of every started run (``queued_at`` is the
    submission, or the restart of a restarted run); duration: ``started_at →
    completed_at`` of finished runs; cancel latency: the ``canceling`` event →
    ``completed_at`` of runs canceled while running.
    """
    requests = _cancel_requests()
    cancel = case(
        (
            Run.status == RunStatus.CANCELED.value,
            seconds_between(Run.completed_at, requests.c.at),
        ),
        else_=None,
    )
    # Each run's three durations are computed once, in a materialized CTE: inlined, every
    # bucket's CASE recomputed them (julianday() on text, ~70 calls per row on SQLite).
    timings = (
        select(
            seconds_between(Run.started_at, Run.queued_at).label("queue"),
            seconds_between(Run.completed_at, Run.started_at).label("duration"),
            cancel.label("cancel"),
        )
        .select_from(Run)
        .outerjoin(requests, requests.c.run_id == Run.id)
        .where(Run.started_at.is_not(None))
        .cte("run_timings")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    if sqlite3.sqlite_version_info >= (3, 35, 0):
        # Older SQLite lacks the keyword: it may inline the CTE (slower, same figures).
        timings = timings.prefix_with("MATERIALIZED", dialect="sqlite")
    columns = [
        *_histogram_columns(timings.c.queue, queue_bounds),
        *_histogram_columns(timings.c.duration, duration_bounds),
        *_histogram_columns(timings.c.cancel, cancel_bounds),
    ]
    query = select(*columns).select_from(timings)
    row = (await session.execute(query)).one()
    first, second = 2 + len(queue_bounds), 4 + len(queue_bounds) + len(duration_bounds)
    return RunTimings(
        queue=_histogram(row[:first], queue_bounds),
        duration=_histogram(row[first:second], duration_bounds),
        cancel_latency=_histogram(row[second:], cancel_bounds),
    )
