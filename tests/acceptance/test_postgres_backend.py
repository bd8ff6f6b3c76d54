"""The same run lifecycle on PostgreSQL: services and schema are backend-agnostic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.acceptance import test_runs_api as lifecycle
from tests.conftest import Api, DemoRepo, _api, make_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
async def api_pg(tmp_path: Path, pg_url: str) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path / "data", database_url=pg_url)
    async for value in _api(settings, run_workers=True):
        yield value


async def test_run_to_fail_with_results(api_pg: Api, demo_repo: DemoRepo) -> None:
    await lifecycle.test_failing_commit_runs_to_fail_with_results_logs_and_progress(
        api_pg, demo_repo
    )


async def test_cancel_running_run(api_pg: Api, tmp_path: Path) -> None:
    await lifecycle.test_cancel_running_run_kills_its_process_tree(api_pg, tmp_path)


async def test_retry_and_failed_only(api_pg: Api, demo_repo: DemoRepo) -> None:
    await lifecycle.test_failed_only_retry_runs_just_the_failed_tests(api_pg, demo_repo)


async def test_idempotency_and_listing(api_pg: Api, demo_repo: DemoRepo) -> None:
    await lifecycle.test_idempotency_key(api_pg, demo_repo)


async def test_restart(api_pg: Api, demo_repo: DemoRepo) -> None:
    await lifecycle.test_restart_reuses_the_id_and_wipes_results(api_pg, demo_repo)


async def test_regression_suite(api_pg: Api, tmp_path: Path) -> None:
    from tests.acceptance import test_regression_runs as regression

    repo, head = regression._git_repo(tmp_path)
    project_id = await api_pg.project(
        repo,
        repository="acme/tool",
        test_command=None,
        program="tool.py",
        build_command="chmod +x tool.py",
        env={"PID_DIR": str(tmp_path)},
    )
    await regression.test_regression_run_statuses_summary_diff_and_approval(
        api_pg, (project_id, head)
    )


@pytest.fixture
async def api_pg_web(tmp_path: Path, pg_url: str) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path / "web",
        database_url=pg_url,
        webhook_allow_private=True,
        webhook_backoff_seconds=0.1,
        webhook_poll_seconds=0.1,
        browser_step_timeout_ms=3000,
    )
    async for value in _api(settings, run_workers=True):
        yield value


@pytest.mark.usefixtures("chromium")
async def test_browser_run_and_signed_webhook(api_pg_web: Api, site: str) -> None:
    from tests.acceptance import test_ta_browser_runs as browser

    await browser.test_a_webhook_is_delivered_signed(api_pg_web, site)


@pytest.mark.usefixtures("chromium")
async def test_sequential_batch_cancel_and_rerun(api_pg_web: Api, site: str) -> None:
    from tests.acceptance import test_ta_browser_runs as browser

    await browser.test_group_batch_sequential_cancel_and_rerun(api_pg_web, site)


async def test_tester_army_cursor_list(tmp_path: Path, pg_url: str) -> None:
    from tests.acceptance import test_ta_runs_api as ta

    settings = make_settings(tmp_path / "list", database_url=pg_url)
    async for api in _api(settings, run_workers=False):
        await ta.test_list_is_a_cursor_page_stable_under_inserts(api)
        await ta.test_cancel_only_cancels_queued_runs(api)


async def test_project_parallel_limit(api_pg: Api, tmp_path: Path) -> None:
    from tests.acceptance import test_project_concurrency as limits

    await limits.test_runs_beyond_the_limit_wait_and_start_in_order(api_pg, tmp_path)
