"""Run statuses and the one table of allowed transitions.

Every status change in runplane is a compare-and-set against this table
(see ``runplane.store.runs.transition``). Nothing else decides which edges exist.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Internal run status, a superset of what both dialects show."""

    #: Waiting for a worker.
    QUEUED = "queued"
    #: Claimed by a worker that holds a lease on it.
    RUNNING = "running"
    #: Cancel requested; the worker is killing the process tree.
    CANCELING = "canceling"
    #: Test command exited 0.
    PASSED = "passed"
    #: Test command exited non-zero.
    FAILED = "failed"
    #: Checkout, build or the platform itself broke (also a lost worker).
    ERROR = "error"
    #: The project's time limit killed the run.
    TIMED_OUT = "timed_out"
    #: Canceled by a user before it could finish.
    CANCELED = "canceled"


TERMINAL: frozenset[RunStatus] = frozenset(
    {RunStatus.PASSED, RunStatus.FAILED, RunStatus.ERROR, RunStatus.TIMED_OUT, RunStatus.CANCELED}
)
ACTIVE: frozenset[RunStatus] = frozenset({RunStatus.RUNNING, RunStatus.CANCELING})

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    # A queued run is claimed by exactly one worker, or canceled before that.
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELED}),
    # ERROR from RUNNING also covers the reaper taking a run from a lost worker;
    # the worker's own late finish then loses its CAS instead of overwriting it.
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.PASSED,
            RunStatus.FAILED,
            RunStatus.ERROR,
            RunStatus.TIMED_OUT,
            RunStatus.CANCELING,
        }
    ),
    # Once a cancel is requested the only way out is CANCELED, so a natural finish
    # that races the cancel can never turn a canceled run green.
    RunStatus.CANCELING: frozenset({RunStatus.CANCELED}),
    # Terminal runs only move again through the destructive, in-place restart.
    RunStatus.PASSED: frozenset({RunStatus.QUEUED}),
    RunStatus.FAILED: frozenset({RunStatus.QUEUED}),
    RunStatus.ERROR: frozenset({RunStatus.QUEUED}),
    RunStatus.TIMED_OUT: frozenset({RunStatus.QUEUED}),
    RunStatus.CANCELED: frozenset({RunStatus.QUEUED}),
}


def sources_of(target: RunStatus) -> frozenset[RunStatus]:
    """All statuses from which ``target`` may be reached."""
    return frozenset(src for src, dests in TRANSITIONS.items() if target in dests)


def is_allowed(source: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS[source]


class ProgressState(StrEnum):
    """States of the Sample Platform progress trail (what ``/progress`` shows)."""

    PREPARATION = "preparation"
    TESTING = "testing"
    COMPLETED = "completed"
    CANCELED = "canceled"


#: The progress state recorded when a run enters each status.
PROGRESS_ON_ENTER: dict[RunStatus, ProgressState] = {
    RunStatus.QUEUED: ProgressState.PREPARATION,
    RunStatus.RUNNING: ProgressState.PREPARATION,
    RunStatus.CANCELING: ProgressState.CANCELED,
    RunStatus.PASSED: ProgressState.COMPLETED,
    RunStatus.FAILED: ProgressState.COMPLETED,
    RunStatus.ERROR: ProgressState.CANCELED,
    RunStatus.TIMED_OUT: ProgressState.CANCELED,
    RunStatus.CANCELED: ProgressState.CANCELED,
}
