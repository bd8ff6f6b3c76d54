"""``runplane runs …``: list, show, submit, watch, follow the log of, cancel, retry, restart.

``runs watch``, ``runs logs -f`` and ``--watch`` exit with the run's verdict: 0 passed,
1 failed, 2 otherwise; any other failure is one line on stderr and exit code 2.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from runplane.cli.client import Client, JsonObject
from runplane.cli.client_options import (
    JsonOpt,
    LimitOpt,
    OffsetOpt,
    ServerOpt,
    WaitOpt,
    connect,
    fail,
)
from runplane.cli.render import (
    console,
    duration,
    event_line,
    key_values,
    print_json,
    print_page,
    tests_line,
    when,
)
from runplane.cli.run_status import STATUS_WIDTH, SpStatus, status_text
from runplane.cli.run_watch import follow_log, print_log, watch_run

runs_app = typer.Typer(
    no_args_is_help=True, help="Runs on a server: list, submit, watch, logs, cancel, retry."
)

RunId = Annotated[int, typer.Argument(min=1, help="Run ID.", show_default=False)]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.1, help="Seconds between polls while watching.")
]
#: Room for a run id in ``runs list``: up to 7 digits.
RUN_ID_WIDTH = 7


@runs_app.command("list")
def runs_list(
    status: Annotated[SpStatus | None, typer.Option(help="Only runs with this status.")] = None,
    repository: Annotated[str | None, typer.Option(help="owner/name.")] = None,
    branch: Annotated[str | None, typer.Option()] = None,
    limit: LimitOpt = 20,
    offset: OffsetOpt = 0,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """List runs, newest first."""
    with connect(server, wait) as client:
        page = client.list_runs(
            status=status.value if status else None,
            repository=repository,
            branch=branch,
            limit=limit,
            offset=offset,
        )
    print_page(page, "run", _runs_table, as_json=as_json)


def _runs_table(runs: list[Mapping[str, Any]]) -> Table:
    """On a narrow terminal the repository and commit are cut short (…), never the id,
    status, branch or times."""
    table = Table(box=box.SIMPLE)
    table.add_column("ID", justify="right", no_wrap=True, min_width=RUN_ID_WIDTH)
    table.add_column("STATUS", no_wrap=True, min_width=STATUS_WIDTH)
    table.add_column("REPOSITORY", overflow="ellipsis")
    table.add_column("BRANCH", no_wrap=True)
    table.add_column("COMMIT", overflow="ellipsis")
    for column in ("CREATED", "DURATION"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        table.add_row(
            str(run["run_id"]),
            status_text(run),
            run["repository"],
            run.get("branch") or "-",
            run["commit_short"],
            when(run.get("created_at")),
            duration(run.get("duration_ms")),
        )
    return table


@runs_app.command("show")
def runs_show(
    run_id: RunId, server: ServerOpt = None, as_json: JsonOpt = False, wait: WaitOpt = False
) -> None:
    """A run's fields, test counts, per-test results and progress trail."""
    with connect(server, wait) as client:
        run = client.get_run(run_id)
        summary = client.summary(run_id)
        tests = client.run_tests(run_id)
        progress = client.progress(run_id)
        total_events = progress["pagination"]["total"]
        if total_events > len(progress["data"]):
            progress = client.progress(run_id, offset=max(0, total_events - 10), limit=10)
    if as_json:
        print_json(
            {"run": run, "summary": summary, "tests": tests["data"], "progress": progress["data"]}
        )
        return
    out = console()
    pr = run.get("pull_request")
    out.print(
        key_values(
            [
                ("run", run["run_id"]),
                ("status", status_text(run)),
                ("reason", run.get("status_reason")),
                ("repository", run["repository"]),
                ("branch", run.get("branch")),
                ("commit", run["commit_sha"]),
                ("pull request", f"#{pr}" if pr else None),
                ("platform", run.get("platform")),
                ("priority", run.get("priority") or None),
                ("queue position", run.get("queue_position")),
                ("retry of", run.get("retry_of")),
                ("triggered by", run.get("triggered_by")),
                ("created", when(run.get("created_at"))),
                ("started", when(run.get("started_at")) if run.get("started_at") else None),
                ("completed", when(run.get("completed_at")) if run.get("completed_at") else None),
                ("duration", duration(run["duration_ms"]) if run.get("duration_ms") else None),
                ("exit code", run.get("exit_code")),
                ("selected tests", ", ".join(run.get("selected_tests") or [])),
                ("tests", tests_line(summary)),
            ]
        )
    )
    if tests["data"]:
        table = Table(box=box.SIMPLE, title="tests", title_justify="left")
        for column in ("TEST", "STATUS", "TIME", "MESSAGE"):
            table.add_column(column)
        for row in tests["data"]:
            style = {"pass": "green", "fail": "red", "missing_output": "red"}.get(row["status"])
            table.add_row(
                row["sample_name"],
                Text(row["status"], style=style or ""),
                duration(row.get("runtime_ms")),
                row.get("result_message") or "",
            )
        out.print(table)
        shown, total = len(tests["data"]), tests["pagination"]["total"]
        if total > shown:
            out.print(f"(first {shown} of {total} tests)", style="dim")
    if progress["data"]:
        out.print(Text("progress", style="bold"))
        for event in progress["data"]:
            out.print(event_line(event))


