"""Browser runs: prompt runs, stored-test runs, group batches, batch cancel and rerun.

A browser run is an ordinary run (same table, same state machine, same workers)
with a ``BrowserRun`` row saying what the browser agent executes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.errors import (
    BatchNotFound,
    Conflict,
    GroupNotFound,
    InvalidInput,
    RunNotFound,
    ScreenshotNotFound,
    WebTestNotFound,
)
from runplane.domain.permissions import Action
from runplane.domain.status import TERMINAL, RunStatus
from runplane.domain.types import Principal
from runplane.services import runs as run_service
from runplane.services import web_suite as web_suite_rules
from runplane.services import webhooks
from runplane.services.context import Context
from runplane.services.policy import actor_name, ensure_allowed
from runplane.services.sealing import seal
from runplane.services.usage import ensure_within_daily_limit
from runplane.store import browser_runs as store
from runplane.store import runs as run_store
from runplane.store import web_suite
from runplane.store import webhooks as webhook_store
from runplane.store.browser_runs import BrowserRunFilter
from runplane.store.database import unit_of_work
from runplane.store.models import (
    BrowserRun,
    Run,
    RunBatch,
    RunScreenshot,
    WebhookDelivery,
    WebProject,
    WebTest,
)
from runplane.store.runs import EventSpec

PROMPT_REPOSITORY = "web/prompt"
WEB_PLATFORM = "web"


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class BrowserRunView:
    """A browser run with everything its dialect shows."""

    run: Run
    browser: BrowserRun
    webhook: WebhookDelivery | None = None


@dataclass(frozen=True, slots=True)
class BatchStart:
    batch: RunBatch
    runs: list[Run]
    skipped_test_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchCancel:
    batch_id: str
    cancelled: list[str]
    already_finished: list[str]
    failed: list[str]


def _run_row(actor: Principal | None, repository: str) -> Run:
    return Run(
        user_id=actor.user_id if actor else None,
        repository=repository,
        branch=None,
        commit_sha="",
        platform=WEB_PLATFORM,
        triggered_by=actor_name(actor),
    )


def _web_only(platform: str | None) -> None:
    if platform is not None and platform not in web_suite_rules.SUPPORTED_PLATFORMS:
        raise InvalidInput(
            f"platform: {platform} runs are not supported (web only)",
            {"platform": "Only web runs are supported."},
        )


def _checked_target(url: str | None) -> str | None:
    """The browser opens it: only web pages, never ``file:`` or other local schemes."""
    if url is None:
        return None
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput("targetUrl: Must be an http(s) URL", {"targetUrl": "http(s) only."})
    return url


async def _checked_webhook(ctx: Context, url: str | None) -> str | None:
    if url is None:
        return None
    return await webhooks.check_webhook_url(url, allow_private=ctx.settings.webhook_allow_private)


async def _insert(
    session: AsyncSession,
    actor: Principal | None,
    run: Run,
    browser: BrowserRun,
    webhook_url: str | None,
    note: str,
) -> Run:
    await store.insert(session, run, browser, EventSpec(note, actor_name(actor)))
    if webhook_url is not None:
        await webhook_store.create_delivery(session, run.id, webhook_url)
    return run


async def submit_prompt(
    ctx: Context,
    actor: Principal | None,
    prompt: str,
    *,
    webhook_url: str | None = None,
    credentials: Sequence[Credential] = (),
) -> Run:
    """Queue a prompt run: the agent executes the prompt's lines."""
    ensure_allowed(actor, Action.SUBMIT_RUN)
    if not prompt.strip():
        raise InvalidInput("prompt: Required", {"prompt": "Must not be blank."})
    hook = await _checked_webhook(ctx, webhook_url)
    browser = BrowserRun(
        kind="chat",
        source="api",
        input={"prompt": prompt},
        credentials_sealed=(
            seal(
                ctx.secret_key,
                [{"username": c.username, "password": c.password} for c in credentials],
            )
            if credentials
            else None
        ),
    )
    async with unit_of_work(ctx.sessions) as session:
        await ensure_within_daily_limit(ctx, session, actor)
        run = await _insert(
            session,
            actor,
            _run_row(actor, PROMPT_REPOSITORY),
            browser,
            hook,
            f"Prompt run queued by {actor_name(actor)}.",
        )
    ctx.signals.run_queued(run.id)
    return run


def _test_browser_row(
    test: WebTest, project: WebProject, target_url: str | None, source: str
) -> BrowserRun:
    return BrowserRun(
        kind="test",
        source=source,
        input={"testId": test.id, "title": test.title, "steps": test.steps},
        target_url=target_url or project.url,
        project_id=project.id,
        test_id=test.id,
    )


