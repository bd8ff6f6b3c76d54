"""Spawning a command in its own session and killing its whole tree.

Each command runs in a new session (so a new process group). Stopping it sends
SIGTERM to the group and to every descendant seen so far, waits a grace period,
then SIGKILLs whatever is left. Descendants are snapshotted while the command
runs because a process that calls ``setsid()`` leaves the group, and one whose
parent exited is re-parented away from us: neither could be found afterwards.
After a natural exit the same sweep runs, so nothing a test left behind survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psutil

READ_CHUNK_BYTES = 65536
SNAPSHOT_INTERVAL_SECONDS = 0.25


class StopReason(StrEnum):
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    exit_code: int | None
    stopped: StopReason | None


class _Tree:
    """Every process seen in one command's tree, keyed by (pid, create_time)."""

    def __init__(self, leader: int) -> None:
        self.leader = leader
        self.seen: dict[int, psutil.Process] = {}

    def snapshot(self) -> None:
        try:
            root = psutil.Process(self.leader)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for proc in procs:
            self.seen.setdefault(proc.pid, proc)
        # Also anything still in the leader's process group (children of exited parents).
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) == self.leader:
                    self.seen.setdefault(proc.pid, proc)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue

    def alive(self) -> list[psutil.Process]:
        out = []
        for proc in self.seen.values():
            try:
                # is_running() also checks create_time, so a recycled pid is never hit.
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(proc)
            except psutil.Error:
                continue
        return out

    def signal_all(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.leader, sig)
        for proc in self.alive():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)

    async def kill(self, grace_seconds: float) -> None:
        self.snapshot()
        self.signal_all(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self.alive() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.alive():
            self.signal_all(signal.SIGKILL)
            for _ in range(100):
                if not self.alive():
                    break
                await asyncio.sleep(0.02)


async def run_command(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_output: Callable[[bytes], Awaitable[None]],
    stop: asyncio.Event,
    deadline: float | None,
    grace_seconds: float,
) -> ProcessOutcome:
    """Run ``command`` with ``/bin/sh -c``; stop it when ``stop`` is set or at ``deadline``.

    ``deadline`` is a ``loop.time()`` value. Output (stdout and stderr merged) is
    passed to ``on_output`` as it arrives.
    """
    loop = asyncio.get_running_loop()
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        command,
        cwd=str(cwd),
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    tree = _Tree(proc.pid)
    assert proc.stdout is not None  # invariant: we asked for a pipe

    async def pump() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(READ_CHUNK_BYTES):
            await on_output(chunk)

    reader = asyncio.create_task(pump())
    waiter = asyncio.create_task(proc.wait())
    stopper = asyncio.create_task(stop.wait())
    stopped: StopReason | None = None
    try:
        while True:
            tree.snapshot()
            timeout = SNAPSHOT_INTERVAL_SECONDS
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - loop.time()))
            done, _ = await asyncio.wait(
                {waiter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            # returncode is set as soon as the leader exits; wait() itself also waits
            # for the pipe to close, which a leftover background process holds open.
            if waiter in done or proc.returncode is not None:
                break
            if stopper in done:
                stopped = StopReason.CANCELED
                break
            if deadline is not None and loop.time() >= deadline:
                stopped = StopReason.TIMED_OUT
                break
        # Natural exit or not, the whole tree goes: leftovers must not outlive the run.
        await tree.kill(grace_seconds if stopped else 0.0)
        exit_code = await proc.wait()
        try:
            await asyncio.wait_for(reader, timeout=5)
        except TimeoutError:
            reader.cancel()
    except BaseException:
        # Our own task was cancelled (shutdown): never leave the tree behind.
        await asyncio.shield(tree.kill(0.0))
        raise
    finally:
        for task in (stopper, waiter, reader):
            if not task.done():
                task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(stopper, waiter, reader, return_exceptions=True)
    return ProcessOutcome(exit_code=None if stopped else exit_code, stopped=stopped)
