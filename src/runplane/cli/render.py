"""How the client commands print: JSON as the API gave it, or rich tables and lines.

Shared by ``runs …`` and ``samples …``: times, durations, key/value blocks, a page of a list
endpoint, and a run's test counts and progress events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def print_page(
    page: Mapping[str, Any],
    noun: str,
    table: Callable[[list[Mapping[str, Any]]], Table],
    *,
    as_json: bool,
) -> None:
    """A list endpoint's page: as JSON, or as ``table(rows)`` and an "n of total" line."""
    if as_json:
        print_json(page)
        return
    out = console()
    rows = page["data"]
    if not rows:
        out.print(f"no {noun}s")
        return
    out.print(table(rows))
    out.print(f"{len(rows)} of {page['pagination']['total']} {noun}(s)", style="dim")


def when(value: Any) -> str:
    return str(value).replace("T", " ").removesuffix("Z") if value else "-"


def duration(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def elapsed_ms(run: Mapping[str, Any]) -> float | None:
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


def key_values(rows: list[tuple[str, Any]]) -> Table:
    """Two columns, name and value; rows without a value are left out."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        if value is not None and value != "" and value != []:
            table.add_row(key, value if isinstance(value, Text) else str(value))
    return table


def tests_line(summary: Mapping[str, Any] | None) -> str | None:
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


def done_of(summary: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """(tests with a result, tests in the run), when the run knows its tests."""
    if not summary or not summary.get("total_samples"):
        return None
    done = sum(int(summary.get(k) or 0) for k in ("pass_count", "fail_count"))
    done += int(summary.get("missing_output_count") or 0)
    return done, int(summary["total_samples"])


def event_line(event: Mapping[str, Any]) -> Text:
    """One event of a run's progress trail."""
    line = Text(f"  {when(event.get('timestamp'))}  ", style="dim")
    line.append(f"{event.get('status', ''):<12}", style="bold")
    line.append(str(event.get("message", "")))
    return line
