"""What a regression run wrote: output files, diffs, baseline approval, history, artifacts."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.domain.errors import (
    NotFound,
    OutputNotFound,
    RunNotFound,
    SampleNotFound,
    Unprocessable,
)
from runplane.domain.permissions import Action
from runplane.domain.types import Principal
from runplane.services.context import Context
from runplane.services.policy import ensure_allowed
from runplane.services.samples import StoredFile
from runplane.store import logs as log_store
from runplane.store import regression_runs, suite_audit
from runplane.store import results as result_store
from runplane.store import runs as run_store
from runplane.store.database import unit_of_work
from runplane.store.models import BaselineApproval, OutputResult, RegressionResult, Run

#: Each side of a diff is read up to this size; larger files are compared by hash only.
MAX_DIFF_INPUT_BYTES = 2 * 1024 * 1024
#: The unified diff returned is cut at this size (and says so).
MAX_DIFF_BYTES = 256 * 1024


class MissingOutput(NotFound):
    """The run produced no such output."""

    resource = "output"


async def _output_result(
    session: AsyncSession, run_id: int, sample_id: int, test_id: int, output_id: int
) -> OutputResult:
    if await run_store.get_run(session, run_id) is None:
        raise RunNotFound(run_id)
    result = await regression_runs.get_result(session, run_id, test_id)
    if result is None or result.sample_id != sample_id:
        raise NotFound(
            test_id, f"Regression test {test_id} on sample {sample_id} is not part of run {run_id}."
        )
    row = await regression_runs.get_output_result(session, run_id, test_id, output_id)
    if row is None:
        raise OutputNotFound(output_id, f"Output {output_id} has no result in run {run_id}.")
    return row


async def output_file(
    ctx: Context,
    run_id: int,
    sample_id: int,
    test_id: int,
    output_id: int,
    which: Literal["expected", "actual"],
) -> StoredFile:
    async with unit_of_work(ctx.reads) as session:
        row = await _output_result(session, run_id, sample_id, test_id, output_id)
    sha = row.expected_hash if which == "expected" else row.actual_hash
    if sha is None or not await ctx.blobs.exists(sha):
        if which == "actual":
            raise MissingOutput(output_id, f"Run {run_id} produced no {row.filename}.")
        raise OutputNotFound(output_id, f"Output {output_id} had no approved baseline.")
    return StoredFile(sha, await ctx.blobs.size(sha) or 0, row.filename)


@dataclass(frozen=True, slots=True)
class Diff:
    run_id: int
    regression_id: int
    output_id: int
    filename: str
    expected_hash: str | None
    actual_hash: str | None
    identical: bool
    binary: bool
    truncated: bool
    diff: str | None
    message: str


def _unified(left: str, right: str, filename: str) -> str:
    """Off the event loop: difflib takes seconds on megabyte files."""
    return "".join(
        difflib.unified_diff(
            left.splitlines(keepends=True),
            right.splitlines(keepends=True),
            fromfile=f"expected/{filename}",
            tofile=f"actual/{filename}",
        )
    )


def _as_text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def diff(ctx: Context, run_id: int, sample_id: int, test_id: int, output_id: int) -> Diff:
    async with unit_of_work(ctx.reads) as session:
        row = await _output_result(session, run_id, sample_id, test_id, output_id)
    exp, act = row.expected_hash, row.actual_hash

    def answer(identical: bool, binary: bool, text: str | None, truncated: bool, msg: str) -> Diff:
        return Diff(
            run_id,
            test_id,
            output_id,
            row.filename,
            exp,
            act,
            identical,
            binary,
            truncated,
            text,
            msg,
        )

    if act is None:
        return answer(False, False, None, False, "The run produced no such output.")
    if exp is None:
        return answer(False, False, None, False, "No approved baseline to compare with.")
    if exp == act:
        return answer(True, False, "", False, "Identical to the approved baseline.")
    sizes = [await ctx.blobs.size(exp) or 0, await ctx.blobs.size(act) or 0]
    if max(sizes) > MAX_DIFF_INPUT_BYTES:
        return answer(
            False,
            False,
            None,
            True,
            f"Files differ; larger than {MAX_DIFF_INPUT_BYTES} bytes, not diffed.",
        )
    left = _as_text(await ctx.blobs.head(exp, MAX_DIFF_INPUT_BYTES))
    right = _as_text(await ctx.blobs.head(act, MAX_DIFF_INPUT_BYTES))
    if left is None or right is None:
        return answer(False, True, None, False, "Binary files differ.")
    text = await asyncio.to_thread(_unified, left, right, row.filename)
    truncated = len(text.encode()) > MAX_DIFF_BYTES
    if truncated:
        text = text.encode()[:MAX_DIFF_BYTES].decode("utf-8", errors="ignore")
    return answer(False, False, text, truncated, "Files differ.")


async def approve_baseline(
    ctx: Context,
    actor: Principal | None,
    run_id: int,
    sample_id: int,
    test_id: int,
    output_id: int,
    *,
    reason: str,
    as_variant: bool,
) -> BaselineApproval:
    """Make this run's actual output the baseline (or an accepted variant), with an audit row."""
    ensure_allowed(actor, Action.APPROVE_BASELINE)
    async with unit_of_work(ctx.sessions) as session:
        row = await _output_result(session, run_id, sample_id, test_id, output_id)
        if row.actual_hash is None:
            raise Unprocessable(
                f"Run {run_id} produced no {row.filename} to approve.",
                run_id=run_id,
                output_id=output_id,
            )
        output = await regression_runs.get_output(session, output_id, lock=True)
        if output is None:
            raise OutputNotFound(output_id, f"Output {output_id} no longer exists.")
        accepted = await suite_audit.accepted_hashes(session, output_id)
        if row.actual_hash in accepted:
            raise Unprocessable(
                "The actual output already matches an accepted baseline.",
                output_id=output_id,
                sha256=row.actual_hash,
            )
        previous = output.expected_hash
        if as_variant:
            try:
                async with session.begin_nested():
                    await suite_audit.add_variant(session, output_id, row.actual_hash)
            except IntegrityError:
                raise Unprocessable(
                    "The actual output already matches an accepted baseline.",
                    output_id=output_id,
                    sha256=row.actual_hash,
                ) from None
        else:
            output.expected_hash = row.actual_hash
        approval = BaselineApproval(
            run_id=run_id,
            sample_id=sample_id,
            regression_test_id=test_id,
            output_id=output_id,
            previous_hash=previous,
            new_hash=row.actual_hash,
            as_variant=as_variant,
            reason=reason.strip()[:500],
            approved_by=actor.email if actor else "operator",
        )
        session.add(approval)
        await session.flush()
        return approval


