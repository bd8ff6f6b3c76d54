"""Real subprocess trees: stop on cancel and on the time limit, leave nothing behind."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import psutil

from runplane.execution.process_tree import ProcessOutcome, StopReason, kill_tree, run_command


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _collect(
    tmp_path: Path,
    command: str,
    *,
    stop: asyncio.Event | None = None,
    deadline: float | None = None,
    grace: float = 0.5,
) -> tuple[ProcessOutcome, bytes]:
    out = bytearray()

    async def sink(chunk: bytes) -> None:
        out.extend(chunk)

    outcome = await run_command(
        command,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        marker=f"test-{uuid.uuid4().hex}",
        on_output=sink,
        stop=stop or asyncio.Event(),
        deadline=deadline,
        grace_seconds=grace,
    )
    return outcome, bytes(out)


async def test_exit_code_and_output(tmp_path: Path) -> None:
    outcome, out = await _collect(tmp_path, "echo hello; echo oops >&2; exit 3")
    assert outcome.exit_code == 3 and outcome.stopped is None
    assert b"hello" in out and b"oops" in out


async def test_cancel_kills_sigterm_ignoring_grandchild_and_setsid_escapee(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    script = (
        f"sh -c 'trap \"\" TERM; echo $$ >> {pids}; while :; do sleep 1; done' &\n"
        f"setsid sh -c 'trap \"\" TERM; echo $$ >> {pids}; sleep 300' &\n"
        "sleep 300\n"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(_collect(tmp_path, script, stop=stop, grace=0.3))
    for _ in range(100):
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # let the supervisor snapshot the tree
    children = [int(p) for p in pids.read_text().split()]
    assert all(_alive(p) for p in children)
    started = time.monotonic()
    stop.set()
    outcome, _ = await task
    assert outcome.stopped is StopReason.CANCELED
    assert time.monotonic() - started < 5
    for pid in children:
        assert not _alive(pid)


async def test_time_limit(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    outcome, _ = await _collect(tmp_path, "sleep 30", deadline=loop.time() + 0.5)
    assert outcome.stopped is StopReason.TIMED_OUT
    assert outcome.exit_code is None


async def test_background_leftovers_die_after_a_natural_exit(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    outcome, _ = await _collect(tmp_path, f"(sleep 300 & echo $! > {pid_file}); sleep 0.6; exit 0")
    assert outcome.exit_code == 0
    assert not _alive(int(pid_file.read_text()))


async def test_output_flood_does_not_block(tmp_path: Path) -> None:
    outcome, out = await _collect(tmp_path, "head -c 5000000 /dev/zero | tr '\\0' 'x'")
    assert outcome.exit_code == 0 and len(out) == 5_000_000


async def test_double_forked_daemon_dies_with_its_run(tmp_path: Path) -> None:
    """setsid + an immediately exiting parent: only the inherited marker links it to us."""
    pid_file = tmp_path / "daemon"
    started = time.monotonic()
    outcome, _ = await _collect(
        tmp_path,
        f"sh -c 'setsid sh -c \"echo \\$\\$ > {pid_file}; exec sleep 31\" & exit 0' & "
        "sleep 0.5; echo done",
    )
    assert outcome.exit_code == 0
    assert time.monotonic() - started < 4
    assert not _alive(int(pid_file.read_text()))


async def test_kill_tree_by_marker_finds_orphans_of_a_crashed_worker(tmp_path: Path) -> None:
    marker = f"crashed-{uuid.uuid4().hex}"
    env = {"PATH": "/usr/bin:/bin", "RUNPLANE_PROCESS_MARKER": marker + "-x"}
    proc = await asyncio.create_subprocess_exec("sleep", "60", env=env, start_new_session=True)
    await asyncio.sleep(0.2)
    await kill_tree(marker, None, 0.0)
    assert await asyncio.wait_for(proc.wait(), 5) != 0
