"""Running regression tests: a program on sample files, outputs compared with baselines.

Each test runs in its own scratch directory (``input.<ext>``, the sample's extra files
beside it, and ``out/``) with its own
time limit; several run at once. Actual outputs are stored content-addressed, so an
identical output always has the same hash and can be fetched, diffed or approved.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runplane.execution.process_tree import StopReason, run_command
from runplane.store.blobs import BlobStore
from runplane.store.models import OutputResult, RegressionResult
from runplane.store.regression_runs import SuiteTest

#: Output captured per test (stderr, or stdout+stderr) and copied to the run log.
MAX_TEST_OUTPUT_BYTES = 64 * 1024
STDOUT_FILENAME = "stdout"


@dataclass(frozen=True, slots=True)
class TestContext:
    program: Path
    scratch_root: Path
    env: dict[str, str]
    marker: str
    stop: asyncio.Event
    run_deadline: float
    default_timeout_seconds: int
    grace_seconds: float
    blobs: BlobStore
    #: An output larger than this is not stored (the test fails).
    max_output_bytes: int


def render_command(template: str, values: dict[str, str]) -> str:
    """Replace ``{program}``, ``{input}``, ``{output_dir}``, ``{sample_name}`` (shell-quoted)."""
    command = template
    for key, value in values.items():
        command = command.replace("{" + key + "}", shlex.quote(value))
    return command


def _inside(base: Path, name: str) -> Path | None:
    path = (base / name).resolve()
    return path if path.is_relative_to(base.resolve()) else None


async def run_test(
    test: SuiteTest, run_id: int, tc: TestContext, log: Callable[[str], None]
) -> tuple[RegressionResult, list[OutputResult]] | None:
    """Run one test; None when the run was stopped before the test could finish.

    The scratch directory goes as soon as the outputs are stored, so a long suite
    never holds more than ``concurrency`` copies of its samples on disk.
    """
    if tc.stop.is_set():
        return None
    scratch = tc.scratch_root / str(test.id)
    try:
        return await _run_in(scratch, test, run_id, tc, log)
    except OSError as exc:
        # A broken test (unreadable sample, impossible file name) fails alone.
        log(f"[test {test.id}] could not run: {exc}")
        return _result(run_id, test, "fail", None, None, None, f"Could not run: {exc}"), []
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


def _result(
    run_id: int,
    test: SuiteTest,
    status: str,
    exit_code: int | None,
    runtime_ms: int | None,
    command: str | None,
    message: str | None,
) -> RegressionResult:
    return RegressionResult(
        run_id=run_id,
        regression_test_id=test.id,
        sample_id=test.sample_id,
        status=status,
        exit_code=exit_code,
        expected_exit_code=test.expected_exit_code,
        runtime_ms=runtime_ms,
        command=command[:500] if command else None,
        message=message[:500] if message else None,
    )


async def _run_in(
    scratch: Path, test: SuiteTest, run_id: int, tc: TestContext, log: Callable[[str], None]
) -> tuple[RegressionResult, list[OutputResult]] | None:
    out_dir = scratch / "out"
    out_dir.mkdir(parents=True)
    input_path = scratch / f"input{test.sample_extension and '.' + test.sample_extension}"
    await tc.blobs.copy_to(test.sample_sha256, input_path)
    for name, sha in test.extra_files:
        target = _inside(scratch, name)
        if target is not None and target != input_path and not target.exists():
            await tc.blobs.copy_to(sha, target)
    command = render_command(
        test.command,
        {
            "program": str(tc.program),
            "input": str(input_path),
            "output_dir": str(out_dir),
            "sample_name": test.sample_name,
        },
    )
    captured = bytearray()

    async def sink(chunk: bytes) -> None:
        room = MAX_TEST_OUTPUT_BYTES - len(captured)
        if room > 0:
            captured.extend(chunk[:room])

    loop = asyncio.get_running_loop()
    limit = test.timeout_seconds or tc.default_timeout_seconds
    deadline = min(tc.run_deadline, loop.time() + limit)
    started = time.monotonic()
    outcome = await run_command(
        command,
        cwd=scratch,
        env={**tc.env, "RUNPLANE_REGRESSION_TEST_ID": str(test.id)},
        marker=tc.marker,
        on_output=sink,
        stop=tc.stop,
        deadline=deadline,
        grace_seconds=tc.grace_seconds,
        stdin_path=input_path if test.input_type == "stdin" else None,
        stdout_path=out_dir / STDOUT_FILENAME if test.output_type == "stdout" else None,
    )
    runtime_ms = int((time.monotonic() - started) * 1000)
    text = captured.decode("utf-8", errors="replace").rstrip()
    log(
        f"[test {test.id} {test.sample_name}] $ {command}\n"
        + (text + "\n" if text else "")
        + f"[test {test.id}] exit code {outcome.exit_code}, {runtime_ms} ms"
    )
    if outcome.stopped is StopReason.CANCELED:
        return None
    if outcome.stopped is StopReason.TIMED_OUT and loop.time() >= tc.run_deadline:
        return None  # the whole run timed out: the test did not get to finish

    outputs: list[OutputResult] = []
    missing = mismatch = False
    for spec in test.outputs:
        if spec.ignore:
            continue
        path = _inside(out_dir, spec.filename)
        actual_hash = actual_size = None
        too_large = False
        if path is not None and path.is_file():
            too_large = path.stat().st_size > tc.max_output_bytes
            if not too_large:
                blob = await tc.blobs.put_file(path)
                actual_hash, actual_size = blob.sha256, blob.size_bytes
        expected_hash = spec.expected_hash
        if too_large:
            status, mismatch = "diff_mismatch", True
        elif actual_hash is None:
            status, missing = "missing_output", True
        elif spec.expected_hash is None and not spec.accepted:
            status, mismatch = "missing_expected", True
        elif actual_hash in spec.accepted:
            # Matched the baseline or a variant: "expected" is what it matched.
            status, expected_hash = "match", actual_hash
        else:
            status, mismatch = "diff_mismatch", True
        outputs.append(
            OutputResult(
                run_id=run_id,
                regression_test_id=test.id,
                output_id=spec.output_id,
                filename=spec.filename,
                status=status,
                expected_hash=expected_hash,
                actual_hash=actual_hash,
                actual_size=actual_size,
            )
        )
    timed_out = outcome.stopped is StopReason.TIMED_OUT
    # The contract's order: a missing output is reported before any other failure.
    message: str | None
    if missing:
        status, message = "missing_output", "An expected output file was not produced."
        if timed_out:
            message = f"Time limit of {limit} s exceeded before the outputs were written."
    elif timed_out:
        status, message = "fail", f"Time limit of {limit} s exceeded."
    elif outcome.exit_code != test.expected_exit_code:
        status = "fail"
        message = f"Exit code {outcome.exit_code}, expected {test.expected_exit_code}."
    elif mismatch:
        status, message = "fail", "Output differs from the approved baseline."
    else:
        status, message = "pass", None
    return _result(run_id, test, status, outcome.exit_code, runtime_ms, command, message), outputs