@dataclass(frozen=True, slots=True)
class HistoryItem:
    result: RegressionResult
    run: Run
    failure_signature: str | None


async def history(
    ctx: Context, sample_id: int, flt: regression_runs.HistoryFilter, *, limit: int, offset: int
) -> tuple[list[HistoryItem], int]:
    """The sample's result in every run, newest first, with a failure signature."""
    async with unit_of_work(ctx.reads) as session:
        if not await regression_runs.samples_by_id(session, [sample_id]):
            raise SampleNotFound(sample_id)
        rows, total = await regression_runs.sample_history(
            session, sample_id, flt, limit=limit, offset=offset
        )
        items = []
        for result, run in rows:
            outputs = await regression_runs.output_results(
                session, run.id, [result.regression_test_id]
            )
            signature = failure_signature(result, outputs.get(result.regression_test_id, []))
            items.append(HistoryItem(result, run, signature))
    return items, total


def failure_signature(result: RegressionResult, outputs: Sequence[OutputResult]) -> str | None:
    """``diff_mismatch:output:<id>``, ``exit_code_mismatch:rc:<n>`` or ``missing_output``."""
    if result.status == "missing_output":
        return "missing_output"
    if result.status != "fail":
        return None
    if result.exit_code is None:
        return "timeout" if "Time limit" in (result.message or "") else "not_run"
    if result.exit_code != result.expected_exit_code:
        return f"exit_code_mismatch:rc:{result.exit_code}"
    for out in outputs:
        if out.status in ("diff_mismatch", "missing_expected"):
            return f"diff_mismatch:output:{out.output_id}"
    return "fail"


@dataclass(frozen=True, slots=True)
class Artifact:
    artifact_id: str
    run_id: int
    sample_id: int | None
    type: str  # build_log | actual_output
    filename: str
    content_type: str
    size_bytes: int | None
    sha256: str | None


async def artifacts(ctx: Context, run_id: int) -> list[Artifact]:
    """The run's log, the files its project declared, and every actual output it kept."""
    async with unit_of_work(ctx.reads) as session:
        run = await run_store.get_run(session, run_id)
        if run is None:
            raise RunNotFound(run_id)
        found: list[Artifact] = []
        if await log_store.line_count(session, run_id):
            found.append(
                Artifact(
                    "log",
                    run_id,
                    None,
                    "build_log",
                    f"run-{run_id}.log",
                    "text/plain",
                    run.log_bytes or None,
                    None,
                )
            )
        results = await regression_runs.all_results(session, run_id)
        outputs = await regression_runs.output_results(
            session, run_id, [r.regression_test_id for r in results]
        )
        declared = await result_store.list_artifacts(session, run_id)
    for item in declared:
        found.append(
            Artifact(
                f"file-{item.id}",
                run_id,
                None,
                "binary",
                item.path,
                "application/octet-stream",
                item.size_bytes,
                item.sha256,
            )
        )
    sample_of = {r.regression_test_id: r.sample_id for r in results}
    for test_id, rows in outputs.items():
        for out in rows:
            if out.actual_hash:
                found.append(
                    Artifact(
                        f"output-{out.id}",
                        run_id,
                        sample_of.get(test_id),
                        "actual_output",
                        out.filename,
                        "application/octet-stream",
                        out.actual_size,
                        out.actual_hash,
                    )
                )
    return found


async def raw_log(ctx: Context, run_id: int) -> str:
    async with unit_of_work(ctx.reads) as session:
        lines = await log_store.read_lines(session, run_id, after_seq=0, limit=10_000_000)
    return "".join(line.message + "\n" for line in lines)
