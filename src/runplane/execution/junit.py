"""Turning a JUnit XML report into result rows (parsed with defusedxml: reports are untrusted)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import defusedxml.ElementTree as SafeET
from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite

MAX_REPORT_BYTES = 50_000_000


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    classname: str | None
    status: str  # pass | fail | error | skipped
    duration_ms: int | None
    message: str | None


class ReportUnreadable(Exception):
    """The report exists but is not valid JUnit XML."""


def parse_report(path: Path) -> list[CaseResult]:
    """Every test case in the report at ``path``; raises ``ReportUnreadable``."""
    if path.stat().st_size > MAX_REPORT_BYTES:
        raise ReportUnreadable(f"report larger than {MAX_REPORT_BYTES} bytes")
    try:
        root = SafeET.parse(str(path)).getroot()
        xml = JUnitXml.fromroot(root)
    except Exception as exc:  # defusedxml and junitparser raise many types
        raise ReportUnreadable(str(exc)) from exc
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    cases: list[CaseResult] = []
    for suite in suites:
        for case in suite:
            status, message = "pass", None
            for item in case.result:
                if isinstance(item, Error):
                    status, message = "error", item.message or item.text
                elif isinstance(item, Failure):
                    status, message = "fail", item.message or item.text
                elif isinstance(item, Skipped):
                    status, message = "skipped", item.message or item.text
            duration = case.time
            cases.append(
                CaseResult(
                    name=(case.name or "unnamed")[:500],
                    classname=(case.classname or None),
                    status=status,
                    duration_ms=round(duration * 1000) if duration else None,
                    message=message[:500] if message else None,
                )
            )
    return cases