async def _project_of(session: AsyncSession, test: WebTest) -> WebProject:
    project = await web_suite.get_project(session, test.project_id)
    if project is None:  # pragma: no cover - the foreign key cascades
        raise WebTestNotFound(test.id)
    return project


async def submit_test(
    ctx: Context,
    actor: Principal | None,
    test_id: str,
    *,
    target_url: str | None = None,
    webhook_url: str | None = None,
    platform: str | None = None,
) -> Run:
    """Queue one run of a stored test."""
    ensure_allowed(actor, Action.SUBMIT_RUN)
    _web_only(platform)
    target_url = _checked_target(target_url)
    hook = await _checked_webhook(ctx, webhook_url)
    async with unit_of_work(ctx.sessions) as session:
        test = await web_suite.get_test(session, test_id)
        if test is None:
            raise WebTestNotFound(test_id)
        if not test.enabled:
            raise Conflict(f"Test {test_id} is disabled; enable it to run it.")
        project = await _project_of(session, test)
        await ensure_within_daily_limit(ctx, session, actor)
        run = await _insert(
            session,
            actor,
            _run_row(actor, f"web/{project.short_id}"),
            _test_browser_row(test, project, target_url, "structured_test"),
            hook,
            f"Run of test {test.title!r} queued by {actor_name(actor)}.",
        )
    ctx.signals.run_queued(run.id)
    return run


async def _start_batch(
    ctx: Context,
    session: AsyncSession,
    actor: Principal | None,
    batch: RunBatch,
    tests: Sequence[WebTest],
    project: WebProject,
) -> list[Run]:
    await ensure_within_daily_limit(ctx, session, actor, len(tests))
    await store.add_batch(session, batch)
    started = []
    for position, test in enumerate(tests):
        browser = _test_browser_row(test, project, batch.target_url, "structured_test")
        browser.batch_id = batch.id
        browser.batch_position = position
        started.append(
            await _insert(
                session,
                actor,
                _run_row(actor, f"web/{project.short_id}"),
                browser,
                None,
                f"Run of test {test.title!r} queued in batch {batch.id} by {actor_name(actor)}.",
            )
        )
    return started


async def submit_group(
    ctx: Context,
    actor: Principal | None,
    group_id: str,
    *,
    target_url: str | None = None,
    platform: str | None = None,
) -> BatchStart:
    """One run per enabled test of the group, sharing a new batch."""
    ensure_allowed(actor, Action.SUBMIT_RUN)
    _web_only(platform)
    target_url = _checked_target(target_url)
    async with unit_of_work(ctx.sessions) as session:
        group = await web_suite.get_group(session, group_id)
        if group is None:
            raise GroupNotFound(group_id)
        project = await web_suite.get_project(session, group.project_id)
        if project is None:  # pragma: no cover - the foreign key cascades
            raise GroupNotFound(group_id)
        tests = [t for t in await web_suite.group_tests(session, group_id) if t.enabled]
        # The prep test (sign-in, seed data...) runs first; sorted() keeps the others' order.
        tests = sorted(tests, key=lambda t: t.id != group.prep_test_id)
        if not tests:
            raise InvalidInput(
                "groupId: The group has no enabled tests to run.", {"groupId": "No tests."}
            )
        batch = RunBatch(
            group_id=group.id,
            project_id=project.id,
            sequential=group.run_mode == "sequential",
            prep_first=len(tests) > 1 and tests[0].id == group.prep_test_id,
            target_url=target_url,
        )
        started = await _start_batch(ctx, session, actor, batch, tests, project)
    for run in started:
        ctx.signals.run_queued(run.id)
    return BatchStart(batch, started)


