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
