"""The transition table itself: pure, no I/O."""

from __future__ import annotations

import itertools

import pytest

from runplane.domain.dialects import SAMPLE_PLATFORM_FILTER, SAMPLE_PLATFORM_STATUS
from runplane.domain.status import ACTIVE, TERMINAL, TRANSITIONS, RunStatus, is_allowed


def test_every_status_has_a_row_and_a_dialect_name() -> None:
    assert set(TRANSITIONS) == set(RunStatus)
    assert set(SAMPLE_PLATFORM_STATUS) == set(RunStatus)


def test_terminal_runs_only_leave_through_restart() -> None:
    for status in TERMINAL:
        assert TRANSITIONS[status] == {RunStatus.QUEUED}


def test_a_requested_cancel_can_only_end_canceled() -> None:
    assert TRANSITIONS[RunStatus.CANCELING] == {RunStatus.CANCELED}


def test_nothing_goes_back_to_running_except_by_claiming_a_queued_run() -> None:
    for source, target in itertools.product(RunStatus, RunStatus):
        if target is RunStatus.RUNNING and is_allowed(source, target):
            assert source is RunStatus.QUEUED


@pytest.mark.parametrize("sp", ["queued", "running", "pass", "fail", "error", "canceled"])
def test_sample_platform_filters_cover_the_names(sp: str) -> None:
    assert all(SAMPLE_PLATFORM_STATUS[s] == sp for s in SAMPLE_PLATFORM_FILTER[sp])


def test_active_and_terminal_are_disjoint() -> None:
    assert not ACTIVE & TERMINAL
