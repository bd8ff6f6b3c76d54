"""A project's ``max_parallel_runs``: extra runs wait in the queue and start in order."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlalchemy import select

from runplane.config import Settings
from runplane.domain.permissions import Role
from runplane.store.database import unit_of_work
from runplane.store.models import Run
from tests.acceptance.test_runs_api import _head, _repo
from tests.conftest import Api, make_settings

TERMINAL = {"pass", "fail", "error", "canceled"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", workers=3)


async def test_runs_beyond_the_limit_wait_and_start_in_order(api: Api, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "sleep 0.6")
    h = await api.headers(Role.ADMIN)
    created = await api.client.post(
        "/api/v1/projects",
        headers=h,
        json={
            "repository": "o/limited",
            "repo_url": str(repo),
            "test_command": "sh t.sh",
            "max_parallel_runs": 1,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["max_parallel_runs"] == 1
    await api.project(repo, repository="o/free", test_command="sh t.sh")
    limited = [await api.submit(h, _head(repo), repository="o/limited") for _ in range(3)]
    free = await api.submit(h, _head(repo), repository="o/free")
    # A free worker takes the other project's run at once, past the waiting ones.
    other = await api.wait_for(h, free["run_id"], TERMINAL)
    done = [await api.wait_for(h, r["run_id"], TERMINAL) for r in limited]
    assert [d["status"] for d in done] == ["pass"] * 3 and other["status"] == "pass"

    async with unit_of_work(api.ctx.reads) as session:
        rows = {r.id: r for r in await session.scalars(select(Run))}
    windows = [(rows[r["run_id"]].started_at, rows[r["run_id"]].completed_at) for r in limited]
    # One at a time (the database keeps microseconds), in submission order.
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end is not None and start is not None and end <= start
    other_start = rows[free["run_id"]].started_at
    assert other_start is not None and windows[1][0] is not None
    assert other_start < windows[1][0]


async def test_the_limit_is_validated(api: Api, tmp_path: Path) -> None:
    h = await api.headers(Role.ADMIN)
    for bad in (0, -1, "two", 10001):
        response = await api.client.post(
            "/api/v1/projects",
            headers=h,
            json={
                "repository": "o/x",
                "repo_url": "/r",
                "test_command": "t",
                "max_parallel_runs": bad,
            },
        )
        assert response.status_code == 400, bad
