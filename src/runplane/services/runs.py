"""Run control: submit, cancel, retry, restart. The rules both dialects share."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.errors import (
    IdempotencyConflict,
    InvalidInput,
    RunNotFound,
    TransitionRejected,
    Unprocessable,
)
from runplane.domain.permissions import Action
from runplane.domain.status import TERMINAL, RunStatus
from runplane.domain.types import Principal
from runplane.services.context import Context
from runplane.services.policy import actor_name, ensure_allowed
from runplane.services.usage import ensure_within_daily_limit
from runplane.store import browser_runs as browser_store
from runplane.store import projects as project_store
from runplane.store import regression_runs
from runplane.store import results as result_store
from runplane.store import runs as store
from runplane.store import webhooks as webhook_store
from runplane.store.database import unit_of_work
from runplane.store.models import Project, Run, utcnow
from runplane.store.runs import EventSpec, RunFilter

#: Placeholder in a project's test command replaced by the selected test names.
FAILED_TESTS_PLACEHOLDER = "{failed_tests}"
CANCEL_REASON_MIN = 5
CANCEL_REASON_MAX = 255


@dataclass(frozen=True, slots=True)
class RunRequest:
    repository: str
    commit_sha: str
    platform: str
    branch: str | None = "master"
    pull_request: int | None = None
    regression_test_ids: tuple[int, ...] | None = None
    priority: int = 0

    def fingerprint(self) -> str:
        body = json.dumps(
            {k: getattr(self, k) for k in self.__slots__}, sort_keys=True, default=list
        )
        return hashlib.sha256(body.encode()).hexdigest()


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    NO_OP = "no_op"


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    outcome: Outcome
    status: RunStatus


async def submit(
    ctx: Context,
    actor: Principal | None,
    request: RunRequest,
    *,
    idempotency_key: str | None = None,
    user_id: int | None = None,
) -> tuple[Run, bool]:
    """Queue a run; returns the run and whether it was created (False: idempotent replay)."""
    ensure_allowed(actor, Action.SUBMIT_RUN)
    owner = actor.user_id if actor else user_id
    fingerprint = request.fingerprint()
    if idempotency_key is not None:
        replay = await _replay(ctx, owner, idempotency_key, fingerprint)
        if replay is not None:
            return replay, False
    try:
        async with unit_of_work(ctx.sessions) as session:
            project = await project_store.get_by_repository(session, request.repository)
            if project is None:
                raise Unprocessable(
                    f"No project is configured for repository {request.repository}.",
                    repository=request.repository,
                )
            if project.platform != request.platform:
                raise Unprocessable(
                    f"Repository {request.repository} has no runner for platform "
                    f"{request.platform}.",
                    commit_sha=request.commit_sha,
                    platform=request.platform,
                )
            selection: list[int] | None = None
            if request.regression_test_ids is not None:
                selection = sorted(set(request.regression_test_ids))
                active = await regression_runs.active_test_ids(session, project.id)
                inactive = [i for i in selection if i not in active]
                if inactive:
                    raise Unprocessable(
                        "Some regression tests are inactive or do not exist.",
                        inactive_ids=inactive,
                    )
            run = Run(
                project_id=project.id,
                user_id=owner,
                repository=request.repository,
                branch=request.branch,
                commit_sha=request.commit_sha.lower(),
                pull_request=request.pull_request,
                platform=request.platform,
                priority=request.priority,
                regression_test_ids=selection,
                triggered_by=actor.email if actor else "operator",
                idempotency_key=idempotency_key,
                request_fingerprint=fingerprint,
            )
            await store.insert_run(session, run, EventSpec("Run queued.", actor_name(actor)))
    except IntegrityError:
        if idempotency_key is None:
            raise
        # Two requests with one key raced; the loser answers with the winner's run.
        replay = await _replay(ctx, owner, idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay, False
    ctx.signals.run_queued(run.id)
    return run, True


async def _replay(ctx: Context, owner: int | None, key: str, fingerprint: str) -> Run | None:
    if owner is None:
        return None
    async with unit_of_work(ctx.reads) as session:
        existing = await store.find_by_idempotency_key(session, owner, key)
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request body.",
            idempotency_key=key,
            run_id=existing.id,
        )
    return existing


def _clean_reason(reason: str | None) -> str | None:
    if reason is None or reason == "":
        return None
    reason = reason.strip()
    if len(reason) < CANCEL_REASON_MIN:
        raise InvalidInput(
            f"Cancel reason must be at least {CANCEL_REASON_MIN} characters.",
            {"reason": f"Minimum length is {CANCEL_REASON_MIN}."},
        )
    return reason[:CANCEL_REASON_MAX]


async def cancel(
    ctx: Context, actor: Principal | None, run_id: int, reason: str | None = None
) -> CancelOutcome:
    """Cancel a queued or running run; a terminal run is a no-op, never an error.

    A queued run becomes ``canceled`` at once. A running run becomes ``canceling``
    and its worker is told to kill the process tree; the worker then moves it to
    ``canceled``. The terminal check comes before the reason is validated.
    """
    ensure_allowed(actor, Action.CANCEL_RUN)
    for _attempt in range(5):
        async with unit_of_work(ctx.sessions) as session:
            status = await store.get_status(session, run_id)
            if status is None:
                raise RunNotFound(run_id)
            if status in TERMINAL:
                return CancelOutcome(Outcome.NO_OP, status)
            if status is RunStatus.CANCELING:
                return CancelOutcome(Outcome.ACCEPTED, status)
            clean = _clean_reason(reason)
            message = f"Canceled by {actor_name(actor)} via API" + (f": {clean}" if clean else "")
            event = EventSpec(message, actor_name(actor))
            if status is RunStatus.QUEUED:
                done = await store.transition(
                    session,
                    run_id,
                    RunStatus.CANCELED,
                    event,
                    expected={RunStatus.QUEUED},
                    completed_at=utcnow(),
                    reason="canceled",
                )
            else:
                done = await store.transition(
                    session,
                    run_id,
                    RunStatus.CANCELING,
                    event,
                    expected={RunStatus.RUNNING},
                    reason="canceled",
                )
        if done is not None:
            status = RunStatus(done.status)
            if status is RunStatus.CANCELING:
                ctx.signals.cancel_requested(run_id)
                status = await _await_stopped(ctx, run_id)
            return CancelOutcome(Outcome.ACCEPTED, status)
        # Lost a race (claimed or finished meanwhile): look again.
    raise TransitionRejected(f"Run {run_id} changed state too often to cancel; try again.")


async def cancel_queued(ctx: Context, actor: Principal | None, run_id: int) -> Run:
    """Cancel a run that has not started; any other state is a ``TransitionRejected``.

    The Tester Army rule: a running run is not cancelled through this call (the
    native ``cancel`` stops running runs too).
    """
    ensure_allowed(actor, Action.CANCEL_RUN)
    async with unit_of_work(ctx.sessions) as session:
        done = await store.transition(
            session,
            run_id,
            RunStatus.CANCELED,
            EventSpec(f"Canceled by {actor_name(actor)} via API (queued run).", actor_name(actor)),
            expected={RunStatus.QUEUED},
            completed_at=utcnow(),
            reason="canceled",
        )
        if done is None:
            status = await store.get_status(session, run_id)
            if status is None:
                raise RunNotFound(run_id)
            raise TransitionRejected(
                f"Run is {status.value}; only queued runs can be cancelled.",
                run_id=run_id,
                status=status.value,
            )
    return done


async def _await_stopped(ctx: Context, run_id: int) -> RunStatus:
    """Give the worker ``cancel_wait_seconds`` to kill the tree, so that the answer (and
    a second cancel's ``no_op``) reflects a stopped run in the common case."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.cancel_wait_seconds
    while True:
        async with unit_of_work(ctx.reads) as session:
            status = await store.get_status(session, run_id)
        if status is None or status in TERMINAL or loop.time() >= deadline:
            return status or RunStatus.CANCELING
        await asyncio.sleep(0.05)


async def retry(
    ctx: Context,
    actor: Principal | None,
    run_id: int,
    *,
    failed_only: bool = False,
    reason: str | None = None,
) -> Run:
    """A new run copied from ``run_id``; the source run is never modified."""
    ensure_allowed(actor, Action.RETRY_RUN)
    async with unit_of_work(ctx.sessions) as session:
        source = await store.get_run(session, run_id)
        if source is None:
            raise RunNotFound(run_id)
        project = (
            await project_store.get_project(session, source.project_id)
            if source.project_id is not None
            else None
        )
        if project is None:
            raise Unprocessable(
                f"Run {run_id} belongs to a project that no longer exists.", run_id=run_id
            )
        selected, regression_ids = source.selected_tests, source.regression_test_ids
        if failed_only:
            regression_ids = await _failed_regression_tests(session, source)
            if regression_ids is None:
                selected = await _failed_tests(session, source, project.test_command)
        new = Run(
            project_id=project.id,
            user_id=actor.user_id if actor else source.user_id,
            repository=source.repository,
            branch=source.branch,
            commit_sha=source.commit_sha,
            pull_request=source.pull_request,
            platform=source.platform,
            priority=source.priority,
            selected_tests=selected,
            regression_test_ids=regression_ids,
            retry_of=source.id,
            triggered_by=actor_name(actor),
        )
        note = f"Retry of run {source.id} by {actor_name(actor)}" + (
            " (failed tests only)" if failed_only else ""
        )
        if reason:
            note += f": {reason.strip()[:255]}"
        await store.insert_run(session, new, EventSpec(note, actor_name(actor)))
    ctx.signals.run_queued(new.id)
    return new


def _require_finished(source: Run) -> None:
    if RunStatus(source.status) not in TERMINAL:
        raise Unprocessable(
            f"Run {source.id} has not finished; a failed-only retry needs its results.",
            run_id=source.id,
        )


async def _failed_regression_tests(session: AsyncSession, source: Run) -> list[int] | None:
    """Regression tests that did not pass in ``source``; None when it ran none."""
    results = await regression_runs.all_results(session, source.id)
    if not results:
        return None
    _require_finished(source)
    failed = [r.regression_test_id for r in results if r.status not in ("pass", "skipped")]
    if not failed:
        raise Unprocessable(f"Run {source.id} has no failed tests to retry.", run_id=source.id)
    active = await regression_runs.active_test_ids(session, source.project_id or 0)
    inactive = [i for i in failed if i not in active]
    if inactive:
        raise Unprocessable(
            "Some regression tests are inactive or do not exist.", inactive_ids=inactive
        )
    return failed


async def _failed_tests(session: AsyncSession, source: Run, test_command: str | None) -> list[str]:
    _require_finished(source)
    if not test_command or FAILED_TESTS_PLACEHOLDER not in test_command:
        raise Unprocessable(
            "This project's test command cannot select tests: add the "
            f"{FAILED_TESTS_PLACEHOLDER} placeholder to it to allow failed-only retries.",
            run_id=source.id,
        )
    results = await result_store.all_results(session, source.id)
    failed = sorted({r.name for r in results if r.status in ("fail", "error")})
    if not failed:
        raise Unprocessable(f"Run {source.id} has no failed tests to retry.", run_id=source.id)
    return failed


async def restart(ctx: Context, actor: Principal | None, run_id: int) -> Run:
    """Destructive, in place: wipe results, log and progress, then queue the same run again."""
    ensure_allowed(actor, Action.RESTART_RUN)
    async with unit_of_work(ctx.sessions) as session:
        run = await store.get_run(session, run_id)
        if run is None:
            raise RunNotFound(run_id)
        status = RunStatus(run.status)
        if status is RunStatus.QUEUED:
            return run
        if status not in TERMINAL:
            raise TransitionRejected(
                f"Run {run_id} is {status.value}; cancel it before restarting it.",
                run_id=run_id,
            )
        if await browser_store.get(session, run_id) is not None:
            # A browser run executes again: it counts against the daily quota like a new one.
            await ensure_within_daily_limit(ctx, session, actor)
        await store.clear_run_outputs(session, run_id)
        # A restarted run reports its new outcome to its webhook too.
        await webhook_store.reset_for_run(session, run_id)
        restarted = await store.transition(
            session,
            run_id,
            RunStatus.QUEUED,
            EventSpec(
                f"Restarted by {actor_name(actor)} via API; previous results deleted.",
                actor_name(actor),
            ),
            expected={status},
            queued_at=utcnow(),
            started_at=None,
            completed_at=None,
            worker_id=None,
            lease_expires_at=None,
            exit_code=None,
            reason=None,
        )
        if restarted is None:
            raise TransitionRejected(f"Run {run_id} changed state; try again.", run_id=run_id)
    ctx.signals.run_queued(run_id)
    return restarted


async def get(ctx: Context, run_id: int) -> Run:
    async with unit_of_work(ctx.reads) as session:
        run = await store.get_run(session, run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


async def queue_positions(ctx: Context, runs: Sequence[Run]) -> dict[int, int]:
    """1-based queue position of each queued run among ``runs``."""
    queued = [r for r in runs if r.status == RunStatus.QUEUED.value]
    if not queued:
        return {}
    async with unit_of_work(ctx.reads) as session:
        return {r.id: await store.queue_position(session, r.id, r.priority) for r in queued}


async def get_with_project(ctx: Context, run_id: int) -> tuple[Run, Project | None]:
    async with unit_of_work(ctx.reads) as session:
        run = await store.get_run(session, run_id)
        if run is None:
            raise RunNotFound(run_id)
        project = (
            await project_store.get_project(session, run.project_id)
            if run.project_id is not None
            else None
        )
    return run, project


async def list_runs(
    ctx: Context, flt: RunFilter, *, sort: str, limit: int, offset: int
) -> tuple[Sequence[Run], int]:
    async with unit_of_work(ctx.reads) as session:
        return await store.list_runs(session, flt, sort=sort, limit=limit, offset=offset)


@dataclass(frozen=True, slots=True)
class RunConfigView:
    run: Run
    project: Project | None
    #: The run's own selection, or else every active regression test of the project.
    regression_test_ids: list[int]


async def config(ctx: Context, run_id: int) -> RunConfigView:
    run, project = await get_with_project(ctx, run_id)
    ids = run.regression_test_ids
    if ids is None and project is not None:
        async with unit_of_work(ctx.reads) as session:
            ids = sorted(await regression_runs.active_test_ids(session, project.id))
    return RunConfigView(run, project, list(ids or []))