async def rerun_batch(ctx: Context, actor: Principal | None, batch_id: str) -> BatchStart:
    """A new batch from the runnable tests of ``batch_id`` (deleted/disabled ones skipped)."""
    ensure_allowed(actor, Action.RETRY_RUN)
    async with unit_of_work(ctx.sessions) as session:
        source = await store.get_batch(session, batch_id)
        if source is None:
            raise BatchNotFound(batch_id)
        tests: list[WebTest] = []
        skipped: list[str] = []
        members = await store.batch_runs(session, batch_id)
        for _run, browser in members:
            # A deleted test's link is gone (SET NULL); its id is still in the run's input.
            test_id = browser.test_id or str(browser.input.get("testId") or "")
            test = await web_suite.get_test(session, browser.test_id) if browser.test_id else None
            if test is None or not test.enabled:
                if test_id and test_id not in skipped:
                    skipped.append(test_id)
                continue
            if all(t.id != test.id for t in tests):
                tests.append(test)
        project = (
            await web_suite.get_project(session, source.project_id) if source.project_id else None
        )
        if not tests or project is None:
            raise Conflict("Batch cannot be re-run: none of its tests can run any more.")
        led_by = members[0][1].test_id if members else None
        batch = RunBatch(
            group_id=source.group_id,
            project_id=project.id,
            source_batch_id=source.id,
            sequential=source.sequential,
            # Still led by the prep test only if that test is still runnable.
            prep_first=source.prep_first and len(tests) > 1 and tests[0].id == led_by,
            target_url=source.target_url,
        )
        started = await _start_batch(ctx, session, actor, batch, tests, project)
    for run in started:
        ctx.signals.run_queued(run.id)
    return BatchStart(batch, started, skipped)


async def cancel_batch(ctx: Context, actor: Principal | None, batch_id: str) -> BatchCancel:
    """Cancel every queued or running run of the batch; finished ones are left alone."""
    ensure_allowed(actor, Action.CANCEL_RUN)
    async with unit_of_work(ctx.reads) as session:
        if await store.get_batch(session, batch_id) is None:
            raise BatchNotFound(batch_id)
        members = await store.batch_runs(session, batch_id)
    finished = [r.uuid for r, _ in members if RunStatus(r.status) in TERMINAL]
    live = [r for r, _ in members if RunStatus(r.status) not in TERMINAL]

    async def one(run: Run) -> tuple[Run, run_service.CancelOutcome | None]:
        try:
            return run, await run_service.cancel(ctx, actor, run.id)
        except (RunNotFound, Conflict):
            return run, None

    cancelled, failed = [], []
    for run, outcome in await asyncio.gather(*(one(r) for r in live)):
        if outcome is None:
            failed.append(run.uuid)
        elif outcome.outcome is run_service.Outcome.NO_OP:
            # It finished on its own before the cancel reached it.
            finished.append(run.uuid)
        else:
            cancelled.append(run.uuid)
    return BatchCancel(batch_id, cancelled, finished, failed)


async def _views(
    session: AsyncSession, rows: Sequence[tuple[Run, BrowserRun]]
) -> list[BrowserRunView]:
    hooks = await webhook_store.deliveries_for_runs(session, [r.id for r, _ in rows])
    return [BrowserRunView(r, b, hooks.get(r.id)) for r, b in rows]


async def get(ctx: Context, run_uuid: str) -> BrowserRunView:
    async with unit_of_work(ctx.reads) as session:
        found = await store.get_by_uuid(session, run_uuid)
        if found is None:
            raise RunNotFound(run_uuid)
        return (await _views(session, [found]))[0]


async def get_many(ctx: Context, run_ids: Sequence[int]) -> list[BrowserRunView]:
    """Views of ``run_ids`` that are browser runs, in the given order."""
    async with unit_of_work(ctx.reads) as session:
        rows = []
        for run_id in run_ids:
            run, browser = await session.get(Run, run_id), await store.get(session, run_id)
            if run is not None and browser is not None:
                rows.append((run, browser))
        return await _views(session, rows)


async def list_runs(
    ctx: Context, flt: BrowserRunFilter, *, before_id: int | None, limit: int
) -> tuple[list[BrowserRunView], int | None]:
    """A page, newest first, and the id to continue before (None on the last page)."""
    async with unit_of_work(ctx.reads) as session:
        rows = await store.list_page(session, flt, before_id=before_id, limit=limit + 1)
        views = await _views(session, rows[:limit])
    more = len(rows) > limit
    return views, (views[-1].run.id if more and views else None)


async def wait_until_finished(ctx: Context, run_id: int, seconds: float) -> bool:
    """Whether the run reached a terminal status within ``seconds`` (polling the truth)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    delay = 0.05
    while True:
        async with unit_of_work(ctx.reads) as session:
            status = await run_store.get_status(session, run_id)
        if status is None or status in TERMINAL:
            return status is not None
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 1.5, 0.5)


async def screenshot(ctx: Context, run_uuid: str, name: str) -> RunScreenshot:
    async with unit_of_work(ctx.reads) as session:
        found = await store.get_by_uuid(session, run_uuid)
        if found is None:
            raise RunNotFound(run_uuid)
        shot = await store.get_screenshot(session, found[0].id, name)
    if shot is None:
        raise ScreenshotNotFound(name)
    return shot
