"""Following one run from the terminal, for ``runs watch``, ``--watch`` and ``runs logs``.

:func:`watch_run` polls the run, its progress trail and its test counts under a live status
line; :func:`follow_log` prints the log stream as it comes; :func:`print_log` prints the log
so far. The first two return the run's verdict as an exit code: 0 passed, 1 failed, 2 else.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import typer
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from runplane.cli.client import Client, JsonObject
from runplane.cli.client_errors import ClientError
from runplane.cli.render import (
    console,
    done_of,
    duration,
    elapsed_ms,
    event_line,
    print_json,
    tests_line,
)
from runplane.cli.run_status import (
    STATUS_STYLES,
    VERDICT_EXIT_CODES,
    VERDICT_WORDS,
    exit_code_of,
    is_terminal,
    status_text,
)
from runplane.cli.sse import LogChunk

#: ``runs watch`` gives up after this many failed polls in a row.
MAX_POLL_FAILURES = 10


class WatchDisplay:
    """A live status line (progress events printed above it); silent with ``--json``."""

    def __init__(self, run_id: int, quiet: bool) -> None:
        self.console = console()
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
            self.live.console.print(event_line(event))

    def status(self, run: Mapping[str, Any], summary: Mapping[str, Any] | None) -> None:
        if self.quiet:
            return
        text = Text(f"run {run['run_id']} ")
        text.append_text(status_text(run))
        if run.get("status") == "queued" and run.get("queue_position"):
            text.append(f" · queue position {run['queue_position']}")
        done = done_of(summary)
        if done is not None:
            text.append(f" · tests {done[0]}/{done[1]}")
        elapsed = elapsed_ms(run)
        if elapsed is not None:
            text.append(f" · {duration(elapsed)}")
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
        line.append(f" in {duration(run['duration_ms'])}")
    if run.get("status_reason"):
        line.append(f" ({run['status_reason']})")
    tests = tests_line(summary)
    if tests:
        line.append(f" · tests: {tests}")
    console().print(line)
    return code


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
