"""``execute_run``: the one way a run is executed, whichever dispatcher delivered it.

One coroutine owns the run from claim to final status. The process's
``RunLiveness`` renews its lease and watches its status; the run's processes race
their own exit against a cancel (signalled in-process or seen by that status
poll), the time limit and a worker shutdown. The final status is a
compare-and-set written together with the results: a cancel that arrived
meanwhile wins, and a worker whose lease was reaped writes nothing at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.status import ProgressState, RunStatus
from runplane.domain.urls import redact_url
from runplane.execution import workspace as ws
from runplane.execution.browser import (
    AgentOutputInvalid,
    AgentResult,
    agent_command,
    agent_input,
    read_agent_output,
)
from runplane.execution.junit import ReportUnreadable, parse_report
from runplane.execution.liveness import RunLiveness
from runplane.execution.log_writer import LogWriter
from runplane.execution.process_tree import ProcessOutcome, StopReason, run_command
from runplane.execution.regression import TestContext, run_test
from runplane.logging_setup import bound_run_id
from runplane.services.context import Context
from runplane.services.runs import FAILED_TESTS_PLACEHOLDER
from runplane.services.sealing import unseal
from runplane.store import browser_runs as browser_store
from runplane.store import projects as project_store
from runplane.store import regression_runs
from runplane.store import results as result_store
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import (
    BrowserRun,
    Project,
    Run,
    RunArtifact,
    RunResult,
    RunScreenshot,
    utcnow,
)
from runplane.store.runs import EventSpec

log = logging.getLogger(__name__)
T = TypeVar("T")
FINISH_ATTEMPTS = 5
#: Where browser runs get their TMPDIR (short paths: see ``_browser_run``).
SHORT_TMP = "/tmp" if os.path.isdir("/tmp") else None
#: Declared artifacts kept per run at most.
MAX_ARTIFACTS = 200


@dataclass(frozen=True, slots=True)
class _Verdict:
    status: RunStatus
    message: str
    reason: str | None = None
    exit_code: int | None = None


class _LostRun(Exception):
    """The run is no longer ours (reaped or restarted): roll back, write nothing."""


async def execute_run(
    ctx: Context,
    run_id: int,
    *,
    worker_id: str,
    liveness: RunLiveness,
    cancel: asyncio.Event | None = None,
    shutdown: asyncio.Event | None = None,
) -> RunStatus | None:
    """Claim ``run_id`` and execute it; returns the final status, or None if not ours.

    ``liveness`` (one per worker process) keeps the lease and notices a cancel made
    elsewhere within ``cancel_poll_seconds``; ``cancel`` lets an in-process dispatcher
    deliver a cancel at once. ``shutdown`` stops the run's processes and ends the run
    as ``error`` (``worker_shutdown``).
    """
    # Every line logged for this run (its side tasks inherit the context) names it.
    with bound_run_id(run_id):
        return await _claim_and_execute(ctx, run_id, worker_id, liveness, cancel, shutdown)


async def _claim_and_execute(
    ctx: Context,
    run_id: int,
    worker_id: str,
    liveness: RunLiveness,
    cancel: asyncio.Event | None,
    shutdown: asyncio.Event | None,
) -> RunStatus | None:
    now = utcnow()
    async with unit_of_work(ctx.sessions) as session:
        await store.lock_project_for_claim(session, run_id)
        run = await store.transition(
            session,
            run_id,
            RunStatus.RUNNING,
            EventSpec(f"Picked up by worker {worker_id}."),
            expected={RunStatus.QUEUED},
            # At its project's parallel limit the run stays queued (and is offered again).
            where=store.project_has_capacity(),
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
        browser = await browser_store.get(session, run.id)
    execution = _Execution(
        ctx, run, project, worker_id, cancel or asyncio.Event(), shutdown or asyncio.Event()
    )
    execution.browser = browser
    with liveness.hold(run.id, worker_id, execution.stop, execution.lose_lease):
        return await execution.run()


class _Execution:
    def __init__(
        self,
        ctx: Context,
        run: Run,
        project: Project | None,
        worker_id: str,
        stop: asyncio.Event,
        shutdown: asyncio.Event,
    ) -> None:
        self.ctx = ctx
        self.run_row = run
        self.project = project
        self.worker_id = worker_id
        self.stop = stop
        self.shutdown = shutdown
        self.lease_lost = False
        self.marker = ctx.process_marker_prefix(run.id) + uuid.uuid4().hex[:8]
        self.log = LogWriter(ctx.sessions, run.id, ctx.settings.max_log_bytes, owner=worker_id)
        # Side loops are stopped by this event, never by task.cancel(): a cancel that
        # lands inside a transaction can leave SQLite's write lock held.
        self.done = asyncio.Event()
        #: What a browser run executes (None for a build-and-test run).
        self.browser: BrowserRun | None = None
        self.agent_result: AgentResult | None = None

    async def run(self) -> RunStatus | None:
        await self.log.start()
        side = [asyncio.create_task(self._watch_shutdown())]
        workspace: ws.Workspace | None = None
        results: list[RunResult] = []
        screenshots: list[RunScreenshot] = []
        try:
            if self.browser is not None:
                workspace = ws.Workspace.create(
                    self.ctx.settings.workspaces_dir, self.run_row.id, None
                )
                verdict = await self._browser_run(self.browser, workspace)
                screenshots = await self._keep_screenshots()
            elif self.project is None:
                verdict = _Verdict(
                    RunStatus.ERROR, "The run's project no longer exists.", "project_missing"
                )
            else:
                workspace = ws.Workspace.create(
                    self.ctx.settings.workspaces_dir, self.run_row.id, self.project.junit_path
                )
                verdict = await self._steps(self.project, workspace)
                results = self._collect(workspace.junit_path)
                await self._keep_artifacts(self.project, workspace)
        except Exception as exc:
            log.exception("run %s: executor failed", self.run_row.id)
            verdict = _Verdict(RunStatus.ERROR, f"Internal error: {exc}", "internal_error")
        finally:
            self.done.set()
            await asyncio.gather(*side, return_exceptions=True)
            if workspace is not None:
                await asyncio.to_thread(workspace.remove)
        return await asyncio.shield(self._finish(verdict, results, screenshots))

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
        git_env = ws.checkout_environment()
        test_env = ws.run_environment(
            project.env,
            {
                "RUNPLANE_RUN_ID": str(run.id),
                "RUNPLANE_WORKSPACE": str(workspace.source),
                "RUNPLANE_JUNIT_PATH": str(workspace.junit_path),
                "RUNPLANE_SELECTED_TESTS": "\n".join(run.selected_tests or []),
                "RUNPLANE_COMMIT_SHA": run.commit_sha,
            },
            workspace.home,
        )
        url = redact_url(project.repo_url)

        async def step(
            command: str, cwd: Path, source: str, env: dict[str, str], shown: str | None = None
        ) -> ProcessOutcome:
            self.log.note(f"$ {shown or command}")

            async def sink(chunk: bytes) -> None:
                self.log.write(source, chunk)

            try:
                return await run_command(
                    command,
                    cwd=cwd,
                    env=env,
                    marker=self.marker,
                    on_output=sink,
                    stop=self.stop,
                    deadline=deadline,
                    grace_seconds=grace,
                )
            finally:
                self.log.end_of_stream(source)

        def failed(outcome: ProcessOutcome) -> bool:
            return outcome.stopped is not None or outcome.exit_code != 0

        await self._progress(ProgressState.PREPARATION, f"Checking out {run.commit_sha}.")
        clone = ws.clone_command(project.repo_url, workspace.source)
        outcome = await step(
            clone, workspace.root, "build", git_env, shown=clone.replace(project.repo_url, url)
        )
        if failed(outcome):
            return self._stopped(outcome, project.timeout_seconds) or _Verdict(
                RunStatus.ERROR, f"Checkout of {url} failed.", "checkout_failed"
            )
        outcome = await step(
            ws.has_commit_command(run.commit_sha), workspace.source, "build", git_env
        )
        if failed(outcome):
            return self._stopped(outcome, project.timeout_seconds) or _Verdict(
                RunStatus.ERROR, f"Commit {run.commit_sha} not found in {url}.", "commit_not_found"
            )
        outcome = await step(
            ws.checkout_command(run.commit_sha), workspace.source, "build", git_env
        )
        if failed(outcome):
            return self._stopped(outcome, project.timeout_seconds) or _Verdict(
                RunStatus.ERROR, f"Checkout of commit {run.commit_sha} failed.", "checkout_failed"
            )
        if project.build_command:
            await self._progress(ProgressState.PREPARATION, "Building.")
            outcome = await step(project.build_command, workspace.source, "build", test_env)
            if failed(outcome):
                return self._stopped(outcome, project.timeout_seconds) or _Verdict(
                    RunStatus.ERROR,
                    f"Build failed with exit code {outcome.exit_code}.",
                    "build_failed",
                    outcome.exit_code,
                )
        suite = await _retrying(
            lambda: self._load_suite(project.id, run.regression_test_ids),
            f"run {run.id}: loading the regression suite",
        )
        if suite or run.regression_test_ids is not None:
            return await self._regression(project, workspace, suite, test_env, deadline, grace)
        if not project.test_command:
            return _Verdict(
                RunStatus.ERROR,
                "The project has neither a test command nor active regression tests.",
                "nothing_to_run",
            )
        await self._progress(ProgressState.TESTING, "Running tests.")
        command = ws.test_command(
            project.test_command, run.selected_tests, FAILED_TESTS_PLACEHOLDER
        )
        outcome = await step(command, workspace.source, "test_runner", test_env)
        stopped = self._stopped(outcome, project.timeout_seconds)
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

    async def _browser_run(self, browser: BrowserRun, workspace: ws.Workspace) -> _Verdict:
        settings = self.ctx.settings
        limit = settings.browser_timeout_seconds
        deadline = asyncio.get_running_loop().time() + limit
        shots = workspace.root / "screenshots"
        shots.mkdir()
        credentials = (
            unseal(self.ctx.secret_key, browser.credentials_sealed)
            if browser.credentials_sealed
            else None
        )
        document = agent_input(
            self.run_row,
            browser,
            credentials=credentials,
            screenshot_dir=shots,
            step_timeout_ms=settings.browser_step_timeout_ms,
            network=settings.browser_network.value,
        )
        input_path, output_path = workspace.root / "input.json", workspace.root / "output.json"
        # The input may hold credentials: readable by this user only, deleted after the run.
        input_path.touch(mode=0o600)
        input_path.write_text(json.dumps(document))
        extra = {"RUNPLANE_RUN_ID": str(self.run_row.id)}
        if settings.chromium_path:
            extra["RUNPLANE_CHROMIUM_PATH"] = settings.chromium_path
        env = ws.run_environment({}, extra, workspace.home)
        # Chromium puts Unix sockets in TMPDIR, and a socket path is limited to 107 bytes:
        # the workspace's own tmp can be too deep, so the browser gets a short one.
        short_tmp = Path(tempfile.mkdtemp(prefix=f"rp-{self.run_row.id}-", dir=SHORT_TMP))
        env["TMPDIR"] = str(short_tmp)
        command = agent_command(settings.agent_command)
        await self._progress(ProgressState.TESTING, "Running the browser agent.")
        self.log.note(f"$ {command}")

        async def sink(chunk: bytes) -> None:
            self.log.write("test_runner", chunk)

        try:
            outcome = await run_command(
                command,
                cwd=workspace.root,
                env=env,
                marker=self.marker,
                on_output=sink,
                stop=self.stop,
                deadline=deadline,
                grace_seconds=settings.grace_period_seconds,
                stdin_path=input_path,
                stdout_path=output_path,
            )
        finally:
            self.log.end_of_stream("test_runner")
            input_path.unlink(missing_ok=True)
            await asyncio.to_thread(shutil.rmtree, short_tmp, True)
        stopped = self._stopped(outcome, limit)
        if stopped:
            return stopped
        if outcome.exit_code != 0:
            return _Verdict(
                RunStatus.ERROR,
                f"The browser agent failed with exit code {outcome.exit_code}.",
                "agent_failed",
                outcome.exit_code,
            )
        try:
            result = await asyncio.to_thread(read_agent_output, output_path, shots)
        except AgentOutputInvalid as exc:
            return _Verdict(
                RunStatus.ERROR, f"The browser agent's output is unusable: {exc}.", "agent_output"
            )
        self.agent_result = result
        description = str(result.output.get("description") or "")
        if result.passed:
            return _Verdict(RunStatus.PASSED, description or "The test passed.", None, 0)
        return _Verdict(
            RunStatus.FAILED, description or "The test found problems.", "tests_failed", 0
        )

    async def _keep_screenshots(self) -> list[RunScreenshot]:
        if self.agent_result is None:
            return []
        rows = []
        for name, path in self.agent_result.screenshots.items():
            try:
                blob = await self.ctx.blobs.put_file(path)
            except OSError as exc:
                self.log.note(f"[runplane] screenshot {name} not kept: {exc}", "warning")
                continue
            rows.append(
                RunScreenshot(
                    run_id=self.run_row.id,
                    name=name,
                    sha256=blob.sha256,
                    size_bytes=blob.size_bytes,
                )
            )
        return rows

    async def _regression(
        self,
        project: Project,
        workspace: ws.Workspace,
        suite: list[regression_runs.SuiteTest],
        env: dict[str, str],
        deadline: float,
        grace: float,
    ) -> _Verdict:
        run_id = self.run_row.id
        program = (workspace.source / project.program).resolve() if project.program else None
        if program is None or not program.is_file():
            return _Verdict(
                RunStatus.ERROR,
                f"The build did not produce the program {project.program!r}.",
                "program_missing",
            )
        if not suite:
            return _Verdict(
                RunStatus.ERROR, "None of the selected regression tests exists.", "no_tests"
            )
        concurrency = (
            project.regression_concurrency
            or self.ctx.settings.regression_concurrency
            or os.cpu_count()
            or 1
        )
        await self._progress(
            ProgressState.TESTING,
            f"Running {len(suite)} regression test(s), {concurrency} at a time.",
        )
        async with unit_of_work(self.ctx.sessions) as session:
            if await store.owns(session, run_id, self.worker_id):
                await regression_runs.start_results(session, run_id, suite)
        tc = TestContext(
            program=program,
            scratch_root=workspace.root / "regression",
            env=env,
            marker=self.marker,
            stop=self.stop,
            run_deadline=deadline,
            default_timeout_seconds=project.test_timeout_seconds,
            grace_seconds=grace,
            blobs=self.ctx.blobs,
            max_output_bytes=self.ctx.settings.max_sample_bytes,
        )
        gate = asyncio.Semaphore(concurrency)

        async def one(test: regression_runs.SuiteTest) -> str | None:
            async with gate:
                outcome = await run_test(test, run_id, tc, self.log.block)
            if outcome is None:
                return None
            result, outputs = outcome
            async with unit_of_work(self.ctx.sessions) as session:
                if await store.owns(session, run_id, self.worker_id):
                    await regression_runs.record_result(session, result, outputs)
            return result.status

        finished = await asyncio.gather(*(one(t) for t in suite), return_exceptions=True)
        broken = [f for f in finished if isinstance(f, BaseException)]
        if broken:
            log.error("run %s: regression test crashed: %r", run_id, broken[0])
            return _Verdict(RunStatus.ERROR, f"Internal error: {broken[0]}", "internal_error")
        if self.stop.is_set():
            return self._stopped(
                ProcessOutcome(None, StopReason.CANCELED), project.timeout_seconds
            ) or _Verdict(RunStatus.CANCELED, "Run canceled.", "canceled")
        if asyncio.get_running_loop().time() >= deadline:
            return self._stopped(
                ProcessOutcome(None, StopReason.TIMED_OUT), project.timeout_seconds
            ) or _Verdict(RunStatus.TIMED_OUT, "Time limit exceeded.", "timeout")
        statuses = [f for f in finished if isinstance(f, str)]
        failed = sum(1 for st in statuses if st not in ("pass", "skipped"))
        if failed:
            return _Verdict(
                RunStatus.FAILED,
                f"{failed} of {len(suite)} regression test(s) failed.",
                "tests_failed",
            )
        return _Verdict(RunStatus.PASSED, f"All {len(suite)} regression test(s) passed.")

    def _stopped(self, outcome: ProcessOutcome, timeout_seconds: int) -> _Verdict | None:
        if outcome.stopped is StopReason.CANCELED:
            if self.lease_lost:
                return _Verdict(RunStatus.ERROR, "Worker lost its lease on the run.", "worker_lost")
            if self.shutdown.is_set():
                # If a cancel was also requested, _finish still ends the run canceled.
                return _Verdict(
                    RunStatus.ERROR, "The worker shut down during the run.", "worker_shutdown"
                )
            return _Verdict(
                RunStatus.CANCELED, "Run canceled; its processes were stopped.", "canceled"
            )
        if outcome.stopped is StopReason.TIMED_OUT:
            return _Verdict(
                RunStatus.TIMED_OUT,
                f"Time limit of {timeout_seconds} s exceeded; process tree killed.",
                "timeout",
            )
        return None

    def _collect(self, report: Path) -> list[RunResult]:
        if not report.is_file():
            return []
        try:
            cases = parse_report(report)
        except ReportUnreadable as exc:
            self.log.note(f"JUnit report {report.name} could not be read: {exc}", "warning")
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

    async def _keep_artifacts(self, project: Project, workspace: ws.Workspace) -> None:
        """Store the files matching the project's ``artifact_paths`` (bounded in count/size)."""
        if not project.artifact_paths:
            return
        found = await asyncio.to_thread(
            ws.find_artifacts, workspace.source, project.artifact_paths, MAX_ARTIFACTS + 1
        )
        if len(found) > MAX_ARTIFACTS:
            self.log.note(
                f"[runplane] only the first {MAX_ARTIFACTS} artifacts were kept", "warning"
            )
        rows = []
        for name, path in found[:MAX_ARTIFACTS]:
            try:
                if path.stat().st_size > self.ctx.settings.max_sample_bytes:
                    self.log.note(f"[runplane] artifact {name} is too large; not kept", "warning")
                    continue
                blob = await self.ctx.blobs.put_file(path)
            except OSError as exc:
                # A missing or unreadable artifact must not change the run's verdict.
                self.log.note(f"[runplane] artifact {name} not kept: {exc}", "warning")
                continue
            rows.append(
                RunArtifact(
                    run_id=self.run_row.id,
                    path=name[:500],
                    sha256=blob.sha256,
                    size_bytes=blob.size_bytes,
                )
            )
        async with unit_of_work(self.ctx.sessions) as session:
            if await store.owns(session, self.run_row.id, self.worker_id):
                await result_store.add_artifacts(session, rows)

    async def _load_suite(
        self, project_id: int, selection: list[int] | None
    ) -> list[regression_runs.SuiteTest]:
        async with unit_of_work(self.ctx.reads) as session:
            return await regression_runs.load_suite(session, project_id, selection)

    async def _progress(self, state: ProgressState, message: str) -> None:
        self.log.note(f"[runplane] {message}")
        try:
            async with unit_of_work(self.ctx.sessions) as session:
                if await store.owns(session, self.run_row.id, self.worker_id):
                    await store.add_progress(session, self.run_row.id, state.value, message)
        except Exception:
            # A progress row is information; a database blip must not fail a healthy run
            # (the lease and the final verdict have retries of their own).
            log.exception("run %s: progress row not written", self.run_row.id)

    async def _finish(
        self, verdict: _Verdict, results: list[RunResult], screenshots: list[RunScreenshot]
    ) -> RunStatus | None:
        level = "info" if verdict.status is RunStatus.PASSED else "warning"
        self.log.note(f"[runplane] {verdict.message}", level)
        try:
            await self.log.close()
        except Exception:
            log.exception("run %s: final log flush failed", self.run_row.id)
        for attempt in range(FINISH_ATTEMPTS):
            try:
                return await self._write_verdict(verdict, results, screenshots)
            except _LostRun:
                log.warning("run %s: not ours any more; verdict dropped", self.run_row.id)
                return None
            except Exception:
                log.exception(
                    "run %s: writing the verdict failed (attempt %d)", self.run_row.id, attempt + 1
                )
                await asyncio.sleep(0.5 * 2**attempt)
        # The lease runs out and the reaper ends the run as worker_lost.
        return None

    async def _write_verdict(
        self, verdict: _Verdict, results: list[RunResult], screenshots: list[RunScreenshot]
    ) -> RunStatus:
        run_id = self.run_row.id
        now = utcnow()
        outcome: dict[str, Any] = {
            "completed_at": now,
            "exit_code": verdict.exit_code,
            "lease_expires_at": None,
        }
        async with unit_of_work(self.ctx.sessions) as session:
            done: Run | None = None
            if verdict.status is not RunStatus.CANCELED:
                done = await store.transition(
                    session,
                    run_id,
                    verdict.status,
                    EventSpec(verdict.message, self.worker_id),
                    expected={RunStatus.RUNNING},
                    owner=self.worker_id,
                    reason=verdict.reason,
                    **outcome,
                )
            if done is None:
                # Either we were stopped by a cancel, or a cancel raced our natural
                # finish: a requested cancel always ends as canceled.
                message = (
                    verdict.message
                    if verdict.status is RunStatus.CANCELED
                    else "Run canceled while it was finishing."
                )
                done = await store.transition(
                    session,
                    run_id,
                    RunStatus.CANCELED,
                    EventSpec(message, self.worker_id),
                    expected={RunStatus.CANCELING},
                    owner=self.worker_id,
                    **outcome,
                )
            if done is None:
                raise _LostRun
            if results:
                await result_store.replace_results(session, run_id, results)
            if self.browser is not None:
                await self._write_browser_outcome(session, RunStatus(done.status), verdict)
                if screenshots:
                    await browser_store.add_screenshots(session, screenshots)
            return RunStatus(done.status)

    async def _write_browser_outcome(
        self, session: AsyncSession, status: RunStatus, verdict: _Verdict
    ) -> None:
        broke = status in (RunStatus.ERROR, RunStatus.TIMED_OUT)
        await browser_store.save_outcome(
            session,
            self.run_row.id,
            output=self.agent_result.output if self.agent_result and not broke else None,
            error_code=(verdict.reason or "error") if broke else None,
            error_message=verdict.message if broke else None,
        )

    def lose_lease(self) -> None:
        self.lease_lost = True
        self.stop.set()

    async def _watch_shutdown(self) -> None:
        stopper = asyncio.create_task(self.shutdown.wait())
        finisher = asyncio.create_task(self.done.wait())
        await asyncio.wait({stopper, finisher}, return_when=asyncio.FIRST_COMPLETED)
        if self.shutdown.is_set():
            self.stop.set()
        for task in (stopper, finisher):
            task.cancel()
        await asyncio.gather(stopper, finisher, return_exceptions=True)


async def _retrying(call: Callable[[], Awaitable[T]], what: str, attempts: int = 4) -> T:
    """``call()``, retried with backoff (0.5, 1, 2 s) through a short database outage."""
    for attempt in range(attempts - 1):
        try:
            return await call()
        except (OSError, SQLAlchemyError):
            log.warning("%s failed (attempt %d); retrying", what, attempt + 1, exc_info=True)
            await asyncio.sleep(0.5 * 2**attempt)
    return await call()
