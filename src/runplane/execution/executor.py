"""``execute_run``: the one way a run is executed, whichever dispatcher delivered it.

One coroutine owns the run from claim to final status. Beside it run a lease
renewer and a cancel watcher; the run's processes race their own exit against a
cancel (signalled in-process or seen by polling the status) and the time limit.
The final status and the results are written in one transaction, and that write
is a compare-and-set: a cancel that arrived meanwhile wins, and a worker whose
lease was reaped cannot overwrite the reaper's verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from runplane.domain.status import ProgressState, RunStatus
from runplane.execution import workspace as ws
from runplane.execution.junit import ReportUnreadable, parse_report
from runplane.execution.log_writer import LogWriter
from runplane.execution.process_tree import ProcessOutcome, StopReason, run_command
from runplane.services.context import Context
from runplane.services.runs import FAILED_TESTS_PLACEHOLDER
from runplane.store import projects as project_store
from runplane.store import results as result_store
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import Project, Run, RunResult, utcnow
from runplane.store.runs import EventSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Verdict:
    status: RunStatus
    message: str
    reason: str | None = None
    exit_code: int | None = None


async def execute_run(
    ctx: Context, run_id: int, *, worker_id: str, cancel: asyncio.Event | None = None
) -> RunStatus | None:
    """Claim ``run_id`` and execute it; returns the final status, or None if not claimed.

    ``cancel`` lets an in-process dispatcher deliver a cancel at once; without it
    a cancel is noticed by polling within ``cancel_poll_seconds``.
    """
    now = utcnow()
    async with unit_of_work(ctx.sessions) as session:
        run = await store.transition(
            session,
            run_id,
            RunStatus.RUNNING,
            EventSpec(f"Picked up by worker {worker_id}."),
            expected={RunStatus.QUEUED},
            worker_id=worker_id,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=ctx.settings.lease_seconds),
        )
        if run is None:
            return None
        project = (
            await project_store.get_project(session, run.project_id)
            if run.project_id is not None
            else None
        )
    execution = _Execution(ctx, run, project, worker_id, cancel or asyncio.Event())
    return await execution.run()


class _Execution:
    def __init__(
        self, ctx: Context, run: Run, project: Project | None, worker_id: str, stop: asyncio.Event
    ) -> None:
        self.ctx = ctx
        self.run_row = run
        self.project = project
        self.worker_id = worker_id
        self.stop = stop
        self.lease_lost = False
        self.log = LogWriter(ctx.sessions, run.id, ctx.settings.max_log_bytes)
        # Side loops are stopped by this event, never by task.cancel(): a cancel that
        # lands inside a transaction can leave SQLite's write lock held.
        self.done = asyncio.Event()

    async def run(self) -> RunStatus | None:
        await self.log.start()
        side = [
            asyncio.create_task(self._renew_lease()),
            asyncio.create_task(self._watch_cancel()),
        ]
        workspace: ws.Workspace | None = None
        results: list[RunResult] = []
        try:
            if self.project is None:
                verdict = _Verdict(
                    RunStatus.ERROR, "The run's project no longer exists.", "project_missing"
                )
            else:
                workspace = ws.Workspace.create(
                    self.ctx.settings.workspaces_dir, self.run_row.id, self.project.junit_path
                )
                verdict = await self._steps(self.project, workspace)
                results = self._collect(workspace.junit_path)
        except asyncio.CancelledError:
            # The server is shutting down: the tree is already dead (run_command
            # kills it); record why the run ended, shielded from the cancellation.
            await asyncio.shield(
                self._finish(
                    _Verdict(
                        RunStatus.ERROR, "Worker shut down during the run.", "worker_shutdown"
                    ),
                    [],
                )
            )
            raise
        except Exception as exc:
            log.exception("run %s: executor failed", self.run_row.id)
            verdict = _Verdict(RunStatus.ERROR, f"Internal error: {exc}", "internal_error")
        finally:
            self.done.set()
            await asyncio.gather(*side, return_exceptions=True)
            if workspace is not None:
                workspace.remove()
        return await asyncio.shield(self._finish(verdict, results))

    async def _steps(self, project: Project, workspace: ws.Workspace) -> _Verdict:
        settings = self.ctx.settings
        run = self.run_row
        loop = asyncio.get_running_loop()
        deadline = loop.time() + project.timeout_seconds
        grace = (
            project.grace_period_seconds
            if project.grace_period_seconds is not None
            else settings.grace_period_seconds
        )
        env = ws.run_environment(
            project.env,
            {
                "RUNPLANE_RUN_ID": str(run.id),
                "RUNPLANE_WORKSPACE": str(workspace.source),
                "RUNPLANE_JUNIT_PATH": str(workspace.junit_path),
                "RUNPLANE_SELECTED_TESTS": "\n".join(run.selected_tests or []),
                "RUNPLANE_COMMIT_SHA": run.commit_sha,
            },
        )

        async def step(command: str, cwd: Path, source: str) -> ProcessOutcome:
            self.log.note(f"$ {command}")

            async def sink(chunk: bytes) -> None:
                self.log.write(source, chunk)

            return await run_command(
                command,
                cwd=cwd,
                env=env,
                on_output=sink,
                stop=self.stop,
                deadline=deadline,
                grace_seconds=grace,
            )

        await self._progress(ProgressState.PREPARATION, f"Checking out {run.commit_sha}.")
        outcome = await step(
            ws.clone_command(project.repo_url, workspace.source), workspace.root, "build"
        )
        if outcome.stopped or outcome.exit_code != 0:
            return self._stopped(outcome, project) or _Verdict(
                RunStatus.ERROR, f"Checkout of {project.repo_url} failed.", "checkout_failed"
            )
        outcome = await step(ws.has_commit_command(run.commit_sha), workspace.source, "build")
        if outcome.stopped or outcome.exit_code != 0:
            return self._stopped(outcome, project) or _Verdict(
                RunStatus.ERROR,
                f"Commit {run.commit_sha} not found in {project.repo_url}.",
                "commit_not_found",
            )
        outcome = await step(ws.checkout_command(run.commit_sha), workspace.source, "build")
        if outcome.stopped or outcome.exit_code != 0:
            return self._stopped(outcome, project) or _Verdict(
                RunStatus.ERROR, f"Checkout of commit {run.commit_sha} failed.", "checkout_failed"
            )
        if project.build_command:
            await self._progress(ProgressState.PREPARATION, "Building.")
            outcome = await step(project.build_command, workspace.source, "build")
            if outcome.stopped or outcome.exit_code != 0:
                return self._stopped(outcome, project) or _Verdict(
                    RunStatus.ERROR,
                    f"Build failed with exit code {outcome.exit_code}.",
                    "build_failed",
                    outcome.exit_code,
                )
        await self._progress(ProgressState.TESTING, "Running tests.")
        command = ws.test_command(
            project.test_command, run.selected_tests, FAILED_TESTS_PLACEHOLDER
        )
        outcome = await step(command, workspace.source, "test_runner")
        stopped = self._stopped(outcome, project)
        if stopped:
            return stopped
        if outcome.exit_code == 0:
            return _Verdict(RunStatus.PASSED, "Tests passed.", None, 0)
        return _Verdict(
            RunStatus.FAILED,
            f"Tests failed with exit code {outcome.exit_code}.",
            "tests_failed",
            outcome.exit_code,
        )

    def _stopped(self, outcome: ProcessOutcome, project: Project) -> _Verdict | None:
        if outcome.stopped is StopReason.CANCELED:
            if self.lease_lost:
                return _Verdict(RunStatus.ERROR, "Worker lost its lease on the run.", "worker_lost")
            return _Verdict(
                RunStatus.CANCELED, "Run canceled; its processes were stopped.", "canceled"
            )
        if outcome.stopped is StopReason.TIMED_OUT:
            return _Verdict(
                RunStatus.TIMED_OUT,
                f"Time limit of {project.timeout_seconds} s exceeded; process tree killed.",
                "timeout",
            )
        return None

    def _collect(self, report: Path) -> list[RunResult]:
        if not report.is_file():
            return []
        try:
            cases = parse_report(report)
        except ReportUnreadable as exc:
            self.log.note(f"JUnit report {report} could not be read: {exc}", "warning")
            return []
        return [
            RunResult(
                name=c.name,
                classname=c.classname,
                status=c.status,
                duration_ms=c.duration_ms,
                message=c.message,
            )
            for c in cases
        ]

    async def _progress(self, state: ProgressState, message: str) -> None:
        self.log.note(f"[runplane] {message}")
        async with unit_of_work(self.ctx.sessions) as session:
            await store.add_progress(session, self.run_row.id, state.value, message)

    async def _finish(self, verdict: _Verdict, results: list[RunResult]) -> RunStatus | None:
        self.log.note(
            f"[runplane] {verdict.message}",
            "info" if verdict.status is RunStatus.PASSED else "warning",
        )
        await self.log.close()
        run_id = self.run_row.id
        now = utcnow()
        async with unit_of_work(self.ctx.sessions) as session:
            if results:
                await result_store.replace_results(session, run_id, results)
            target = verdict.status
            done: Run | None = None
            if target is not RunStatus.CANCELED:
                done = await store.transition(
                    session,
                    run_id,
                    target,
                    EventSpec(verdict.message, self.worker_id),
                    expected={RunStatus.RUNNING},
                    owner=self.worker_id,
                    completed_at=now,
                    exit_code=verdict.exit_code,
                    reason=verdict.reason,
                    lease_expires_at=None,
                )
            if done is None:
                # Either we were stopped by a cancel, or a cancel raced our natural
                # finish: a requested cancel always ends as canceled.
                message = (
                    verdict.message
                    if target is RunStatus.CANCELED
                    else "Run canceled while it was finishing."
                )
                done = await store.transition(
                    session,
                    run_id,
                    RunStatus.CANCELED,
                    EventSpec(message, self.worker_id),
                    expected={RunStatus.CANCELING},
                    owner=self.worker_id,
                    completed_at=now,
                    exit_code=verdict.exit_code,
                    lease_expires_at=None,
                )
        if done is None:
            log.warning("run %s: final status not written (lease lost or reaped)", run_id)
            return None
        return RunStatus(done.status)

    async def _renew_lease(self) -> None:
        lease = self.ctx.settings.lease_seconds
        while not await _wait(self.done, lease / 3):
            async with unit_of_work(self.ctx.sessions) as session:
                kept = await store.renew_lease(
                    session,
                    self.run_row.id,
                    self.worker_id,
                    utcnow() + timedelta(seconds=lease),
                )
            if not kept:
                # Someone else (the reaper) decided this run's fate: stop working on it.
                self.lease_lost = True
                self.stop.set()
                return

    async def _watch_cancel(self) -> None:
        while not await _wait(self.done, self.ctx.settings.cancel_poll_seconds):
            if self.stop.is_set():
                continue
            async with unit_of_work(self.ctx.sessions) as session:
                status = await store.get_status(session, self.run_row.id)
            if status is not RunStatus.RUNNING:
                self.stop.set()


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()
