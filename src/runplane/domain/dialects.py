"""How each API dialect names the internal statuses."""

from __future__ import annotations

from runplane.domain.status import RunStatus

SAMPLE_PLATFORM_STATUS: dict[RunStatus, str] = {
    RunStatus.QUEUED: "queued",
    RunStatus.RUNNING: "running",
    RunStatus.CANCELING: "running",
    RunStatus.PASSED: "pass",
    RunStatus.FAILED: "fail",
    RunStatus.ERROR: "error",
    RunStatus.TIMED_OUT: "error",
    RunStatus.CANCELED: "canceled",
}

#: Sample Platform status filter value -> internal statuses it covers.
SAMPLE_PLATFORM_FILTER: dict[str, frozenset[RunStatus]] = {}
for _internal, _sp in SAMPLE_PLATFORM_STATUS.items():
    SAMPLE_PLATFORM_FILTER.setdefault(_sp, frozenset())
    SAMPLE_PLATFORM_FILTER[_sp] = SAMPLE_PLATFORM_FILTER[_sp] | {_internal}
SAMPLE_PLATFORM_FILTER["incomplete"] = frozenset()

#: Tester Army run status; ``passed``/``failed`` are both ``completed`` (the verdict is in
#: ``output.result``) and ``failed`` there means the run itself broke.
TESTER_ARMY_STATUS: dict[RunStatus, str] = {
    RunStatus.QUEUED: "queued",
    RunStatus.RUNNING: "running",
    RunStatus.CANCELING: "running",
    RunStatus.PASSED: "completed",
    RunStatus.FAILED: "completed",
    RunStatus.ERROR: "failed",
    RunStatus.TIMED_OUT: "failed",
    RunStatus.CANCELED: "cancelled",
}

TESTER_ARMY_FILTER: dict[str, frozenset[RunStatus]] = {}
for _internal, _ta in TESTER_ARMY_STATUS.items():
    TESTER_ARMY_FILTER[_ta] = TESTER_ARMY_FILTER.get(_ta, frozenset()) | {_internal}
