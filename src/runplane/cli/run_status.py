"""A run's status as the client commands show it and exit with it.

The API names statuses the Sample Platform way (``pass``, ``fail``, …) and, where it can,
adds the ``internal_status`` (``passed``, ``timed_out``, …); both are understood here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from rich.text import Text

from runplane.domain.status import TERMINAL, RunStatus


class SpStatus(StrEnum):
    """Run status as the Sample Platform API names it (``--status`` of ``runs list``)."""

    QUEUED = "queued"
    RUNNING = "running"
    PASS = "pass"
    FAIL = "fail"
    CANCELED = "canceled"
    ERROR = "error"
    INCOMPLETE = "incomplete"


#: Exit code of a finished run's verdict (internal status names).
VERDICT_EXIT_CODES: dict[str, int] = {
    RunStatus.PASSED: 0,
    RunStatus.FAILED: 1,
    RunStatus.ERROR: 2,
    RunStatus.TIMED_OUT: 2,
    RunStatus.CANCELED: 2,
}
TERMINAL_STATUSES: frozenset[str] = frozenset(s.value for s in TERMINAL)
#: The same verdicts by their Sample Platform names, for a server without ``internal_status``.
_SP_EXIT_CODES = {"pass": 0, "fail": 1, "error": 2, "canceled": 2, "incomplete": 1}

STATUS_STYLES = {
    "queued": "blue",
    "running": "cyan",
    "pass": "green",
    "fail": "red",
    "error": "bold red",
    "canceled": "yellow",
    "incomplete": "magenta",
}
#: Room for any status word in a table column, so that none is cut short.
STATUS_WIDTH = max(len(word) for word in (*SpStatus, *RunStatus))
VERDICT_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "error": "ended in error",
    "timed_out": "timed out",
    "canceled": "was canceled",
}


def exit_code_of(run: Mapping[str, Any]) -> int:
    """The verdict of a finished run object as an exit code: 0 passed, 1 failed, 2 else."""
    internal = run.get("internal_status")
    if isinstance(internal, str) and internal in VERDICT_EXIT_CODES:
        return VERDICT_EXIT_CODES[internal]
    return _SP_EXIT_CODES.get(str(run.get("status")), 2)


def is_terminal(run: Mapping[str, Any]) -> bool:
    internal = run.get("internal_status")
    if isinstance(internal, str):
        return internal in TERMINAL_STATUSES
    return str(run.get("status")) in _SP_EXIT_CODES


def status_text(run: Mapping[str, Any]) -> Text:
    """The API status in its colour, then the internal one where it says more."""
    status = str(run.get("status", "?"))
    text = Text(status, style=STATUS_STYLES.get(status, ""))
    internal = run.get("internal_status")
    if internal and internal not in (status, "passed", "failed", "running"):
        text.append(f" ({internal})", style="dim")
    return text
