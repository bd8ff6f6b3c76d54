"""``runplane login``, ``runplane runs …`` and ``runplane samples …``: remote clients.

Unlike the operator commands in ``main.py`` these never open a database: they talk to a
server's ``/api/v1`` over HTTP through :mod:`runplane.cli.client`. Every command takes
``--server``, ``--json`` (the API's JSON instead of tables) and ``--wait`` (sleep through a
429). Failures are one line on stderr and exit code 2; ``runs watch``, ``runs logs -f``
and ``--watch`` exit with the run's verdict instead: 0 passed, 1 failed, 2 otherwise.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from runplane.cli.client import (
    VERDICT_EXIT_CODES,
    Client,
    ClientError,
    JsonObject,
    LogChunk,
    Target,
    config_path,
    exit_code_of,
    is_terminal,
    read_config,
    resolve_target,
    write_config,
)

runs_app = typer.Typer(
    no_args_is_help=True, help="Runs on a server: list, submit, watch, logs, cancel, retry."
)
samples_app = typer.Typer(no_args_is_help=True, help="Sample files of a server's regression suite.")

#: ``--wait``: this many 429s are slept through per request.
WAIT_RETRIES = 3
DEFAULT_LOGIN_SCOPES = "runs:read,runs:write,results:read,system:read"
#: ``runs watch`` gives up after this many failed polls in a row.
MAX_POLL_FAILURES = 10
STATUS_STYLES = {
    "queued": "blue",
    "running": "cyan",
    "pass": "green",
    "fail": "red",
    "error": "bold red",
    "canceled": "yellow",
    "incomplete": "magenta",
}
VERDICT_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "error": "ended in error",
    "timed_out": "timed out",
    "canceled": "was canceled",
}

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="RUNPLANE_SERVER",
        show_envvar=False,
        help="Server URL (env RUNPLANE_SERVER; else the one `runplane login` saved; "
        "else http://127.0.0.1:8000).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WaitOpt = Annotated[
    bool,
    typer.Option("--wait", help="When rate limited, sleep Retry-After and try again (3 times)."),
]
RunId = Annotated[int, typer.Argument(min=1, help="Run ID.", show_default=False)]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.1, help="Seconds between polls while watching.")
]


class SpStatus(StrEnum):
    """Run status as the Sample Platform API names it (``--status`` of ``runs list``)."""

    QUEUED = "queued"
    RUNNING = "running"
    PASS = "pass"
    FAIL = "fail"
    CANCELED = "canceled"
    ERROR = "error"
    INCOMPLETE = "incomplete"


# ---- errors and output --------------------------------------------------------------------


def describe(exc: ClientError, target: Target | None = None) -> str:
    """One line saying what went wrong and, where it helps, what to do."""
    status, message, details = exc.status_code, exc.message.rstrip("."), exc.details
    if status is None:
        if exc.code == "connect_error":
            return f"{message}; is the server running? Use --server or RUNPLANE_SERVER"
        return message
    if status == 401:
        hint = f" ({target.note})" if target and target.note else ""
        return f"not signed in or token invalid: run `runplane login` or set RUNPLANE_TOKEN{hint}"
    if status == 403:
        extra = ""
        if details.get("token_scopes") is not None:
            extra = f" (token scopes: {', '.join(details['token_scopes']) or 'none'})"
        elif details.get("user_role"):
            extra = f" (your role: {details['user_role']})"
        return f"forbidden: {message}{extra}"
    if status == 404:
        return f"not found: {message}"
    if status == 409:
        return f"conflict: {message}"
    if status in (400, 422):
        return f"rejected: {message}{_field_errors(details)}"
    if status == 429:
        seconds = round(exc.retry_after_seconds or 1)
        return f"rate limited: retry in {seconds} s (or pass --wait to wait and retry)"
    if status >= 500:
        return f"server error ({status}): {message}"
    return f"HTTP {status}: {message}"


def _field_errors(details: Mapping[str, Any]) -> str:
    fields = details.get("fields")
    if not isinstance(fields, dict) or not fields:
        return ""
    parts = []
    for name, messages in fields.items():
        text = "; ".join(messages) if isinstance(messages, list) else str(messages)
        parts.append(f"{name}: {text}")
    return " (" + "; ".join(parts) + ")"


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def connect(server: str | None, wait: bool) -> Iterator[Client]:
    """A client for the chosen server; a ClientError inside becomes a one-line exit 2."""
    try:
        target = resolve_target(server)
    except ClientError as exc:
        fail(describe(exc))
    client = Client(target.server, target.token, rate_limit_retries=WAIT_RETRIES if wait else 0)
    try:
        yield client
    except ClientError as exc:
        fail(describe(exc, target))
    finally:
        client.close()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _status_text(run: Mapping[str, Any]) -> Text:
    status = str(run.get("status", "?"))
    text = Text(status, style=STATUS_STYLES.get(status, ""))
    internal = run.get("internal_status")
    if internal and internal not in (status, "passed", "failed", "running"):
        text.append(f" ({internal})", style="dim")
    return text


def _when(value: Any) -> str:
    return str(value).replace("T", " ").removesuffix("Z") if value else "-"


def _duration(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _elapsed_ms(run: Mapping[str, Any]) -> float | None:
    if run.get("duration_ms") is not None:
        return float(run["duration_ms"])
    started = run.get("started_at")
    if not started:
        return None
    try:
        begin = datetime.strptime(str(started), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(0.0, (datetime.now(UTC) - begin).total_seconds() * 1000)


def _key_values(rows: list[tuple[str, Any]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        if value is not None and value != "" and value != []:
            table.add_row(key, value if isinstance(value, Text) else str(value))
    return table


def _tests_line(summary: Mapping[str, Any] | None) -> str | None:
    if not summary or not summary.get("total_samples"):
        return None
    parts = [
        f"{summary['total_samples']} total",
        f"{summary.get('pass_count', 0)} pass",
        f"{summary.get('fail_count', 0)} fail",
    ]
    for key, label in (("missing_output_count", "missing output"), ("skipped_count", "skipped")):
        if summary.get(key):
            parts.append(f"{summary[key]} {label}")
    return ", ".join(parts)


def _done_of(summary: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """(tests with a result, tests in the run), when the run knows its tests."""
    if not summary or not summary.get("total_samples"):
        return None
    done = sum(int(summary.get(k) or 0) for k in ("pass_count", "fail_count"))
    done += int(summary.get("missing_output_count") or 0)
    return done, int(summary["total_samples"])


# ---- login --------------------------------------------------------------------------------


def _default_token_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32] or "host"
    return f"cli-{host}-{secrets.token_hex(3)}"


def login(
    server: ServerOpt = None,
    email: Annotated[str | None, typer.Option(help="Login email (prompted if absent).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin's first line.")
    ] = False,
    token_name: Annotated[
        str | None, typer.Option(help="Name of the new token (default: cli-HOST-RANDOM).")
    ] = None,
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes.")] = DEFAULT_LOGIN_SCOPES,
    expires_in_days: Annotated[int, typer.Option(min=1, max=90)] = 30,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Sign in: exchange email and password for a token, saved in the config file (0600)."""
    try:
        target = resolve_target(server)
        path = config_path()
        saved = read_config(path)
    except ClientError as exc:
        fail(describe(exc))
    if email is None:
        if password_stdin:
            fail("--email is required with --password-stdin")
        email = str(typer.prompt("Email"))
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = str(typer.prompt("Password", hide_input=True))
    name = token_name or _default_token_name()
    chosen = [s.strip() for s in scopes.split(",") if s.strip()]
    with Client(target.server, rate_limit_retries=WAIT_RETRIES if wait else 0) as client:
        try:
            issued = client.create_token(email, password, name, chosen, expires_in_days)
        except ClientError as exc:
            if exc.status_code == 401:
                fail(f"sign-in failed: {exc.message}")
            fail(describe(exc, target))
    try:
        write_config(path, {**saved, "server": target.server, "token": str(issued["token"])})
    except OSError as exc:
        fail(f"cannot write the config file {path}: {exc.strerror}")
    if as_json:
        shown = {k: v for k, v in issued.items() if k != "token"}
        print_json({"server": target.server, "email": email, "config": str(path), **shown})
        return
    typer.echo(
        f"signed in to {target.server} as {email}: token {issued['token_name']} "
        f"(scopes {', '.join(issued.get('scopes', []))}; expires {_when(issued['expires_at'])}) "
        f"saved to {path}"
    )


