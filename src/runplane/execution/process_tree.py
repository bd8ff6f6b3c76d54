"""Spawning a command in its own session and killing its whole tree.

Each command runs in a new session (so a new process group) with a marker
variable in its environment that every descendant inherits. Stopping the tree
signals the process group *and* every process carrying the marker: a process
that called ``setsid()`` (a daemon that double-forked) has left the group, and
once its parent exited nothing links it to us but that inherited variable.
SIGTERM first, a grace period, then SIGKILL. After a natural exit the same sweep
runs without the grace period, so nothing a test started outlives its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil

READ_CHUNK_BYTES = 65536
#: How often the leader's exit is checked while a leftover holds the pipe open.
EXIT_POLL_SECONDS = 0.25
#: Environment variable whose value tags every process of one run.
MARKER_VARIABLE = "RUNPLANE_PROCESS_MARKER"


class StopReason(StrEnum):
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    exit_code: int | None
    stopped: StopReason | None


def processes_with_marker(prefix: str) -> list[psutil.Process]:
    """Live processes whose environment has ``MARKER_VARIABLE`` starting with ``prefix``."""
    needle = f"{MARKER_VARIABLE}={prefix}".encode()
    found = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        if any(item.startswith(needle) for item in environ.split(b"\0")):
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(int(entry.name)))
    return found


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            # is_running() also compares create_time, so a recycled pid is never hit.
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            continue
    return out


def _signal(procs: list[psutil.Process], pgid: int | None, sig: signal.Signals) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


async def kill_tree(marker: str, pgid: int | None, grace_seconds: float) -> None:
    """SIGTERM everything of ``marker`` (and group ``pgid``), wait, then SIGKILL the rest."""
    procs = await asyncio.to_thread(processes_with_marker, marker)
    if grace_seconds > 0:
        _signal(procs, pgid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        started = loop.time()
        while _alive(procs) and loop.time() < deadline:
            # Most trees die at once on SIGTERM: look again soon, then less often.
            await asyncio.sleep(0.01 if loop.time() - started < 0.2 else 0.05)
        # Sweep again: something may have been forked while we waited.
        procs = _alive(procs) + await asyncio.to_thread(processes_with_marker, marker)
    _signal(procs, pgid, signal.SIGKILL)
    for _ in range(100):
        if not _alive(procs):
            break
        await asyncio.sleep(0.02)


async def run_command(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    marker: str,
    on_output: Callable[[bytes], Awaitable[None]],
    stop: asyncio.Event,
    deadline: float | None,
    grace_seconds: float,
    stdin_path: Path | None = None,
    stdout_path: Path | None = None,
) -> ProcessOutcome:
    """Run ``command`` with ``/bin/sh -c``; stop it when ``stop`` is set or at ``deadline``.

    ``deadline`` is a ``loop.time()`` value. Output (stdout and stderr merged, or only
    stderr when ``stdout_path`` takes stdout) is passed to ``on_output`` as it
    arrives. ``marker`` tags the run's processes (see module doc); each command adds
    its own suffix so that ending one command never touches a sibling.
    """
    loop = asyncio.get_running_loop()
    marker = f"{marker}-{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as files:
        stdin: Any = (
            files.enter_context(open(stdin_path, "rb"))
            if stdin_path
            else asyncio.subprocess.DEVNULL
        )
        out_file = files.enter_context(open(stdout_path, "wb")) if stdout_path else None
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=str(cwd),
            env={**env, MARKER_VARIABLE: marker},
            stdin=stdin,
            stdout=out_file if out_file is not None else asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if out_file is not None else asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    stdout = proc.stderr if stdout_path else proc.stdout
    if stdout is None:  # pragma: no cover - we asked for a pipe
        raise RuntimeError("no stdout pipe")

    async def pump() -> None:
        while chunk := await stdout.read(READ_CHUNK_BYTES):
            await on_output(chunk)

    reader = asyncio.create_task(pump())
    waiter = asyncio.create_task(proc.wait())
    stopper = asyncio.create_task(stop.wait())
    stopped: StopReason | None = None
    try:
        while True:
            timeout = EXIT_POLL_SECONDS
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
        await kill_tree(marker, proc.pid, grace_seconds if stopped else 0.0)
        exit_code = await proc.wait()
        try:
            await asyncio.wait_for(reader, timeout=5)
        except TimeoutError:
            reader.cancel()
    except BaseException:
        # Our own task was cancelled: never leave the tree behind.
        await asyncio.shield(kill_tree(marker, proc.pid, 0.0))
        raise
    finally:
        for task in (stopper, waiter, reader):
            if not task.done():
                task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(stopper, waiter, reader, return_exceptions=True)
    return ProcessOutcome(exit_code=None if stopped else exit_code, stopped=stopped)