def answer(
    client: Client,
    result: JsonObject,
    message: str,
    run_id: int,
    watch: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Print an action's answer; with ``--watch``, then watch ``run_id`` and exit with its
    verdict (with ``--json`` only the watch's JSON is printed)."""
    if not as_json:
        typer.echo(message)
    elif not watch:
        print_json(result)
    if watch:
        raise typer.Exit(watch_run(client, run_id, interval=interval, as_json=as_json))


@runs_app.command("submit")
def runs_submit(
    repository: Annotated[str, typer.Option(help="owner/name of the project.")],
    commit: Annotated[str, typer.Option(help="The commit's full 40-character SHA.")],
    platform: Annotated[str, typer.Option(help="linux or windows.")] = "linux",
    branch: Annotated[str | None, typer.Option(help="Branch (the API's default: master).")] = None,
    priority: Annotated[int | None, typer.Option(min=-100, max=100, help="Higher first.")] = None,
    pull_request: Annotated[int | None, typer.Option(min=1)] = None,
    test_id: Annotated[
        list[int] | None, typer.Option(help="Regression test to run, repeatable (default: all).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Same key and body give the same run (default: random).")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Then watch it (exit: verdict).")] = False,
    interval: IntervalOpt = 2.0,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Queue a run of a commit."""
    body: JsonObject = {"repository": repository, "commit_sha": commit, "platform": platform}
    optional = {
        "branch": branch,
        "priority": priority,
        "pull_request": pull_request,
        "regression_test_ids": test_id or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with connect(server, wait) as client:
        # One key per invocation: a retried request (--wait) cannot queue a second run.
        run = client.submit_run(body, idempotency_key or str(uuid.uuid4()))
        position = run.get("queue_position")
        where = f", queue position {position}" if position else ""
        message = f"queued run {run['run_id']} ({run['repository']} {run['commit_short']}{where})"
        answer(client, run, message, int(run["run_id"]), watch, interval, as_json)


@runs_app.command("cancel")
def runs_cancel(
    run_id: RunId,
    reason: Annotated[str | None, typer.Option(help="Why (5..255 characters).")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Cancel a queued or running run (its processes are stopped)."""
    with connect(server, wait) as client:
        result = client.cancel_run(run_id, reason)
        answer(client, result, f"run {run_id}: {result['message']}", run_id, False, 0, as_json)


@runs_app.command("retry")
def runs_retry(
    run_id: RunId,
    failed_only: Annotated[
        bool, typer.Option("--failed-only", help="Only the tests that did not pass.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (up to 255 characters).")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Then watch the new run.")] = False,
    interval: IntervalOpt = 2.0,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Queue a new run copied from this one (the original is kept)."""
    with connect(server, wait) as client:
        result = client.retry_run(run_id, failed_only=failed_only, reason=reason)
        new_id = int(result["new_run_id"])
        message = f"queued run {new_id} as a retry of run {run_id}"
        answer(client, result, message, new_id, watch, interval, as_json)


@runs_app.command("restart")
def runs_restart(
    run_id: RunId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Then watch it.")] = False,
    interval: IntervalOpt = 2.0,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """DESTRUCTIVE: wipe a finished run and run it again in place (prefer retry).

    The run's results, log and progress are deleted; `runs retry` keeps history instead.
    """
    question = f"Restart deletes the results, log and progress of run {run_id}. Continue?"
    try:
        confirmed = yes or typer.confirm(question, default=False)
    except typer.Abort:  # no answer: stdin closed
        typer.echo()
        confirmed = False
    if not confirmed:
        fail("not restarted (pass --yes to skip this question)")
    with connect(server, wait) as client:
        result = client.restart_run(run_id)
        message = f"run {run_id}: {result['message']}"
        answer(client, result, message, run_id, watch, interval, as_json)


@runs_app.command("watch")
def runs_watch(
    run_id: RunId,
    interval: IntervalOpt = 2.0,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Show a run's progress until it ends; exit 0 passed, 1 failed, 2 error/timed out/canceled."""
    with connect(server, wait) as client:
        code = watch_run(client, run_id, interval=interval, as_json=as_json)
    raise typer.Exit(code)


@runs_app.command("logs")
def runs_logs(
    run_id: RunId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream until the run ends (exit: verdict).")
    ] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Print a run's log; with -f, follow it live."""
    with connect(server, wait) as client:
        if follow:
            code = follow_log(client, run_id, as_json=as_json)
            raise typer.Exit(code)
        print_log(client, run_id, as_json=as_json)