# ---- runs ---------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    status: Annotated[SpStatus | None, typer.Option(help="Only runs with this status.")] = None,
    repository: Annotated[str | None, typer.Option(help="owner/name.")] = None,
    branch: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
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
    if as_json:
        print_json(page)
        return
    table = Table(box=box.SIMPLE)
    for column in ("ID", "STATUS", "REPOSITORY", "BRANCH", "COMMIT", "CREATED", "DURATION"):
        table.add_column(column, justify="right" if column == "ID" else "left", no_wrap=True)
    for run in page["data"]:
        table.add_row(
            str(run["run_id"]),
            _status_text(run),
            run["repository"],
            run.get("branch") or "-",
            run["commit_short"],
            _when(run.get("created_at")),
            _duration(run.get("duration_ms")),
        )
    console = _console()
    if not page["data"]:
        console.print("no runs")
        return
    console.print(table)
    total = page["pagination"]["total"]
    console.print(f"{len(page['data'])} of {total} run(s)", style="dim")


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
    console = _console()
    pr = run.get("pull_request")
    console.print(
        _key_values(
            [
                ("run", run["run_id"]),
                ("status", _status_text(run)),
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
                ("created", _when(run.get("created_at"))),
                ("started", _when(run.get("started_at")) if run.get("started_at") else None),
                ("completed", _when(run.get("completed_at")) if run.get("completed_at") else None),
                ("duration", _duration(run["duration_ms"]) if run.get("duration_ms") else None),
                ("exit code", run.get("exit_code")),
                ("selected tests", ", ".join(run.get("selected_tests") or [])),
                ("tests", _tests_line(summary)),
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
                _duration(row.get("runtime_ms")),
                row.get("result_message") or "",
            )
        console.print(table)
        shown, total = len(tests["data"]), tests["pagination"]["total"]
        if total > shown:
            console.print(f"(first {shown} of {total} tests)", style="dim")
    if progress["data"]:
        console.print(Text("progress", style="bold"))
        for event in progress["data"]:
            console.print(_event_line(event))


def _event_line(event: Mapping[str, Any]) -> Text:
    line = Text(f"  {_when(event.get('timestamp'))}  ", style="dim")
    line.append(f"{event.get('status', ''):<12}", style="bold")
    line.append(str(event.get("message", "")))
    return line


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


class WatchDisplay:
    """A live status line (progress events printed above it); silent with ``--json``."""

    def __init__(self, run_id: int, quiet: bool) -> None:
        self.console = _console()
        self.quiet = quiet
        self.spinner = Spinner("dots", text=f"run {run_id}: waiting for the server")
        self.live = Live(self.spinner, console=self.console, transient=True, refresh_per_second=8)

    def __enter__(self) -> WatchDisplay:
        if not self.quiet:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.quiet:
            self.live.stop()

    def event(self, event: Mapping[str, Any]) -> None:
        if not self.quiet:
            self.live.console.print(_event_line(event))

    def status(self, run: Mapping[str, Any], summary: Mapping[str, Any] | None) -> None:
        if self.quiet:
            return
        text = Text(f"run {run['run_id']} ")
        text.append_text(_status_text(run))
        if run.get("status") == "queued" and run.get("queue_position"):
            text.append(f" · queue position {run['queue_position']}")
        done = _done_of(summary)
        if done is not None:
            text.append(f" · tests {done[0]}/{done[1]}")
        elapsed = _elapsed_ms(run)
        if elapsed is not None:
            text.append(f" · {_duration(elapsed)}")
        self.spinner.update(text=text)


def watch_run(client: Client, run_id: int, *, interval: float, as_json: bool) -> int:
    """Poll the run, its progress trail and its test counts until it is terminal; print the
    verdict and return its exit code. Rate limiting and dropped connections are waited out."""
    seen = 0
    failures = 0
    answered = False
    summary: JsonObject | None = None
    with WatchDisplay(run_id, quiet=as_json) as display:
        while True:
            try:
                run = client.get_run(run_id)
                events = client.progress(run_id, offset=seen)["data"]
                if run.get("status") != "queued":
                    summary = client.summary(run_id)
            except ClientError as exc:
                # A server that answered before is waited for; one that never did is an error.
                dropped = answered and (exc.status_code is None or exc.status_code >= 500)
                retryable = dropped or exc.status_code == 429
                failures += 1
                if not retryable or failures > MAX_POLL_FAILURES:
                    raise
                time.sleep(exc.retry_after_seconds or interval)
                continue
            failures, answered = 0, True
            seen += len(events)
            for event in events:
                display.event(event)
            if is_terminal(run):
                break
            display.status(run, summary)
            time.sleep(interval)
    code = exit_code_of(run)
    if as_json:
        print_json({"run": run, "summary": summary, "exit_code": code})
        return code
    verdict = VERDICT_WORDS.get(str(run.get("internal_status")), str(run.get("status")))
    line = Text(f"run {run_id} ")
    line.append(verdict, style=STATUS_STYLES.get(str(run.get("status")), ""))
    if run.get("duration_ms") is not None:
        line.append(f" in {_duration(run['duration_ms'])}")
    if run.get("status_reason"):
        line.append(f" ({run['status_reason']})")
    tests = _tests_line(summary)
    if tests:
        line.append(f" · tests: {tests}")
    _console().print(line)
    return code


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


def _write(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8", "replace"))
    sys.stdout.buffer.flush()


def follow_log(client: Client, run_id: int, *, as_json: bool) -> int:
    """Print the log stream as it comes (JSON lines with ``--json``); the verdict's code."""
    for item in client.follow_log(run_id):
        if isinstance(item, LogChunk):
            if as_json:
                event = {"event": "log", "offset": item.offset, "next_offset": item.next_offset}
                typer.echo(json.dumps({**event, "text": item.text}))
            else:
                _write(item.text)
            continue
        if as_json:
            end = {"event": "end", "status": item.status, "offset": item.offset}
            typer.echo(json.dumps(end))
        return VERDICT_EXIT_CODES.get(item.status, 2)
    raise ClientError(f"the log stream of run {run_id} ended without its end event")


def print_log(client: Client, run_id: int, *, as_json: bool) -> None:
    """The log so far: ``/logs/raw`` as it is, or with ``--json`` the pages of ``/logs``."""
    if not as_json:
        for chunk in client.raw_log(run_id):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    lines: list[JsonObject] = []
    cursor = 0
    while True:
        page = client.log_page(run_id, cursor=cursor)
        lines.extend(page["data"])
        next_cursor = page["pagination"]["next_cursor"]
        if next_cursor is None or not page["data"]:
            break
        cursor = int(next_cursor)
    print_json({"run_id": run_id, "lines": lines})


# ---- samples ------------------------------------------------------------------------------


class SampleState(StrEnum):
    """``active``: used by at least one active regression test."""

    ACTIVE = "active"
    INACTIVE = "inactive"


def _size(n: Any) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)  # pragma: no cover


@samples_app.command("list")
def samples_list(
    status: Annotated[SampleState | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option(help="Substring of the name.")] = None,
    tag: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """List the sample files."""
    with connect(server, wait) as client:
        page = client.list_samples(
            status=status.value if status else None, name=name, tag=tag, limit=limit, offset=offset
        )
    if as_json:
        print_json(page)
        return
    console = _console()
    if not page["data"]:
        console.print("no samples")
        return
    table = Table(box=box.SIMPLE)
    for column in ("ID", "NAME", "SIZE", "SHA256", "TAGS", "TESTS", "ACTIVE"):
        table.add_column(column, justify="right" if column in ("ID", "SIZE", "TESTS") else "left")
    for sample in page["data"]:
        table.add_row(
            str(sample["sample_id"]),
            sample["name"],
            _size(sample["size_bytes"]),
            sample["sha256"][:12],
            ",".join(sample.get("tags", [])),
            str(sample.get("regression_test_count", 0)),
            "yes" if sample.get("active") else "no",
        )
    console.print(table)
    console.print(f"{len(page['data'])} of {page['pagination']['total']} sample(s)", style="dim")


@samples_app.command("show")
def samples_show(
    sample_id: Annotated[int, typer.Argument(min=1, help="Sample ID.", show_default=False)],
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """One sample file's fields and extra files."""
    with connect(server, wait) as client:
        sample = client.get_sample(sample_id)
    if as_json:
        print_json(sample)
        return
    _print_sample(sample)


def _print_sample(sample: Mapping[str, Any]) -> None:
    extras = [f"{e['name']} ({_size(e['size_bytes'])})" for e in sample.get("extra_files", [])]
    _console().print(
        _key_values(
            [
                ("sample", sample["sample_id"]),
                ("name", sample["name"]),
                ("size", f"{_size(sample['size_bytes'])} ({sample['size_bytes']} bytes)"),
                ("sha256", sample["sha256"]),
                ("tags", ", ".join(sample.get("tags", []))),
                ("notes", sample.get("notes")),
                ("created", _when(sample.get("created_at"))),
                ("tests", sample.get("regression_test_count")),
                ("active", "yes" if sample.get("active") else "no"),
                ("extra files", ", ".join(extras)),
            ]
        )
    )


@samples_app.command("upload")
def samples_upload(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, show_default=False)
    ],
    name: Annotated[str | None, typer.Option(help="Sample name (default: the file's).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag, repeatable.")] = None,
    notes: Annotated[str | None, typer.Option()] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Upload a sample file (streamed; the same bytes twice give one sample)."""
    with connect(server, wait) as client:
        sample, created = client.upload_sample(
            file, filename=name or file.name, tags=list(tag or []), notes=notes
        )
    if as_json:
        print_json(sample)
        return
    verb = "uploaded as" if created else "already stored as"
    typer.echo(f"{file.name}: {verb} sample {sample['sample_id']} (sha256 {sample['sha256']})")
