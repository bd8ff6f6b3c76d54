"""The compare-and-set against real databases: one contract, run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import select

from runplane.domain.status import TRANSITIONS, RunStatus, is_allowed
from runplane.runtime import Runtime
from runplane.services.context import Context
from runplane.store import runs as store
from runplane.store.database import unit_of_work
from runplane.store.models import Run, RunEvent
from runplane.store.runs import EventSpec
from tests.conftest import make_settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_ctx(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Context]:
    overrides = {}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("pg_url")
    rt = await Runtime.open(make_settings(tmp_path / "d", **overrides), run_workers=False)
    try:
        yield rt.ctx
    finally:
        await rt.close()


async def _new_run(ctx: Context) -> int:
    async with unit_of_work(ctx.sessions) as session:
        run = Run(repository="o/r", commit_sha="a" * 40, platform="linux")
        await store.insert_run(session, run, EventSpec("queued"))
        return run.id


async def _force(ctx: Context, run_id: int, path: list[RunStatus]) -> None:
    for target in path:
        async with unit_of_work(ctx.sessions) as session:
            assert await store.transition(session, run_id, target, EventSpec("t")) is not None


# Shortest path from queued to each status, through allowed edges.
PATHS: dict[RunStatus, list[RunStatus]] = {
    RunStatus.QUEUED: [],
    RunStatus.RUNNING: [RunStatus.RUNNING],
    RunStatus.CANCELING: [RunStatus.RUNNING, RunStatus.CANCELING],
    RunStatus.PASSED: [RunStatus.RUNNING, RunStatus.PASSED],
    RunStatus.FAILED: [RunStatus.RUNNING, RunStatus.FAILED],
    RunStatus.ERROR: [RunStatus.RUNNING, RunStatus.ERROR],
    RunStatus.TIMED_OUT: [RunStatus.RUNNING, RunStatus.TIMED_OUT],
    RunStatus.CANCELED: [RunStatus.CANCELED],
}


async def test_cas_accepts_exactly_the_table(store_ctx: Context) -> None:
    for source in RunStatus:
        for target in RunStatus:
            run_id = await _new_run(store_ctx)
            await _force(store_ctx, run_id, PATHS[source])
            async with unit_of_work(store_ctx.sessions) as session:
                done = await store.transition(session, run_id, target, EventSpec("x"))
                status = await store.get_status(session, run_id)
            assert (done is not None) == is_allowed(source, target), (source, target)
            assert status == (target if done is not None else source)


async def test_status_change_writes_its_event_in_the_same_transaction(
    store_ctx: Context,
) -> None:
    run_id = await _new_run(store_ctx)
    with pytest.raises(RuntimeError):
        async with unit_of_work(store_ctx.sessions) as session:
            await store.transition(session, run_id, RunStatus.RUNNING, EventSpec("claimed"))
            raise RuntimeError("crash before commit")
    async with unit_of_work(store_ctx.sessions) as session:
        assert await store.get_status(session, run_id) is RunStatus.QUEUED
        events = (await session.scalars(select(RunEvent).where(RunEvent.run_id == run_id))).all()
    assert [e.message for e in events] == ["queued"]


async def test_two_claimers_one_winner(store_ctx: Context) -> None:
    run_id = await _new_run(store_ctx)

    async def claim(worker: str) -> bool:
        async with unit_of_work(store_ctx.sessions) as session:
            done = await store.transition(
                session,
                run_id,
                RunStatus.RUNNING,
                EventSpec(worker),
                expected={RunStatus.QUEUED},
                worker_id=worker,
            )
            return done is not None

    results = await asyncio.gather(*(claim(f"w{i}") for i in range(8)))
    assert sum(results) == 1


async def test_cancel_racing_a_finish_never_ends_green(store_ctx: Context) -> None:
    for _ in range(10):
        run_id = await _new_run(store_ctx)
        await _force(store_ctx, run_id, [RunStatus.RUNNING])

        async def finish(run_id: int = run_id) -> bool:
            async with unit_of_work(store_ctx.sessions) as session:
                done = await store.transition(
                    session,
                    run_id,
                    RunStatus.PASSED,
                    EventSpec("finished"),
                    expected={RunStatus.RUNNING},
                )
                return done is not None

        async def cancel(run_id: int = run_id) -> bool:
            async with unit_of_work(store_ctx.sessions) as session:
                done = await store.transition(
                    session,
                    run_id,
                    RunStatus.CANCELING,
                    EventSpec("cancel"),
                    expected={RunStatus.RUNNING},
                )
                return done is not None

        finished, canceled = await asyncio.gather(finish(), cancel())
        assert finished != canceled  # exactly one wins
        async with unit_of_work(store_ctx.sessions) as session:
            status = await store.get_status(session, run_id)
        assert status is (RunStatus.PASSED if finished else RunStatus.CANCELING)


async def test_owner_condition_blocks_a_reaped_worker(store_ctx: Context) -> None:
    run_id = await _new_run(store_ctx)
    async with unit_of_work(store_ctx.sessions) as session:
        await store.transition(session, run_id, RunStatus.RUNNING, EventSpec("c"), worker_id="w1")
    async with unit_of_work(store_ctx.sessions) as session:
        stolen = await store.transition(
            session, run_id, RunStatus.PASSED, EventSpec("x"), owner="w2"
        )
        assert stolen is None
        mine = await store.transition(session, run_id, RunStatus.PASSED, EventSpec("x"), owner="w1")
        assert mine is not None


def test_transition_refuses_to_set_other_columns() -> None:
    with pytest.raises(ValueError):
        asyncio.run(
            store.transition(
                None,  # type: ignore[arg-type]
                1,
                RunStatus.RUNNING,
                EventSpec("x"),
                repository="evil",
            )
        )


class RunTransitions(RuleBasedStateMachine):
    """Random transition attempts against SQLite; the stored status follows the table."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.rt = self.loop.run_until_complete(
            Runtime.open(make_settings(Path(self.tmp.name)), run_workers=False)
        )
        self.run_id = self.loop.run_until_complete(_new_run(self.rt.ctx))
        self.model = RunStatus.QUEUED

    @rule(status=st.sampled_from(list(RunStatus)))
    def attempt(self, status: RunStatus) -> None:
        target = status

        async def go() -> bool:
            async with unit_of_work(self.rt.ctx.sessions) as session:
                return (
                    await store.transition(session, self.run_id, target, EventSpec("h")) is not None
                )

        accepted = self.loop.run_until_complete(go())
        assert accepted == (target in TRANSITIONS[self.model])
        if accepted:
            self.model = target

    @invariant()
    def stored_status_matches_model(self) -> None:
        async def read() -> RunStatus | None:
            async with unit_of_work(self.rt.ctx.sessions) as session:
                return await store.get_status(session, self.run_id)

        assert self.loop.run_until_complete(read()) is self.model

    def teardown(self) -> None:
        self.loop.run_until_complete(self.rt.close())
        self.loop.close()
        self.tmp.cleanup()


RunTransitions.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRunTransitions = RunTransitions.TestCase
